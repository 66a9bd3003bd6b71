"""Prediction with a trained run, without Typer: tasks, question files, streaming, scoring."""

from __future__ import annotations

import io
import json

import pytest

from acct.data.columns import ColumnMapping
from acct.errors import DataError, UsageError
from acct.scoring.predict import (
    AGNOSTIC,
    Predictor,
    Question,
    closest_tasks,
    predict_stream,
    read_questions,
    resolve_task,
    score_split,
    training_questions,
)
from acct.data.synthetic import SYNTHETIC_TASKS

MMLU_LIKE = ["high_school_geography", "high_school_physics", "college_physics", "world_religions", "virology"]


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return Predictor.open(tiny_run, "best", device="cpu")


def test_resolve_task():
    assert resolve_task(None, MMLU_LIKE) == AGNOSTIC == -1
    assert resolve_task("world_religions", MMLU_LIKE) == 3
    with pytest.raises(UsageError, match="unknown task 'geography'; closest: high_school_geography"):
        resolve_task("geography", MMLU_LIKE)
    with pytest.raises(UsageError, match="closest: high_school_physics") as info:
        resolve_task("high_school_phyics", MMLU_LIKE)
    assert "virology" not in str(info.value)
    assert resolve_task("High School Geography", MMLU_LIKE) == 0


def test_closest_tasks_lists_something_for_a_typo_only():
    assert closest_tasks("virologee", MMLU_LIKE) == ["virology"]
    assert closest_tasks("physics", MMLU_LIKE) == ["high_school_physics", "college_physics"]
    assert closest_tasks("zzzz", MMLU_LIKE) == []
    with pytest.raises(UsageError, match="the run's 5 tasks include high_school_geography"):
        resolve_task("zzzz", MMLU_LIKE)


def test_predict_any_number_of_choices_and_task_agnostic(predictor):
    questions = [
        Question("Which of these numbers fits?", ("3", "8"), "even_number"),
        Question("Pick the word that belongs.", ("dog", "apple", "pear"), "animal_word"),
        Question("Pick the word that belongs.", ("dog", "apple", "pear", "kiwi", "fig"), None),
    ]
    preds = predictor.predict(questions)
    assert [len(p.probabilities) for p in preds] == [2, 3, 5]
    for q, p in zip(questions, preds):
        assert sum(p.probabilities) == pytest.approx(1.0, abs=1e-4)
        assert p.prediction == max(range(len(q.choices)), key=lambda i: p.probabilities[i])
        assert p.choice == q.choices[p.prediction]
        assert p.task == q.task
    assert preds[0].choice == "8"  # the tiny run learned even_number
    assert preds[1].choice == "dog"
    assert set(preds[2].to_dict()) == {"prediction", "choice", "probabilities", "task"}


def test_task_agnostic_uses_the_mean_task_embedding(predictor):
    """Scoring with task id -1 equals scoring with a task whose embedding is the mean row."""
    import torch

    q = Question("Which of these numbers fits?", ("3", "8", "11", "15"), None)
    agnostic = predictor.predict([q])[0].probabilities
    table = predictor.run.model.task_embedding.weight
    saved = table.data.clone()
    try:
        with torch.no_grad():
            table[0] = saved.mean(0)
        as_task0 = predictor.predict([Question(q.question, q.choices, predictor.tasks[0])])[0].probabilities
    finally:
        with torch.no_grad():
            table.copy_(saved)
    assert agnostic == pytest.approx(as_task0, abs=1e-5)


