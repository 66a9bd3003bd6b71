"""`acct predict` through Typer's CliRunner on the session's tiny run."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from acct.cli import app

runner = CliRunner()
QUESTION = "Which of these numbers fits?"


def predict(*args):
    return runner.invoke(app, ["predict", *map(str, args), "--device", "cpu"])


def test_single_question_json(tiny_run, held_out_even):
    ex = held_out_even
    result = predict(tiny_run, "--question", ex.question, "--choices", *ex.choices, "--task", "even_number", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"prediction", "choice", "probabilities", "task"}
    assert out["task"] == "even_number" and out["prediction"] == ex.answer and out["choice"] == ex.choices[ex.answer]
    assert len(out["probabilities"]) == 4 and sum(out["probabilities"]) == pytest.approx(1.0, abs=1e-4)


def test_single_question_table_and_task_agnostic_notice(tiny_run):
    result = predict(tiny_run, "--question", QUESTION, "--choices", "3", "8", "11", "15", "20")
    assert result.exit_code == 0, result.output
    assert "task-agnostic" in result.stderr and "mean of the run's 8 task embeddings" in result.stderr
    for word in ("choice", "probability", "prediction:", "20"):
        assert word in result.stdout
    result = predict(tiny_run, "--question", QUESTION, "--choices", "3", "8", "--json")
    assert json.loads(result.stdout)["task"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--question", QUESTION, "--choices", "3", "--task", "even_number"], "at least 2 choices, got 1"),
        (["--question", "  ", "--choices", "3", "8"], "the question is empty"),
        (["--question", QUESTION, "--choices", "3", "8", "--task", "even"], "unknown task 'even'; closest: even_number"),
        (["--question", QUESTION, "3", "8"], "answer options go after --choices"),
        (["--question", QUESTION], "needs both --question and --choices"),
        (["--question", QUESTION, "--choices", "3", "8", "--input", "q.jsonl"], "either --question/--choices or --input"),
        (["--question", QUESTION, "--choices", "3", "8", "--checkpoint", "first"], "checkpoint"),
    ],
)
def test_usage_errors(tiny_run, args, message):
    result = predict(tiny_run, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) <= 2  # one error line (rich may wrap it)


def test_missing_run_dir(tmp_path):
    result = predict(tmp_path / "nope", "--question", QUESTION, "--choices", "3", "8")
    assert result.exit_code == 2 and "run directory not found" in result.stderr


def test_file_mode(tiny_run, held_out_even, tmp_path):
    ex = held_out_even
    rows = [{"question": ex.question, "choices": list(ex.choices), "task": "even_number", "answer": ex.answer},
            {"question": "Pick the word that belongs.", "choices": ["dog", "apple", "pear"], "task": "animal_word", "answer": "A"},
            {"question": "Pick the word that belongs.", "choices": ["dog", "apple"]}]
    src = tmp_path / "q.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    result = predict(tiny_run, "--input", src, "--batch-size", "2")  # JSON lines on stdout, summary on stderr
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["index"] for r in lines] == [0, 1, 2] and lines[0]["correct"] is True
    assert "accuracy 100.00% on the 2 with an answer" in result.stderr

    dst = tmp_path / "out.jsonl"
    result = predict(tiny_run, "--input", src, "--output", dst, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {"n", "answered", "correct", "accuracy", "output"} <= set(summary)
    assert (summary["n"], summary["answered"], summary["accuracy"]) == (3, 2, 1.0)
    written = [json.loads(line) for line in dst.read_text().splitlines()]
    # Another batch size pads to other widths: the same answers, probabilities equal to float rounding.
    assert [{**r, "probabilities": None} for r in written] == [{**r, "probabilities": None} for r in lines]
    for a, b in zip(written, lines):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)
    assert not list(tmp_path.glob(".*.tmp"))

    result = predict(tiny_run, "--input", src, "--json")
    assert result.exit_code == 2 and "needs --output" in result.stderr


def test_file_mode_errors_leave_no_output(tiny_run, tmp_path):
    src = tmp_path / "q.jsonl"
    src.write_text(json.dumps({"question": QUESTION, "choices": ["3", "8"]}) + "\n" + json.dumps({"question": "q", "choices": ["x"]}) + "\n")
    dst = tmp_path / "out.jsonl"
    result = predict(tiny_run, "--input", src, "--output", dst)
    assert result.exit_code == 2 and "line 2: a question needs at least 2 choices" in result.stderr
    assert not dst.exists() and not list(tmp_path.glob(".*.tmp"))


SPELLINGS = ["even_number", "Even Number", "even-number", "EVEN_NUMBER", " even number "]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_task_spellings_resolve_to_the_run_task_single(tiny_run, held_out_even, spelling):
    ex = held_out_even
    result = predict(tiny_run, "--question", ex.question, "--choices", *ex.choices, "--task", spelling, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["task"] == "even_number" and out["prediction"] == ex.answer
    table = predict(tiny_run, "--question", ex.question, "--choices", *ex.choices, "--task", spelling)
    assert table.exit_code == 0, table.output
    assert "task: even_number" in table.stdout


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_task_spellings_resolve_to_the_run_task_file_mode(tiny_run, held_out_even, tmp_path, spelling):
    ex = held_out_even
    rows = [{"question": ex.question, "choices": list(ex.choices), "answer": ex.answer},
            {"question": ex.question, "choices": list(ex.choices), "task": spelling, "answer": ex.answer}]
    src = tmp_path / "q.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = predict(tiny_run, "--input", src, "--task", spelling)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["task"] for r in lines] == ["even_number", "even_number"]
    assert all(r["correct"] for r in lines)
    csv = tmp_path / "questions.csv"
    csv.write_text(",".join(f'"{x}"' for x in (ex.question, *ex.choices)) + f",{'ABCD'[ex.answer]}\n")
    result = predict(tiny_run, "--input", csv, "--task", spelling)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["task"] == "even_number"


def test_input_dash_reads_json_lines_from_stdin(tiny_run, held_out_even):
    ex = held_out_even
    rows = [{"question": ex.question, "choices": list(ex.choices), "task": "even_number", "answer": ex.answer},
            {"question": "Pick the word that belongs.", "choices": ["dog", "apple"]}]
    text = "\n".join(json.dumps(r) for r in rows) + "\n"
    result = runner.invoke(app, ["predict", str(tiny_run), "--input", "-", "--device", "cpu"], input=text)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["index"] for r in lines] == [0, 1] and lines[0]["correct"] is True
    assert lines[1]["task"] is None
    assert "2 question(s) written to stdout" in result.stderr

    bad = runner.invoke(app, ["predict", str(tiny_run), "--input", "-", "--device", "cpu"], input='{"question": "q"\n')
    assert bad.exit_code == 2 and "stdin line 1: not valid JSON" in bad.stderr


def test_output_may_not_be_the_input(tiny_run, tmp_path, monkeypatch):
    src = tmp_path / "q.jsonl"
    text = json.dumps({"question": QUESTION, "choices": ["3", "8"]}) + "\n"
    src.write_text(text)
    monkeypatch.chdir(tmp_path)
    for output in (src, "q.jsonl", "./sub/../q.jsonl"):
        result = predict(tiny_run, "--input", src, "--output", output)
        assert result.exit_code == 2, result.output
        assert "is the --input file" in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert src.read_text() == text
    link = tmp_path / "link.jsonl"
    link.hardlink_to(src)
    result = predict(tiny_run, "--input", src, "--output", link)
    assert result.exit_code == 2 and "is the --input file" in result.stderr
    assert src.read_text() == text


def test_two_writers_of_one_output_leave_one_whole_file(tmp_path):
    from acct.cli.predict import atomic_output

    target = tmp_path / "out.jsonl"
    first, second = "".join(f"a{i}\n" for i in range(50)), "b\n"
    with atomic_output(target) as a:
        a.write(first[:40])
        with atomic_output(target) as b:
            b.write(second)
            a.write(first[40:])
            a.flush()
        assert target.read_text() == second
    assert target.read_text() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary new file, not the temporary's private 0600


def test_a_failed_writer_leaves_the_previous_output(tmp_path):
    from acct.cli.predict import atomic_output

    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_output(target) as handle:
        handle.write("half")
        raise RuntimeError("stopped")
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
