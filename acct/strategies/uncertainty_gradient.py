"""The `uncertainty_gradient` strategy (the method): favour the tasks most confused with others."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from acct.curriculum.curriculum import CurriculumStats
from acct.curriculum.weights import (
    check_temperature,
    impute_unseen,
    uncertainty_gradient_weights,
)
from acct.registry import register_strategy


@register_strategy("uncertainty_gradient")
class UncertaintyGradient:
    """softmax(zscore(mean confusion with the other tasks) / temperature): the most-confused tasks."""

    def __init__(self, tasks: Sequence[str], temperature: float = 2.0) -> None:
        check_temperature(temperature)
        self.temperature = temperature

    def weights(self, stats: CurriculumStats) -> Tensor:
        scores = impute_unseen(stats.confusion_scores(), stats.confusion_seen.any(dim=1))
        return uncertainty_gradient_weights(scores, self.temperature)
