"""The `temperature` arm: baseline with temperature sampling of tasks (T5/mT5/jiant)."""

from __future__ import annotations

from typing import Any

from acct.registry import register_ablation_arm
from acct.study.arms._shared import plus_baseline


@register_ablation_arm("temperature")
def temperature(base: Any) -> dict[str, Any]:
    """baseline with temperature sampling of tasks, p_t ∝ n_t^alpha (curriculum.alpha; T5/mT5/jiant)."""
    return plus_baseline(base, curriculum={"strategy": "temperature"})
