"""The `uniform` strategy: every task equally likely."""

from __future__ import annotations

from collections.abc import Sequence
from acct.curriculum import CurriculumStats, register_strategy


@register_strategy("uniform")
class Uniform:
    """Equal probability for every task (plain multi-task sampling by task)."""

    def __init__(self, tasks: Sequence[str]) -> None:
        self.num_tasks = len(tasks)

    def weights(self, stats: CurriculumStats) -> list[float]:
        return [1.0] * len(stats.tasks)
