"""The procedural multi-task suite: the test fixture and the offline `tiny` preset's data.

Each task asks for the one choice that satisfies a rule that can be judged choice by
choice ("is even", "names an animal"). Tasks come in confusable PAIRS whose questions use
identical text and whose answers and distractors swap roles (the even task hides one
even number among odd ones, its partner one odd number among even ones), so with
per-choice scoring only the task identity separates them; the pairs give
inspect-confusion a known ground truth. This is a fixture, not the product.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from acct.data.records import Example
from acct.errors import UsageError

_ANIMALS: tuple[str, ...] = (
    "dog", "cat", "horse", "cow", "sheep", "goat", "pig", "rabbit", "lion", "tiger",
    "elephant", "giraffe", "zebra", "bear", "wolf", "fox", "deer", "moose", "camel",
    "donkey", "monkey", "gorilla", "kangaroo", "koala", "panda", "otter", "beaver",
    "squirrel", "hedgehog", "raccoon", "badger", "leopard", "cheetah", "hippo", "rhino",
)
_FRUITS: tuple[str, ...] = (
    "apple", "banana", "cherry", "grape", "mango", "pear", "pineapple", "strawberry",
    "blueberry", "raspberry", "watermelon", "melon", "kiwi", "papaya", "apricot", "lemon",
    "coconut", "pomegranate", "fig", "guava", "lychee", "nectarine", "tangerine",
    "cantaloupe", "cranberry", "gooseberry", "blackberry", "mulberry", "persimmon",
    "quince", "kumquat", "passionfruit",
)
# Words with a second sense in the partner category (orange, lime, plum, teal, drill,
# crane, ...) are left out so that every example has exactly one right answer.
_COLORS: tuple[str, ...] = (
    "red", "blue", "green", "yellow", "purple", "pink", "brown", "black", "white", "gray",
    "indigo", "crimson", "scarlet", "maroon", "beige", "turquoise", "magenta", "cyan",
    "navy", "ivory", "amber", "ochre", "khaki", "azure", "vermilion", "chartreuse",
    "mauve", "taupe", "sepia", "cerulean",
)
_TOOLS: tuple[str, ...] = (
    "hammer", "screwdriver", "wrench", "pliers", "chisel", "saw", "shovel", "rake", "axe",
    "hatchet", "mallet", "trowel", "spanner", "crowbar", "sledgehammer", "scissors",
    "tweezers", "clamp", "vise", "awl", "anvil", "pickaxe", "hoe", "spade", "sickle",
    "scythe", "tongs", "wheelbarrow", "plunger", "stapler", "hacksaw", "caliper",
)
_EVEN: tuple[str, ...] = tuple(str(n) for n in range(0, 100, 2))
_ODD: tuple[str, ...] = tuple(str(n) for n in range(1, 100, 2))
_SMALL: tuple[str, ...] = tuple(str(n) for n in range(0, 50))
_LARGE: tuple[str, ...] = tuple(str(n) for n in range(50, 100))


@dataclass(frozen=True)
class _Pair:
    """Two tasks sharing question templates; each task's answers are the other's distractors."""

    tasks: tuple[str, str]
    pools: tuple[tuple[str, ...], tuple[str, ...]]
    category: str
    templates: tuple[str, ...]


_PAIRS: tuple[_Pair, ...] = (
    _Pair(
        ("even_number", "odd_number"),
        (_EVEN, _ODD),
        "numbers",
        (
            "Which of these numbers fits?",
            "Pick the number that belongs.",
            "One of these numbers is the right one. Which is it?",
        ),
    ),
    _Pair(
        ("large_number", "small_number"),
        (_LARGE, _SMALL),
        "numbers",
        (
            "Which value is the one we are looking for?",
            "Choose the matching value.",
            "Exactly one of these values is correct. Select it.",
        ),
    ),
    _Pair(
        ("animal_word", "fruit_word"),
        (_ANIMALS, _FRUITS),
        "words",
        (
            "Which of these words is the right one?",
            "Pick the word that belongs.",
            "Only one of these words is correct. Which?",
        ),
    ),
    _Pair(
        ("color_word", "tool_word"),
        (_COLORS, _TOOLS),
        "words",
        (
            "Which term is the answer here?",
            "Select the fitting term.",
            "One term in this list is wanted. Name it.",
        ),
    ),
)

SYNTHETIC_PAIRS: tuple[tuple[str, str], ...] = tuple(pair.tasks for pair in _PAIRS)
SYNTHETIC_TASKS: tuple[str, ...] = tuple(sorted(task for pair in _PAIRS for task in pair.tasks))
SYNTHETIC_CATEGORIES: dict[str, str] = {task: pair.category for pair in _PAIRS for task in pair.tasks}
_ROLE: dict[str, tuple[_Pair, int]] = {
    task: (pair, side) for pair in _PAIRS for side, task in enumerate(pair.tasks)
}
# The answer comes from one pool and the K-1 distractors, all distinct, from the other.
MAX_CHOICES: int = 1 + min(len(pool) for pair in _PAIRS for pool in pair.pools)


# The optional task whose gold answer is drawn at random: nothing about it can be learned.
NOISE_TASK = "random_answer"
NOISE_CATEGORY = "noise"
_NOISE_POOL: tuple[str, ...] = tuple(sorted(set(_ANIMALS + _FRUITS + _COLORS + _TOOLS)))
_NOISE_TEMPLATES: tuple[str, ...] = (
    "Which of these words is the one?",
    "Pick the word we mean.",
    "One of these words is marked correct. Which?",
)


def generate_suite(
    examples_per_task: int = 250,
    seed: int = 0,
    num_choices: int = 4,
    task_sizes: dict[str, int] | None = None,
    noise_task: bool = False,
) -> dict[str, list[Example]]:
    """Generate every synthetic task as one source split {"all": [...]}, deterministic for `seed`.

    `task_sizes` (task -> questions) overrides `examples_per_task` for the tasks it names, for
    a suite with imbalanced tasks. `noise_task` adds the task `random_answer`, whose gold
    choice is drawn at random: an unlearnable task. Neither changes the other tasks' questions.
    """
    if not _is_int(examples_per_task) or examples_per_task < 3:
        raise UsageError(
            f"examples per synthetic task must be an integer >= 3, got {examples_per_task!r}"
        )
    if not _is_int(num_choices) or not 2 <= num_choices <= MAX_CHOICES:
        raise UsageError(
            f"synthetic num_choices must be an integer from 2 to {MAX_CHOICES}, got {num_choices!r}"
        )
    if not isinstance(noise_task, bool):
        raise UsageError(f"synthetic noise_task must be true or false, got {noise_task!r}")
    names = SYNTHETIC_TASKS + ((NOISE_TASK,) if noise_task else ())
    if not isinstance(task_sizes or {}, dict):
        raise UsageError(f"synthetic task_sizes must map task names to question counts, got {task_sizes!r}")
    sizes = dict(task_sizes or {})
    for task, n in sizes.items():
        if task not in names:
            raise UsageError(f"synthetic task_sizes names unknown task {task!r}; tasks: {', '.join(names)}")
        if not _is_int(n) or n < 3:
            raise UsageError(f"synthetic task_sizes[{task!r}] must be an integer >= 3, got {n!r}")

    examples: list[Example] = []
    for task in names:
        count = sizes.get(task, examples_per_task)
        # A string seed per task: deterministic across processes (str seeding does not use
        # hash randomisation), and one task's stream never shifts another's.
        rng = random.Random(f"{seed}/{task}")
        if task == NOISE_TASK:
            examples.extend(_noise_example(rng, f"{task}/{i}", num_choices) for i in range(count))
            continue
        pair, side = _ROLE[task]
        answers, distractors = pair.pools[side], pair.pools[1 - side]
        examples.extend(
            _example(rng, task, f"{task}/{i}", pair.templates, answers, distractors, num_choices)
            for i in range(count)
        )
    return {"all": examples}


def _noise_example(rng: random.Random, uid: str, num_choices: int) -> Example:
    question = rng.choice(_NOISE_TEMPLATES)
    choices = tuple(rng.sample(_NOISE_POOL, num_choices))
    return Example(question=question, choices=choices, answer=rng.randrange(num_choices), task=NOISE_TASK, uid=uid)


def _is_int(value: object) -> bool:
    # bool is an int subclass, but True examples per task is a mistake, not a count.
    return isinstance(value, int) and not isinstance(value, bool)


def _example(
    rng: random.Random,
    task: str,
    uid: str,
    templates: tuple[str, ...],
    answers: tuple[str, ...],
    distractors: tuple[str, ...],
    num_choices: int,
) -> Example:
    question = rng.choice(templates)
    choices = rng.sample(distractors, num_choices - 1)
    answer = rng.randrange(num_choices)
    choices.insert(answer, rng.choice(answers))
    return Example(question=question, choices=tuple(choices), answer=answer, task=task, uid=uid)
