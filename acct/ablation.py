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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acct.config import AblateSettings
from acct.config import TrainSettings, deep_merge
from acct.errors import AcctError, UsageError
from acct.registry import ablation_arms, register_ablation_arm  # noqa: F401  (the plugin decorator lives here too)
from acct.stats import mcnemar_exact_counts, discordant_counts, mean_sd, paired_bootstrap_ci

DONE_MARKER = "ablation-done.json"
# Settings that say where a run is written, where it runs and how it reports, not what it trains:
# a finished run is reused even if they changed.
_NOT_COMPARED = ("output_dir", "overwrite", "resume", "device", "log_every_n_steps", "save_every_n_steps")

def describe(settings: TrainSettings) -> str:
    """What a configuration's run trains with, in the study's own terms."""
    return f"lambda_con = {settings.loss.lambda_contrastive:g}, {settings.curriculum.strategy} sampling"


def config_overrides(name: str, base: TrainSettings) -> dict[str, Any]:
    """The settings layer that turns the base settings into configuration `name` (a registered arm)."""
    if name not in ablation_arms:
        raise UsageError(f"unknown ablation configuration {name!r}; choose from {', '.join(ablation_arms.names())}")
    return ablation_arms.get(name)(base)


def config_settings(base: TrainSettings, name: str, seed: int, run_dir: Path) -> TrainSettings:
    """Base settings with configuration `name`'s overrides, the seed and the run directory."""
    layer = deep_merge(config_overrides(name, base), {"seed": seed, "output_dir": str(run_dir), "resume": False, "overwrite": False})
    merged = deep_merge(json.loads(base.model_dump_json()), layer)
    return TrainSettings.model_validate(merged)


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


def seeds_of(base: TrainSettings, n: int) -> list[int]:
    return [base.seed + k for k in range(n)]


