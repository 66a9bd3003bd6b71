"""The `pcgrad` arm: baseline with PCGrad gradient surgery."""

from __future__ import annotations

from typing import Any

from acct.registry import register_ablation_arm
from acct.study.arms._shared import plus_baseline


@register_ablation_arm("pcgrad")
def pcgrad(base: Any) -> dict[str, Any]:
    """baseline with PCGrad gradient surgery across the tasks of each batch (Yu et al. 2020; needs acct[mtl])."""
    return plus_baseline(base, loss={"gradient": "pcgrad"})
