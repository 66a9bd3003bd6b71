"""Training on your own files (`--data-source files`) end to end: train, evaluate, inspect-confusion, predict, ablate."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acct.cli import app
from tests.data.test_sources_files import quiz_rows, write_jsonl

pytestmark = [
    pytest.mark.slow,  # every test here trains a model
    # `datasets` is imported where a test uses it, not when the file is collected.
    pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="needs the datasets library"),
]


runner = CliRunner()
TASKS = ("add", "sub", "mul")
SMALL = ["--preset", "tiny", "--tasks-per-batch", "2", "--examples-per-task", "2", "--max-steps", "1",
         "--eval-every-n-steps", "1", "--device", "cpu"]
COLUMNS = ["--question-column", "prompt", "--choices-column", "options", "--answer-column", "label", "--task-column", "topic"]


def renamed(rows):
    """Rows in a layout of the user's own: prompt, options (5 choices), a letter label, topic."""
    return [{"prompt": r["question"], "options": r["choices"], "label": "ABCDEFGHIJ"[r["answer"]], "topic": r["subject"]}
            for r in rows]


@pytest.fixture(scope="module")
def quiz(tmp_path_factory):
    """A five-choice JSONL dataset given per split, and a run trained on it under the standard protocol."""
    root = tmp_path_factory.mktemp("quiz")
    splits = {"train": quiz_rows(per_task=8, k=5), "validation": quiz_rows(per_task=2, k=5, start=100),
              "test": quiz_rows(per_task=3, k=5, start=200)}
    for name, rows in splits.items():
        write_jsonl(root / f"{name}.jsonl", renamed(rows))
    run_dir = root / "run"
    files = f"train={root / 'train.jsonl'},validation={root / 'validation.jsonl'}"
    result = runner.invoke(app, ["train", *SMALL, *COLUMNS, "--data-source", "files", "--data-files", files,
                                 "--data-files", f"test={root / 'test.jsonl'}", "--protocol", "standard",
                                 "--output-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    return root, run_dir, splits


def test_standard_protocol_uses_the_given_splits(quiz):
    root, run_dir, splits = quiz
    data = json.loads((run_dir / "config.json").read_text())["data"]
    assert data["source"] == "files" and data["files"]["test"] == [str(root / "test.jsonl")]
    assert (data["question_column"], data["choices_column"], data["answer_column"]) == ("prompt", "options", "label")
    manifest = json.loads((run_dir / "split.json").read_text())
    for part, name, per_task in (("train", "train", 8), ("val", "val", 2), ("test", "test", 3)):
        assert manifest[part] == [f"{t}/{name}/{i}" for i in range(per_task) for t in TASKS]

    result = runner.invoke(app, ["evaluate", str(run_dir), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    assert scored["n"] == len(splits["test"]) and set(scored["tasks"]) == set(TASKS)
    assert scored["chance"] == pytest.approx(1 / 5)


def test_the_tokenisation_cache_holds_the_training_split(quiz):
    from acct import engine
    from acct.data.tokenize import default_cache_dir, encoding_cache_key

    run = engine.load_run(quiz[1])
    train = engine.load_run_split(run).train
    key = encoding_cache_key(run.tokenizer, train, run.settings.model.max_length)
    assert (default_cache_dir() / f"{key}.safetensors").is_file()


def test_inspect_confusion_recomputes_from_the_files(quiz):
    _, run_dir, _ = quiz
    result = runner.invoke(app, ["inspect-confusion", str(run_dir), "--recompute", "--split", "test", "--device", "cpu",
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["source"] == "recomputed" and set(report["tasks"]) == set(TASKS)
    scored = json.loads((run_dir / "eval-test.json").read_text())
    assert {t: v["accuracy"] for t, v in report["tasks"].items()} == {t: v["accuracy"] for t, v in scored["tasks"].items()}


def test_predict_takes_any_number_of_choices(quiz, tmp_path):
    root, run_dir, splits = quiz
    seen = splits["train"][0]
    questions = [
        {"question": "add item 900: 3 and 4?", "choices": [str(n) for n in range(3, 13)], "task": "add", "answer": "E"},
        {"question": seen["question"], "choices": seen["choices"], "task": seen["subject"], "answer": seen["answer"]},
        {"question": "sub item 901: 9 and 4?", "choices": ["5", "6"], "task": "sub"},
    ]
    path = write_jsonl(tmp_path / "ask.jsonl", questions)
    result = runner.invoke(app, ["predict", str(run_dir), "--input", str(path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [len(line["probabilities"]) for line in lines] == [10, 5, 2]
    assert all(sum(line["probabilities"]) == pytest.approx(1, abs=1e-4) for line in lines)
    assert lines[0]["answer"] == 4
    # The run's training split is re-read from its files: the copied question is recognised.
    assert [line["in_training"] for line in lines] == [False, True, False]


def test_collate_pads_and_masks_mixed_choice_counts(quiz):
    from acct import engine
    from acct.data.records import Example
    from acct.data.tokenize import collate, encode_examples

    run = engine.load_run(quiz[1])
    examples = [Example(f"q{k}", tuple(str(i) for i in range(k)), k - 1, "add", f"add/x/{k}") for k in (2, 10, 5)]
    encoded = encode_examples(run.tokenizer, examples, {t: i for i, t in enumerate(run.tasks)}, 32)
    batch = collate(encoded, [0, 1, 2], run.pad_id)
    assert batch.choice_mask.shape == (3, 10)
    assert batch.choice_mask.sum(1).tolist() == [2, 10, 5] and batch.labels.tolist() == [1, 9, 4]
    import torch

    with torch.no_grad():
        scores = run.model(**batch.model_inputs()).scores
    assert scores.shape == (3, 10)
    assert torch.isfinite(scores[batch.choice_mask]).all() and torch.isneginf(scores[~batch.choice_mask]).all()


def _csv_pool(path: Path) -> Path:
    rows = quiz_rows(per_task=6, k=4, seed=5)
    lines = ["stem,A,B,C,D,key,topic"]
    for r in rows:
        lines.append(",".join([f'"{r["question"]}"', *r["choices"], "ABCD"[r["answer"]], r["subject"]]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _parquet_pool(path: Path) -> Path:
    rows = quiz_rows(per_task=6, k=4, seed=6)
    for r in rows:
        r["area"] = "sums" if r["subject"] != "mul" else "products"
    import datasets

    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path


@pytest.mark.parametrize(
    "name, write, flags, categories",
    [
        ("quiz.csv", _csv_pool, ["--question-column", "stem", "--choice-columns", "A,B,C,D", "--answer-column", "key",
                                 "--task-column", "topic"], {"other"}),
        ("quiz.parquet", _parquet_pool, ["--category-column", "area"], {"sums", "products"}),
    ],
)
def test_train_and_evaluate_on_csv_and_parquet(tmp_path, name, write, flags, categories):
    path = write(tmp_path / name)
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", *SMALL, *flags, "--data-source", "files", "--data-files", str(path),
                                 "--output-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((run_dir / "split.json").read_text())
    assert sorted(manifest["train"] + manifest["val"] + manifest["test"]) == sorted(
        f"{t}/all/{i}" for t in TASKS for i in range(6))
    result = runner.invoke(app, ["evaluate", str(run_dir), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    assert scored["n"] == len(manifest["test"]) and set(scored["categories"]) == categories


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing column", "no column 'subject'"),
        ("answer out of range", "line 2: answer 7 does not index 4 choices"),
        ("not utf-8", "line 3: not UTF-8 text"),
        ("overlap", "1 of 3 test questions have an exact copy in training"),
    ],
)
def test_bad_data_is_one_line_at_the_command_line(tmp_path, case, expected):
    rows = quiz_rows(per_task=3)
    test_rows = quiz_rows(per_task=1, start=50)
    if case == "missing column":
        rows = [{k: v for k, v in r.items() if k != "subject"} for r in rows]
    elif case == "answer out of range":
        rows[1]["answer"] = 7
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    if case == "not utf-8":
        data = train.read_bytes().split(b"\n")
        data[2] = data[2].replace(b"item", b"\xff")
        train.write_bytes(b"\n".join(data))
    if case == "overlap":
        test_rows[1] = rows[4]
    test = write_jsonl(tmp_path / "test.jsonl", test_rows)
    val = write_jsonl(tmp_path / "val.jsonl", quiz_rows(per_task=1, start=80))
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", *SMALL, "--data-source", "files", "--protocol", "standard", "--data-files",
                                 f"train={train},validation={val},test={test}", "--output-dir", str(run_dir)])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output, result.output
    assert result.output.startswith("error: ") and expected in result.output
    assert not run_dir.exists()


def test_ablate_on_files(quiz, tmp_path):
    root, _, _ = quiz
    study = tmp_path / "study"
    result = runner.invoke(app, ["ablate", *SMALL, *COLUMNS, "--data-source", "files", "--data-files",
                                 f"{root / 'train.jsonl'},{root / 'validation.jsonl'}", "--arms", "baseline,contrastive",
                                 "--seeds", "1", "--output-dir", str(study), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["configs"]) == {"baseline", "contrastive"} and report["settings"]["data"]["source"] == "files"
    runs = {name: json.loads((study / f"{name}-seed0" / "split.json").read_text()) for name in ("baseline", "contrastive")}
    assert runs["baseline"]["test"] == runs["contrastive"]["test"]
    assert report["examples_per_seed"] == {"0": len(runs["baseline"]["test"])}
