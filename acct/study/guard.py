"""The guard against empty comparisons: what each arm will actually do, and whether two arms train
identically.

Before anything trains, the arms' *effective* settings (what the run will actually do within its
step budget, read from the plan of the run in acct/train/plan.py) are compared at each sweep
point, and a study in which two arms would train identically is refused unless the caller allows
it. After training, acct/study/history.py's `trained_identical` compares what the runs logged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from acct.config.layers import flatten
from acct.config.train import TrainSettings
from acct.registry import (
    gradients,
    task_weightings,
)
from acct.registry import strategies as ablation_strategies
from acct.study.layers import comparable
from acct.train.plan import (
    RunPlan,
    declared_distribution,
    make_plan,
    normalised,
)


def train_questions(settings: TrainSettings) -> int:
    """Questions in the training split of these settings (the split only; nothing is tokenised)."""
    return sum(train_task_sizes(settings))


def train_task_sizes(settings: TrainSettings) -> tuple[int, ...]:
    """Training questions per task (tasks in name order) of these settings' split."""
    from collections import Counter

    from acct.engine import load_source, make_split

    counts = Counter(ex.task for ex in make_split(load_source(settings.data, settings.seed), settings.data, settings.seed).train)
    return tuple(counts[t] for t in sorted(counts))


def effective_settings(settings: TrainSettings, plan: RunPlan) -> dict[str, Any]:
    """The settings that decide what a run trains, with those that cannot act in its budget normalised away.

    Two runs with equal effective settings train identically: an adaptive curriculum that never
    leaves the prior within the step budget samples exactly as the fixed strategy does, and the
    InfoNCE temperature means nothing when the contrastive loss has weight 0.
    """
    d = comparable(json.loads(settings.model_dump_json()))
    if plan.sampling is not None:
        # A fixed task distribution: two arms that draw tasks with the same probabilities sample
        # alike, whatever the strategy is called (e.g. temperature sampling of equal-sized tasks).
        d["curriculum"] = {"sampling": [round(p, 12) for p in plan.sampling]}
    elif not plan.adapts:
        # It samples from its prior throughout, whatever the strategy is called.
        d["curriculum"] = {"draws_from": "prior", **{k: d["curriculum"][k] for k in ("prior", "alpha") if k in d["curriculum"]}}
    if d["loss"]["lambda_contrastive"] == 0:
        d["loss"] = {k: v for k, v in d["loss"].items() if k not in ("tau", "gather_negatives")}
    return d


def _why_identical(a: tuple[str, TrainSettings, RunPlan], b: tuple[str, TrainSettings, RunPlan],
                   checkpoint: str = "best") -> str:
    """One clause saying why two arms with equal effective settings train identically, and what separates them."""
    reasons, fixes = [], []
    for name, s, plan in (a, b):
        cur = s.curriculum
        if plan.fixed or plan.adapts:
            continue
        if cur.floor >= 1.0:
            reasons.append(f"{name}'s {cur.strategy} curriculum has floor 1, which keeps the weights at the {cur.prior} prior")
            continue
        reasons.append(
            f"{name}'s {cur.strategy} curriculum would first change the task weights after step {plan.first_update} "
            f"(warm-up {plan.warmup_steps} steps, updates every {plan.update_every}), but training ends at step "
            f"{plan.total_steps}"
        )
        budget = plan.steps_to_adapt
        if effective_settings(a[1], _with_budget(a[1], a[2], budget)) != effective_settings(
            b[1], _with_budget(b[1], b[2], budget)
        ):
            fixes.append(budget)
    kinds = [plan.sampling_kind for _, _, plan in (a, b)]
    if None not in kinds and kinds[0] != kinds[1]:
        sizes = a[2].task_sizes or ()
        what = f"all equal ({sizes[0]} training questions each)" if len(set(sizes)) == 1 else f"{list(sizes)}"
        reasons.append(f"with task sizes {what}, {a[0]}'s {kinds[0]} sampling and {b[0]}'s {kinds[1]} sampling "
                       "draw every task with the same probability")
    why = "; ".join(reasons) or "their effective training settings are the same"
    if fixes:
        budget = min(fixes)
        why += f"; the smallest --max-steps that separates them is {budget}"
        # A best checkpoint is chosen among validations; one at or before the last step on which the arms
        # still agree is the same model in both, however long they train afterwards.
        early = [plan.eval_every for _, _, plan in (a, b)]
        if checkpoint == "best" and min(early) <= budget - 1:
            why += (f", with --checkpoint last: a best checkpoint can be one validated at step {min(early)}, "
                    "before the arms diverge, which is the same model in both")
    else:
        why += "; no --max-steps separates them"
    return why


