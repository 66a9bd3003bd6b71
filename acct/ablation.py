"""The plan of an ablation study: its arms, their runs, and the guard against empty comparisons.

Owns the arms (each a settings layer over one base `TrainSettings`, with the grid it is tuned
over), the plan that decides for every (arm, sweep point, seed) whether its run is reused,
resumed or trained, the marker that says a run finished, the commands that train a run outside
the study, and the facts of what each run did. The comparison and the reports are
acct/ablation_compare.py and acct/ablation_report.py. No Typer, no printing: the CLI renders.

- baseline:    lambda_contrastive = 0, tasks drawn from the prior (plain multi-task fine-tuning)
- contrastive: lambda_contrastive from the base settings (0.3 by default), tasks from the prior
- full:        lambda_contrastive as above, uncertainty_gradient curriculum

Every run of one seed trains on the same split (the split depends on the data settings and the
seed only), for the same step budget; the comparison refuses runs whose split manifests differ.

The first arm is the reference of every comparison. Before anything trains, the arms'
*effective* settings (what the run will actually do within its step budget, read from the plan
of the run in acct/train/plan.py) are compared at each sweep point, and a study in which two arms
would train identically is refused unless the caller allows it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acct import checkpoint as ckpt_io
from acct.config import ABLATION_CONFIGS, AblateSettings
from acct.config import TrainSettings, deep_merge, split_comparability_note
from acct.errors import AcctError, UsageError
from acct.registry import ablation_arms, register_ablation_arm  # noqa: F401  (the plugin decorator lives here too)
from acct.registry import anchor_weightings, gradients, task_weightings
from acct.registry import strategies as ablation_strategies
from acct.train.plan import RunPlan, declared_distribution, make_plan, normalised, prior_distribution

DONE_MARKER = "ablation-done.json"
# Settings that say where a run is written, where it runs and how it reports, not what it trains:
# a finished run is reused even if they changed. (Nor is the provenance block saved beside them.)
_NOT_COMPARED = ("output_dir", "overwrite", "resume", "device", "log_every_n_steps", "save_every_n_steps", "provenance",
                 "report_to")

def describe(settings: TrainSettings) -> str:
    """What a configuration's run trains with, in the study's own terms."""
    loss = settings.loss
    text = f"lambda_con = {loss.lambda_contrastive:g}, {settings.curriculum.strategy} sampling"
    text += f" over the {settings.curriculum.prior} prior"
    if not getattr(task_weightings.get(loss.task_weighting), "neutral", False):
        text += f", {loss.task_weighting} task-loss weighting"
    if loss.lambda_contrastive > 0 and not getattr(anchor_weightings.get(loss.anchor_weighting), "neutral", False):
        text += f", {loss.anchor_weighting} anchor weighting"
    return text


def config_overrides(name: str, base: TrainSettings) -> dict[str, Any]:
    """The settings layer that turns the base settings into configuration `name` (a registered arm)."""
    if name not in ablation_arms:
        raise UsageError(f"unknown ablation configuration {name!r}; choose from {', '.join(ablation_arms.names())}")
    return ablation_arms.get(name)(base)


@dataclass(frozen=True)
class Arm:
    """One arm of a study: its name, the settings layer that turns the base settings into it, and the
    grid it is tuned over (`acct.sweep`; empty: one point, the layer as it is)."""

    name: str
    overrides: dict[str, Any]
    sweep: dict[str, list[Any]] = field(default_factory=dict)

    def points(self) -> list[tuple[tuple[str, Any], ...]]:
        from acct.sweep import grid

        return grid(self.sweep) if self.sweep else [()]


def default_arms(base: TrainSettings, names: Sequence[str] = ABLATION_CONFIGS) -> list[Arm]:
    """Registered arms by name (by default the method's baseline / contrastive / full), in that order."""
    return [Arm(name, config_overrides(name, base)) for name in names]


def study_arms(settings: AblateSettings, base: TrainSettings) -> list[Arm]:
    """The study's arms, the reference first: a study file's (`--study`) or registered ones (`--arms`).

    Each arm's settings are validated here, before anything trains, so that a wrong value in
    one arm is one line naming the arm.
    """
    from acct.sweep import combine

    if settings.study is not None:
        from acct.study import read_study_file

        study = read_study_file(settings.study)
        study_wide = combine(study.sweep, settings.sweep)
        # An arm named like a registered arm starts from it; any other name from the base settings.
        arms = [Arm(name, deep_merge(config_overrides(name, base), layer) if name in ablation_arms else layer,
                    combine(study_wide, study.arm_sweeps.get(name, {})))
                for name, layer in study.arms]
        file_reference, where = study.reference, f"{settings.study}: "
    else:
        arms = [Arm(a.name, a.overrides, dict(settings.sweep)) for a in default_arms(base, settings.arms)]
        file_reference, where = None, ""
    names = [a.name for a in arms]
    reference = settings.reference or file_reference or names[0]
    if reference not in names:
        raise UsageError(f"--reference {reference}: not one of the study's arms ({', '.join(names)})")
    arms.sort(key=lambda a: a.name != reference)  # stable: the others keep their order
    for arm in arms:
        for point in arm.points():
            try:
                arm_settings(base, arm, base.seed, Path(settings.output_dir) / arm.name, point)
            except UsageError as exc:
                at = f" at {_point_text(point)}" if point else ""
                raise UsageError(f"{where}arm {arm.name}{at}: {exc}") from None
    return arms


def _point_text(point: Sequence[tuple[str, Any]]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point)


def arm_settings(base: TrainSettings, arm: Arm, seed: int, run_dir: Path,
                 point: Sequence[tuple[str, Any]] = ()) -> TrainSettings:
    """Base settings with the arm's overrides at one point of its grid, the seed and the run directory."""
    from acct.config import validate_checked
    from acct.sweep import layer as point_layer

    layer = deep_merge(deep_merge(arm.overrides, point_layer(tuple(point))),
                       {"seed": seed, "output_dir": str(run_dir), "resume": False, "overwrite": False})
    merged = deep_merge(json.loads(base.model_dump_json()), layer)
    return validate_checked(TrainSettings, merged)


def config_settings(base: TrainSettings, name: str, seed: int, run_dir: Path) -> TrainSettings:
    """Base settings with configuration `name`'s overrides, the seed and the run directory."""
    return arm_settings(base, Arm(name, config_overrides(name, base)), seed, run_dir)


def comparable(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in _NOT_COMPARED}


def settings_digest(settings: TrainSettings) -> str:
    text = json.dumps(comparable(json.loads(settings.model_dump_json())), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else k))
    return out


