"""The `baseline` arm: lambda_contrastive = 0, tasks drawn from the prior: plain multi-task fine-tuning."""

from __future__ import annotations

from typing import Any

from acct.registry import register_ablation_arm


@register_ablation_arm("baseline")
def baseline(base: Any) -> dict[str, Any]:
    """lambda_contrastive = 0, tasks drawn from curriculum.prior (proportional by default): plain multi-task fine-tuning."""
    return {"loss": {"lambda_contrastive": 0.0}, "curriculum": {"strategy": "fixed"}}