def test_predict_rejects_bad_questions(predictor):
    with pytest.raises(UsageError, match="question is empty"):
        predictor.predict([Question("  ", ("a", "b"))])
    with pytest.raises(UsageError, match="at least 2 choices, got 1"):
        predictor.predict([Question("q?", ("a",))])
    with pytest.raises(UsageError, match="closest: even_number"):
        predictor.predict([Question("q?", ("a", "b"), "even_numbers")])


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_read_jsonl_questions(tmp_path):
    path = write(tmp_path / "q.jsonl", "\n".join([
        json.dumps({"question": "q1", "choices": ["a", "b"], "task": "even_number", "answer": 1}),
        "",
        json.dumps({"question": "q2", "choices": ["a", "b", "c"], "answer": "C"}),
        json.dumps({"question": "q3", "choices": ["a", "b"], "task": None}),
    ]))
    questions, notices = read_questions(path, SYNTHETIC_TASKS, default_task="odd_number")
    assert notices == []
    assert list(questions) == [
        Question("q1", ("a", "b"), "even_number", 1),
        Question("q2", ("a", "b", "c"), "odd_number", 2),  # the row names no task: --task applies
        Question("q3", ("a", "b"), "odd_number", None),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        (json.dumps({"question": "q", "choices": ["a"]}), "line 2: a question needs at least 2 choices"),
        (json.dumps({"question": "", "choices": ["a", "b"]}), "line 2: the question is empty"),
        (json.dumps({"question": "q", "choices": "ab"}), "line 2: 'choices' must be a list of strings"),
        (json.dumps({"question": "q", "choices": ["a", "b"], "answer": 2}), "line 2: answer 2 does not index 2 choices"),
        (json.dumps({"question": "q", "choices": ["a", "b"], "task": "odd_numbr"}), "question 2: unknown task 'odd_numbr'; closest: odd_number"),
    ],
)
def test_read_jsonl_errors_name_the_line(tmp_path, line, message):
    good = json.dumps({"question": "q", "choices": ["a", "b"]})
    path = write(tmp_path / "q.jsonl", good + "\n" + line + "\n")
    questions, _ = read_questions(path, SYNTHETIC_TASKS)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(questions)


RUN_COLUMNS = ColumnMapping(question="stem", choices=None, choice_columns=("A", "B", "C", "D"), answer="key",
                            task="topic")


def test_read_rows_in_the_run_columns(tmp_path):
    rows = [{"stem": "q1", "A": "1", "B": "2", "C": "3", "D": "4", "key": "C", "topic": "even_number"},
            {"stem": "q2", "A": "x", "B": "y", "C": "", "D": "", "key": "y", "topic": ""},  # two choices, the text as answer
            {"stem": "q3", "A": "x", "B": "y", "C": "z", "D": "w"}]  # no answer, no task
    expected = [Question("q1", ("1", "2", "3", "4"), "even_number", 2), Question("q2", ("x", "y"), "odd_number", 1),
                Question("q3", ("x", "y", "z", "w"), "odd_number", None)]
    jsonl = write(tmp_path / "q.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    questions, _ = read_questions(jsonl, SYNTHETIC_TASKS, "odd_number", columns=RUN_COLUMNS)
    assert list(questions) == expected

    header = "stem,A,B,C,D,key,topic\n"
    csv = write(tmp_path / "q.csv", header + "q1,1,2,3,4,C,even_number\n" + "q2,x,y,,,y,\n" + "q3,x,y,z,w,,\n")
    questions, notices = read_questions(csv, SYNTHETIC_TASKS, "odd_number", columns=RUN_COLUMNS)
    assert list(questions) == expected and notices == []

    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    parquet = tmp_path / "q.parquet"
    pq.write_table(pa.Table.from_pylist([{**{"key": None, "topic": None}, **r} for r in rows]), parquet)
    questions, _ = read_questions(parquet, SYNTHETIC_TASKS, "odd_number", columns=RUN_COLUMNS)
    assert list(questions) == expected


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"stem": "q", "B": "b"}, "line 1: missing column 'A'; looked for stem, A, B, C, D (the run's columns) or "
                                  "question, choices (acct predict's layout); the row has 'stem', 'B'"),
        ({"question": "q", "options": ["a"]}, "line 1: missing column 'choices'; looked for stem, A"),
        ({"stem": 3, "A": "a", "B": "b"}, "line 1: column 'stem' must be a string"),
        ({"stem": "q", "A": "a", "B": "b", "key": "Q"}, "line 1: answer 'Q' does not name one of 2 choices"),
    ],
)
def test_rows_in_the_run_columns_name_what_is_missing(tmp_path, row, message):
    path = write(tmp_path / "q.jsonl", json.dumps(row) + "\n")
    questions, _ = read_questions(path, SYNTHETIC_TASKS, columns=RUN_COLUMNS)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(questions)


def test_a_row_without_question_says_missing(tmp_path):
    path = write(tmp_path / "q.jsonl", json.dumps({"prompt": "q", "choices": ["a", "b"]}) + "\n")
    questions, _ = read_questions(path, SYNTHETIC_TASKS)
    with pytest.raises(DataError, match="line 1: missing column 'question'; looked for question, choices"):
        list(questions)


