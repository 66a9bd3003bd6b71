"""The comparison of a study's arms, from every run's kept predictions, with the seed as the replicate.

Owns scoring the planned runs (each run's predictions-<split>.jsonl and eval-<split>.json are
written as `acct evaluate` writes them), reading them back for a re-analysis without scoring,
and turning them into the `AblationReport`: per arm, accuracy as mean ± sd over seeds with a
t interval; per arm against the reference, one paired Δ per seed tested across seeds
(acct.study.replicates), with McNemar kept as a per-seed diagnostic. No printing: the CLI renders.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acct import __version__
from acct.config.commands import AblateSettings
from acct.config.notes import split_comparability_note
from acct.errors import AcctError
from acct.scoring.predictions import read_scored
from acct.study import plan as study_plan
from acct.study import replicates
from acct.study.guard import differences, plain_multitask
from acct.study.history import (
    check_same_split,
    effective_row,
    read_history,
    trained_identical,
    weights_digest,
)
from acct.study.layers import comparable, describe, settings_digest
from acct.study.plan import PlannedRun
from acct.study.plots import write_figures
from acct.study.report import write_reports
from acct.study.stats import bh_qvalues, holm, mcnemar_exact_counts
from acct.study.sweep import select

Rows = list[dict[str, Any]]


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
    tuning: Tuning | None = None  # the sweep and what validation selected (None without a sweep)

    def to_dict(self) -> dict[str, Any]:
        return {
            "acct_version": self.acct_version,
            "command": self.command,
            "split": self.split,
            "checkpoint": self.checkpoint,
            "seeds": self.seeds,
            "examples_per_seed": {str(k): v for k, v in self.n_per_seed.items()},
            "reference": self.reference,
            "replicate": "seed",
            "primary_test": replicates.TEST_NAME,
            "configs": self.configs,
            "deltas": self.deltas,
            "holm_p": {name: d.get("holm_p") for name, d in self.deltas.items()},
            "mde": {name: d["power"]["mde"] for name, d in self.deltas.items()},
            "runs": self.runs,
            "notes": self.notes,
            "settings": self.base_settings,
            "figures": [str(p) for p in self.figures],
            **(self.tuning.to_dict() if self.tuning is not None else {}),
        }


# -- equal-budget tuning: each arm's point, selected on validation --------------------------------


@dataclass
class Tuning:
    """Each arm's grid, its validation accuracy at every point and seed, and the point selected."""

    grid: dict[str, dict[str, list[Any]]]
    validation: dict[str, list[dict[str, Any]]]
    selected: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"sweep": self.grid, "selected": self.selected, "validation": self.validation}

    def budgets(self) -> dict[str, int]:
        return {arm: len(rows) for arm, rows in self.validation.items()}


def validation_accuracy(run: PlannedRun, checkpoint: str) -> float | None:
    """The validation accuracy of the checkpoint the study compares: the best one's, or the last validation's."""
    if checkpoint == "best":
        value = (run.finished or {}).get("best_accuracy")
        return None if value is None else float(value)
    curve = read_history(run.run_dir)["validation"]
    return curve[-1][1] if curve else None


def select_points(settings: AblateSettings, runs: Sequence[PlannedRun]) -> tuple[list[PlannedRun], Tuning | None]:
    """The runs of each arm's selected point (all runs without a sweep), and the record of the selection.

    Selection reads validation accuracy only, averaged over every seed of a point: the split compared
    afterwards (test by default) chooses nothing.
    """
    if not any(r.point for r in runs):
        return list(runs), None
    grid: dict[str, dict[str, list[Any]]] = {}
    table: dict[str, dict[tuple, dict[int, float | None]]] = {}
    for r in runs:
        point = tuple(r.point.items())
        table.setdefault(r.config, {}).setdefault(point, {})[r.seed] = validation_accuracy(r, settings.checkpoint)
        for key, value in r.point.items():
            values = grid.setdefault(r.config, {}).setdefault(key, [])
            if value not in values:
                values.append(value)
    selected: dict[str, dict[str, Any]] = {}
    validation: dict[str, list[dict[str, Any]]] = {}
    for arm, points in table.items():
        chosen = select({p: [acc[s] for s in sorted(acc)] for p, acc in points.items()}, where=f"arm {arm}")
        selected[arm] = dict(chosen)
        validation[arm] = [
            {"point": dict(p), "mean": None if None in acc.values() else sum(acc.values()) / len(acc),
             "seeds": {str(s): acc[s] for s in sorted(acc)}, "selected": p == chosen}
            for p, acc in points.items()
        ]
    kept = [r for r in runs if r.point == selected[r.config]]
    return kept, Tuning({a: grid.get(a, {}) for a in table}, validation, selected)


