"""The `difficulty` strategy: favour the tasks the model gets wrong most often."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from acct.curriculum.curriculum import CurriculumStats
from acct.curriculum.weights import (
    check_temperature,
    difficulty_weights,
    impute_unseen,
)
from acct.registry import register_strategy


@register_strategy("difficulty")
class Difficulty:
    """softmax(zscore(EMA error rate) / temperature): the tasks answered wrong most often."""

    def __init__(self, tasks: Sequence[str], temperature: float = 2.0) -> None:
        check_temperature(temperature)
        self.temperature = temperature

    def weights(self, stats: CurriculumStats) -> Tensor:
        return difficulty_weights(impute_unseen(stats.error_rate, stats.seen), self.temperature)