def settings_differences(saved: dict[str, Any], wanted: TrainSettings) -> list[str]:
    """Dotted names of the training settings that differ between a saved run and the wanted one.

    A setting added to acct after the run was saved is absent from its config.json: it counts as
    unchanged while it has the value that means the behaviour of then (as on --resume).
    """
    from acct.rundir import LEGACY_DEFAULTS

    a = _flatten(comparable(saved))
    b = _flatten(comparable(json.loads(wanted.model_dump_json())))
    defaults = _flatten(json.loads(TrainSettings.model_validate({}).model_dump_json()))
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k)
                  and not (k not in a and b.get(k) == LEGACY_DEFAULTS.get(k, defaults.get(k, object()))))


# -- what each arm will actually do -----------------------------------------------------------------


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
        # It samples from its prior throughout, as the fixed strategy with that prior does.
        d["curriculum"] = {"strategy": "fixed", **{k: d["curriculum"][k] for k in ("prior", "alpha") if k in d["curriculum"]}}
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


# -- the plan -------------------------------------------------------------------------------------


@dataclass
class PlannedRun:
    """One (configuration, seed) of the study and what has to happen to it."""

    config: str
    seed: int
    run_dir: Path
    settings: TrainSettings
    action: str  # "reuse", "resume" or "train"
    finished: dict[str, Any] | None = None  # the done marker of a reused run
    schedule: RunPlan | None = None  # the run's plan (acct.train.plan), as the engine will follow it
    planned_identical: list[str] = field(default_factory=list)  # "arm: why" for arms it would train identically to
    write_marker: bool = False  # a finished run without its done marker (trained by a printed `acct train` command)
    point: dict[str, Any] = field(default_factory=dict)  # the arm's sweep point this run trains ({} without a sweep)


