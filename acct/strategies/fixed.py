"""The `fixed` strategy: tasks drawn from the prior throughout, never reweighted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from acct.curriculum.curriculum import CurriculumStats
from acct.registry import register_strategy


@register_strategy("fixed")
class Fixed:
    """Tasks drawn from curriculum.prior throughout (proportional by default: plain multi-task sampling), never adapts."""

    @staticmethod
    def fixed_distribution(sizes: Sequence[int], options: dict[str, Any], prior: Sequence[float]) -> list[float]:
        """The distribution it draws from over tasks of these sizes: the prior, whatever the step."""
        return list(prior)

    @staticmethod
    def distribution_name(options: dict[str, Any], prior: str) -> str:
        return prior

    def __init__(self, tasks: Sequence[str]) -> None:
        self.num_tasks = len(tasks)

    def weights(self, stats: CurriculumStats) -> list[float]:
        # Flat weights: the curriculum multiplies them by the prior and mixes in the prior, which gives the prior.
        return [1.0] * len(stats.tasks)
