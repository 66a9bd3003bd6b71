"""The `entropy` anchor weighting: each InfoNCE anchor weighted by its question's prediction entropy."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from acct.losses import Observation, register_anchor_weighting


@register_anchor_weighting("entropy")
class EntropyAnchorWeighting:
    """Each anchor weighted by its normalised prediction entropy u_i (the method)."""

    neutral = True  # the method's own: a study's descriptions leave it unsaid
    anchor_text = "prediction entropy"  # what an anchor's weight is, in a study's report

    def __init__(self, tasks: Sequence[str]) -> None:
        self.num_tasks = len(tasks)

    def weights(self, obs: Observation) -> Tensor:
        return obs.uncertainty
