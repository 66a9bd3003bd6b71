"""The study's figures from a hand-made report: one weight panel per seed, on one colour scale."""

from __future__ import annotations

import pytest

from acct.study.compare import AblationReport

pytest.importorskip("matplotlib")


def report_with_seeds(seeds: list[int]) -> AblationReport:
    tasks = {"a": "x", "b": "x", "c": "y"}
    config = {"accuracy": 0.5, "ci_low": 0.4, "ci_high": 0.6, "macro_accuracy": 0.5, "categories": {"x": 0.5, "y": 0.5},
              "tasks": {t: 0.5 for t in tasks}, "seeds": [], "sd": None}
    histories = {}
    for seed in seeds:
        histories["baseline", seed] = {"validation": [(10, 0.4), (20, 0.5)], "curriculum": []}
        # Each seed's weights move differently, so a figure of the first seed alone would hide the second.
        histories["full", seed] = {"validation": [(10, 0.4), (20, 0.6)], "curriculum": [
            (10, {"a": 0.2, "b": 0.3, "c": 0.5}), (20, {"a": 0.1 * (seed + 1), "b": 0.3, "c": 0.7 - 0.1 * (seed + 1)})]}
    delta = {"accuracy": 0.1, "ci_low": 0.0, "ci_high": 0.2, "categories": {"x": 0.1, "y": 0.0}}
    return AblationReport(
        split="test", checkpoint="best", seeds=seeds, n_per_seed={s: 10 for s in seeds},
        configs={"baseline": {**config, "effective": {"curriculum": "fixed", "first_weight_change_step": None}},
                 "full": {**config, "effective": {"curriculum": "uncertainty_gradient",
                                                  "first_weight_change_step": [20] * len(seeds)}}},
        deltas={"full": delta}, runs=[], histories=histories, task_categories=tasks)


def test_weights_figure_has_a_panel_per_seed(tmp_path):
    import matplotlib.image

    from acct.study.plots import write_figures

    heights = {}
    for n in (1, 2):
        paths = write_figures(report_with_seeds(list(range(n))), tmp_path / str(n))
        names = sorted(p.name for p in paths)
        assert names == ["accuracy.png", "categories.png", "validation.png", "weights-full.png"]
        heights[n] = matplotlib.image.imread(tmp_path / str(n) / "weights-full.png").shape[0]
    assert heights[2] >= 1.8 * heights[1]
