"""The `synthetic` data source: the procedural suite of acct/data/synthetic.py, offline and seeded."""

from __future__ import annotations

from typing import Any

from acct.data.records import Example
from acct.data.sources import field_of
from acct.data.synthetic import NOISE_CATEGORY, NOISE_TASK, SYNTHETIC_CATEGORIES, generate_suite
from acct.registry import register_data_source


@register_data_source("synthetic")
class SyntheticSource:
    """A procedural suite of confusable tasks (even/odd numbers, animal/fruit words ...), offline."""

    reads_files = False
    real_data = False  # a check that training works, not a benchmark

    @staticmethod
    def card_data(settings: dict[str, Any]) -> str:
        data = settings.get("data", {})
        return ("Data: acct's synthetic suite (generated, seed {seed}), split per task by the fractions "
                "{fractions}. It is a check that training works, not a benchmark: these numbers say nothing "
                "about any real task.").format(seed=settings.get("seed"), fractions=data.get("split_fractions"))

    @staticmethod
    def phase_groups(data: Any) -> list[tuple[list[str], list[str]]]:
        """numbers first, then words (and the noise task, when there is one)."""
        categories = dict(SYNTHETIC_CATEGORIES)
        if (field_of(data, "options") or {}).get("noise_task"):
            categories[NOISE_TASK] = NOISE_CATEGORY
        first = sorted({c for c in categories.values() if c == "numbers"})
        rest = sorted(set(categories.values()) - set(first))
        return [(cats, [t for t, c in categories.items() if c in cats]) for cats in (first, rest)]

    def __init__(self, task_sizes: dict[str, int] | None = None, noise_task: bool = False) -> None:
        # data.options: task_sizes (task -> questions, for imbalanced tasks) and noise_task
        # (add `random_answer`, whose answers are random); both off by default.

        self.task_sizes = task_sizes
        self.noise_task = noise_task
        self.categories = dict(SYNTHETIC_CATEGORIES)
        if noise_task:
            self.categories[NOISE_TASK] = NOISE_CATEGORY

    def load(self, data: Any, seed: int) -> dict[str, list[Example]]:
        return generate_suite(
            examples_per_task=data.synthetic_examples_per_task,
            seed=seed,
            task_sizes=self.task_sizes,
            noise_task=self.noise_task,
        )
