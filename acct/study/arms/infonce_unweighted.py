"""The `infonce_unweighted` arm: baseline plus the base settings' InfoNCE with every anchor weighted 1."""

from __future__ import annotations

from typing import Any

from acct.registry import register_ablation_arm
from acct.study.arms._shared import needs_contrastive


@register_ablation_arm("infonce_unweighted")
def infonce_unweighted(base: Any) -> dict[str, Any]:
    """baseline plus the base settings' InfoNCE with every anchor weighted 1 (plain SupCon); contrastive weights by entropy."""
    needs_contrastive(base)
    return {"curriculum": {"strategy": "fixed"}, "loss": {"anchor_weighting": "uniform"}}
