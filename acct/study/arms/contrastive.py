"""The `contrastive` arm: baseline plus the base settings' entropy-weighted InfoNCE: the auxiliary loss alone."""

from __future__ import annotations

from typing import Any

from acct.registry import register_ablation_arm
from acct.study.arms._shared import needs_contrastive


@register_ablation_arm("contrastive")
def contrastive(base: Any) -> dict[str, Any]:
    """baseline plus the base settings' entropy-weighted InfoNCE (lambda_contrastive, 0.3 by default): the auxiliary loss alone."""
    needs_contrastive(base)
    return {"curriculum": {"strategy": "fixed"}}
