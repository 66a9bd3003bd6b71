"""Accuracy summaries: micro over questions, macro over tasks, per category and per task."""

from __future__ import annotations

import pytest

from acct.data.records import Example
from acct.scoring.metrics import summarize


def questions(task: str, n: int, answer: int = 0) -> list[Example]:
    return [Example(f"{task} q{i}", ("a", "b", "c", "d"), answer, task, f"{task}/{i}") for i in range(n)]


def test_macro_accuracy_averages_tasks_not_questions():
    # big: 8 questions, all right; small: 2 questions, none right.
    examples = questions("big", 8) + questions("small", 2)
    predictions = [0] * 8 + [1] * 2
    r = summarize("val", examples, predictions, task_categories={"big": "x", "small": "x"})
    assert r.n == 10
    assert r.accuracy == pytest.approx(0.8)  # micro: 8 of 10 questions
    assert r.macro_accuracy == pytest.approx(0.5)  # mean of 1.0 and 0.0
    assert r.tasks == {"big": {"n": 8, "accuracy": 1.0}, "small": {"n": 2, "accuracy": 0.0}}
    assert r.categories == {"x": pytest.approx(0.8)}


def test_macro_equals_micro_only_when_tasks_are_balanced():
    examples = questions("a", 4) + questions("b", 4)
    predictions = [0, 0, 0, 1] + [0, 1, 1, 1]
    r = summarize("val", examples, predictions)
    assert r.accuracy == pytest.approx(0.5)
    assert r.macro_accuracy == pytest.approx((0.75 + 0.25) / 2)


def test_unequal_task_sizes_with_interleaved_order():
    # The order of examples must not matter to either mean.
    big, small = questions("big", 6, answer=2), questions("small", 3, answer=1)
    examples = [big[0], small[0], big[1], big[2], small[1], big[3], big[4], small[2], big[5]]
    predictions = [2 if ex.task == "big" else (1 if ex.uid == "small/0" else 0) for ex in examples]
    r = summarize("test", examples, predictions)
    assert r.accuracy == pytest.approx(7 / 9)
    assert r.macro_accuracy == pytest.approx((1.0 + 1 / 3) / 2)
