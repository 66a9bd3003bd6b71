"""Tests for acct.data.synthetic: determinism, answer balance, rule correctness and pairing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from acct.data.protocols import subject_split
from acct.errors import UsageError
from acct.data.synthetic import (
    MAX_CHOICES,
    SYNTHETIC_CATEGORIES,
    SYNTHETIC_PAIRS,
    SYNTHETIC_TASKS,
    generate_suite,
)

# Independent statements of each task's rule, written here rather than imported, so a
# generator that mislabels its own pools is caught.
ANIMALS = set("dog cat horse lion tiger elephant zebra wolf fox panda otter rhino".split())
FRUITS = set("apple banana cherry grape mango pear kiwi lemon fig quince melon papaya".split())
COLORS = set("red blue green yellow purple pink black white crimson navy cyan beige".split())
TOOLS = set("hammer screwdriver wrench pliers chisel saw shovel rake axe tongs awl hoe".split())

RULES: dict[str, Callable[[str], bool]] = {
    "even_number": lambda c: int(c) % 2 == 0,
    "odd_number": lambda c: int(c) % 2 == 1,
    "large_number": lambda c: int(c) >= 50,
    "small_number": lambda c: int(c) < 50,
}
# Word tasks are judged against these samples of each category, plus the structure of
# the pair: the two sides' answer vocabularies must be disjoint and fill each other's
# distractor slots.
WORD_SAMPLES = {"animal_word": ANIMALS, "fruit_word": FRUITS, "color_word": COLORS, "tool_word": TOOLS}


@pytest.fixture(scope="module")
def suite() -> dict:
    return generate_suite(examples_per_task=400, seed=0)


def test_exports_are_consistent() -> None:
    assert list(SYNTHETIC_TASKS) == sorted(t for pair in SYNTHETIC_PAIRS for t in pair)
    assert len(set(SYNTHETIC_TASKS)) == len(SYNTHETIC_TASKS) == 8
    assert set(SYNTHETIC_CATEGORIES) == set(SYNTHETIC_TASKS)
    assert set(SYNTHETIC_CATEGORIES.values()) == {"numbers", "words"}


def test_shape_and_uids(suite: dict) -> None:
    examples = suite["all"]
    assert list(suite) == ["all"]
    assert len(examples) == 400 * len(SYNTHETIC_TASKS)
    assert len({ex.uid for ex in examples}) == len(examples)
    assert Counter(ex.task for ex in examples) == {task: 400 for task in SYNTHETIC_TASKS}
    assert examples[0].uid == f"{SYNTHETIC_TASKS[0]}/0"
    for ex in examples:
        assert len(ex.choices) == 4 and len(set(ex.choices)) == 4 and 0 <= ex.answer < 4


def test_deterministic_for_a_seed() -> None:
    assert generate_suite(20, seed=5) == generate_suite(20, seed=5)
    assert generate_suite(20, seed=5) != generate_suite(20, seed=6)


def test_answer_positions_roughly_uniform(suite: dict) -> None:
    counts = Counter(ex.answer for ex in suite["all"])
    expected = len(suite["all"]) / 4
    # 3200 draws: a fair position lands within +-15% of 800 with overwhelming probability.
    assert all(abs(counts[k] - expected) < 0.15 * expected for k in range(4)), counts


@pytest.mark.parametrize("task", sorted(RULES))
def test_number_tasks_have_exactly_one_rule_satisfying_choice(suite: dict, task: str) -> None:
    rule = RULES[task]
    for ex in (ex for ex in suite["all"] if ex.task == task):
        assert all(c.isdigit() and 0 <= int(c) <= 99 for c in ex.choices)
        satisfied = [i for i, c in enumerate(ex.choices) if rule(c)]
        assert satisfied == [ex.answer], ex


def test_word_tasks_have_exactly_one_category_member(suite: dict) -> None:
    by_task: dict[str, set[str]] = {}
    for ex in suite["all"]:
        by_task.setdefault(ex.task, set()).add(ex.choices[ex.answer])
    for first, second in SYNTHETIC_PAIRS:
        if first not in WORD_SAMPLES:
            continue
        # The two sides' answer vocabularies are disjoint and match the known samples.
        assert not by_task[first] & by_task[second]
        assert WORD_SAMPLES[first] <= by_task[first] and WORD_SAMPLES[second] <= by_task[second]
        for task, partner in ((first, second), (second, first)):
            for ex in (ex for ex in suite["all"] if ex.task == task):
                members = [i for i, c in enumerate(ex.choices) if c in by_task[task]]
                assert members == [ex.answer], ex
                assert all(c in by_task[partner] for i, c in enumerate(ex.choices) if i != ex.answer)
    # No distractor of a word task is a known member of that task's own category.
    for ex in suite["all"]:
        if ex.task in WORD_SAMPLES:
            wrong = set(ex.choices) - {ex.choices[ex.answer]}
            assert not wrong & WORD_SAMPLES[ex.task], ex


def test_pairs_share_templates_and_pairs_differ(suite: dict) -> None:
    questions: dict[str, set[str]] = {}
    for ex in suite["all"]:
        questions.setdefault(ex.task, set()).add(ex.question)
    pair_templates = []
    for first, second in SYNTHETIC_PAIRS:
        assert questions[first] == questions[second]
        assert len(questions[first]) >= 2
        pair_templates.append(questions[first])
    for i, one in enumerate(pair_templates):
        for other in pair_templates[i + 1 :]:
            assert not one & other


def test_num_choices_and_subject_split_pooling() -> None:
    two = generate_suite(examples_per_task=10, num_choices=2)["all"]
    assert all(len(ex.choices) == 2 for ex in two)
    widest = generate_suite(examples_per_task=3, num_choices=MAX_CHOICES)["all"]
    assert all(len(set(ex.choices)) == MAX_CHOICES for ex in widest)
    split = subject_split(generate_suite(examples_per_task=20))
    assert split.tasks() == list(SYNTHETIC_TASKS)
    assert len(split.val) == len(split.test) == 2 * len(SYNTHETIC_TASKS)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_choices": 1}, "num_choices"),
        ({"num_choices": MAX_CHOICES + 1}, "num_choices"),
        ({"examples_per_task": 2}, "examples per"),
        ({"examples_per_task": 2.5}, "examples per"),
    ],
)
def test_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        generate_suite(**kwargs)
