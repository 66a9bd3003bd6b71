"""The `full` arm: contrastive plus the uncertainty_gradient curriculum: the whole method."""

from __future__ import annotations

from typing import Any

from acct.registry import register_ablation_arm
from acct.study.arms._shared import needs_contrastive


@register_ablation_arm("full")
def full(base: Any) -> dict[str, Any]:
    """contrastive plus the uncertainty_gradient curriculum reweighting the prior: the whole method."""
    needs_contrastive(base)
    return {"curriculum": {"strategy": "uncertainty_gradient"}}
