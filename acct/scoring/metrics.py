"""Accuracy summaries: overall, macro over tasks, per category, and the baselines beside them."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from acct.data.records import Example, category_of


@dataclass
class EvalResult:
    split: str
    n: int
    accuracy: float
    macro_accuracy: float
    chance: float
    majority_baseline: float
    categories: dict[str, float] = field(default_factory=dict)
    tasks: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def majority_answer(examples: Sequence[Example]) -> int:
    """The most frequent answer position (ties to the lowest), e.g. learned from the training split."""
    counts = Counter(ex.answer for ex in examples)
    return min(counts, key=lambda a: (-counts[a], a)) if counts else 0


def summarize(
    split: str,
    examples: Sequence[Example],
    predictions: Sequence[int],
    *,
    task_categories: Mapping[str, str] | None = None,
    majority: int = 0,
) -> EvalResult:
    """Score predictions against the examples' answers."""
    if len(examples) != len(predictions):
        raise ValueError("one prediction per example is needed")
    if not examples:
        return EvalResult(split, 0, 0.0, 0.0, 0.0, 0.0)
    by_task: dict[str, list[bool]] = defaultdict(list)
    by_category: dict[str, list[bool]] = defaultdict(list)
    for ex, pred in zip(examples, predictions):
        ok = int(pred) == ex.answer
        by_task[ex.task].append(ok)
        by_category[category_of(ex.task, task_categories)].append(ok)
    hits = sum(sum(v) for v in by_task.values())
    return EvalResult(
        split=split,
        n=len(examples),
        accuracy=hits / len(examples),
        macro_accuracy=sum(sum(v) / len(v) for v in by_task.values()) / len(by_task),
        chance=sum(1 / len(ex.choices) for ex in examples) / len(examples),
        majority_baseline=sum(ex.answer == min(majority, len(ex.choices) - 1) for ex in examples) / len(examples),
        categories={c: sum(v) / len(v) for c, v in sorted(by_category.items())},
        tasks={t: {"n": len(v), "accuracy": sum(v) / len(v)} for t, v in sorted(by_task.items())},
    )
