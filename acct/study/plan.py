"""The plan of a study: for every (arm, sweep point, seed) whether its run is reused, resumed or
trained, the marker that says a run finished, the commands that train a run outside the study,
and the training of one planned run.

Every run of one seed trains on the same split (the split depends on the data settings and the
seed only), for the same step budget; the comparison refuses runs whose split manifests differ.
No Typer, no printing: the CLI renders.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acct.config.commands import AblateSettings
from acct.config.train import TrainSettings
from acct.errors import AcctError, UsageError
from acct.gradients import check_fits_weighting
from acct.registry import strategies as ablation_strategies
from acct.study.guard import identical_arms, train_task_sizes
from acct.study.layers import (
    Arm,
    arm_settings,
    pairs_text,
    settings_differences,
    settings_digest,
    study_arms,
)
from acct.study.sweep import label
from acct.train.plan import (
    RunPlan,
    make_plan,
)

DONE_MARKER = "ablation-done.json"
# Settings that say where a run is written, where it runs and how it reports, not what it trains:


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
    from acct.run import checkpoint as ckpt_io

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
    from acct.run import checkpoint as ckpt_io

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
            for point in arm.points():
                run_dir = root / "-".join(x for x in (arm.name, label(point), f"seed{seed}") if x)
                wanted = arm_settings(base, arm, seed, run_dir, point)
                check_fits_weighting(wanted.loss.gradient, wanted.loss.task_weighting)
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
            at = f" at {pairs_text(runs[a].point.items())}" if runs[a].point else ""
            if not settings.allow_identical:
                raise UsageError(
                    f"arms {a} and {b} would train identically{at} (seed {seed}): {why}; "
                    "or pass --allow-identical to run them anyway"
                )
            runs[a].planned_identical.append(f"{b}: {why}")
            runs[b].planned_identical.append(f"{a}: {why}")


def train_argv(run: PlannedRun, settings_file: Path) -> list[str]:
    """The `acct train` arguments that do for planned run `run` what `acct ablate` does in process.

    A run to train starts over from its settings file (--overwrite); an interrupted run continues
    from its `last` checkpoint with its saved settings (--resume). The plugins the settings record
    are passed again with --code, and trust in remote code, given to this study, is given again.
    """
    if run.action == "resume":
        words = ["train", "--resume", str(run.run_dir)]
    else:
        words = ["train", "--config", str(settings_file), "--output-dir", str(run.run_dir), "--overwrite"]
        for ref in run.settings.plugins:
            words += ["--code", str(ref.path)]
    if run.settings.model.trust_remote_code:
        words.append("--trust-remote-code")
    return words


def train_commands(
    runs: Sequence[PlannedRun], directory: Path, *, launcher: str | None = None, nproc_per_node: int = 1
) -> list[str]:
    """One `acct train` command line per run to train or resume (`train_argv`); a run to train reads
    its full settings from DIR/commands/.

    The settings files are the exact settings `plan` compares a finished run against, so a later
    `acct ablate` with the same arguments reuses the runs these commands trained.
    """
    import yaml

    if launcher == "torchrun":
        prefix = ["torchrun", "--nproc_per_node", str(nproc_per_node), "-m", "acct"]
    elif launcher is None:
        prefix = ["acct"]
    else:
        raise UsageError(f"unknown launcher {launcher!r}; the one acct knows is torchrun")
    folder = Path(directory) / "commands"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for r in runs:
        path = folder / f"{r.run_dir.name}.yaml"
        if r.action != "resume":
            body = json.loads(r.settings.model_dump_json())
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
            os.replace(tmp, path)
        lines.append(shlex.join([*prefix, *train_argv(r, path)]))
    return lines


def train_run(run: PlannedRun, *, should_stop: Callable[[], bool] = lambda: False) -> Iterator[Any]:
    """Train or resume one planned run, yielding the engine's events; mark it done when it finishes."""
    from acct import engine
    from acct.run import checkpoint as ckpt_io
    from acct.train import distributed

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
