"""Data keeps its promises: an empty or missing choice is refused by every source, a task name is
one line, a question offering one choice twice is counted, and near-copies across splits (curly
quotes, a space before a period, a final period) are copies."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acct import engine
from acct.cli import app
from acct.data.columns import ColumnMapping
from acct.data.records import Example
from acct.data.mmlu_csv import load_csv_source
from acct.data.dedup import question_key
from acct.data.protocols import subject_split
from acct.errors import DataError
from acct.data.sources.files import load_files_source
from tests.conftest import run_to_end, tiny_settings

# `datasets` is imported where a test uses it, not when the file is collected.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="needs the datasets library")
runner = CliRunner()
COLUMNS = ColumnMapping(choices=None, choice_columns=("A", "B", "C", "D"))


def quiz(tasks=("add", "sub"), per_task=12):
    rows = []
    for task in tasks:
        for i in range(per_task):
            right = i + (3 if task == "add" else 7)
            rows.append({"question": f"{task} {i}: which is {right}?", "A": str(right), "B": str(right + 1),
                         "C": str(right + 2), "D": str(right + 3), "answer": "A", "subject": task})
    return rows


def write_csv(path: Path, rows) -> Path:
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(str(r[h]) for h in header) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- an empty choice is refused by every source, naming file and row ------------------------------


def test_an_empty_middle_choice_is_refused_in_csv_as_in_parquet(tmp_path):
    rows = quiz()
    rows[2]["B"] = ""  # an empty cell between two choices
    csv_file = write_csv(tmp_path / "quiz.csv", rows)
    with pytest.raises(DataError, match=rf"^{csv_file} line 4: empty choice in column 'B'"):
        load_files_source([str(csv_file)], COLUMNS)
    rows[2]["B"] = "   "  # blank is empty too
    write_csv(csv_file, rows)
    with pytest.raises(DataError, match=rf"^{csv_file} line 4: empty choice in column 'B'"):
        load_files_source([str(csv_file)], COLUMNS)
    rows[2]["B"] = None
    parquet = tmp_path / "quiz.parquet"
    import datasets

    datasets.Dataset.from_list(rows).to_parquet(str(parquet))
    with pytest.raises(DataError, match=rf"^{parquet} row 3: no value in choice column 'B'"):
        load_files_source([str(parquet)], COLUMNS)
    # Trailing empty cells still mean fewer choices.
    rows[2]["B"], rows[2]["C"], rows[2]["D"] = "x", "", ""
    write_csv(csv_file, rows)
    assert load_files_source([str(csv_file)], COLUMNS)["all"][2].choices == ("5", "x")


def test_an_empty_choice_in_a_list_column_and_in_the_mmlu_layout_is_refused(tmp_path):
    rows = [{"question": f"q{i}", "choices": ["a", "b", "c"], "answer": 0, "subject": "t"} for i in range(3)]
    rows[1]["choices"] = ["a", " ", "c"]
    jsonl = tmp_path / "quiz.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{jsonl} line 2: choice 1 in column 'choices' is empty"):
        load_files_source([str(jsonl)])
    mmlu = tmp_path / "mmlu"
    for split in ("dev", "val", "test"):
        (mmlu / split).mkdir(parents=True)
        (mmlu / split / f"algebra_{split}.csv").write_text("What is 1+1?,2,3,4,5,A\nWhat is 2+2?,4,,6,7,A\n")
    with pytest.raises(DataError, match=r"algebra_dev.csv line 2: choice B is empty"):
        load_csv_source(mmlu)


def test_a_nan_choice_is_refused_not_read_as_the_text_nan(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = quiz()
    columns = {name: [r[name] for r in rows] for name in rows[0]}
    columns["B"] = [float(v) for v in columns["B"]]
    columns["B"][5] = float("nan")  # a float column's missing value, as pandas writes it
    parquet = tmp_path / "quiz.parquet"
    pq.write_table(pa.table({k: pa.array(v, from_pandas=False) for k, v in columns.items()}), parquet)
    with pytest.raises(DataError, match=rf"^{parquet} row 6: no value in choice column 'B'"):
        load_files_source([str(parquet)], COLUMNS)


def test_the_cli_says_it_in_one_line(tmp_path):
    rows = quiz()
    rows[3]["C"] = ""
    csv_file = write_csv(tmp_path / "quiz.csv", rows)
    result = runner.invoke(app, ["train", "--preset", "tiny", "--data-source", "files", "--data-files", str(csv_file),
                                 "--choice-columns", "A,B,C,D", "--output-dir", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{csv_file} line 5: empty choice in column 'C'" in errors[0], result.output
    assert not (tmp_path / "run").exists()


# -- task names are one line of text --------------------------------------------------------------


def test_a_task_name_with_a_line_break_is_refused(tmp_path):
    rows = [{"question": f"q{i}", "choices": ["a", "b"], "answer": 0, "subject": "algebra"} for i in range(3)]
    rows[2]["subject"] = "alge\nbra"
    jsonl = tmp_path / "quiz.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{jsonl} line 3: task name 'alge\\nbra' holds a control character"):
        load_files_source([str(jsonl)])


# -- a question offering one choice twice is counted ----------------------------------------------


def test_questions_with_identical_choices_are_a_counted_notice(tmp_path):
    rows = quiz(per_task=16)
    rows[0]["C"] = rows[0]["A"]  # the right answer twice
    rows[20]["D"] = rows[20]["B"] + " "  # the same text up to whitespace
    csv_file = write_csv(tmp_path / "quiz.csv", rows)
    settings = tiny_settings(tmp_path / "run", **{
        "data.source": "files", "data.files": [str(csv_file)], "data.choice_columns": ["A", "B", "C", "D"],
        "optim.max_steps": 2, "eval_every_n_steps": 2, "batch.tasks_per_batch": 2, "batch.examples_per_task": 2})
    started = next(e for e in run_to_end(settings) if isinstance(e, engine.RunStarted))
    notes = [n for n in started.notices if "offer the same choice twice" in n]
    assert len(notes) == 1, started.notices
    assert notes[0].startswith("data: 2 question(s)") and "in 1 of them the right answer is one of the twins" in notes[0]


# -- near-copies are copies -----------------------------------------------------------------------


def ex(question, choices, uid, task="physics"):
    return Example(question, tuple(choices), 0, task, uid)


def test_near_copies_are_the_same_question():
    base = ex("The boy's parents said it’s fine.", ["transverse waves", "the data", "x² + 1", "H₂O"], "a")
    for question, choices in [
        ("The boy’s parents said it's fine.", ["transverse waves", "the data", "x² + 1", "H₂O"]),  # quotes
        ("The boy's parents said it’s fine .", ["transverse waves.", "the data .", "x² + 1", "H₂O"]),  # periods
        ("The  boy's parents said it‘s fine.", ["ｔransverse waves", "the data", "x² + 1", "H₂O"]),  # NFKC
    ]:
        assert question_key(ex(question, choices, "b")) == question_key(base)
    # Case, symbols, superscripts and subscripts, and an ellipsis, still tell questions apart.
    for question, choices in [
        ("the boy's parents said it’s fine.", ["transverse waves", "the data", "x² + 1", "H₂O"]),
        ("The boy's parents said it’s fine.", ["transverse waves", "the data", "x2 + 1", "H₂O"]),
        ("The boy's parents said it’s fine.", ["transverse waves", "the data", "x² + 1", "H2O"]),
        ("The boy's parents said it’s fine...", ["transverse waves", "the data", "x² + 1", "H₂O"]),
        ("The boy's parents said it’s fine.", ["transverse waves", "the data", "x² - 1", "H₂O"]),
    ]:
        assert question_key(ex(question, choices, "b")) != question_key(base)


def test_a_near_copy_is_collapsed_within_a_task_and_kept_with_its_twin_across_tasks():
    source = {"test": [ex(f"Question {i} about waves?", ["a", "b"], f"physics/test/{i}") for i in range(20)]}
    source["test"].append(ex("Which waves are “sound” waves?", ["transverse", "longitudinal"], "physics/test/20"))
    source["test"].append(ex("Which waves are \"sound\" waves ?", ["transverse.", "longitudinal"], "physics/test/21"))
    source["test"] += [ex(f"Chemistry {i}?", ["a", "b"], f"chem/test/{i}", "chem") for i in range(20)]
    source["test"].append(ex("Which waves are “sound” waves?", ["transverse", "longitudinal."], "chem/test/20", "chem"))
    split = subject_split(source, (0.8, 0.1, 0.1), seed=0)
    assert split.report["removed_uids"] == {"physics/test/21": "physics/test/20"}
    sides = {uid: name for name in ("train", "val", "test") for uid in (e.uid for e in getattr(split, name))}
    assert sides["physics/test/20"] == sides["chem/test/20"]
    assert split.report["cross_task_examples"] == 2
