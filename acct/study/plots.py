"""The figures of an ablation study (`acct ablate --plot DIR`), drawn with matplotlib (the plot extra).

- accuracy.png:       accuracy of every arm, mean over seeds with its seed-level 95% t interval
                      (each seed's accuracy as a dot);
- validation.png:     the validation accuracy of every arm over training steps (one line per run);
- weights-<arm>.png:  for each adaptive arm, its logged task weights over training as a heatmap,
                      tasks grouped by category;
- categories.png:     per-category accuracy deltas of every arm against the reference, mean over
                      seeds with seed-level 95% t intervals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acct.errors import UsageError


def require_pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or one clear error naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'acct[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_figures(report: Any, directory: Path) -> list[Path]:
    """Write the study's PNGs into `directory`; returns their paths in report order."""
    plt = require_pyplot()
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--plot {directory} is a file, not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    paths = [_accuracy_figure(plt, report, directory), _validation_figure(plt, report, directory)]
    for name in report.configs:
        weights = _weights_figure(plt, report, name, directory)
        if weights is not None:
            paths.append(weights)
    paths.append(_categories_figure(plt, report, directory))
    return paths


def _accuracy_figure(plt: Any, report: Any, directory: Path) -> Path:
    """accuracy.png: accuracy per arm, mean over seeds, seed-level 95% t interval, one dot per seed."""
    names = list(report.configs)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(names)), 3.5))
    acc = [100 * report.configs[n]["accuracy"] for n in names]
    xs = list(range(len(names)))
    ax.bar(xs, acc, color=["#888888"] + ["#4c72b0"] * (len(names) - 1))
    for x, n, a in zip(xs, names, acc):
        c = report.configs[n]
        if c.get("ci_low") is not None:
            ax.errorbar([x], [a], yerr=[[a - 100 * c["ci_low"]], [100 * c["ci_high"] - a]], fmt="none",
                        ecolor="black", capsize=4)
        seeds = [100 * s["accuracy"] for s in c.get("seeds", [])]
        ax.plot([x] * len(seeds), seeds, "o", color="black", markersize=3)
    ax.set_xticks(xs)
    ax.set_xticklabels(names)
    ax.set_ylabel(f"{report.split} accuracy (%)")
    ax.set_title(f"accuracy per arm over {len(report.seeds)} seed{'s' if len(report.seeds) > 1 else ''}"
                 + ("\n(95% t interval, seeds as dots)" if len(report.seeds) > 1 else ""))
    return _save(fig, plt, directory / "accuracy.png")


def _validation_figure(plt: Any, report: Any, directory: Path) -> Path:
    """validation.png: the validation accuracy curve of every run."""
    names = list(report.configs)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for (name, seed), h in sorted(report.histories.items(), key=lambda kv: (names.index(kv[0][0]), kv[0][1])):
        if h["validation"]:
            steps, values = zip(*h["validation"])
            ax.plot(steps, [100 * v for v in values], marker="o", markersize=3,
                    label=name if len(report.seeds) == 1 else f"{name} seed {seed}")
    ax.set_xlabel("step")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("validation accuracy over training")
    if ax.lines:
        ax.legend(fontsize=7)
    return _save(fig, plt, directory / "validation.png")


def _weights_figure(plt: Any, report: Any, name: str, directory: Path) -> Path | None:
    """weights-<arm>.png: an adaptive arm's task weights, one panel per seed, tasks grouped by category.

    None for an arm with nothing to draw.
    """
    # An arm whose weights never left the prior has nothing to draw (first_weight_change_step is None
    # for an arm that cannot adapt, and a list of None for one that never did).
    change = report.configs[name].get("effective", {}).get("first_weight_change_step")
    if change is None or all(c is None for c in change):
        return None
    panels = [(seed, report.histories.get((name, seed), {}).get("curriculum", [])) for seed in report.seeds]
    panels = [(seed, logged) for seed, logged in panels if logged]
    if not panels:
        return None
    tasks = sorted(panels[0][1][0][1], key=lambda t: (report.task_categories.get(t, ""), t))
    grids = [[[w.get(t, float("nan")) for _, w in logged] for t in tasks] for _, logged in panels]
    top = max(v for grid in grids for row in grid for v in row if v == v)
    height = max(2.5, 0.22 * len(tasks) + 1)
    # Constrained layout keeps the colour bar clear of the long task labels.
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, height * len(panels)), squeeze=False, layout="constrained")
    for ax, (seed, logged), grid in zip(axes[:, 0], panels, grids):
        image = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0.0, vmax=top)
        ax.set_yticks(range(len(tasks)))
        ax.set_yticklabels([f"{report.task_categories.get(t, '?')} · {t}" for t in tasks], fontsize=6)
        ticks = list(range(0, len(logged), max(1, len(logged) // 8)))
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(logged[i][0]) for i in ticks], fontsize=7)
        ax.set_xlabel("step")
        ax.set_title(f"{name}: task weights over training" + (f" (seed {seed})" if len(report.seeds) > 1 else ""))
        fig.colorbar(image, ax=ax, label="sampling weight")
    return _save(fig, plt, directory / f"weights-{name}.png", tight=False)


def _categories_figure(plt: Any, report: Any, directory: Path) -> Path:
    """categories.png: per-category deltas of every arm against the reference, with seed-level intervals."""
    ref = report.reference
    cats = sorted(set().union(*(d["categories"] for d in report.deltas.values()))) if report.deltas else []
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(cats) * max(1, len(report.deltas))), 3.5))
    width = 0.8 / max(1, len(report.deltas))
    for k, (name, d) in enumerate(report.deltas.items()):
        xs = [i + k * width for i in range(len(cats))]
        means = [100 * d["categories"].get(c, 0.0) for c in cats]
        ax.bar(xs, means, width=width, label=name)
        cis = d.get("categories_ci") or {}
        bars = [(x, m, cis[c]) for x, m, c in zip(xs, means, cats) if c in cis and cis[c][0] is not None]
        for x, m, (low, high) in bars:
            ax.errorbar([x], [m], yerr=[[m - 100 * low], [100 * high - m]], fmt="none", ecolor="black", capsize=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks([i + width * (len(report.deltas) - 1) / 2 for i in range(len(cats))])
    ax.set_xticklabels(cats)
    ax.set_ylabel(f"Δ accuracy vs {ref} (points)")
    ax.set_title(f"per-category Δ against {ref}" + ("\n(95% t interval over seeds)" if len(report.seeds) > 1 else ""))
    if report.deltas:
        ax.legend(fontsize=7)
    return _save(fig, plt, directory / "categories.png")


def _save(fig: Any, plt: Any, path: Path, tight: bool = True) -> Path:
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
