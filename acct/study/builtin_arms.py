"""acct's own ablation arms: the three configurations of the study behind its claim, and one
arm per component of the field that a study compares with (each is `baseline` plus that one
component).

Contract of an arm (docs/extending.md): a function registered with
`acct.study.register_ablation_arm`, called as `arm(base)` with the study's base
`TrainSettings`, returning the settings layer (a nested mapping) that turns the base into the
arm's configuration; its docstring's first line describes it. `acct ablate --arms a,b,c` runs
them in the order given; the first (or `--reference NAME`) is the reference of every comparison.
"""

from __future__ import annotations

from typing import Any

from acct.errors import UsageError
from acct.registry import register_ablation_arm


def _needs_contrastive(base: Any) -> None:
    if base.loss.lambda_contrastive <= 0:
        raise UsageError(
            "the contrastive and full configurations need lambda_contrastive > 0 in the base settings "
            "(it is 0 here, which would make them the baseline)"
        )


@register_ablation_arm("baseline")
def baseline(base: Any) -> dict[str, Any]:
    """lambda_contrastive = 0, tasks drawn from curriculum.prior (proportional by default): plain multi-task fine-tuning."""
    return {"loss": {"lambda_contrastive": 0.0}, "curriculum": {"strategy": "fixed"}}


@register_ablation_arm("contrastive")
def contrastive(base: Any) -> dict[str, Any]:
    """baseline plus the base settings' entropy-weighted InfoNCE (lambda_contrastive, 0.3 by default): the auxiliary loss alone."""
    _needs_contrastive(base)
    return {"curriculum": {"strategy": "fixed"}}


@register_ablation_arm("full")
def full(base: Any) -> dict[str, Any]:
    """contrastive plus the uncertainty_gradient curriculum reweighting the prior: the whole method."""
    _needs_contrastive(base)
    return {"curriculum": {"strategy": "uncertainty_gradient"}}


def _plus_baseline(base: Any, **sections: dict[str, Any]) -> dict[str, Any]:
    """The baseline layer with `sections` merged over it, section by section."""
    layer = baseline(base)
    for section, values in sections.items():
        layer[section] = {**layer.get(section, {}), **values}
    return layer


@register_ablation_arm("uniform_tasks")
def uniform_tasks(base: Any) -> dict[str, Any]:
    """baseline with the uniform prior: every task drawn equally often, whatever its size (today's task-uniform sampling)."""
    return _plus_baseline(base, curriculum={"strategy": "fixed", "prior": "uniform"})


@register_ablation_arm("temperature")
def temperature(base: Any) -> dict[str, Any]:
    """baseline with temperature sampling of tasks, p_t ∝ n_t^alpha (curriculum.alpha; T5/mT5/jiant)."""
    return _plus_baseline(base, curriculum={"strategy": "temperature"})


@register_ablation_arm("learning_progress")
def learning_progress(base: Any) -> dict[str, Any]:
    """baseline with the learning_progress curriculum: a bandit rewarded by absolute learning progress (TSCL)."""
    return _plus_baseline(base, curriculum={"strategy": "learning_progress"})


def default_phases(base: Any) -> list[dict[str, Any]]:
    """The phased arm's phases for the base settings' data (its source's `phase_groups`).

    Each phase's fraction of the steps is its share of the tasks, so that under the uniform
    prior every task gets as many draws as in the baseline, only in another order.
    """
    from acct.registry import data_sources

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
    return _plus_baseline(base, curriculum={"strategy": "phased", "options": options})


@register_ablation_arm("dwa")
def dwa(base: Any) -> dict[str, Any]:
    """baseline with Dynamic Weight Average task-loss weighting (Liu, Johns & Davison 2019)."""
    return _plus_baseline(base, loss={"task_weighting": "dwa"})


@register_ablation_arm("infonce_unweighted")
def infonce_unweighted(base: Any) -> dict[str, Any]:
    """baseline plus the base settings' InfoNCE with every anchor weighted 1 (plain SupCon); contrastive weights by entropy."""
    _needs_contrastive(base)
    return {"curriculum": {"strategy": "fixed"}, "loss": {"anchor_weighting": "uniform"}}


@register_ablation_arm("uncertainty_weighting")
def uncertainty_weighting(base: Any) -> dict[str, Any]:
    """baseline with uncertainty task-loss weighting, a learned log-variance per task at lr 1e-3 (Kendall, Gal & Cipolla 2018)."""
    # At a fine-tuning learning rate (2e-5) AdamW moves each log-variance by about that much per
    # step, so over a run they would hardly leave 0 and the arm would be `baseline`; 1e-3 lets
    # them reach log L_t within a few hundred steps.
    return _plus_baseline(base, loss={"task_weighting": "uncertainty", "task_weighting_options": {"lr": 1e-3}})


@register_ablation_arm("pcgrad")
def pcgrad(base: Any) -> dict[str, Any]:
    """baseline with PCGrad gradient surgery across the tasks of each batch (Yu et al. 2020; needs acct[mtl])."""
    return _plus_baseline(base, loss={"gradient": "pcgrad"})


@register_ablation_arm("upgrad")
def upgrad(base: Any) -> dict[str, Any]:
    """baseline with UPGrad gradient aggregation across the tasks of each batch (Quinton & Rey 2024; needs acct[mtl])."""
    return _plus_baseline(base, loss={"gradient": "upgrad"})
