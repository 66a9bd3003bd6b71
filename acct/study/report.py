"""The study's report as text: ablation.md, and the cells the terminal tables share with it.

Numbers come from `acct.study.compare.AblationReport`; this module only words and lays them out.
Every comparison says what differed (the settings), how sure it is (the seed-level test, its CI and
Holm p) and what it could not have detected (the seed-level power).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


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
    if not loss.get("gradient_neutral", True):
        loss_text += f"; gradients: {loss['gradient']}"
    return {"steps": steps(e["steps_trained"]), "change": change_text, "weights": weights, "loss": loss_text,
            "identical": ", ".join(e["identical_to"]) or "-"}


def point_text(point: dict[str, Any]) -> str:
    """A sweep point as `optim.lr=3e-05, loss.tau=0.1` ('base settings' for the empty point)."""
    return ", ".join(f"{k}={_value(v)}" for k, v in point.items()) or "base settings"


def seed_cells(report: Any) -> dict[str, dict[str, str]]:
    """Per arm, its accuracy cells: mean ± sd over seeds and the seed-level 95% t interval."""
    cells = {}
    for name, c in report.configs.items():
        sd = c.get("sd") or {}
        acc = _pct(c["accuracy"]) + (f" ± {_pct(sd.get('accuracy'))}" if sd.get("accuracy") is not None else "")
        macro = _pct(c["macro_accuracy"]) + (f" ± {_pct(sd.get('macro_accuracy'))}" if sd.get("macro_accuracy") is not None else "")
        ci = "-" if c.get("ci_low") is None else f"[{_pct(c['ci_low'])}, {_pct(c['ci_high'])}]"
        cells[name] = {"accuracy": acc, "ci": ci, "macro": macro}
    return cells


def delta_cells(d: dict[str, Any]) -> dict[str, str]:
    """An arm's comparison with the reference, as text cells."""
    het = d.get("heterogeneity") or {}
    pw = d["power"]
    per_seed = ", ".join(f"{_signed(s['accuracy'])} (p {_p(s['mcnemar_p'])})" for s in d["per_seed"])
    dm = d.get("delta_m_ci") or {}
    delta_m = "-" if d.get("delta_m") is None else f"{d['delta_m']:+.2f}"
    if dm.get("ci_low") is not None:
        delta_m += f" [{dm['ci_low']:+.2f}, {dm['ci_high']:+.2f}]"
    return {
        "delta": _signed(d["accuracy"]),
        "ci": "-" if d.get("ci_low") is None else f"[{_signed(d['ci_low'])}, {_signed(d['ci_high'])}]",
        "p": _p(d.get("p")),
        "holm": _p(d.get("holm_p")),
        "delta_m": delta_m,
        "heterogeneity": "-" if het.get("tau") is None else f"τ {100 * het['tau']:.2f}, I² {100 * het['i2']:.0f}%",
        "per_seed": per_seed,
        # A difference above 100 points cannot be detected at all: say so rather than print the formula's number.
        "mde": "-" if pw.get("mde") is None else "> 100" if pw["mde"] > 1 else _pct(pw["mde"]),
        "seeds_needed": "-" if pw.get("mde") is None else "/".join(
            str(v) if v is not None else "?" for v in pw["seeds_needed"].values()),
    }


def markdown(report: Any, top: int = 5, directory: Path | None = None) -> str:
    """The study as a Markdown report (percentages); figures linked relative to `directory`."""
    lines = ["# acct ablation", "", _method_paragraph(report), ""]
    lines += _arms_table(report)
    lines += _deltas_section(report)
    lines += _tuning_section(report)
    lines += _effective_section(report)
    lines += _differences_section(report)
    lines += _per_task_sections(report, top)
    lines += _figures_section(report, directory)
    lines += ["", "## Runs", ""]
    lines += [f"- {r['config']} seed {r['seed']}: `{r['run_dir']}` ({r['action']}), settings sha256 "
              f"`{r.get('settings_sha256', '-')}`" for r in report.runs]
    if report.notes:
        lines += ["", "## Notes", "", *[f"> {n}" + "\n>" for n in report.notes]]
        lines[-1] = lines[-1].removesuffix("\n>")
    lines += ["", f"acct {report.acct_version}" + (f"; command: `{report.command}`" if report.command else "")]
    return "\n".join(lines) + "\n"


