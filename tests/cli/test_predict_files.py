"""`acct predict` on the very files a `files` run was trained on, in the run's own column names."""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from acct.cli import app
from tests.data.test_sources_files import quiz_rows, write_jsonl

# `datasets` is imported where a test uses it, not when the file is collected.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="needs the datasets library")

runner = CliRunner()
SMALL = ["--preset", "tiny", "--tasks-per-batch", "2", "--examples-per-task", "2", "--max-steps", "1",
         "--eval-every-n-steps", "1", "--device", "cpu"]
COLUMNS = ["--question-column", "prompt", "--choices-column", "options", "--answer-column", "label",
           "--task-column", "topic"]


def renamed(rows):
    """Rows in a layout of the user's own: prompt, options, a letter label, topic."""
    return [{"prompt": r["question"], "options": r["choices"], "label": "ABCD"[r["answer"]], "topic": r["subject"]}
            for r in rows]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-step run trained on one JSONL pool with renamed columns."""
    root = tmp_path_factory.mktemp("renamed")
    rows = quiz_rows(per_task=6, k=4, seed=3)
    pool = write_jsonl(root / "pool.jsonl", renamed(rows))
    run_dir = root / "run"
    result = runner.invoke(app, ["train", *SMALL, *COLUMNS, "--data-source", "files", "--data-files", str(pool),
                                 "--output-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    return root, run_dir, pool, rows


def predict(*args, **kwargs):
    return runner.invoke(app, ["predict", *map(str, args), "--device", "cpu"], **kwargs)


def test_predict_reads_the_file_the_run_trained_on(trained):
    _, run_dir, pool, rows = trained
    result = predict(run_dir, "--input", pool)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(rows)
    # The label letters were read as the run read them, and each row's topic is its task.
    assert [line["answer"] for line in lines] == [r["answer"] for r in rows]
    assert [line["task"] for line in lines] == [r["subject"] for r in rows]
    assert [line["question"] for line in lines] == [r["question"] for r in rows]
    # Every row is in the pool, so the run's training questions are among them and flagged.
    manifest = json.loads((run_dir / "split.json").read_text())
    assert sum(line["in_training"] for line in lines) == len(manifest["train"])
    assert f"on the {len(rows)} with an answer" in result.stderr


def test_predict_reads_a_parquet_copy_in_the_run_columns(trained, tmp_path):
    _, run_dir, _, rows = trained
    path = tmp_path / "pool.parquet"
    import datasets

    datasets.Dataset.from_list(renamed(rows)).to_parquet(str(path))
    dst = tmp_path / "out.jsonl"
    result = predict(run_dir, "--input", path, "--output", dst, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["n"], summary["answered"]) == (len(rows), len(rows))
    assert [json.loads(line)["answer"] for line in dst.read_text().splitlines()] == [r["answer"] for r in rows]


def test_a_missing_run_column_is_named_as_missing(trained, tmp_path):
    _, run_dir, _, rows = trained
    bad = [{"prompt": r["question"], "opts": r["choices"], "topic": r["subject"]} for r in rows[:2]]
    path = write_jsonl(tmp_path / "bad.jsonl", bad)
    result = predict(run_dir, "--input", path)
    assert result.exit_code == 2
    assert "line 1: missing column 'options'" in result.stderr
    assert "looked for prompt, options (the run's columns) or question, choices (acct predict's layout)" in result.stderr
    assert "must be a string" not in result.stderr and "Traceback" not in result.output


def test_acct_predict_own_layout_still_works_on_a_files_run(trained, tmp_path):
    _, run_dir, _, rows = trained
    own = [{"question": r["question"], "choices": r["choices"], "task": r["subject"], "answer": r["answer"]}
           for r in rows[:3]]
    path = write_jsonl(tmp_path / "own.jsonl", own)
    result = predict(run_dir, "--input", path)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["task"], line["answer"]) for line in lines] == [(r["subject"], r["answer"]) for r in rows[:3]]
