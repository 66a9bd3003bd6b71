"""What the runs of a study did: their split manifests, logged histories, weight digests and the
effective settings each arm trained with.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from acct.errors import AcctError
from acct.registry import (
    anchor_weightings,
    gradients,
)
from acct.scoring.predictions import weights_sha256
from acct.study.guard import differ_only_in_curriculum, keeps_prior
from acct.study.plan import PlannedRun
from acct.train.plan import (
    prior_distribution,
)


def check_same_split(runs: Sequence[PlannedRun]) -> None:
    """All runs of one seed must hold identical split manifests, or their scores are not paired."""
    from acct.run import checkpoint as ckpt_io

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
    from acct.run import checkpoint as ckpt_io

    try:
        return weights_sha256(ckpt_io.checkpoint_dir(run_dir, which))
    except AcctError:
        return None


def _drew_batches(logged: list[tuple[int, dict[str, float]]], last_step: int | None) -> list[tuple[int, dict[str, float]]]:
    """The logged curriculum weights that drew at least one batch: those set after a step before the last."""
    return [(step, w) for step, w in logged if last_step is None or step < last_step]


def effective_row(name: str, runs: Sequence[PlannedRun], facts: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Any]:
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
    adaptive = not (sched.keeps_prior if sched is not None else keeps_prior(cur.strategy))
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
                 "gradient": loss.gradient,
                 "gradient_neutral": bool(getattr(gradients.find(loss.gradient), "neutral", False))},
        "planned_identical_to": sorted({p.split(":")[0] for r in mine for p in r.planned_identical}),
        "identical_to": [],
    }


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
                      and differ_only_in_curriculum(a.settings, b.settings)
                      and [w for _, w in _drew_batches(fa["curriculum"], (a.finished or {}).get("step"))]
                      == [w for _, w in _drew_batches(fb["curriculum"], (b.finished or {}).get("step"))]):
                    found.append((a.config, b.config, seed, "trained identically (identical logged curriculum weights, "
                                  "the only setting they differ in); their comparison is empty"))
    return found