def _method_paragraph(report: Any) -> str:
    """What was compared, on which questions, and how each number below was computed."""
    ref = report.reference
    n_seeds = len(report.seeds)
    test = next((d["test"] for d in report.deltas.values()), "")
    return (
        f"Split: **{report.split}** ({', '.join(f'seed {s}: {n} questions' for s, n in report.n_per_seed.items())}), "
        f"checkpoint: {report.checkpoint}. **The seed is the replicate.** Accuracies in % as mean ± sd over "
        f"{n_seeds} seed{'s' if n_seeds > 1 else ''} with a 95% t interval over seeds. Δ against {ref}: the mean of "
        f"the per-seed paired differences on the same questions, with its 95% t interval and the p of a {test} "
        "(when every seed gives the same Δ, its standard error is the question-sampling one); "
        f"Holm p adjusts it across the {len(report.deltas)} comparisons with {ref}. Δm %: the mean over tasks of "
        "the relative change of accuracy. τ and I²: how much the true Δ varies between seeds (random effects). "
        "The per-seed column gives each seed's Δ with its exact McNemar p, which treats that seed's trained models "
        "as fixed (a diagnostic only). MDE: the smallest mean Δ the seed-level test detects with 80% power at α 0.05; "
        "seeds needed: for a true Δ of 1/2/5 points."
    )


