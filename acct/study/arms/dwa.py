"""The `dwa` arm: baseline with Dynamic Weight Average task-loss weighting."""

from __future__ import annotations

from typing import Any

from acct.registry import register_ablation_arm
from acct.study.arms._shared import plus_baseline


@register_ablation_arm("dwa")
def dwa(base: Any) -> dict[str, Any]:
    """baseline with Dynamic Weight Average task-loss weighting (Liu, Johns & Davison 2019)."""
    return plus_baseline(base, loss={"task_weighting": "dwa"})
