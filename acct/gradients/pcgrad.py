"""The `pcgrad` gradient: PCGrad (Yu et al. 2020) across the batch's task slots, from torchjd."""

from __future__ import annotations

from typing import Any

from acct.gradients._torchjd import TorchJDGradient
from acct.registry import register_gradient


@register_gradient("pcgrad")
class PCGradGradient(TorchJDGradient):
    """PCGrad (Yu et al. 2020): each task's gradient in the batch projected off those it conflicts with, then summed (torchjd)."""

    def aggregator(self, rows: int) -> Any:
        from torchjd.aggregation import PCGrad

        return PCGrad()
