"""The `phased` arm: baseline with a phased curriculum, and its default phases for the base settings' data."""

from __future__ import annotations

from typing import Any

from acct.errors import UsageError
from acct.registry import data_sources, register_ablation_arm
from acct.study.arms._shared import plus_baseline


def default_phases(base: Any) -> list[dict[str, Any]]:
    """The phased arm's phases for the base settings' data (its source's `phase_groups`).

    Each phase's fraction of the steps is its share of the tasks, so that under the uniform
    prior every task gets as many draws as in the baseline, only in another order.
    """
    source = base.data.source
    phase_groups = getattr(data_sources.get(source), "phase_groups", None) if source in data_sources else None
    if phase_groups is None:
        raise UsageError(
            f"the phased arm knows phases for MMLU and the synthetic suite, not data source {source!r}; "
            "set curriculum.options.phases in the base settings"
        )
    found = phase_groups(base.data)
    phases, groups = [list(cats) for cats, _ in found], [list(tasks) for _, tasks in found]
    total = sum(len(g) for g in groups)
    fractions = [len(g) / total for g in groups]
    fractions[-1] = 1.0 - sum(fractions[:-1])
    return [{"categories": cats, "fraction": f} for cats, f in zip(phases, fractions)]


@register_ablation_arm("phased")
def phased(base: Any) -> dict[str, Any]:
    """baseline with a phased curriculum: MMLU's STEM subjects first, then the rest (synthetic: numbers, then words)."""
    phases = base.curriculum.options.get("phases") or default_phases(base)
    options = {"phases": phases}
    if "replay" in base.curriculum.options:
        options["replay"] = base.curriculum.options["replay"]
    return plus_baseline(base, curriculum={"strategy": "phased", "options": options})