def read_marker(run_dir: Path) -> dict[str, Any] | None:
    """The done marker of a run, or None when absent or unreadable (then the run is not finished)."""
    try:
        marker = json.loads((run_dir / DONE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("status") == "finished" else None


def plan(settings: AblateSettings, base: TrainSettings) -> list[PlannedRun]:
    """Decide for every run: reuse a finished one, resume an interrupted one, or train it."""
    from acct import checkpoint as ckpt_io

    root = Path(settings.output_dir)
    if root.exists() and not root.is_dir():
        raise UsageError(f"output path {root} is a file")
    runs: list[PlannedRun] = []
    for seed in seeds_of(base, settings.seeds):
        for name in settings.configs:
            run_dir = root / f"{name}-seed{seed}"
            wanted = config_settings(base, name, seed, run_dir)
            has_last = (run_dir / "checkpoints" / "last").exists()
            if settings.overwrite or not ckpt_io.is_run_dir(run_dir):
                runs.append(PlannedRun(name, seed, run_dir, wanted, "train"))
                continue
            saved = ckpt_io.read_json(run_dir / "config.json", "run settings")
            diff = settings_differences(saved, wanted)
            if diff:
                raise UsageError(
                    f"{run_dir} holds a run trained with other settings ({', '.join(diff[:4])}"
                    f"{' …' if len(diff) > 4 else ''}); use another --output-dir, or --overwrite to retrain"
                )
            marker = read_marker(run_dir)
            if marker is not None and marker.get("settings_sha256") == settings_digest(wanted) and has_last:
                runs.append(PlannedRun(name, seed, run_dir, wanted, "reuse", marker))
            elif has_last:
                runs.append(PlannedRun(name, seed, run_dir, wanted, "resume"))
            else:
                runs.append(PlannedRun(name, seed, run_dir, wanted, "train"))
    return runs


def train_run(run: PlannedRun, *, should_stop: Callable[[], bool] = lambda: False) -> Iterator[Any]:
    """Train or resume one planned run, yielding the engine's events; mark it done when it finishes."""
    from acct import checkpoint as ckpt_io
    from acct import distributed, engine

    if run.action == "reuse":
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "checkpoint": self.checkpoint,
            "seeds": self.seeds,
            "examples_per_seed": {str(k): v for k, v in self.n_per_seed.items()},
            "configs": self.configs,
            "deltas": self.deltas,
            "runs": self.runs,
            "notes": self.notes,
            "settings": self.base_settings,
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


def compare(
    settings: AblateSettings,
    runs: Sequence[PlannedRun],
    *,
    device: str = "auto",
    precision: str = "auto",
    data_dir: Path | None = None,
    on_scored: Callable[[PlannedRun], None] | None = None,
) -> AblationReport:
    """Score every run on the shared held-out split and compare each configuration with baseline."""
    from acct.engine import load_run, resolve_device
    from acct.inference import score_split

    check_same_split(runs)
    dev, prec = resolve_device(device, precision)
    correct: dict[tuple[str, int], list[bool]] = {}
    results: dict[tuple[str, int], Any] = {}
    uids: dict[int, list[str]] = {}
    for r in runs:
        loaded = load_run(r.run_dir, settings.checkpoint, dev, trust_remote_code=r.settings.model.trust_remote_code)
        scored = score_split(loaded, settings.split, device=dev, precision=prec,
                             batch_size=settings.eval_batch_size, data_dir=data_dir)
        ids = [ex.uid for ex in scored.examples]
        if uids.setdefault(r.seed, ids) != ids:
            raise AcctError(f"{r.run_dir} scored other {settings.split} examples than the other runs of seed {r.seed}")
        correct[r.config, r.seed] = scored.correct
        results[r.config, r.seed] = scored.result
        if on_scored is not None:
            on_scored(r)
    return aggregate(settings, runs, correct, results)


def aggregate(
    settings: AblateSettings,
    runs: Sequence[PlannedRun],
    correct: dict[tuple[str, int], list[bool]],
    results: dict[tuple[str, int], Any],
) -> AblationReport:
    """The comparison from every run's per-example correctness and EvalResult, keyed (config, seed).

    Within a seed every configuration must have been scored on the same examples in the same order.
    """
    seeds = sorted({r.seed for r in runs})
    names = [n for n in settings.configs if any(r.config == n for r in runs)]
    for (name, seed), flags in correct.items():
        if len(flags) != len(correct["baseline", seed]):
            raise AcctError(f"{name} seed {seed} was scored on {len(flags)} examples, baseline on "
                            f"{len(correct['baseline', seed])}")
    configs: dict[str, dict[str, Any]] = {}
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
        configs[name] = {
            "description": describe(next(r.settings for r in runs if r.config == name)),
            "accuracy": acc_mean,
            "macro_accuracy": macro_mean,
            "categories": _mean_of([res.categories for res in per_seed]),
            "tasks": _mean_of(task_acc),
            "seeds": seed_rows,
            "sd": None if len(seeds) == 1 else {
                "accuracy": acc_sd,
                "macro_accuracy": macro_sd,
                "categories": _sd_of([res.categories for res in per_seed]),
            },
        }

    deltas: dict[str, dict[str, Any]] = {}
    for name in names:
        if name == "baseline":
            continue
        a = [ok for s in seeds for ok in correct["baseline", s]]
        b = [ok for s in seeds for ok in correct[name, s]]
        groups = [s for s in seeds for _ in correct["baseline", s]]
        ci = paired_bootstrap_ci(a, b, groups=groups, resamples=settings.bootstrap_resamples, seed=0)
        only_base, only_cfg = discordant_counts(a, b)
        per_seed_delta = [results[name, s].accuracy - results["baseline", s].accuracy for s in seeds]
        base, cfg = configs["baseline"], configs[name]
        deltas[name] = {
            "accuracy": ci.delta,
            "ci_low": ci.low,
            "ci_high": ci.high,
            "mcnemar_p": mcnemar_exact_counts(only_base, only_cfg),
            "sd": mean_sd(per_seed_delta)[1],
            "discordant": {"baseline_only": only_base, f"{name}_only": only_cfg},
            "macro_accuracy": cfg["macro_accuracy"] - base["macro_accuracy"],
            "categories": {c: cfg["categories"][c] - base["categories"][c] for c in base["categories"] if c in cfg["categories"]},
            "tasks": {t: cfg["tasks"][t] - base["tasks"][t] for t in base["tasks"] if t in cfg["tasks"]},
            "per_seed": [
                {"seed": s, "accuracy": d,
                 "mcnemar_p": mcnemar_exact_counts(*discordant_counts(correct["baseline", s], correct[name, s]))}
                for s, d in zip(seeds, per_seed_delta)
            ],
        }

    base_settings = runs[0].settings
    notes = []
    if base_settings.data.source != "synthetic" and base_settings.data.protocol == "subject-split":
        notes.append(
            "subject-split protocol: dev+val+test pooled and re-split per subject; these accuracies are not "
            "comparable to the standard MMLU leaderboard"
        )
    if len(seeds) > 1:
        notes.append(f"deltas are the mean over {len(seeds)} seeds; the bootstrap resamples each seed's examples "
                     "separately, McNemar pools the discordant pairs of all seeds")
    return AblationReport(
        split=settings.split,
        checkpoint=settings.checkpoint,
        seeds=seeds,
        n_per_seed={s: len(correct["baseline", s]) for s in seeds},
        configs=configs,
        deltas=deltas,
        runs=[{"config": r.config, "seed": r.seed, "run_dir": str(r.run_dir), "action": r.action,
               "step": (r.finished or {}).get("step"), "reason": (r.finished or {}).get("reason")} for r in runs],
        notes=notes,
        base_settings=comparable(json.loads(base_settings.model_dump_json())),
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


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def markdown(report: AblationReport, top: int = 5) -> str:
    """The study as a Markdown report (percentages)."""
    cats = sorted(set().union(*(c["categories"] for c in report.configs.values())))
    multi = len(report.seeds) > 1
    lines = [
        "# acct ablation",
        "",
        f"Split: **{report.split}** ({', '.join(f'seed {s}: {n} questions' for s, n in report.n_per_seed.items())}), "
        f"checkpoint: {report.checkpoint}. Accuracies in %; Δ against baseline with a paired bootstrap 95% CI "
        "and an exact McNemar p-value on the same examples."
        + (" Mean ± sd over seeds." if multi else ""),
        "",
        "| config | accuracy | macro | " + " | ".join(cats) + " | Δ accuracy [95% CI] | McNemar p |",
        "|---|---:|---:|" + "---:|" * len(cats) + "---|---:|",
    ]
    for name, c in report.configs.items():
        sd = c["sd"]
        acc = _pct(c["accuracy"]) + (f" ± {_pct(sd['accuracy'])}" if multi and sd["accuracy"] is not None else "")
        macro = _pct(c["macro_accuracy"]) + (f" ± {_pct(sd['macro_accuracy'])}" if multi and sd["macro_accuracy"] is not None else "")
        if name in report.deltas:
            d = report.deltas[name]
            delta = f"{_signed(d['accuracy'])} [{_signed(d['ci_low'])}, {_signed(d['ci_high'])}]"
            if multi and d["sd"] is not None:
                delta += f" (sd {_pct(d['sd'])})"
            p = _p(d["mcnemar_p"])
        else:
            delta, p = "(reference)", ""
        row = [f"{name} ({c['description']})", acc, macro, *(_pct(c["categories"].get(x)) for x in cats), delta, p]
        lines.append("| " + " | ".join(row) + " |")
    for name, d in report.deltas.items():
        gains, losses = top_task_deltas(d, top)
        lines += ["", f"## {name} vs baseline: per-task Δ accuracy (points)", ""]
        if not gains and not losses:
            lines.append("No task changed.")
            continue
        lines += ["| task | Δ | baseline | " + name + " |", "|---|---:|---:|---:|"]
        for t, v in gains + losses:
            lines.append(f"| {t} | {_signed(v)} | {_pct(report.configs['baseline']['tasks'][t])} | "
                         f"{_pct(report.configs[name]['tasks'][t])} |")
    lines += ["", "## Runs", ""]
    lines += [f"- {r['config']} seed {r['seed']}: `{r['run_dir']}` ({r['action']})" for r in report.runs]
    if report.notes:
        lines += ["", *[f"> {n}" for n in report.notes]]
    return "\n".join(lines) + "\n"


def write_reports(report: AblationReport, directory: Path, top: int = 5) -> tuple[Path, Path]:
    """Write DIR/ablation.json and DIR/ablation.md atomically."""
    from acct import checkpoint as ckpt_io

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / "ablation.json", directory / "ablation.md"
    ckpt_io.write_json(json_path, report.to_dict())
    ckpt_io.write_text(md_path, markdown(report, top))
    return json_path, md_path


# -- everything at once (the engine entry point; the CLI renders the same steps) -------------------


def run_ablation(
    settings: AblateSettings,
    base: TrainSettings,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    on_event: Callable[[PlannedRun, Any], None] | None = None,
) -> AblationReport | None:
    """Plan, train what is missing, compare and write the reports; None if training was interrupted."""
    from acct import engine

    runs = plan(settings, base)
    for r in runs:
        for event in train_run(r, should_stop=should_stop):
            if on_event is not None:
                on_event(r, event)
            if isinstance(event, engine.Finished) and event.reason == "interrupted":
                return None
    report = compare(settings, runs, device=base.device, precision=base.precision)
    write_reports(report, settings.output_dir, settings.top_tasks)
    return report
