"""The `learning_progress` arm: baseline with the learning_progress curriculum (TSCL)."""

from __future__ import annotations

from typing import Any

from acct.registry import register_ablation_arm
from acct.study.arms._shared import plus_baseline


@register_ablation_arm("learning_progress")
def learning_progress(base: Any) -> dict[str, Any]:
    """baseline with the learning_progress curriculum: a bandit rewarded by absolute learning progress (TSCL)."""
    return plus_baseline(base, curriculum={"strategy": "learning_progress"})
