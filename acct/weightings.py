"""acct's own loss weightings: how the classification loss combines its tasks (`equal`), and
how much each anchor counts in the contrastive InfoNCE (`entropy`, `uniform`).

Contracts (docs/extending.md):
- a task-loss weighting is a class registered with `acct.losses.register_task_weighting`,
  built as `cls(tasks, **loss.task_weighting_options)`, whose `loss(obs)` returns the scalar
  classification loss of a batch from `obs.loss` ([B] per-question cross-entropy, with graph);
- an anchor weighting, registered with `acct.losses.register_anchor_weighting`, built as
  `cls(tasks, **loss.anchor_weighting_options)`, whose `weights(obs)` returns [B] non-negative
  per-anchor weights (detached by the loss).
Both may keep state through optional `state_dict()` / `load_state_dict(state)`. Optional class attributes:
`neutral = True` (the choice a study's descriptions leave unsaid) and, for an anchor weighting,
`anchor_text` (what an anchor's weight is, in a study's report).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from acct.losses import Observation, register_anchor_weighting, register_task_weighting


@register_task_weighting("equal")
class EqualTaskWeighting:
    """Every question counts the same: the batch's mean cross-entropy."""

    # The neutral choice: plain multi-task fine-tuning; a study's descriptions leave it unsaid.
    neutral = True

    def __init__(self, tasks: Sequence[str]) -> None:
        self.num_tasks = len(tasks)

    def loss(self, obs: Observation) -> Tensor:
        return obs.mean_loss


@register_anchor_weighting("entropy")
class EntropyAnchorWeighting:
    """Each anchor weighted by its normalised prediction entropy u_i (the method)."""

    neutral = True  # the method's own: a study's descriptions leave it unsaid
    anchor_text = "prediction entropy"  # what an anchor's weight is, in a study's report

    def __init__(self, tasks: Sequence[str]) -> None:
        self.num_tasks = len(tasks)

    def weights(self, obs: Observation) -> Tensor:
        return obs.uncertainty


@register_anchor_weighting("uniform")
class UniformAnchorWeighting:
    """Every anchor weighted 1: plain supervised InfoNCE."""

    anchor_text = "1 (plain InfoNCE)"

    def __init__(self, tasks: Sequence[str]) -> None:
        self.num_tasks = len(tasks)

    def weights(self, obs: Observation) -> Tensor:
        return torch.ones_like(obs.uncertainty)