# -- scoring, or reading what was scored ----------------------------------------------------------


def score_runs(
    settings: AblateSettings,
    runs: Sequence[PlannedRun],
    *,
    device: str = "auto",
    precision: str = "auto",
    data_dir: Path | None = None,
    on_scored: Callable[[PlannedRun], None] | None = None,
) -> tuple[dict[tuple[str, int], Rows], dict[str, str]]:
    """Score every run on the study's split, keeping its predictions in the run directory; (rows, categories)."""
    from acct.run.rundir import load_run
    from acct.scoring.score import score_and_keep
    from acct.train.device import resolve_device

    dev, prec = resolve_device(device, precision)
    scored: dict[tuple[str, int], Rows] = {}
    categories: dict[str, str] = {}
    for r in runs:
        loaded = load_run(r.run_dir, settings.checkpoint, dev, trust_remote_code=r.settings.model.trust_remote_code)
        _, rows = score_and_keep(loaded, settings.split, settings.checkpoint, device=dev, precision=prec,
                                 batch_size=settings.eval_batch_size, data_dir=data_dir)
        scored[r.config, r.seed] = rows
        categories.update(loaded.categories)
        if on_scored is not None:
            on_scored(r)
    return scored, categories


def read_runs(settings: AblateSettings, runs: Sequence[PlannedRun], digests: dict[tuple[str, int], str | None],
              ) -> tuple[dict[tuple[str, int], Rows], dict[str, str]]:
    """Every run's saved predictions (`--from-predictions`), each checked against the weight digest of the
    checkpoint it must come from (`digests`, keyed (arm, seed))."""
    scored: dict[tuple[str, int], Rows] = {}
    categories: dict[str, str] = {}
    for r in runs:
        rows = read_scored(r.run_dir, settings.split, settings.checkpoint, digests[r.config, r.seed]).rows
        scored[r.config, r.seed] = rows
        categories.update({row["task"]: row["category"] for row in rows if "category" in row})
    return scored, categories


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
    """Select each arm's point on validation (with a sweep), score those runs (or read their kept predictions)
    and compare each arm with the reference (the first)."""
    runs, tuning = select_points(settings, runs)
    check_same_split(runs)
    # Each checkpoint's weights are hashed once: for the identical-arm checks and, on a re-analysis,
    # to check that the saved predictions still describe the run.
    facts = {
        (r.config, r.seed): {
            "weights": {w: weights_digest(r.run_dir, w) for w in dict.fromkeys((settings.checkpoint, "last"))},
            **read_history(r.run_dir),
        }
        for r in runs
    }
    if settings.from_predictions:
        digests = {key: f["weights"][settings.checkpoint] for key, f in facts.items()}
        scored, categories = read_runs(settings, runs, digests)
    else:
        scored, categories = score_runs(settings, runs, device=device, precision=precision, data_dir=data_dir,
                                        on_scored=on_scored)
    report = aggregate(settings, runs, scored, facts=facts, tuning=tuning)
    report.command = command
    report.task_categories = categories
    return report


# -- per-seed numbers -----------------------------------------------------------------------------


def seed_summary(rows: Rows) -> dict[str, Any]:
    """Accuracy, macro accuracy (mean over tasks), per-category and per-task accuracy of one run's rows."""
    by_task: dict[str, list[bool]] = {}
    by_cat: dict[str, list[bool]] = {}
    for row in rows:
        by_task.setdefault(row["task"], []).append(bool(row["correct"]))
        by_cat.setdefault(row.get("category", "other"), []).append(bool(row["correct"]))
    tasks = {t: sum(v) / len(v) for t, v in sorted(by_task.items())}
    return {
        "accuracy": sum(bool(r["correct"]) for r in rows) / len(rows),
        "macro_accuracy": sum(tasks.values()) / len(tasks),
        "categories": {c: sum(v) / len(v) for c, v in sorted(by_cat.items())},
        "tasks": tasks,
        "task_sizes": {t: len(v) for t, v in sorted(by_task.items())},
    }


def _over_seeds(values: Sequence[float]) -> dict[str, Any]:
    return replicates.summarize(values).to_dict()


