"""Options of the synthetic suite: imbalanced task sizes and a task with random answers."""

from __future__ import annotations

from collections import Counter

import pytest

from acct.errors import UsageError
from acct.data.sources.synthetic import SyntheticSource
from acct.data.synthetic import NOISE_TASK, SYNTHETIC_TASKS, generate_suite


def test_defaults_are_unchanged_by_the_options() -> None:
    plain = generate_suite(examples_per_task=20, seed=4)["all"]
    with_options = generate_suite(examples_per_task=20, seed=4, task_sizes={"even_number": 60}, noise_task=True)["all"]
    counts = Counter(e.task for e in with_options)
    assert counts["even_number"] == 60 and counts[NOISE_TASK] == 20
    assert all(counts[t] == 20 for t in SYNTHETIC_TASKS if t != "even_number")
    # Every other task's questions are the same as without the options; the larger task extends its stream.
    kept = [e for e in with_options if e.task != NOISE_TASK and (e.task != "even_number" or int(e.uid.split("/")[1]) < 20)]
    assert kept == plain


def test_noise_task_answers_are_random() -> None:
    noise = [e for e in generate_suite(examples_per_task=400, seed=0, noise_task=True)["all"] if e.task == NOISE_TASK]
    positions = Counter(e.answer for e in noise)
    assert set(positions) == {0, 1, 2, 3} and min(positions.values()) > 60
    # The same words are sometimes the answer and sometimes not: nothing to learn.
    right = Counter(e.choices[e.answer] for e in noise)
    wrong = Counter(c for e in noise for i, c in enumerate(e.choices) if i != e.answer)
    assert len(set(right) & set(wrong)) > 20


def test_source_options_and_categories() -> None:
    source = SyntheticSource(task_sizes={"odd_number": 10}, noise_task=True)
    assert source.categories[NOISE_TASK] == "noise"
    assert NOISE_TASK not in SyntheticSource().categories


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"task_sizes": {"chess": 10}}, "unknown task 'chess'"), ({"task_sizes": {"odd_number": 2}}, ">= 3"),
     ({"task_sizes": {NOISE_TASK: 10}}, "unknown task"), ({"noise_task": "yes"}, "true or false")],
)
def test_bad_options_are_one_line(kwargs, message) -> None:
    with pytest.raises(UsageError, match=message):
        generate_suite(examples_per_task=10, **kwargs)
