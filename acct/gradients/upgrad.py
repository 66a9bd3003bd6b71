"""The `upgrad` gradient: UPGrad (Quinton & Rey 2024) across the batch's task slots, from torchjd."""

from __future__ import annotations

from typing import Any

import torch

from acct.gradients._torchjd import TorchJDGradient
from acct.registry import register_gradient


@register_gradient("upgrad")
class UPGradGradient(TorchJDGradient):
    """UPGrad (Quinton & Rey 2024): each task's gradient in the batch projected onto the dual cone of all, then summed (torchjd)."""

    def aggregator(self, rows: int) -> Any:
        from torchjd.aggregation import UPGrad

        # Weight 1 per projected gradient (torchjd's default averages them): without conflict,
        # the sum of the objectives' gradients, i.e. the total loss's.
        return UPGrad(pref_vector=torch.ones(rows))
