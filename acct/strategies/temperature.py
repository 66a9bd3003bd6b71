"""The `temperature` strategy: temperature sampling of tasks by size (T5, mT5, jiant)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from acct.curriculum.curriculum import CurriculumStats
from acct.curriculum.weights import prior_weights
from acct.errors import UsageError
from acct.registry import register_strategy
from acct.train.plan import normalised


@register_strategy("temperature")
class Temperature:
    """p_t ∝ n_t^alpha (options.alpha, else curriculum.alpha: 0.5), never reweighted: size-tempered sampling as in T5/mT5/jiant."""

    # A fixed distribution: used as given from the first batch, no warm-up, floor or prior on top.
    schedule = True

    @staticmethod
    def fixed_distribution(sizes: Sequence[int], options: dict[str, Any], prior: Sequence[float]) -> list[float]:
        """The distribution it draws from over tasks of these sizes: p_t ∝ n_t^alpha (options.alpha), whatever the prior."""
        return normalised([n ** float(options["alpha"]) for n in sizes])

    @staticmethod
    def distribution_name(options: dict[str, Any], prior: str) -> str:
        return f"temperature (alpha {float(options['alpha']):g})"

    def __init__(self, tasks: Sequence[str], alpha: float = 0.5) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise UsageError(f"temperature strategy: alpha must be a positive number, got {alpha!r}")
        self.alpha = float(alpha)

    def weights(self, stats: CurriculumStats) -> Tensor:
        return prior_weights("temperature", stats.task_sizes, self.alpha)
