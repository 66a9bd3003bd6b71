"""Sweeps: parsing, grids, and the selection rule on validation (no training)."""

from __future__ import annotations

import pytest

from acct.study import sweep
from acct.study.plan import PlannedRun, plan
from acct.study.layers import registered_arm_settings
from acct.study.compare import select_points
from acct.config.commands import AblateSettings
from acct.errors import UsageError
from tests.conftest import tiny_settings


def test_flags_and_grids():
    assert sweep.parse_flag("optim.lr=1e-4, 3e-4") == ("optim.lr", [1e-4, 3e-4])
    assert sweep.parse_flag("curriculum.strategy=uniform,difficulty") == ("curriculum.strategy", ["uniform", "difficulty"])
    assert sweep.parse_flag("loss.gather_negatives=true,false") == ("loss.gather_negatives", [True, False])
    grid = sweep.grid({"optim.lr": [1, 2], "loss.tau": [0.1, 0.2, 0.3]})
    assert len(grid) == 6 and grid[0] == (("optim.lr", 1), ("loss.tau", 0.1)) and grid[-1] == (("optim.lr", 2), ("loss.tau", 0.3))
    assert sweep.layer((("optim.lr", 1), ("optim.epochs", 2))) == {"optim": {"lr": 1, "epochs": 2}}
    assert sweep.label((("optim.lr", 0.0001),)) == "optim.lr=0.0001"
    assert sweep.combine({"optim.lr": [1, 2]}, {"optim.lr": [3], "loss.tau": [1]}) == {"optim.lr": [3], "loss.tau": [1]}
    for bad in ("optim.lr", "=1,2", "optim.lr=", "optim.lr=1,,2"):
        with pytest.raises(UsageError, match="--sweep"):
            sweep.parse_flag(bad)
    for bad, match in (({"seed": [1, 2]}, "cannot be swept"), ({"optim.lr": []}, "list of values"),
                       ({"optim.lr": [1, 1]}, "twice"), ({"optim.lr": [float("inf")]}, "non-finite")):
        with pytest.raises(UsageError, match=match):
            sweep.check(bad, "--sweep")


def test_selection_is_the_best_mean_over_seeds():
    a, b = (("optim.lr", 1),), (("optim.lr", 2),)
    # The first seed alone would pick b; the mean over seeds picks a.
    assert sweep.select({a: [0.5, 0.9], b: [0.6, 0.6]}, where="x") == a
    assert sweep.select({a: [0.6, 0.6], b: [0.6, 0.6]}, where="x") == a  # ties: the earlier point
    with pytest.raises(UsageError, match="no validation accuracy on every seed"):
        sweep.select({a: [0.5, None], b: [0.6, 0.6]}, where="x")


def test_select_points_reads_validation_only(tmp_path):
    base = tiny_settings(tmp_path / "x")
    study = AblateSettings(output_dir=tmp_path, seeds=2, arms=["baseline", "full"])
    runs = []
    # baseline: lr 1 wins on the mean (0.7 against 0.6), lr 2 on the first seed; full: lr 2 everywhere.
    val = {("baseline", 1): [0.5, 0.9], ("baseline", 2): [0.6, 0.6], ("full", 1): [0.1, 0.2], ("full", 2): [0.3, 0.3]}
    for (arm, lr), accs in val.items():
        for seed, acc in zip((0, 1), accs):
            d = tmp_path / f"{arm}-{lr}-{seed}"
            runs.append(PlannedRun(arm, seed, d, registered_arm_settings(base, arm, seed, d), "reuse",
                                   finished={"best_accuracy": acc}, point={"optim.lr": lr}))
    kept, tuning = select_points(study, runs)
    assert tuning.selected == {"baseline": {"optim.lr": 1}, "full": {"optim.lr": 2}}
    assert sorted((r.config, r.seed) for r in kept) == [("baseline", 0), ("baseline", 1), ("full", 0), ("full", 1)]
    assert all(r.point == tuning.selected[r.config] for r in kept)
    rows = {r["point"]["optim.lr"]: r for r in tuning.validation["baseline"]}
    assert rows[1]["mean"] == pytest.approx(0.7) and rows[1]["selected"] and not rows[2]["selected"]
    assert tuning.grid == {"baseline": {"optim.lr": [1, 2]}, "full": {"optim.lr": [1, 2]}}


def test_plan_trains_every_point_of_every_arm(tmp_path):
    base = tiny_settings(tmp_path / "x")
    runs = plan(AblateSettings(output_dir=tmp_path / "s", seeds=2, arms=["baseline", "full"],
                               sweep={"optim.lr": [1e-4, 3e-4]}), base)
    assert len(runs) == 8
    assert [r.run_dir.name for r in runs[:4]] == ["baseline-optim.lr=0.0001-seed0", "baseline-optim.lr=0.0003-seed0",
                                                  "full-optim.lr=0.0001-seed0", "full-optim.lr=0.0003-seed0"]
    assert [r.settings.optim.lr for r in runs[:4]] == [1e-4, 3e-4, 1e-4, 3e-4]


def test_a_study_file_gives_each_arm_its_grid(tmp_path):
    (tmp_path / "study.yaml").write_text(
        "arms:\n  plain: {loss: {lambda_contrastive: 0.0}}\n"
        "  t:\n    curriculum: {strategy: temperature}\n    sweep: {curriculum.alpha: [0.3, 0.7]}\n"
        "sweep: {optim.lr: [1.0e-4, 3.0e-4]}\n")
    base = tiny_settings(tmp_path / "x", **{"data.synthetic_examples_per_task": 24})
    runs = plan(AblateSettings(output_dir=tmp_path / "s", seeds=1, study=tmp_path / "study.yaml"), base)
    points = {(r.config, tuple(r.point.items())) for r in runs}
    assert len([p for p in points if p[0] == "plain"]) == 2 and len([p for p in points if p[0] == "t"]) == 4
    assert {r.settings.curriculum.alpha for r in runs if r.config == "t"} == {0.3, 0.7}


def test_guard_works_at_each_point(tmp_path):
    # contrastive and full stop before full's curriculum can act, at every learning rate.
    base = tiny_settings(tmp_path / "x", **{"optim.max_steps": 20})
    with pytest.raises(UsageError, match=r"arms contrastive and full would train identically at optim.lr=0.0001"):
        plan(AblateSettings(output_dir=tmp_path / "s", seeds=1, arms=["contrastive", "full"],
                            sweep={"optim.lr": [1e-4, 3e-4]}), base)


def test_an_arm_named_like_a_registered_arm_starts_from_it(tmp_path):
    (tmp_path / "study.yaml").write_text("arms:\n  baseline: {}\n  mine: {}\n")
    base = tiny_settings(tmp_path / "x")
    runs = {r.config: r for r in plan(AblateSettings(output_dir=tmp_path / "s", seeds=1, study=tmp_path / "study.yaml",
                                                     allow_identical=True), base)}
    assert runs["baseline"].settings.loss.lambda_contrastive == 0.0  # the registered baseline: plain fine-tuning
    assert runs["mine"].settings.loss.lambda_contrastive == base.loss.lambda_contrastive  # the base settings
