"""`acct train --init-from`: a new run from a run's, an export's or a Hugging Face encoder's weights."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from acct.cli import app
from acct.data.synthetic import SYNTHETIC_TASKS
from tests.conftest import run_to_end, tiny_settings

pytestmark = pytest.mark.slow  # every test here trains a model

runner = CliRunner()
MATCHED = SYNTHETIC_TASKS[-1]  # last row of the source's task embedding, second of the new run's
NEW = "aaa_new_task"  # sorts first: its row index is one the source uses for another task
# Training barely moves the weights, so the new run's first checkpoint shows where it started.
FROZEN = ["--max-steps", "1", "--eval-every-n-steps", "1", "--lr", "1e-12", "--device", "cpu", "--seed", "5"]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("init") / "source"
    run_to_end(tiny_settings(run_dir, **{"optim.max_steps": 10, "eval_every_n_steps": 10}))
    return run_dir


@pytest.fixture(scope="module")
def new_data(tmp_path_factory) -> Path:
    """An MMLU-layout CSV folder with one task the source knows and one it does not."""
    root = tmp_path_factory.mktemp("csvdata")
    for split in ("dev", "val", "test"):
        (root / split).mkdir()
        for task in (NEW, MATCHED):
            with (root / split / f"{task}_{split}.csv").open("w", newline="", encoding="utf-8") as handle:
                csv.writer(handle).writerows(
                    [f"{task} {split} question {i}: which is {i}?", str(i), str(i + 1), str(i + 2), str(i + 3), "A"]
                    for i in range(12)
                )
    return root


def checkpoint_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / "best" / "model.safetensors"))


def train(*argv: str):
    return runner.invoke(app, ["train", "--preset", "tiny", *argv])


def test_init_from_a_run_copies_encoder_heads_and_task_rows_by_name(source, new_data, tmp_path):
    out = tmp_path / "new"
    result = train("--init-from", f"{source}:best", "--data-source", "csv", "--data-dir", str(new_data),
                   "--output-dir", str(out), *FROZEN)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"task embedding of 1 task(s) copied by name from the source ({MATCHED})" in text
    assert f"1 new task(s) initialised fresh: {NEW}" in text
    assert "tokenizer: WordPiece" not in text  # the source's tokenizer, not a new one

    before, after = checkpoint_weights(source), checkpoint_weights(out)
    assert json.loads((out / "checkpoints" / "best" / "acct.json").read_text())["tasks"] == [NEW, MATCHED]
    for name, value in after.items():
        if name != "task_embedding.weight":
            assert torch.allclose(value, before[name], atol=1e-6), name
    old_rows, new_rows = before["task_embedding.weight"], after["task_embedding.weight"]
    source_tasks = json.loads((source / "checkpoints" / "best" / "acct.json").read_text())["tasks"]
    assert torch.allclose(new_rows[1], old_rows[source_tasks.index(MATCHED)], atol=1e-6)
    assert not any(torch.allclose(new_rows[0], row, atol=1e-3) for row in old_rows)  # a fresh row
    saved = json.loads((out / "config.json").read_text())
    assert saved["init_from"] == f"{source}:best" and saved["data"]["source"] == "csv"


def test_init_from_an_export_and_from_its_huggingface_encoder(source, tmp_path):
    exported = tmp_path / "exported"
    assert runner.invoke(app, ["export", str(source), str(exported), "--checkpoint", "last"]).exit_code == 0
    before = checkpoint_weights(source)

    out = tmp_path / "from-export"
    result = train("--init-from", str(exported), "--output-dir", str(out), *FROZEN)
    assert result.exit_code == 0, result.output
    assert "copied by name" in result.output and "new task(s)" not in result.output
    after = checkpoint_weights(out)
    assert after.keys() == before.keys()
    assert all(torch.allclose(after[k], before[k], atol=1e-6) for k in after)

    out = tmp_path / "from-encoder"
    result = train("--init-from", str(exported / "encoder"), "--output-dir", str(out), *FROZEN)
    assert result.exit_code == 0, result.output
    assert "heads start fresh" in " ".join(result.output.split())
    after = checkpoint_weights(out)
    encoder = [k for k in after if k.startswith("encoder.")]
    assert encoder and all(torch.allclose(after[k], before[k], atol=1e-6) for k in encoder)
    assert not torch.allclose(after["scorer.0.weight"], before["scorer.0.weight"], atol=1e-3)


def test_bad_init_from_sources_are_one_line_and_leave_no_run(source, tmp_path):
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    cases = [
        (str(tmp_path / "missing"), "not found"),
        (str(not_a_model), "neither an acct run directory"),
        (f"{source}:worst", "not found"),
    ]
    for spec, words in cases:
        out = tmp_path / "never"
        result = train("--init-from", spec, "--output-dir", str(out), *FROZEN)
        assert result.exit_code == 2, result.output
        assert words in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert not out.exists()
    result = train("--init-from", str(source), "--output-dir", str(source), "--overwrite", *FROZEN)
    assert result.exit_code == 2 and "own --output-dir" in result.output
    assert (source / "checkpoints" / "best").exists()


def test_resume_refusal_points_to_init_from(source):
    result = runner.invoke(app, ["train", "--resume", str(source), "--lr", "1e-4"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "remove --lr" in text and f"acct train --init-from {source}" in text
