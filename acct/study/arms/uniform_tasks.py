"""The `uniform_tasks` arm: baseline with the uniform prior: every task drawn equally often."""

from __future__ import annotations

from typing import Any

from acct.registry import register_ablation_arm
from acct.study.arms._shared import plus_baseline


@register_ablation_arm("uniform_tasks")
def uniform_tasks(base: Any) -> dict[str, Any]:
    """baseline with the uniform prior: every task drawn equally often, whatever its size (today's task-uniform sampling)."""
    return plus_baseline(base, curriculum={"strategy": "fixed", "prior": "uniform"})
