"""The `equal` task-loss weighting: every question counts alike, whatever its task."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from acct.losses import Observation, register_task_weighting


@register_task_weighting("equal")
class EqualTaskWeighting:
    """Every question counts the same: the batch's mean cross-entropy."""

    # The neutral choice: plain multi-task fine-tuning; a study's descriptions leave it unsaid.
    neutral = True

    def __init__(self, tasks: Sequence[str]) -> None:
        self.num_tasks = len(tasks)

    def loss(self, obs: Observation) -> Tensor:
        return obs.mean_loss
