"""`acct train --data-source csv` trains on a small folder in the original MMLU CSV layout."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acct.cli import app

pytestmark = pytest.mark.slow  # every test here trains a model

runner = CliRunner()
SUBJECTS = ("high_school_biology", "philosophy", "world_religions")
SIZES = {"dev": 4, "val": 8, "test": 12}  # per subject


def write_mmlu_csv(root: Path) -> set[str]:
    """DIR/{dev,val,test}/SUBJECT_{split}.csv: header-less `question,A,B,C,D,letter` rows; returns the uids."""
    rng = random.Random(0)
    uids = set()
    for split, n in SIZES.items():
        (root / split).mkdir(parents=True)
        for s, subject in enumerate(SUBJECTS):
            with (root / split / f"{subject}_{split}.csv").open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                for i in range(n):
                    a, b = rng.randint(1, 50), rng.randint(1, 50)
                    right = a + b + s
                    choices = [right, right + 1, right - 1, right + 2]
                    rng.shuffle(choices)
                    question = f"In {subject.replace('_', ' ')}, {split} item {i}: what is {a} + {b} + {s}?"
                    writer.writerow([question, *map(str, choices), "ABCD"[choices.index(right)]])
                    uids.add(f"{subject}/{split}/{i}")
    return uids


def test_train_on_csv_data(tmp_path: Path):
    data = tmp_path / "mmlu"
    uids = write_mmlu_csv(data)
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "--preset", "tiny", "--data-source", "csv", "--data-dir", str(data),
                                 "--max-steps", "3", "--eval-every-n-steps", "3", "--device", "cpu", "--seed", "4",
                                 "--output-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["source"] == "csv" and Path(config["data"]["data_dir"]) == data
    # subject-split: every question of every CSV file lands in exactly one split, tasks are the subjects.
    split = json.loads((run_dir / "split.json").read_text())
    drawn = [uid for part in ("train", "val", "test") for uid in split[part]]
    assert sorted(drawn) == sorted(uids)
    assert {uid.split("/")[0] for uid in split["train"]} == set(SUBJECTS)
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in lines if e["event"] == "train"] == [3]
    [validation] = [e for e in lines if e["event"] == "validation"]
    assert validation["n"] == len(split["val"])
    assert set(validation["tasks"]) == set(SUBJECTS)
    assert "done (completed) at step 3" in result.stderr
