"""The ablation study behind acct's claim: baseline vs contrastive-only vs full, side by side.

Owns the three configurations (each a set of overrides on one base `TrainSettings`), the
plan that decides for every (configuration, seed) whether its run is reused, resumed or
trained, the marker that says a run finished, the paired comparison on shared held-out
examples, and the JSON and Markdown reports. No Typer, no printing: the CLI renders.

- baseline:    lambda_contrastive = 0, uniform task sampling
- contrastive: lambda_contrastive from the base settings (0.3 by default), uniform sampling
- full:        lambda_contrastive as above, uncertainty_gradient curriculum

Every configuration of one seed trains on the same split (the split depends on the data
settings and the seed only), for the same step budget; the comparison refuses runs whose
split manifests differ.

A study is a list of arms, each a name and a settings layer over the base settings (`Arm`);
the first arm is the reference of every comparison. Before anything trains, the arms'
*effective* settings (what the run will actually do within its step budget) are compared, and
a study in which two arms would train identically is refused unless the caller allows it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from pathlib import Path
from typing import Any

from acct import __version__
from acct import checkpoint as ckpt_io
from acct.config import ABLATION_CONFIGS, AblateSettings
from acct.config import TrainSettings, deep_merge, split_comparability_note
from acct.errors import AcctError, UsageError
from acct.registry import ablation_arms, register_ablation_arm  # noqa: F401  (the plugin decorator lives here too)
from acct.registry import strategies as ablation_strategies
from acct.stats import (
    bh_qvalues,
    binomial_ci,
    discordant_counts,
    holm,
    mcnemar_exact_counts,
    mcnemar_mde,
    mean_sd,
    paired_bootstrap_ci,
)

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
    if loss.task_weighting != "equal":
        text += f", {loss.task_weighting} task-loss weighting"
    if loss.lambda_contrastive > 0 and loss.anchor_weighting != "entropy":
        text += f", {loss.anchor_weighting} anchor weighting"
    return text


def config_overrides(name: str, base: TrainSettings) -> dict[str, Any]:
    """The settings layer that turns the base settings into configuration `name` (a registered arm)."""
    if name not in ablation_arms:
        raise UsageError(f"unknown ablation configuration {name!r}; choose from {', '.join(ablation_arms.names())}")
    return ablation_arms.get(name)(base)


@dataclass(frozen=True)
class Arm:
    """One arm of a study: its name and the settings layer that turns the base settings into it."""

    name: str
    overrides: dict[str, Any]


def default_arms(base: TrainSettings, names: Sequence[str] = ABLATION_CONFIGS) -> list[Arm]:
    """Registered arms by name (by default the method's baseline / contrastive / full), in that order."""
    return [Arm(name, config_overrides(name, base)) for name in names]


def study_arms(settings: AblateSettings, base: TrainSettings) -> list[Arm]:
    """The study's arms, the reference first: a study file's (`--study`) or registered ones (`--arms`).

    Each arm's settings are validated here, before anything trains, so that a wrong value in
    one arm is one line naming the arm.
    """
    if settings.study is not None:
        from acct.study import read_study

        layers, file_reference = read_study(settings.study)
        arms = [Arm(name, layer) for name, layer in layers]
        where = f"{settings.study}: "
    else:
        arms, file_reference, where = default_arms(base, settings.arms), None, ""
    names = [a.name for a in arms]
    reference = settings.reference or file_reference or names[0]
    if reference not in names:
        raise UsageError(f"--reference {reference}: not one of the study's arms ({', '.join(names)})")
    arms.sort(key=lambda a: a.name != reference)  # stable: the others keep their order
    for arm in arms:
        try:
            arm_settings(base, arm, base.seed, Path(settings.output_dir) / arm.name)
        except UsageError as exc:
            raise UsageError(f"{where}arm {arm.name}: {exc}") from None
    return arms


def arm_settings(base: TrainSettings, arm: Arm, seed: int, run_dir: Path) -> TrainSettings:
    """Base settings with the arm's overrides, the seed and the run directory."""
    from acct.config import validate_checked

    layer = deep_merge(arm.overrides, {"seed": seed, "output_dir": str(run_dir), "resume": False, "overwrite": False})
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
    """Dotted names of the training settings that differ between a saved run and the wanted one."""
    a = _flatten(comparable(saved))
    b = _flatten(comparable(json.loads(wanted.model_dump_json())))
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


# -- what each arm will actually do -----------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """The step plan of one run, computed as the engine computes it."""

    train_questions: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int  # steps of prior (uniform) sampling before an adaptive curriculum may act
    update_every: int
    first_update: int | None  # the first step after which the curriculum recomputes the weights; None: never adapts
    task_sizes: tuple[int, ...] | None = None  # training questions per task, in task order (when known)

    @property
    def adapts(self) -> bool:
        """Whether a batch is ever drawn from weights the curriculum computed (not the prior)."""
        return self.first_update is not None and self.first_update < self.total_steps

    @property
    def steps_to_adapt(self) -> int | None:
        """The smallest step budget at which the curriculum's weights draw a batch."""
        return None if self.first_update is None else self.first_update + 1


def train_questions(settings: TrainSettings) -> int:
    """Questions in the training split of these settings (the split only; nothing is tokenised)."""
    return sum(train_task_sizes(settings))


def train_task_sizes(settings: TrainSettings) -> tuple[int, ...]:
    """Training questions per task (tasks in name order) of these settings' split."""
    from collections import Counter

    from acct.engine import load_source, make_split

    counts = Counter(ex.task for ex in make_split(load_source(settings.data, settings.seed), settings.data, settings.seed).train)
    return tuple(counts[t] for t in sorted(counts))


def schedule(settings: TrainSettings, n_train: int | Sequence[int]) -> Schedule:
    """Steps per epoch, total steps, curriculum warm-up and first update, as `engine.train` derives them."""
    sizes = None if isinstance(n_train, int) else tuple(n_train)
    n_train = n_train if sizes is None else sum(sizes)
    per_step = settings.batch.questions_per_batch * settings.batch.grad_accum_steps
    per_epoch = max(1, math.ceil(n_train / per_step))
    total = settings.optim.max_steps or max(1, math.ceil(settings.optim.epochs * per_epoch))
    warmup = round(settings.curriculum.warmup_epochs * per_epoch)
    every = settings.curriculum.update_every_n_steps
    cur = settings.curriculum
    if _is_schedule(cur.strategy):
        # A schedule strategy (proportional, temperature, phased) sets the weights of the first batch.
        first: int | None = 0
    else:
        # With floor 1 the weights are mixed back to the prior at every update: the strategy never shows.
        # A strategy may need several updates past warm-up before its weights can leave the prior
        # (learning_progress: a reward is a change between two updates).
        rounds = int(getattr(ablation_strategies.get(cur.strategy), "rounds_to_act", 1))
        first = None if cur.strategy == "uniform" or cur.floor >= 1.0 else every * (max(1, math.ceil(warmup / every)) + rounds - 1)
    return Schedule(n_train, per_epoch, total, warmup, every, first, sizes)


def _is_schedule(strategy: str) -> bool:
    """Whether the strategy is a fixed schedule, used from the first batch on (see acct.curriculum.Curriculum)."""
    return bool(getattr(ablation_strategies.get(strategy), "schedule", False))


def effective_settings(settings: TrainSettings, sched: Schedule) -> dict[str, Any]:
    """The settings that decide what a run trains, with those that cannot act in its budget normalised away.

    Two runs with equal effective settings train identically: an adaptive curriculum that never
    leaves the prior within the step budget samples exactly as uniform does, and the InfoNCE
    temperature means nothing when the contrastive loss has weight 0.
    """
    d = comparable(json.loads(settings.model_dump_json()))
    fixed = fixed_sampling(settings, sched)
    if fixed is not None:
        # A fixed task distribution: two arms that draw tasks with the same probabilities sample
        # alike, whatever the strategy is called (e.g. temperature sampling of equal-sized tasks).
        d["curriculum"] = {"sampling": [round(p, 12) for p in fixed]}
    elif not sched.adapts:
        # It samples from its prior throughout, as the uniform strategy with that prior does.
        d["curriculum"] = {"strategy": "uniform", **{k: d["curriculum"][k] for k in ("prior", "alpha") if k in d["curriculum"]}}
    if d["loss"]["lambda_contrastive"] == 0:
        d["loss"] = {k: v for k, v in d["loss"].items() if k not in ("tau", "gather_negatives")}
    return d


def _normalised(values: Sequence[float]) -> list[float]:
    total = float(sum(values))
    return [v / total for v in values]


def fixed_sampling(settings: TrainSettings, sched: Schedule) -> list[float] | None:
    """The task-sampling probabilities of a run that draws tasks from one fixed distribution throughout
    (its prior, or the proportional / temperature strategy), when the task sizes are known; else None."""
    sizes = sched.task_sizes
    if not sizes or not sum(sizes):
        return None
    cur = settings.curriculum
    if cur.strategy == "proportional":
        return _normalised(sizes)
    if cur.strategy == "temperature":
        alpha = float(cur.options.get("alpha", cur.alpha))
        return _normalised([n ** alpha for n in sizes])
    if cur.strategy == "uniform" or not sched.adapts and not _is_schedule(cur.strategy):
        return _prior_of(settings, sched)
    return None


def _sampling_kind(settings: TrainSettings, sched: Schedule) -> str | None:
    """The name of a fixed task distribution ('proportional', 'temperature (alpha 0.5)', 'uniform'), else None."""
    if fixed_sampling(settings, sched) is None:
        return None
    cur = settings.curriculum
    if cur.strategy in ("proportional", "temperature"):
        kind, alpha = cur.strategy, float(cur.options.get("alpha", cur.alpha))
    else:
        kind, alpha = cur.prior, cur.alpha
    return f"temperature (alpha {alpha:g})" if kind == "temperature" else kind


def _why_identical(a: tuple[str, TrainSettings, Schedule], b: tuple[str, TrainSettings, Schedule]) -> str:
    """One clause saying why two arms with equal effective settings train identically, and what separates them."""
    reasons, fixes = [], []
    for name, s, sched in (a, b):
        cur = s.curriculum
        if cur.strategy == "uniform" or sched.adapts:
            continue
        if cur.floor >= 1.0:
            reasons.append(f"{name}'s {cur.strategy} curriculum has floor 1, which keeps the weights at the {cur.prior} prior")
            continue
        reasons.append(
            f"{name}'s {cur.strategy} curriculum would first change the task weights after step {sched.first_update} "
            f"(warm-up {sched.warmup_steps} steps, updates every {sched.update_every}), but training ends at step "
            f"{sched.total_steps}"
        )
        budget = sched.steps_to_adapt
        if effective_settings(a[1], dataclass_replace(a[2], total_steps=budget)) != effective_settings(
            b[1], dataclass_replace(b[2], total_steps=budget)
        ):
            fixes.append(budget)
    kinds = [_sampling_kind(s, sched) for _, s, sched in (a, b)]
    if None not in kinds and kinds[0] != kinds[1]:
        sizes = a[2].task_sizes or ()
        what = f"all equal ({sizes[0]} training questions each)" if len(set(sizes)) == 1 else f"{list(sizes)}"
        reasons.append(f"with task sizes {what}, {a[0]}'s {kinds[0]} sampling and {b[0]}'s {kinds[1]} sampling "
                       "draw every task with the same probability")
    why = "; ".join(reasons) or "their effective training settings are the same"
    if fixes:
        why += f"; the smallest --max-steps that separates them is {min(fixes)}"
    else:
        why += "; no --max-steps separates them"
    return why


def identical_arms(planned: Sequence[tuple[str, TrainSettings, Schedule]]) -> list[tuple[str, str, str]]:
    """(arm, arm, why) for every pair of planned arms (of one seed) that would train identically."""
    found = []
    effective = [effective_settings(s, sched) for _, s, sched in planned]
    for i in range(len(planned)):
        for j in range(i + 1, len(planned)):
            if effective[i] == effective[j]:
                found.append((planned[i][0], planned[j][0], _why_identical(planned[i], planned[j])))
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
    schedule: Schedule | None = None
    planned_identical: list[str] = field(default_factory=list)  # "arm: why" for arms it would train identically to
    write_marker: bool = False  # a finished run without its done marker (trained by a printed `acct train` command)


def seeds_of(base: TrainSettings, n: int) -> list[int]:
    return [base.seed + k for k in range(n)]


def read_marker(run_dir: Path) -> dict[str, Any] | None:
    """The done marker of a run, or None when absent or unreadable (then the run is not finished)."""
    try:
        marker = json.loads((run_dir / DONE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("status") == "finished" else None


def finished_state(run_dir: Path, sched: Schedule, patience: int) -> dict[str, Any] | None:
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
    for seed in seeds_of(base, settings.seeds):
        group: list[PlannedRun] = []
        sizes: tuple[int, ...] | None = None
        for arm in arms:
            run_dir = root / f"{arm.name}-seed{seed}"
            wanted = arm_settings(base, arm, seed, run_dir)
            if sizes is None or wanted.data != group[0].settings.data:
                sizes = train_task_sizes(wanted)
            group.append(PlannedRun(arm.name, seed, run_dir, wanted, "train", schedule=schedule(wanted, sizes)))
        for a, b, why in identical_arms([(r.config, r.settings, r.schedule) for r in group]):
            if not settings.allow_identical:
                raise UsageError(
                    f"arms {a} and {b} would train identically (seed {seed}): {why}; "
                    "or pass --allow-identical to run them anyway"
                )
            for r, other in ((group[names.index(a)], b), (group[names.index(b)], a)):
                r.planned_identical.append(f"{other}: {why}")
        for r in group:
            has_last = (r.run_dir / "checkpoints" / "last").exists()
            if settings.overwrite or not ckpt_io.is_run_dir(r.run_dir):
                runs.append(r)
                continue
            saved = ckpt_io.read_json(r.run_dir / "config.json", "run settings")
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


# -- the comparison -------------------------------------------------------------------------------


@dataclass
class AblationReport:
    split: str
    checkpoint: str
    seeds: list[int]
    n_per_seed: dict[int, int]
    configs: dict[str, dict[str, Any]]
    deltas: dict[str, dict[str, Any]]
    runs: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    base_settings: dict[str, Any] = field(default_factory=dict)
    reference: str = "baseline"
    command: str | None = None
    acct_version: str = __version__
    # Per (arm, seed): the logged validation curve and curriculum weights (for the figures; not in the JSON).
    histories: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    task_categories: dict[str, str] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "acct_version": self.acct_version,
            "command": self.command,
            "split": self.split,
            "checkpoint": self.checkpoint,
            "seeds": self.seeds,
            "examples_per_seed": {str(k): v for k, v in self.n_per_seed.items()},
            "reference": self.reference,
            "configs": self.configs,
            "deltas": self.deltas,
            "holm_p": {name: d.get("holm_p") for name, d in self.deltas.items()},
            "mde": {name: d.get("mde") for name, d in self.deltas.items()},
            "runs": self.runs,
            "notes": self.notes,
            "settings": self.base_settings,
            "figures": [str(p) for p in self.figures],
        }


def _mean_of(dicts: Sequence[dict[str, float]]) -> dict[str, float]:
    keys = sorted(set().union(*dicts)) if dicts else []
    return {k: mean_sd([d[k] for d in dicts if k in d])[0] for k in keys}


def _sd_of(dicts: Sequence[dict[str, float]]) -> dict[str, float | None]:
    keys = sorted(set().union(*dicts)) if dicts else []
    return {k: mean_sd([d[k] for d in dicts if k in d])[1] for k in keys}


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

    try:
        data = (ckpt_io.checkpoint_dir(run_dir, which) / "model.safetensors").read_bytes()
    except (AcctError, OSError):
        return None
    return hashlib.sha256(data).hexdigest()


def compare(
    settings: AblateSettings,
    runs: Sequence[PlannedRun],
    *,
    device: str = "auto",
    precision: str = "auto",
    data_dir: Path | None = None,
    on_scored: Callable[[PlannedRun], None] | None = None,
    command: str | None = None,
) -> AblationReport:
    """Score every run on the shared held-out split and compare each arm with the reference (the first)."""
    from acct.engine import load_run, resolve_device
    from acct.inference import score_split

    check_same_split(runs)
    dev, prec = resolve_device(device, precision)
    correct: dict[tuple[str, int], list[bool]] = {}
    results: dict[tuple[str, int], Any] = {}
    uids: dict[int, list[str]] = {}
    tasks: dict[int, list[str]] = {}
    facts: dict[tuple[str, int], dict[str, Any]] = {}
    categories: dict[str, str] = {}
    for r in runs:
        loaded = load_run(r.run_dir, settings.checkpoint, dev, trust_remote_code=r.settings.model.trust_remote_code)
        scored = score_split(loaded, settings.split, device=dev, precision=prec,
                             batch_size=settings.eval_batch_size, data_dir=data_dir)
        ids = [ex.uid for ex in scored.examples]
        if uids.setdefault(r.seed, ids) != ids:
            raise AcctError(f"{r.run_dir} scored other {settings.split} examples than the other runs of seed {r.seed}")
        tasks.setdefault(r.seed, [ex.task for ex in scored.examples])
        correct[r.config, r.seed] = scored.correct
        results[r.config, r.seed] = scored.result
        facts[r.config, r.seed] = {
            "weights": {w: weights_digest(r.run_dir, w) for w in dict.fromkeys((settings.checkpoint, "last"))},
            **read_history(r.run_dir),
        }
        categories.update(loaded.categories)
        if on_scored is not None:
            on_scored(r)
    report = aggregate(settings, runs, correct, results, tasks=tasks, facts=facts)
    report.command = command
    report.task_categories = categories
    return report


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
    prior = _prior_of(s, sched)
    steps, first_change, reached = [], [], []
    for r in mine:
        steps.append((r.finished or {}).get("step"))
        logged = _drew_batches(facts.get((name, r.seed), {}).get("curriculum", []), steps[-1])
        change = None
        for step, w in logged:
            start = dict(zip(sorted(w), prior if prior is not None and len(prior) == len(w) else [1.0 / len(w)] * len(w)))
            if change is None and any(abs(w[t] - start[t]) > 1e-9 for t in w):
                # A fixed schedule (temperature, phased) sets its weights before the first batch.
                change = 0 if _is_schedule(cur.strategy) and step == logged[0][0] else step
            reached.extend(w.values())
        first_change.append(change)
    adaptive = cur.strategy != "uniform"
    loss = s.loss
    contrastive = loss.lambda_contrastive > 0
    anchor = {"entropy": "prediction entropy", "uniform": "1 (plain InfoNCE)"}.get(loss.anchor_weighting, loss.anchor_weighting)
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


def _prior_of(settings: TrainSettings, sched: Schedule | None) -> list[float] | None:
    """The run's task-sampling prior (tasks in name order), when the task sizes are known."""
    sizes = None if sched is None else sched.task_sizes
    if not sizes or not sum(sizes):
        return None
    cur = settings.curriculum
    if cur.prior == "uniform":
        return [1.0 / len(sizes)] * len(sizes)
    return _normalised(sizes if cur.prior == "proportional" else [n ** cur.alpha for n in sizes])


def plain_multitask(settings: TrainSettings, sizes: Sequence[int] | None = None) -> str | None:
    """None if these settings are plain multi-task fine-tuning (questions drawn in proportion to their
    tasks' sizes, mean cross-entropy, no auxiliary loss); otherwise what makes them differ.
    With the task sizes given, sampling of equal-sized tasks counts as proportional whatever the prior."""
    loss, cur = settings.loss, settings.curriculum
    why = []
    if loss.lambda_contrastive > 0:
        why.append(f"lambda_contrastive = {loss.lambda_contrastive:g}")
    proportional = cur.strategy == "proportional" or (cur.strategy == "uniform" and cur.prior == "proportional")
    # Any fixed distribution over equal-sized tasks is the proportional one.
    equal_sizes = bool(sizes) and len(set(sizes)) == 1 and cur.strategy in ("uniform", "proportional", "temperature")
    if not (proportional or equal_sizes):
        why.append(f"{cur.strategy} sampling" + (f" with the {cur.prior} prior" if cur.strategy == "uniform" else ""))
    if loss.task_weighting != "equal":
        why.append(f"{loss.task_weighting} task-loss weighting")
    if loss.gradient != "mean":
        why.append(f"{loss.gradient} gradients")
    return ", ".join(why) or None


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
                same_weights = [w for w, d in fa["weights"].items() if d is not None and d == fb["weights"].get(w)]
                if same_weights:
                    found.append((a.config, b.config, seed, f"byte-identical model weights ({'/'.join(same_weights)} checkpoint)"))
                elif (a.settings.curriculum.strategy != b.settings.curriculum.strategy
                      and _differ_only_in_curriculum(a.settings, b.settings)
                      and [w for _, w in _drew_batches(fa["curriculum"], (a.finished or {}).get("step"))]
                      == [w for _, w in _drew_batches(fb["curriculum"], (b.finished or {}).get("step"))]):
                    found.append((a.config, b.config, seed, "identical logged curriculum weights, the only setting they differ in"))
    return found


def aggregate(
    settings: AblateSettings,
    runs: Sequence[PlannedRun],
    correct: dict[tuple[str, int], list[bool]],
    results: dict[tuple[str, int], Any],
    *,
    tasks: dict[int, list[str]] | None = None,
    facts: dict[tuple[str, int], dict[str, Any]] | None = None,
) -> AblationReport:
    """The comparison from every run's per-example correctness and EvalResult, keyed (arm, seed).

    Within a seed every arm must have been scored on the same examples in the same order. The
    first arm of `runs` is the reference. `tasks` (the task of each example, per seed) enables the
    per-task tests; `facts` (per run: weight digests and logged history) the checks of what each
    arm did.
    """
    facts = facts or {}
    seeds = sorted({r.seed for r in runs})
    names = list(dict.fromkeys(r.config for r in runs))
    ref = names[0]
    for (name, seed), flags in correct.items():
        if len(flags) != len(correct[ref, seed]):
            raise AcctError(f"{name} seed {seed} was scored on {len(flags)} examples, {ref} on "
                            f"{len(correct[ref, seed])}")
    configs: dict[str, dict[str, Any]] = {}
    ref_settings = next(r.settings for r in runs if r.config == ref)
    for name in names:
        per_seed = [results[name, s] for s in seeds]
        seed_rows = [
            {
                "seed": s,
                "run_dir": str(next(r.run_dir for r in runs if r.config == name and r.seed == s)),
                "accuracy": res.accuracy,
                "macro_accuracy": res.macro_accuracy,
                "categories": res.categories,
            }
            for s, res in zip(seeds, per_seed)
        ]
        acc_mean, acc_sd = mean_sd([res.accuracy for res in per_seed])
        macro_mean, macro_sd = mean_sd([res.macro_accuracy for res in per_seed])
        task_acc = [{t: v["accuracy"] for t, v in res.tasks.items()} for res in per_seed]
        pooled = [ok for s in seeds for ok in correct[name, s]]
        low, high = binomial_ci(sum(pooled), len(pooled))
        mine = [r for r in runs if r.config == name]
        configs[name] = {
            "description": describe(mine[0].settings),
            "accuracy": acc_mean,
            "ci_low": low,
            "ci_high": high,
            "macro_accuracy": macro_mean,
            "categories": _mean_of([res.categories for res in per_seed]),
            "tasks": _mean_of(task_acc),
            "seeds": seed_rows,
            "sd": None if len(seeds) == 1 else {
                "accuracy": acc_sd,
                "macro_accuracy": macro_sd,
                "categories": _sd_of([res.categories for res in per_seed]),
            },
            "settings_sha256": {str(r.seed): settings_digest(r.settings) for r in mine},
            "differs_from_reference": differences(ref_settings, mine[0].settings),
            "effective": _effective_row(name, runs, facts),
        }

    deltas: dict[str, dict[str, Any]] = {}
    for name in names[1:]:
        a = [ok for s in seeds for ok in correct[ref, s]]
        b = [ok for s in seeds for ok in correct[name, s]]
        groups = [s for s in seeds for _ in correct[ref, s]]
        ci = paired_bootstrap_ci(a, b, groups=groups, resamples=settings.bootstrap_resamples, seed=0)
        only_ref, only_arm = discordant_counts(a, b)
        per_seed_delta = [results[name, s].accuracy - results[ref, s].accuracy for s in seeds]
        seed_mean, seed_sd = mean_sd(per_seed_delta)
        base, cfg = configs[ref], configs[name]
        discordance = (only_ref + only_arm) / len(a)
        per_task: dict[str, dict[str, Any]] = {}
        if tasks is not None:
            by_task: dict[str, tuple[list[bool], list[bool]]] = {}
            for s in seeds:
                for t, x, y in zip(tasks[s], correct[ref, s], correct[name, s]):
                    by_task.setdefault(t, ([], []))[0].append(x)
                    by_task[t][1].append(y)
            for t in sorted(by_task):
                x, y = by_task[t]
                per_task[t] = {"n": len(x), "delta": cfg["tasks"].get(t, 0.0) - base["tasks"].get(t, 0.0),
                               "p": mcnemar_exact_counts(*discordant_counts(x, y))}
            for t, q in zip(per_task, bh_qvalues([v["p"] for v in per_task.values()])):
                per_task[t]["q"] = q
        deltas[name] = {
            "accuracy": ci.delta,
            "ci_low": ci.low,
            "ci_high": ci.high,
            "mcnemar_p": mcnemar_exact_counts(only_ref, only_arm),
            "holm_p": None,  # filled below, across all arms
            "mde": mcnemar_mde(len(a), discordance),
            "pairs": len(a),
            "discordance": discordance,
            "sd": seed_sd,
            "seed_mean": seed_mean,
            "seed_sd": seed_sd,
            "discordant": {f"{ref}_only": only_ref, f"{name}_only": only_arm},
            "macro_accuracy": cfg["macro_accuracy"] - base["macro_accuracy"],
            "categories": {c: cfg["categories"][c] - base["categories"][c] for c in base["categories"] if c in cfg["categories"]},
            "tasks": {t: cfg["tasks"][t] - base["tasks"][t] for t in base["tasks"] if t in cfg["tasks"]},
            "per_task": per_task,
            "per_seed": [
                {"seed": s, "accuracy": d,
                 "mcnemar_p": mcnemar_exact_counts(*discordant_counts(correct[ref, s], correct[name, s]))}
                for s, d in zip(seeds, per_seed_delta)
            ],
        }
    for name, p in zip(deltas, holm([d["mcnemar_p"] for d in deltas.values()])):
        deltas[name]["holm_p"] = p

    base_settings = runs[0].settings
    notes = []
    ref_run = next(r for r in runs if r.config == ref)
    plain = plain_multitask(ref_settings, ref_run.schedule.task_sizes if ref_run.schedule else None)
    if plain is not None:
        notes.append(f"the reference {ref} is not plain multi-task fine-tuning ({plain}); every Δ is measured "
                     "against it, not against plain multi-task learning")
    comparability = split_comparability_note(base_settings.data)
    if comparability is not None:
        notes.append(comparability)
    if len(seeds) > 1:
        notes.append(f"deltas are the mean over {len(seeds)} seeds; the bootstrap resamples each seed's examples "
                     "separately, McNemar pools the discordant pairs of all seeds; 'seeds' gives the mean ± sd of "
                     "the per-seed deltas")
    if len(deltas) > 1:
        notes.append(f"Holm p: the McNemar p-values adjusted across all {len(deltas)} comparisons with {ref} "
                     "(family-wise error); read the Holm column, not the raw one, when asking whether any arm differs")
    if any(d["per_task"] for d in deltas.values()):
        n_tasks = max(len(d["per_task"]) for d in deltas.values())
        per = sum(v["n"] for v in next(iter(deltas.values()))["per_task"].values()) / max(1, n_tasks)
        notes.append(f"per-task deltas: {n_tasks} tasks of about {per:.0f} questions each; unadjusted per-task "
                     "p-values are noise at this size (some fall below 0.05 by chance alone), so only the "
                     "Benjamini-Hochberg q-values are reported")
    for name, d in deltas.items():
        if d["mde"] is None:
            notes.append(f"{name} and {ref} never disagreed on a question: no difference could be detected")
        else:
            notes.append(
                f"power ({name} vs {ref}): with {d['pairs']} paired questions and {100 * d['discordance']:.1f}% "
                f"discordant, the smallest difference this study detects with 80% power at alpha 0.05 is "
                f"{100 * d['mde']:.1f} points; smaller true effects would likely go unseen"
            )
    planned = sorted({(r.config, p) for r in runs for p in r.planned_identical})
    if planned:
        shown = sorted({tuple(sorted((a, p.split(":")[0]))) + (p.split(": ", 1)[1],) for a, p in planned})
        for a, b, why in shown:
            notes.append(f"--allow-identical: arms {a} and {b} were planned to train identically ({why})")
    for a, b, seed, what in trained_identical(runs, facts):
        notes.append(f"arms {a} and {b} (seed {seed}) trained identically: {what}; their comparison is empty")
        for x, y in ((a, b), (b, a)):
            if y not in configs[x]["effective"]["identical_to"]:
                configs[x]["effective"]["identical_to"].append(y)
    return AblationReport(
        split=settings.split,
        checkpoint=settings.checkpoint,
        seeds=seeds,
        n_per_seed={s: len(correct[ref, s]) for s in seeds},
        configs=configs,
        deltas=deltas,
        runs=[{"config": r.config, "seed": r.seed, "run_dir": str(r.run_dir), "action": r.action,
               "step": (r.finished or {}).get("step"), "reason": (r.finished or {}).get("reason"),
               "settings_sha256": settings_digest(r.settings)} for r in runs],
        notes=notes,
        base_settings=comparable(json.loads(base_settings.model_dump_json())),
        reference=ref,
        histories={key: {"validation": f.get("validation", []), "curriculum": f.get("curriculum", [])}
                   for key, f in facts.items()},
    )


# -- reports --------------------------------------------------------------------------------------


def top_task_deltas(delta: dict[str, Any], k: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The k largest per-task gains and the k largest losses (each only if strictly positive/negative)."""
    items = sorted(delta["tasks"].items(), key=lambda kv: (-kv[1], kv[0]))
    gains = [(t, d) for t, d in items if d > 0][:k]
    losses = [(t, d) for t, d in reversed(items) if d < 0][:k]
    return gains, losses


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _signed(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.2f}"


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _value(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v


def describe_effective(e: dict[str, Any]) -> dict[str, str]:
    """The 'what it did' cells of an arm's row, as text."""

    def steps(values: Sequence[Any]) -> str:
        shown = sorted({v for v in values if v is not None})
        return "-" if not shown else "/".join(str(v) for v in shown)

    change = e.get("first_weight_change_step")
    if change is None:
        change_text = "-"
    elif all(c is None for c in change):
        change_text = "never"
    else:
        change_text = steps(change)
    weights = "-"
    if e.get("max_task_weight") is not None:
        weights = f"{e['min_task_weight']:.3f}–{e['max_task_weight']:.3f}"
    loss = e["loss"]
    loss_text = f"λ_cls {loss['lambda_cls']:g}, λ_con {loss['lambda_contrastive']:g}"
    if loss["tau"] is not None:
        loss_text += f", τ {loss['tau']:g}, anchors weighted by {loss.get('contrastive_anchor_weighting') or 'prediction entropy'}"
    loss_text += f"; task losses: {loss.get('task_weighting', 'equal')}"
    if loss.get("gradient", "mean") != "mean":
        loss_text += f"; gradients: {loss['gradient']}"
    return {"steps": steps(e["steps_trained"]), "change": change_text, "weights": weights, "loss": loss_text,
            "identical": ", ".join(e["identical_to"]) or "-"}


def markdown(report: AblationReport, top: int = 5, directory: Path | None = None) -> str:
    """The study as a Markdown report (percentages); figures linked relative to `directory`."""
    cats = sorted(set().union(*(c["categories"] for c in report.configs.values())))
    multi = len(report.seeds) > 1
    ref = report.reference
    lines = [
        "# acct ablation",
        "",
        f"Split: **{report.split}** ({', '.join(f'seed {s}: {n} questions' for s, n in report.n_per_seed.items())}), "
        f"checkpoint: {report.checkpoint}. Accuracies in % with a Wilson 95% CI; Δ against {ref} with a paired "
        "bootstrap 95% CI and an exact McNemar p-value on the same examples; **Holm p is the McNemar p adjusted "
        f"across all {len(report.deltas)} comparisons with {ref}**; MDE is the smallest |Δ| the paired test "
        "detects with 80% power at α = 0.05 (Connor 1987)."
        + (" Mean ± sd over seeds. The 'seeds' column is the mean ± sd of the per-seed Δ." if multi else ""),
        "",
        "| config | accuracy [95% CI] | macro | " + " | ".join(cats) + f" | Δ vs {ref} [95% CI] |"
        + (" seeds mean ± sd |" if multi else "") + " McNemar p | Holm p | MDE |",
        "|---|---:|---:|" + "---:|" * len(cats) + "---|" + ("---:|" if multi else "") + "---:|---:|---:|",
    ]
    for name, c in report.configs.items():
        sd = c["sd"]
        acc = _pct(c["accuracy"]) + (f" ± {_pct(sd['accuracy'])}" if multi and sd["accuracy"] is not None else "")
        if c.get("ci_low") is not None:
            acc += f" [{_pct(c['ci_low'])}, {_pct(c['ci_high'])}]"
        macro = _pct(c["macro_accuracy"]) + (f" ± {_pct(sd['macro_accuracy'])}" if multi and sd["macro_accuracy"] is not None else "")
        seeds_cell: list[str] = []
        if name in report.deltas:
            d = report.deltas[name]
            delta = f"{_signed(d['accuracy'])} [{_signed(d['ci_low'])}, {_signed(d['ci_high'])}]"
            if multi:
                seeds_cell = [f"{_signed(d.get('seed_mean'))} ± {_pct(d.get('seed_sd'))}"]
            p, hp, mde = _p(d["mcnemar_p"]), _p(d.get("holm_p")), _pct(d.get("mde"))
        else:
            delta, p, hp, mde = "(reference)", "", "", ""
            seeds_cell = [""] if multi else []
        label = f"{name} ({c['description']})"
        if c.get("effective", {}).get("identical_to"):
            label += " ⚠ identical to " + ", ".join(c["effective"]["identical_to"])
        row = [label, acc, macro, *(_pct(c["categories"].get(x)) for x in cats), delta, *seeds_cell, p, hp, mde]
        lines.append("| " + " | ".join(row) + " |")
    if any("effective" in c for c in report.configs.values()):
        lines += ["", "## What each arm did", "",
                  "| config | settings sha256 | steps trained | curriculum | weights first changed at step | "
                  "task weight min–max | loss | identical to |",
                  "|---|---|---:|---|---:|---:|---|---|"]
        for name, c in report.configs.items():
            if "effective" not in c:
                continue
            e = describe_effective(c["effective"])
            digests = ", ".join(sorted({v[:12] for v in c.get("settings_sha256", {}).values()}))
            lines.append(f"| {name} | `{digests}` | {e['steps']} | {c['effective']['curriculum']} | {e['change']} | "
                         f"{e['weights']} | {e['loss']} | {e['identical']} |")
    if any(c.get("differs_from_reference") for c in report.configs.values()):
        lines += ["", f"## What differs from {ref}", "",
                  f"Every training setting in which an arm differs from {ref} (the seed and the run directory aside).", ""]
        for name, c in report.configs.items():
            if name == ref:
                continue
            diff = c.get("differs_from_reference") or {}
            shown = "; ".join(f"`{k}`: {_value(a)} → {_value(b)}" for k, (a, b) in diff.items()) or "nothing"
            lines.append(f"- **{name}**: {shown}")
    for name, d in report.deltas.items():
        gains, losses = top_task_deltas(d, top)
        lines += ["", f"## {name} vs {ref}: per-task Δ accuracy (points)", ""]
        if not gains and not losses:
            lines.append("No task changed.")
            continue
        with_q = bool(d.get("per_task"))
        lines += ["| task | Δ | " + ref + " | " + name + " |" + (" q (BH) |" if with_q else ""),
                  "|---|---:|---:|---:|" + ("---:|" if with_q else "")]
        for t, v in gains + losses:
            q = f" {_p(d['per_task'][t]['q'])} |" if with_q and t in d["per_task"] else (" - |" if with_q else "")
            lines.append(f"| {t} | {_signed(v)} | {_pct(report.configs[ref]['tasks'][t])} | "
                         f"{_pct(report.configs[name]['tasks'][t])} |" + q)
    if report.figures:
        lines += ["", "## Figures", ""]
        for fig in report.figures:
            rel = os.path.relpath(fig, directory) if directory is not None else str(fig)
            lines.append(f"![{Path(fig).stem}]({Path(rel).as_posix()})")
    lines += ["", "## Runs", ""]
    lines += [f"- {r['config']} seed {r['seed']}: `{r['run_dir']}` ({r['action']}), settings sha256 "
              f"`{r.get('settings_sha256', '-')}`" for r in report.runs]
    if report.notes:
        lines += ["", "## Notes", "", *[f"> {n}" + "\n>" for n in report.notes]]
        lines[-1] = lines[-1].removesuffix("\n>")
    lines += ["", f"acct {report.acct_version}" + (f"; command: `{report.command}`" if report.command else "")]
    return "\n".join(lines) + "\n"


def write_reports(report: AblationReport, directory: Path, top: int = 5) -> tuple[Path, Path]:
    """Write DIR/ablation.json and DIR/ablation.md atomically."""
    from acct import checkpoint as ckpt_io

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / "ablation.json", directory / "ablation.md"
    ckpt_io.write_json(json_path, report.to_dict())
    ckpt_io.write_text(md_path, markdown(report, top, directory))
    return json_path, md_path


# -- everything at once (the engine entry point; the CLI renders the same steps) -------------------


def run_ablation(
    settings: AblateSettings,
    base: TrainSettings,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    on_event: Callable[[PlannedRun, Any], None] | None = None,
    arms: Sequence[Arm] | None = None,
    command: str | None = None,
) -> AblationReport | None:
    """Plan, train what is missing, compare and write the reports; None if training was interrupted."""
    from acct import engine

    runs = plan(settings, base, arms)
    for r in runs:
        for event in train_run(r, should_stop=should_stop):
            if on_event is not None:
                on_event(r, event)
            if isinstance(event, engine.Finished) and event.reason == "interrupted":
                return None
    report = compare(settings, runs, device=base.device, precision=base.precision, command=command)
    finish_report(report, settings)
    return report


def finish_report(report: AblationReport, settings: AblateSettings) -> tuple[Path, Path]:
    """Draw the figures when asked (--plot DIR), then write ablation.json and ablation.md."""
    if settings.plot_dir is not None:
        from acct.ablation_plots import write_figures

        report.figures = write_figures(report, settings.plot_dir)
    return write_reports(report, settings.output_dir, settings.top_tasks)