def _mean_over_seeds(dicts: Sequence[dict[str, float]]) -> dict[str, float]:
    keys = sorted(set().union(*dicts)) if dicts else []
    return {k: replicates.summarize([d[k] for d in dicts if k in d]).mean for k in keys}


def _clip(x: float | None, low: float, high: float) -> float | None:
    return None if x is None else min(high, max(low, x))


def arm_row(per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """An arm's numbers over seeds: means, sds and t intervals with the seed as the replicate."""
    acc = replicates.summarize([s["accuracy"] for s in per_seed])
    macro = replicates.summarize([s["macro_accuracy"] for s in per_seed])
    cats = sorted(set().union(*(s["categories"] for s in per_seed)))
    return {
        "accuracy": acc.mean,
        # A t interval knows nothing of [0, 1]; an accuracy cannot leave it.
        "ci_low": _clip(acc.ci_low, 0.0, 1.0),
        "ci_high": _clip(acc.ci_high, 0.0, 1.0),
        "ci_method": "t interval over seeds, clipped to [0, 1]" if acc.n > 1 else None,
        "macro_accuracy": macro.mean,
        "macro_ci": [_clip(macro.ci_low, 0.0, 1.0), _clip(macro.ci_high, 0.0, 1.0)],
        "categories": _mean_over_seeds([s["categories"] for s in per_seed]),
        "tasks": _mean_over_seeds([s["tasks"] for s in per_seed]),
        "sd": None if acc.n == 1 else {
            "accuracy": acc.sd,
            "macro_accuracy": macro.sd,
            "categories": {c: replicates.summarize([s["categories"][c] for s in per_seed if c in s["categories"]]).sd
                           for c in cats},
        },
    }


# -- an arm against the reference -----------------------------------------------------------------


def _discordant(ref: Rows, arm: Rows) -> tuple[int, int]:
    only_ref = sum(1 for a, b in zip(ref, arm) if a["correct"] and not b["correct"])
    only_arm = sum(1 for a, b in zip(ref, arm) if b["correct"] and not a["correct"])
    return only_ref, only_arm


def per_task_tests(ref: Sequence[Rows], arm: Sequence[Rows], seeds: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Exploratory per-task comparisons with Benjamini-Hochberg q-values.

    With three seeds or more, each task's per-seed Δ are tested across seeds (paired t). With fewer,
    no seed-level test is possible: the first seed's McNemar test on the task's questions, which treats
    that seed's trained models as fixed, is reported and labelled so.
    """
    tasks = sorted({row["task"] for rows in ref for row in rows})
    out: dict[str, dict[str, Any]] = {}
    for t in tasks:
        deltas, variances, n = [], [], 0
        for a_rows, b_rows in zip(ref, arm):
            a = [r for r in a_rows if r["task"] == t]
            b = [r for r in b_rows if r["task"] == t]
            if a:
                deltas.append(sum(r["correct"] for r in b) / len(b) - sum(r["correct"] for r in a) / len(a))
                variances.append(replicates.within_variance([r["correct"] for r in a], [r["correct"] for r in b]))
                n = len(a)
        if len(seeds) >= 3:
            p = replicates.paired_t_p(deltas, variances)
            test = replicates.TEST_NAME
        else:
            a = [r for r in ref[0] if r["task"] == t]
            b = [r for r in arm[0] if r["task"] == t]
            p = mcnemar_exact_counts(*_discordant(a, b))
            test = f"McNemar on seed {seeds[0]} only (conditional on its trained models)"
        out[t] = {"n": n, "delta": sum(deltas) / len(deltas), "p": p, "test": test}
    testable = [t for t in out if out[t]["p"] is not None]
    for t, q in zip(testable, bh_qvalues([out[t]["p"] for t in testable])):
        out[t]["q"] = q
    for t in out:
        out[t].setdefault("q", None)
    return out


def compare_arm(ref: Sequence[Rows], arm: Sequence[Rows], seeds: Sequence[int]) -> dict[str, Any]:
    """One arm against the reference: a paired Δ per seed, tested across seeds, and the per-seed diagnostics.

    `ref[i]` and `arm[i]` are seed `seeds[i]`'s predictions of the two arms on the same questions.
    """
    flags_ref = [[bool(r["correct"]) for r in rows] for rows in ref]
    flags_arm = [[bool(r["correct"]) for r in rows] for rows in arm]
    main = replicates.compare(flags_ref, flags_arm)
    s_ref = [seed_summary(rows) for rows in ref]
    s_arm = [seed_summary(rows) for rows in arm]
    cats = sorted(set().union(*(s["categories"] for s in s_ref)))
    dm = [replicates.delta_m(a["tasks"], b["tasks"]) for a, b in zip(s_ref, s_arm)]
    delta_m_values = [v for v, _ in dm if v is not None]
    macro = replicates.summarize([b["macro_accuracy"] - a["macro_accuracy"] for a, b in zip(s_ref, s_arm)])
    categories = {c: replicates.summarize([b["categories"].get(c, 0.0) - a["categories"][c] for a, b in zip(s_ref, s_arm)])
                  for c in cats}
    per_seed = []
    for seed, a, b, d in zip(seeds, ref, arm, main.deltas):
        only_ref, only_arm = _discordant(a, b)
        per_seed.append({"seed": seed, "accuracy": d, "mcnemar_p": mcnemar_exact_counts(only_ref, only_arm),
                         "discordant": [only_ref, only_arm], "pairs": len(a)})
    tasks = sorted(set().union(*(s["tasks"] for s in s_ref)))
    return {
        "accuracy": main.summary.mean,
        "p": main.p,
        "test": main.test,
        "ci_low": _clip(main.result.ci_low, -1.0, 1.0),
        "ci_high": _clip(main.result.ci_high, -1.0, 1.0),
        "se": main.result.se,
        "se_floored": main.result.floored,
        "holm_p": None,  # filled in across arms
        "sd": main.summary.sd,
        "heterogeneity": main.heterogeneity,
        "power": main.power.to_dict(),
        "per_seed": per_seed,
        "per_seed_note": "McNemar p per seed: exact test on that seed's questions, conditional on its trained models "
                         "(a diagnostic; it ignores training variance)",
        "macro_accuracy": macro.mean,
        "macro_accuracy_ci": [macro.ci_low, macro.ci_high],
        "categories": {c: v.mean for c, v in categories.items()},
        "categories_ci": {c: [v.ci_low, v.ci_high] for c, v in categories.items()},
        "delta_m": None if not delta_m_values else replicates.summarize(delta_m_values).mean,
        "delta_m_ci": None if not delta_m_values else replicates.summarize(delta_m_values).to_dict(),
        "delta_m_tasks": dm[0][1],
        "tasks": {t: sum(b["tasks"].get(t, 0.0) - a["tasks"].get(t, 0.0) for a, b in zip(s_ref, s_arm)) / len(seeds)
                  for t in tasks},
        "per_task": per_task_tests(ref, arm, seeds),
    }


# -- the report -----------------------------------------------------------------------------------


def _check_paired(scored: dict[tuple[str, int], Rows], names: Sequence[str], seeds: Sequence[int], ref: str) -> None:
    for seed in seeds:
        uids = [r["uid"] for r in scored[ref, seed]]
        for name in names:
            mine = [r["uid"] for r in scored[name, seed]]
            if mine != uids:
                raise AcctError(f"{name} seed {seed} was scored on other questions than {ref} seed {seed} "
                                f"({len(mine)} against {len(uids)}); their predictions cannot be paired")


def aggregate(
    settings: AblateSettings,
    runs: Sequence[PlannedRun],
    scored: dict[tuple[str, int], Rows],
    *,
    facts: dict[tuple[str, int], dict[str, Any]] | None = None,
    tuning: Tuning | None = None,
) -> AblationReport:
    """The study's report from every run's predictions, keyed (arm, seed); the first arm of `runs` is the reference.

    With a sweep, `runs` are each arm's selected point only and `tuning` records the selection."""
    facts = facts or {}
    seeds = sorted({r.seed for r in runs})
    names = list(dict.fromkeys(r.config for r in runs))
    ref = names[0]
    _check_paired(scored, names, seeds, ref)
    ref_settings = next(r.settings for r in runs if r.config == ref)
    configs: dict[str, dict[str, Any]] = {}
    for name in names:
        mine = [r for r in runs if r.config == name]
        per_seed = [seed_summary(scored[name, s]) for s in seeds]
        configs[name] = {
            "description": describe(mine[0].settings),
            **arm_row(per_seed),
            "seeds": [{"seed": s, "run_dir": str(next(r.run_dir for r in mine if r.seed == s)),
                       "accuracy": p["accuracy"], "macro_accuracy": p["macro_accuracy"], "categories": p["categories"]}
                      for s, p in zip(seeds, per_seed)],
            "settings_sha256": {str(r.seed): settings_digest(r.settings) for r in mine},
            "differs_from_reference": differences(ref_settings, mine[0].settings),
            "effective": effective_row(name, runs, facts),
            **({"selected": tuning.selected.get(name, {})} if tuning is not None else {}),
        }
    deltas = {name: compare_arm([scored[ref, s] for s in seeds], [scored[name, s] for s in seeds], seeds)
              for name in names[1:]}
    tested = [n for n in deltas if deltas[n]["p"] is not None]
    for name, p in zip(tested, holm([deltas[n]["p"] for n in tested])):
        deltas[name]["holm_p"] = p
    report = AblationReport(
        split=settings.split,
        checkpoint=settings.checkpoint,
        seeds=seeds,
        n_per_seed={s: len(scored[ref, s]) for s in seeds},
        configs=configs,
        deltas=deltas,
        runs=[{"config": r.config, "seed": r.seed, "run_dir": str(r.run_dir), "action": r.action,
               "step": (r.finished or {}).get("step"), "reason": (r.finished or {}).get("reason"),
               "settings_sha256": settings_digest(r.settings),
               "predictions": f"{r.run_dir}/predictions-{settings.split}.jsonl"} for r in runs],
        base_settings=comparable(json.loads(runs[0].settings.model_dump_json())),
        reference=ref,
        histories={key: {"validation": f.get("validation", []), "curriculum": f.get("curriculum", [])}
                   for key, f in facts.items()},
        tuning=tuning,
    )
    report.notes = notes(report, settings, runs, facts)
    return report


def notes(report: AblationReport, settings: AblateSettings, runs: Sequence[PlannedRun],
          facts: dict[tuple[str, int], dict[str, Any]]) -> list[str]:
    """What a reviewer would want said beside the numbers: what was tested, at which level, and what was not.

    Arms found to have trained identically are also marked in each other's `identical_to`.
    """
    out = _tuning_notes(report, settings)
    out += _seed_notes(report.seeds)
    out += _design_notes(report, settings, runs)
    out += _power_notes(report)
    out += _identical_notes(report, runs, facts)
    return out


def _tuning_notes(report: AblationReport, settings: AblateSettings) -> list[str]:
    """How the arms were tuned (--sweep), and whether their budgets were equal."""
    seeds = report.seeds
    out: list[str] = []
    if report.tuning is not None:
        budgets = report.tuning.budgets()
        out.append(f"each arm was tuned on the validation split over its own grid ({', '.join(f'{a}: {n} point' + ('s' if n != 1 else '') for a, n in budgets.items())}); "
                   f"the point with the best mean validation accuracy over the {len(seeds)} seeds was compared on "
                   f"the {settings.split} split")
        if len(set(budgets.values())) > 1:
            out.append("the arms had unequal tuning budgets: an arm tuned over more points had more chances to do "
                       "well, so part of a difference can come from the tuning rather than from the method")
    elif len(report.configs) > 1:
        out.append("no arm was tuned (no --sweep): every arm trained at the same settings, which may suit one arm "
                   "better than another")
    return out


def _seed_notes(seeds: Sequence[int]) -> list[str]:
    """The level of the test: the seed is the replicate, and how many seeds it rests on."""
    out: list[str] = []
    if len(seeds) == 1:
        out.append(f"one seed: there is no test across seeds, so this comparison says nothing about training "
                   f"variance (the largest source of variance in fine-tuning); the McNemar p shown is seed {seeds[0]}'s, "
                   "conditional on its trained models; run --seeds 3 or more for a verdict")
    else:
        out.append(f"the seed is the replicate: each of the {len(seeds)} seeds gives one paired Δ on its shared "
                   f"questions, and the p-value and 95% CI of the mean Δ come from a {replicates.TEST_NAME} "
                   f"({len(seeds) - 1} df); McNemar per seed is a diagnostic that treats that seed's models as fixed")
        if len(seeds) < 3:
            out.append(f"only {len(seeds)} seeds: the between-seed variance rests on {len(seeds) - 1} degree of freedom, "
                       "so the verdict cannot account for training variance; run --seeds 3 or more")
    return out


def _design_notes(report: AblationReport, settings: AblateSettings, runs: Sequence[PlannedRun]) -> list[str]:
    """What the comparison is against: the split, the reference, the data's comparability, the Holm family."""
    ref, deltas = report.reference, report.deltas
    out: list[str] = []
    if settings.split == "val" and settings.checkpoint == "best":
        out.append("the val split also chose each run's best checkpoint: accuracies on it are optimistically biased "
                   "and the comparison is not on held-out data; compare on --split test")
    ref_run = next(r for r in runs if r.config == ref)
    plain = plain_multitask(ref_run.settings, ref_run.schedule.task_sizes if ref_run.schedule else None)
    if plain is not None:
        out.append(f"the reference {ref} is not plain multi-task fine-tuning ({plain}); every Δ is measured "
                   "against it, not against plain multi-task learning")
    comparability = split_comparability_note(runs[0].settings.data)
    if comparability is not None:
        out.append(comparability)
    if len([d for d in deltas.values() if d["p"] is not None]) > 1:
        out.append(f"Holm p: the seed-level p-values adjusted across all {len(deltas)} comparisons with {ref} "
                   "(family-wise error); read it, not the raw p, when asking whether any arm differs")
    return out


def _power_notes(report: AblationReport) -> list[str]:
    """Per arm, what its test could have detected; then the level of the exploratory per-task results."""
    ref, seeds, deltas = report.reference, report.seeds, report.deltas
    out: list[str] = []
    for name, d in deltas.items():
        pw = d["power"]
        if pw["mde"] is None:
            out.append(f"power ({name} vs {ref}): {pw['why_not']}")
        else:
            need = ", ".join(f"{k} pt{'s' if k != '1' else ''}: {v if v is not None else '?'}"
                             for k, v in pw["seeds_needed"].items())
            mde = f"{100 * pw['mde']:.2f} points" if pw["mde"] <= 1 else "more than 100 points (none)"
            out.append(f"power ({name} vs {ref}): with {pw['seeds']} seeds and a between-seed sd of Δ of "
                       f"{100 * pw['sd']:.2f} points, the smallest mean Δ a {replicates.TEST_NAME} detects with 80% "
                       f"power at α 0.05 is {mde}; seeds needed for a true Δ of {need}")
        if d.get("se_floored"):
            out.append(f"{name}: its per-seed Δ were all equal, so their sd estimates nothing; the test used "
                       "each seed's question-sampling error as its standard error")
    if deltas:
        first = next(iter(deltas.values()))
        if first["per_task"]:
            n_tasks = len(first["per_task"])
            level = (f"each task's per-seed Δ tested across the {len(seeds)} seeds" if len(seeds) >= 3
                     else f"seed {seeds[0]}'s McNemar test per task (conditional on its trained models; fewer than 3 seeds)")
            out.append(f"per-task results are exploratory: {n_tasks} tasks, Benjamini-Hochberg q over {level}")
    return out


def _identical_notes(report: AblationReport, runs: Sequence[PlannedRun],
                     facts: dict[tuple[str, int], dict[str, Any]]) -> list[str]:
    """Arms planned (--allow-identical) or found to train identically; the latter marked in `identical_to`."""
    configs = report.configs
    out: list[str] = []
    planned = sorted({(r.config, p) for r in runs for p in r.planned_identical})
    if planned:
        shown = sorted({tuple(sorted((a, p.split(":")[0]))) + (p.split(": ", 1)[1],) for a, p in planned})
        for a, b, why in shown:
            out.append(f"--allow-identical: arms {a} and {b} were planned to train identically ({why})")
    for a, b, seed, what in trained_identical(runs, facts):
        out.append(f"arms {a} and {b} (seed {seed}): {what}")
        for x, y in ((a, b), (b, a)):
            if y not in configs[x]["effective"]["identical_to"]:
                configs[x]["effective"]["identical_to"].append(y)
    return out


# -- everything at once (the engine entry point; the CLI renders the same steps) -------------------


def run_ablation(
    settings: AblateSettings,
    base: Any,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    on_event: Callable[[PlannedRun, Any], None] | None = None,
    arms: Sequence[Any] | None = None,
    command: str | None = None,
) -> AblationReport | None:
    """Plan, train what is missing, compare and write the reports; None if training was interrupted."""
    from acct import engine

    runs = study_plan.plan(settings, base, arms)
    for r in runs:
        for event in study_plan.train_run(r, should_stop=should_stop):
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
        report.figures = write_figures(report, settings.plot_dir)
    return write_reports(report, settings.output_dir, settings.top_tasks)