def _with_budget(settings: TrainSettings, plan: RunPlan, max_steps: int) -> RunPlan:
    """The plan of the same run trained for `max_steps` steps."""
    longer = settings.model_copy(update={"optim": settings.optim.model_copy(update={"max_steps": max_steps})})
    return make_plan(longer, plan.task_sizes if plan.task_sizes is not None else plan.train_questions)


def identical_arms(planned: Sequence[tuple[str, TrainSettings, RunPlan]], checkpoint: str = "best") -> list[tuple[str, str, str]]:
    """(arm, arm, why) for every pair of planned arms (of one seed) that would train identically."""
    found = []
    effective = [effective_settings(s, sched) for _, s, sched in planned]
    for i in range(len(planned)):
        for j in range(i + 1, len(planned)):
            if effective[i] == effective[j]:
                found.append((planned[i][0], planned[j][0], _why_identical(planned[i], planned[j], checkpoint)))
    return found


def keeps_prior(strategy: str) -> bool:
    """Whether the strategy draws from the prior throughout by its own declaration (not a schedule)."""
    cls = ablation_strategies.get(strategy)
    return getattr(cls, "fixed_distribution", None) is not None and not getattr(cls, "schedule", False)


def plain_multitask(settings: TrainSettings, sizes: Sequence[int] | None = None) -> str | None:
    """None if these settings are plain multi-task fine-tuning (questions drawn in proportion to their
    tasks' sizes, the neutral loss weighting and gradient, no auxiliary loss); otherwise what makes them differ.
    With the task sizes given, sampling of equal-sized tasks counts as proportional whatever the prior."""
    loss, cur = settings.loss, settings.curriculum
    why = []
    if loss.lambda_contrastive > 0:
        why.append(f"lambda_contrastive = {loss.lambda_contrastive:g}")
    # The strategy's own declared distribution, asked over the known sizes (or, without them, over
    # unequal probe sizes): proportional when it is n_t / sum(n).
    probe = tuple(sizes) if sizes else _PROBE_SIZES
    declared = declared_distribution(settings, probe)
    proportional = declared is not None and all(abs(p - q) <= 1e-12 for p, q in zip(declared, normalised(probe)))
    if not proportional:
        why.append(f"{cur.strategy} sampling" + (f" with the {cur.prior} prior" if keeps_prior(cur.strategy) else ""))
    if not getattr(task_weightings.get(loss.task_weighting), "neutral", False):
        why.append(f"{loss.task_weighting} task-loss weighting")
    if not getattr(gradients.get(loss.gradient), "neutral", False):
        why.append(f"{loss.gradient} gradients")
    return ", ".join(why) or None


# Unequal task sizes on which only the proportional distribution is n_t / sum(n).
_PROBE_SIZES = (1, 2, 5)


def differences(reference: TrainSettings, other: TrainSettings) -> dict[str, list[Any]]:
    """The training settings in which `other` differs from `reference`: dotted name -> [reference's, other's]."""
    a = flatten(comparable(json.loads(reference.model_dump_json())))
    b = flatten(comparable(json.loads(other.model_dump_json())))
    a.pop("seed", None), b.pop("seed", None)
    return {k: [a.get(k), b.get(k)] for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def differ_only_in_curriculum(a: TrainSettings, b: TrainSettings) -> bool:
    da, db = comparable(json.loads(a.model_dump_json())), comparable(json.loads(b.model_dump_json()))
    da.pop("curriculum"), db.pop("curriculum")
    return da == db
