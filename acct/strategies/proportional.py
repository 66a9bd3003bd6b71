"""The `proportional` strategy: each task in proportion to its training questions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from acct.curriculum.curriculum import CurriculumStats
from acct.curriculum.weights import prior_weights
from acct.registry import register_strategy
from acct.train.plan import normalised


@register_strategy("proportional")
class Proportional:
    """p_t ∝ n_t, the task's training questions, never reweighted: plain multi-task sampling (shuffle everything)."""

    # A fixed distribution: used as given from the first batch, no warm-up, floor or prior on top.
    schedule = True

    @staticmethod
    def fixed_distribution(sizes: Sequence[int], options: dict[str, Any], prior: Sequence[float]) -> list[float]:
        """The distribution it draws from over tasks of these sizes: p_t ∝ n_t, whatever the prior."""
        return normalised([float(n) for n in sizes])

    @staticmethod
    def distribution_name(options: dict[str, Any], prior: str) -> str:
        return "proportional"

    def __init__(self, tasks: Sequence[str]) -> None:
        self.num_tasks = len(tasks)

    def weights(self, stats: CurriculumStats) -> Tensor:
        return prior_weights("proportional", stats.task_sizes)