def seeds_of(base: TrainSettings, n: int) -> list[int]:
    return [base.seed + k for k in range(n)]


def read_marker(run_dir: Path) -> dict[str, Any] | None:
    """The done marker of a run, or None when absent or unreadable (then the run is not finished)."""
    try:
        marker = json.loads((run_dir / DONE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("status") == "finished" else None


def finished_state(run_dir: Path, sched: RunPlan, patience: int) -> dict[str, Any] | None:
    """The done marker a run would have had, if its 'last' checkpoint shows it ran to the end (or stopped early)."""
    from acct import checkpoint as ckpt_io

    try:
        trainer = ckpt_io.read_json(ckpt_io.checkpoint_dir(run_dir, "last") / "state.json", "training state")["trainer"]
        step, bad = int(trainer["step"]), int(trainer["bad_evals"])
    except (AcctError, KeyError, TypeError, ValueError):
        return None
    if step >= sched.total_steps:
        reason = "completed"
    elif bad >= patience:
        reason = "early_stopping"
    else:
        return None
    return {"status": "finished", "reason": reason, "step": step, "best_accuracy": trainer.get("best_accuracy"),
            "best_step": trainer.get("best_step")}


def plan(settings: AblateSettings, base: TrainSettings, arms: Sequence[Arm] | None = None) -> list[PlannedRun]:
    """Decide for every run: reuse a finished one, resume an interrupted one, or train it.

    Refuses (UsageError) a study in which two arms would train identically, unless
    `settings.allow_identical`; then each run records what it would be identical to.
    """
    from acct import checkpoint as ckpt_io

    arms = list(arms) if arms is not None else study_arms(settings, base)
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise UsageError(f"arm names must be unique, got {', '.join(names)}")
    root = Path(settings.output_dir)
    if root.exists() and not root.is_dir():
        raise UsageError(f"output path {root} is a file")
    runs: list[PlannedRun] = []
    from acct.sweep import label

    for seed in seeds_of(base, settings.seeds):
        group: list[PlannedRun] = []
        sizes: tuple[int, ...] | None = None
        for arm in arms:
            for point in arm.points():
                run_dir = root / "-".join(x for x in (arm.name, label(point), f"seed{seed}") if x)
                wanted = arm_settings(base, arm, seed, run_dir, point)
                if sizes is None or wanted.data != group[0].settings.data:
                    sizes = train_task_sizes(wanted)
                group.append(PlannedRun(arm.name, seed, run_dir, wanted, "train", schedule=make_plan(wanted, sizes),
                                        point=dict(point)))
        _guard(group, seed, settings)
        for r in group:
            has_last = (r.run_dir / "checkpoints" / "last").exists()
            if settings.overwrite or not ckpt_io.is_run_dir(r.run_dir):
                runs.append(r)
                continue
            saved = ckpt_io.read_json(r.run_dir / "config.json", "run settings")
            r.settings = _as_saved(saved, r.settings)
            diff = settings_differences(saved, r.settings)
            if diff:
                raise UsageError(
                    f"{r.run_dir} holds a run trained with other settings ({', '.join(diff[:4])}"
                    f"{' …' if len(diff) > 4 else ''}); use another --output-dir, or --overwrite to retrain"
                )
            marker = read_marker(r.run_dir)
            digest = settings_digest(r.settings)
            if marker is not None and marker.get("settings_sha256") == digest and has_last:
                r.action, r.finished = "reuse", marker
            elif has_last and (state := finished_state(r.run_dir, r.schedule, r.settings.patience)) is not None:
                r.action, r.write_marker = "reuse", True
                r.finished = {**state, "config": r.config, "seed": r.seed, "settings_sha256": digest}
            elif has_last:
                r.action = "resume"
            runs.append(r)
    return runs


def _as_saved(saved: dict[str, Any], wanted: TrainSettings) -> TrainSettings:
    """`wanted`, with the strategy spelled as the saved run spells it when that is its former name
    (a run saved with strategy uniform is a fixed run): its settings, and their digest, then match."""
    spelled = (saved.get("curriculum") or {}).get("strategy") if isinstance(saved, dict) else None
    if (not isinstance(spelled, str) or spelled not in ablation_strategies
            or getattr(ablation_strategies.get(spelled), "renamed_to", None) != wanted.curriculum.strategy):
        return wanted
    return wanted.model_copy(update={"curriculum": wanted.curriculum.model_copy(update={"strategy": spelled})})


def _guard(group: Sequence[PlannedRun], seed: int, settings: AblateSettings) -> None:
    """Refuse (or, with --allow-identical, record) arms that would train identically at the same sweep point."""
    by_point: dict[str, list[PlannedRun]] = {}
    for r in group:
        by_point.setdefault(json.dumps(r.point, sort_keys=True), []).append(r)
    for same_point in by_point.values():
        runs = {r.config: r for r in same_point}
        for a, b, why in identical_arms([(r.config, r.settings, r.schedule) for r in same_point], settings.checkpoint):
            at = f" at {_point_text(runs[a].point.items())}" if runs[a].point else ""
            if not settings.allow_identical:
                raise UsageError(
                    f"arms {a} and {b} would train identically{at} (seed {seed}): {why}; "
                    "or pass --allow-identical to run them anyway"
                )
            runs[a].planned_identical.append(f"{b}: {why}")
            runs[b].planned_identical.append(f"{a}: {why}")


def train_commands(
    runs: Sequence[PlannedRun], directory: Path, *, launcher: str | None = None, nproc_per_node: int = 1
) -> list[str]:
    """One `acct train` command line per run, each reading the run's full settings from DIR/commands/.

    The settings files are the exact settings `plan` compares a finished run against, so a later
    `acct ablate` with the same arguments reuses the runs these commands trained.
    """
    import yaml

    folder = Path(directory) / "commands"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for r in runs:
        path = folder / f"{r.run_dir.name}.yaml"
        body = json.loads(r.settings.model_dump_json())
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
        os.replace(tmp, path)
        if launcher == "torchrun":
            prefix = ["torchrun", "--nproc_per_node", str(nproc_per_node), "-m", "acct"]
        elif launcher is None:
            prefix = ["acct"]
        else:
            raise UsageError(f"unknown launcher {launcher!r}; the one acct knows is torchrun")
        lines.append(shlex.join([*prefix, "train", "--config", str(path), "--output-dir", str(r.run_dir)]))
    return lines


def train_run(run: PlannedRun, *, should_stop: Callable[[], bool] = lambda: False) -> Iterator[Any]:
    """Train or resume one planned run, yielding the engine's events; mark it done when it finishes."""
    from acct import checkpoint as ckpt_io
    from acct import distributed, engine

    if run.action == "reuse":
        if run.write_marker and run.finished is not None and distributed.launched()[0] == 0:
            ckpt_io.write_json(run.run_dir / DONE_MARKER, run.finished)
            run.write_marker = False
        return
    (run.run_dir / DONE_MARKER).unlink(missing_ok=True)
    if run.action == "resume":
        settings = run.settings.model_copy(update={"resume": True})
    else:
        settings = run.settings.model_copy(update={"overwrite": True})
    for event in engine.train(settings, should_stop=should_stop):
        if isinstance(event, engine.Finished) and event.reason != "interrupted":
            run.finished = {
                "status": "finished",
                "config": run.config,
                "seed": run.seed,
                "reason": event.reason,
                "step": event.step,
                "best_accuracy": event.best_accuracy,
                "best_step": event.best_step,
                "settings_sha256": settings_digest(run.settings),
            }
            if distributed.launched()[0] == 0:  # under torchrun, rank 0 owns the run directory
                ckpt_io.write_json(run.run_dir / DONE_MARKER, run.finished)
        yield event


# -- what the runs did ----------------------------------------------------------------------------


def check_same_split(runs: Sequence[PlannedRun]) -> None:
    """All runs of one seed must hold identical split manifests, or their scores are not paired."""
    from acct import checkpoint as ckpt_io

    by_seed: dict[int, list[PlannedRun]] = {}
    for r in runs:
        by_seed.setdefault(r.seed, []).append(r)
    for seed, group in by_seed.items():
        ref = ckpt_io.read_json(group[0].run_dir / "split.json", "split manifest")
        for other in group[1:]:
            if ckpt_io.read_json(other.run_dir / "split.json", "split manifest") != ref:
                raise AcctError(
                    f"{group[0].run_dir}/split.json and {other.run_dir}/split.json differ: the runs of seed {seed} "
                    "were not trained on the same split, so they cannot be compared example by example; "
                    "rerun with --overwrite"
                )


def read_history(run_dir: Path) -> dict[str, Any]:
    """The validation curve and the logged curriculum weights of a run, from its metrics.jsonl."""
    val: list[tuple[int, float]] = []
    weights: list[tuple[int, dict[str, float]]] = []
    try:
        lines = (Path(run_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == "validation" and "accuracy" in rec:
            val.append((int(rec["step"]), float(rec["accuracy"])))
        elif rec.get("event") == "curriculum" and isinstance(rec.get("weights"), dict):
            weights.append((int(rec["step"]), {t: float(w) for t, w in rec["weights"].items()}))
    return {"validation": val, "curriculum": weights}


def weights_digest(run_dir: Path, which: str) -> str | None:
    """sha256 of the model weights of checkpoint `which` (None if unreadable)."""
    from acct import checkpoint as ckpt_io
    from acct.predictions import weights_sha256

    try:
        return weights_sha256(ckpt_io.checkpoint_dir(run_dir, which))
    except AcctError:
        return None


def _drew_batches(logged: list[tuple[int, dict[str, float]]], last_step: int | None) -> list[tuple[int, dict[str, float]]]:
    """The logged curriculum weights that drew at least one batch: those set after a step before the last."""
    return [(step, w) for step, w in logged if last_step is None or step < last_step]


def _effective_row(name: str, runs: Sequence[PlannedRun], facts: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Any]:
    """What an arm's runs actually did: steps, when the curriculum first moved the weights away from
    the prior, how far, which losses."""
    mine = [r for r in runs if r.config == name]
    s = mine[0].settings
    sched = mine[0].schedule
    cur = s.curriculum
    sizes = None if sched is None else sched.task_sizes
    prior = prior_distribution(cur.prior, sizes, cur.alpha) if sizes and sum(sizes) else None
    steps, first_change, reached = [], [], []
    for r in mine:
        steps.append((r.finished or {}).get("step"))
        logged = _drew_batches(facts.get((name, r.seed), {}).get("curriculum", []), steps[-1])
        change = None
        for step, w in logged:
            start = dict(zip(sorted(w), prior if prior is not None and len(prior) == len(w) else [1.0 / len(w)] * len(w)))
            if change is None and any(abs(w[t] - start[t]) > 1e-9 for t in w):
                # A fixed schedule (temperature, phased) sets its weights before the first batch.
                change = 0 if sched is not None and sched.schedule and step == logged[0][0] else step
            reached.extend(w.values())
        first_change.append(change)
    # Only a strategy that keeps the prior by declaration (fixed) has no weights of its own to report.
    adaptive = not (sched.keeps_prior if sched is not None else _keeps_prior(cur.strategy))
    loss = s.loss
    contrastive = loss.lambda_contrastive > 0
    anchor = getattr(anchor_weightings.get(loss.anchor_weighting), "anchor_text", loss.anchor_weighting)
    return {
        "curriculum": cur.strategy,
        "prior": cur.prior,
        "steps_trained": steps,
        "planned_steps": None if sched is None else sched.total_steps,
        "curriculum_first_update": None if sched is None else sched.first_update,
        "first_weight_change_step": first_change if adaptive else None,
        "max_task_weight": max(reached) if adaptive and reached else None,
        "min_task_weight": min(reached) if adaptive and reached else None,
        "loss": {"lambda_cls": loss.lambda_cls, "lambda_contrastive": loss.lambda_contrastive,
                 "tau": loss.tau if contrastive else None,
                 "contrastive_anchor_weighting": anchor if contrastive else None,
                 "task_weighting": loss.task_weighting,
                 "gradient": loss.gradient},
        "planned_identical_to": sorted({p.split(":")[0] for r in mine for p in r.planned_identical}),
        "identical_to": [],
    }


def _keeps_prior(strategy: str) -> bool:
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
        why.append(f"{cur.strategy} sampling" + (f" with the {cur.prior} prior" if _keeps_prior(cur.strategy) else ""))
    if not getattr(task_weightings.get(loss.task_weighting), "neutral", False):
        why.append(f"{loss.task_weighting} task-loss weighting")
    if not getattr(gradients.get(loss.gradient), "neutral", False):
        why.append(f"{loss.gradient} gradients")
    return ", ".join(why) or None


# Unequal task sizes on which only the proportional distribution is n_t / sum(n).
_PROBE_SIZES = (1, 2, 5)


def differences(reference: TrainSettings, other: TrainSettings) -> dict[str, list[Any]]:
    """The training settings in which `other` differs from `reference`: dotted name -> [reference's, other's]."""
    a = _flatten(comparable(json.loads(reference.model_dump_json())))
    b = _flatten(comparable(json.loads(other.model_dump_json())))
    a.pop("seed", None), b.pop("seed", None)
    return {k: [a.get(k), b.get(k)] for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def _differ_only_in_curriculum(a: TrainSettings, b: TrainSettings) -> bool:
    da, db = comparable(json.loads(a.model_dump_json())), comparable(json.loads(b.model_dump_json()))
    da.pop("curriculum"), db.pop("curriculum")
    return da == db


def trained_identical(
    runs: Sequence[PlannedRun], facts: dict[tuple[str, int], dict[str, Any]]
) -> list[tuple[str, str, int, str]]:
    """(arm, arm, seed, what) for runs of one seed whose final weights or logged curriculum weights are identical."""
    found = []
    by_seed: dict[int, list[PlannedRun]] = {}
    for r in runs:
        by_seed.setdefault(r.seed, []).append(r)
    for seed, group in by_seed.items():
        for i in range(len(group)):
            for j in range(i + 1, len(group)):
                a, b = group[i], group[j]
                fa, fb = facts.get((a.config, seed)), facts.get((b.config, seed))
                if not fa or not fb:
                    continue
                same = {w for w, d in fa["weights"].items() if d is not None and d == fb["weights"].get(w)}
                if same and (len(same) == len(fa["weights"]) or "last" in same):
                    found.append((a.config, b.config, seed, "trained identically (byte-identical model weights, "
                                  f"{' and '.join(sorted(same))} checkpoint); their comparison is empty"))
                elif same:
                    which = next(iter(same))
                    found.append((a.config, b.config, seed, f"their compared {which} checkpoints are byte-identical "
                                  "(selected on validation before the arms diverged), although their last checkpoints "
                                  "differ; their comparison is empty: compare with --checkpoint last, or train longer"))
                elif (a.settings.curriculum.strategy != b.settings.curriculum.strategy
                      and _differ_only_in_curriculum(a.settings, b.settings)
                      and [w for _, w in _drew_batches(fa["curriculum"], (a.finished or {}).get("step"))]
                      == [w for _, w in _drew_batches(fb["curriculum"], (b.finished or {}).get("step"))]):
                    found.append((a.config, b.config, seed, "trained identically (identical logged curriculum weights, "
                                  "the only setting they differ in); their comparison is empty"))
    return found
