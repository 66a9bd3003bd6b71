"""The `upgrad` arm: baseline with UPGrad gradient aggregation."""

from __future__ import annotations

from typing import Any

from acct.registry import register_ablation_arm
from acct.study.arms._shared import plus_baseline


@register_ablation_arm("upgrad")
def upgrad(base: Any) -> dict[str, Any]:
    """baseline with UPGrad gradient aggregation across the tasks of each batch (Quinton & Rey 2024; needs acct[mtl])."""
    return plus_baseline(base, loss={"gradient": "upgrad"})