def _arms_table(report: Any) -> list[str]:
    """One row per arm: accuracy over seeds, its interval, macro accuracy and each category."""
    cats = sorted(set().union(*(c["categories"] for c in report.configs.values())))
    lines = [
        "| arm | accuracy (mean ± sd) | 95% CI | macro | " + " | ".join(cats) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(cats),
    ]
    cells = seed_cells(report)
    for name, c in report.configs.items():
        label = f"{name} ({c['description']})"
        if c.get("selected"):
            label += f" at {point_text(c['selected'])}"
        if c.get("effective", {}).get("identical_to"):
            label += " ⚠ identical to " + ", ".join(c["effective"]["identical_to"])
        row = [label, cells[name]["accuracy"], cells[name]["ci"], cells[name]["macro"],
               *(_pct(c["categories"].get(x)) for x in cats)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _deltas_section(report: Any) -> list[str]:
    """Each arm against the reference: the seed-level test, its corrections and its power."""
    if not report.deltas:
        return []
    lines = ["", f"## Each arm against {report.reference}", "",
             "| arm | Δ (pts) | 95% CI | p | Holm p | Δm % [95% CI] | heterogeneity | per seed: Δ (McNemar p) "
             "| MDE (pts) | seeds for 1/2/5 pts |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for name, d in report.deltas.items():
        x = delta_cells(d)
        lines.append(f"| {name} | {x['delta']} | {x['ci']} | {x['p']} | {x['holm']} | {x['delta_m']} | "
                     f"{x['heterogeneity']} | {x['per_seed']} | {x['mde']} | {x['seeds_needed']} |")
    return lines


def _tuning_section(report: Any) -> list[str]:
    """With --sweep: every point of each arm's grid on validation, the selected one in bold."""
    if getattr(report, "tuning", None) is None:
        return []
    lines = ["", "## Tuning on validation", "",
             "Every arm trained at every point of its grid and every seed; the point with the best mean "
             "validation accuracy over seeds (**bold**) is the one compared above.", "",
             "| arm | point | validation accuracy (mean) | per seed |", "|---|---|---:|---|"]
    for arm, rows in report.tuning.validation.items():
        for row in rows:
            point = point_text(row["point"])
            mean = _pct(row["mean"])
            if row["selected"]:
                point, mean = f"**{point}**", f"**{mean}**"
            seeds = ", ".join(f"{s}: {_pct(v)}" for s, v in row["seeds"].items())
            lines.append(f"| {arm} | {point} | {mean} | {seeds} |")
    return lines


def _effective_section(report: Any) -> list[str]:
    """What each arm did in training: settings digests, steps, curriculum, weights and loss."""
    if not any("effective" in c for c in report.configs.values()):
        return []
    lines = ["", "## What each arm did", "",
             "| arm | settings sha256 | steps trained | curriculum | weights first changed at step | "
             "task weight min–max | loss | identical to |",
             "|---|---|---:|---|---:|---:|---|---|"]
    for name, c in report.configs.items():
        if "effective" not in c:
            continue
        e = describe_effective(c["effective"])
        digests = ", ".join(sorted({v[:12] for v in c.get("settings_sha256", {}).values()}))
        lines.append(f"| {name} | `{digests}` | {e['steps']} | {c['effective']['curriculum']} | {e['change']} | "
                     f"{e['weights']} | {e['loss']} | {e['identical']} |")
    return lines


def _differences_section(report: Any) -> list[str]:
    """Every training setting in which an arm differs from the reference."""
    if not any(c.get("differs_from_reference") for c in report.configs.values()):
        return []
    ref = report.reference
    lines = ["", f"## What differs from {ref}", "",
             f"Every training setting in which an arm differs from {ref} (the seed and the run directory aside).", ""]
    for name, c in report.configs.items():
        if name == ref:
            continue
        diff = c.get("differs_from_reference") or {}
        shown = "; ".join(f"`{k}`: {_value(a)} → {_value(b)}" for k, (a, b) in diff.items()) or "nothing"
        lines.append(f"- **{name}**: {shown}")
    return lines


def _per_task_sections(report: Any, top: int) -> list[str]:
    """Per arm, its `top` largest per-task gains and losses against the reference, with q where tested."""
    ref = report.reference
    lines: list[str] = []
    for name, d in report.deltas.items():
        gains, losses = top_task_deltas(d, top)
        lines += ["", f"## {name} vs {ref}: per-task Δ accuracy (points, exploratory)", ""]
        if not gains and not losses:
            lines.append("No task changed.")
            continue
        with_q = bool(d.get("per_task"))
        lines += ["| task | Δ | " + ref + " | " + name + " |" + (" q (BH) |" if with_q else ""),
                  "|---|---:|---:|---:|" + ("---:|" if with_q else "")]
        for t, v in gains + losses:
            q = f" {_p(d['per_task'][t].get('q'))} |" if with_q and t in d["per_task"] else (" - |" if with_q else "")
            lines.append(f"| {t} | {_signed(v)} | {_pct(report.configs[ref]['tasks'][t])} | "
                         f"{_pct(report.configs[name]['tasks'][t])} |" + q)
    return lines


def _figures_section(report: Any, directory: Path | None) -> list[str]:
    """The figures as images, linked relative to the report's directory when it is given."""
    if not report.figures:
        return []
    lines = ["", "## Figures", ""]
    for fig in report.figures:
        rel = os.path.relpath(fig, directory) if directory is not None else str(fig)
        lines.append(f"![{Path(fig).stem}]({Path(rel).as_posix()})")
    return lines


def write_reports(report: Any, directory: Path, top: int = 5) -> tuple[Path, Path]:
    """Write DIR/ablation.json and DIR/ablation.md atomically."""
    from acct.run import checkpoint as ckpt_io

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / "ablation.json", directory / "ablation.md"
    ckpt_io.write_json(json_path, report.to_dict())
    ckpt_io.write_text(md_path, markdown(report, top, directory))
    return json_path, md_path