def test_read_mmlu_csv_takes_the_task_from_the_file_name(tmp_path):
    rows = '"Which of these numbers fits?\nSecond line",3,8,11,15,B\nPick one,1,2,4,5\n'
    known = write(tmp_path / "even_number_test.csv", rows)
    questions, notices = read_questions(known, SYNTHETIC_TASKS)
    qs = list(questions)
    assert notices == ["task: even_number (from the file name)"]
    assert qs[0] == Question("Which of these numbers fits?\nSecond line", ("3", "8", "11", "15"), "even_number", 1)
    assert qs[1].answer is None

    unknown = write(tmp_path / "high_school_geography_test.csv", rows)
    questions, notices = read_questions(unknown, SYNTHETIC_TASKS)
    assert all(q.task is None for q in questions)
    assert "task-agnostic" in notices[0]

    bad = write(tmp_path / "x.csv", "q,a,b\n")
    questions, _ = read_questions(bad, SYNTHETIC_TASKS)
    with pytest.raises(DataError, match="x.csv line 1: expected the MMLU layout"):
        list(questions)
    with pytest.raises(UsageError, match="must be .jsonl or .csv"):
        read_questions(write(tmp_path / "q.txt", ""), SYNTHETIC_TASKS)
    with pytest.raises(UsageError, match="input file not found"):
        read_questions(tmp_path / "missing.jsonl", SYNTHETIC_TASKS)


def test_predict_stream_writes_one_line_per_question_and_scores_answers(predictor, held_out_even, tmp_path):
    ex = held_out_even
    lines = [json.dumps({"question": ex.question, "choices": list(ex.choices), "task": "even_number",
                         "answer": ex.answer})] * 5
    lines.append(json.dumps({"question": "Pick the word that belongs.", "choices": ["dog", "apple"]}))
    path = write(tmp_path / "q.jsonl", "\n".join(lines))
    predictor.batch_size = 4  # two batches
    try:
        questions, _ = read_questions(path, predictor.tasks)
        sink = io.StringIO()
        seen = []
        summary = predict_stream(predictor, questions, sink, on_batch=seen.append)
    finally:
        predictor.batch_size = 64
    records = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert seen == [4, 6]
    assert [r["index"] for r in records] == list(range(6))
    assert all(r["correct"] is True and r["answer"] == ex.answer for r in records[:5])
    assert "answer" not in records[5] and records[5]["task"] is None
    assert (summary.n, summary.answered, summary.correct, summary.agnostic) == (6, 5, 5, 1)
    assert summary.to_dict()["accuracy"] == 1.0
    assert summary.in_training is None and "in_training" not in records[0]  # no training set given
    assert summary.tasks == {"even_number": {"n": 5, "accuracy": 1.0}}


def test_predict_stream_rejects_an_empty_file(predictor, tmp_path):
    questions, _ = read_questions(write(tmp_path / "q.jsonl", "\n"), predictor.tasks)
    with pytest.raises(DataError, match="no questions"):
        predict_stream(predictor, questions, io.StringIO())


def test_score_split_agrees_with_evaluate(predictor, tiny_run):
    from acct.config.commands import EvaluateSettings
    from acct.engine import evaluate

    scored = score_split(predictor.run, "val", device=predictor.device, precision="fp32", batch_size=32)
    reference = evaluate(EvaluateSettings(run_dir=tiny_run, split="val", device="cpu"))
    assert scored.result.accuracy == reference.accuracy
    assert sum(scored.correct) == round(reference.accuracy * reference.n)
    assert len(scored.examples) == len(scored.predictions) == reference.n


def test_questions_the_run_trained_on_are_flagged(predictor, tmp_path):
    from acct.engine import load_run_split

    split = load_run_split(predictor.run)
    trained, held_out = split.train[0], split.test[0]
    rows = [{"question": ex.question, "choices": list(ex.choices), "task": ex.task, "answer": ex.answer}
            for ex in (trained, held_out)]
    path = write(tmp_path / "q.jsonl", "\n".join(json.dumps(r) for r in rows))
    questions, _ = read_questions(path, predictor.tasks)
    sink = io.StringIO()
    summary = predict_stream(predictor, questions, sink, training=training_questions(predictor.run))
    records = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert [r["in_training"] for r in records] == [True, False]
    assert summary.in_training == 1 and summary.held_out_answered == 1
    assert summary.to_dict()["held_out_accuracy"] == float(records[1]["correct"])
