"""The `uniform` anchor weighting: every InfoNCE anchor counts alike (plain InfoNCE)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from acct.losses import Observation, register_anchor_weighting


@register_anchor_weighting("uniform")
class UniformAnchorWeighting:
    """Every anchor weighted 1: plain supervised InfoNCE."""

    anchor_text = "1 (plain InfoNCE)"

    def __init__(self, tasks: Sequence[str]) -> None:
        self.num_tasks = len(tasks)

    def weights(self, obs: Observation) -> Tensor:
        return torch.ones_like(obs.uncertainty)
