"""The `uncertainty_weighting` arm: baseline with uncertainty task-loss weighting (learned log-variances)."""

from __future__ import annotations

from typing import Any

from acct.registry import register_ablation_arm
from acct.study.arms._shared import plus_baseline


@register_ablation_arm("uncertainty_weighting")
def uncertainty_weighting(base: Any) -> dict[str, Any]:
    """baseline with uncertainty task-loss weighting, a learned log-variance per task at lr 1e-3 (Kendall, Gal & Cipolla 2018)."""
    # At a fine-tuning learning rate (2e-5) AdamW moves each log-variance by about that much per
    # step, so over a run they would hardly leave 0 and the arm would be `baseline`; 1e-3 lets
    # them reach log L_t within a few hundred steps.
    return plus_baseline(base, loss={"task_weighting": "uncertainty", "task_weighting_options": {"lr": 1e-3}})
