"""One plan of a run (acct.train.plan): the engine trains from it, a study reads it, strategies declare themselves."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from acct.study.plan import DONE_MARKER, plan
from acct.study.layers import registered_arm_settings, settings_digest
from acct.study.guard import train_task_sizes
from acct.config.commands import AblateSettings
from acct.engine import CurriculumUpdated, RunStarted, Validated, train
from acct.train.plan import make_plan, prior_distribution
from tests.conftest import tiny_settings

RENAMED = ("strategy uniform is now called fixed: it samples from the prior (proportional by default); "
           "for equal task probabilities use prior uniform or the uniform_tasks arm")


@pytest.mark.slow
def test_the_engine_trains_as_its_plan_says(tmp_path):
    # 100 steps per epoch: a warm-up of 10 steps, updates every 4: the curriculum's own weights
    # are first computed at the update of step 12 and draw the batch of step 13.
    settings = tiny_settings(tmp_path / "run", **{"optim.max_steps": 20, "eval_every_n_steps": 8,
                                                  "curriculum.warmup_epochs": 0.1, "curriculum.update_every_n_steps": 4})
    events = list(train(settings))
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.tasks == sorted(started.tasks)
    the_plan = make_plan(settings, train_task_sizes(settings))  # tasks in name order, as the study plans them
    assert (started.total_steps, started.steps_per_epoch) == (the_plan.total_steps, the_plan.steps_per_epoch)
    assert the_plan.first_update == 12 and the_plan.adapts
    assert [e.step for e in events if isinstance(e, Validated)] == the_plan.evaluation_steps == [8, 16, 20]
    prior = dict(zip(started.tasks, prior_distribution(settings.curriculum.prior, the_plan.task_sizes, settings.curriculum.alpha)))
    moved = [e.step for e in events if isinstance(e, CurriculumUpdated)
             and any(abs(e.weights[t] - prior[t]) > 1e-9 for t in e.weights)]
    assert moved and moved[0] == the_plan.first_update


def test_strategies_declare_what_they_sample(tmp_path):
    base = tiny_settings(tmp_path / "x")
    arm = lambda n: registered_arm_settings(base, n, 0, tmp_path / n)  # noqa: E731
    sizes = [90, 40, 10]
    fixed, temperature, full = make_plan(arm("baseline"), sizes), make_plan(arm("temperature"), sizes), make_plan(arm("full"), sizes)
    # fixed samples from the prior (proportional by default) and never adapts, however long it trains.
    assert fixed.sampling == pytest.approx([90 / 140, 40 / 140, 10 / 140]) and fixed.first_update is None
    assert fixed.sampling_kind == "proportional" and fixed.keeps_prior
    assert temperature.sampling_kind == "temperature (alpha 0.5)" and temperature.schedule and temperature.first_update == 0
    assert full.sampling is None and full.sampling_kind is None and not full.fixed
    # The uniform_tasks arm: fixed over the uniform prior.
    assert make_plan(arm("uniform_tasks"), sizes).sampling == pytest.approx([1 / 3] * 3)


def test_the_former_name_still_trains_and_says_what_it_does(tmp_path):
    settings = tiny_settings(tmp_path / "run", **{"optim.max_steps": 2, "curriculum.strategy": "uniform"})
    started = next(iter(train(settings)))
    assert RENAMED in started.notices
    assert make_plan(settings, [5, 15]).sampling == pytest.approx([0.25, 0.75])  # the proportional prior
    fixed = tiny_settings(tmp_path / "fixed", **{"optim.max_steps": 2, "curriculum.strategy": "fixed"})
    assert RENAMED not in next(iter(train(fixed))).notices


def test_acct_list_says_uniform_is_the_former_name_of_fixed():
    from acct.cli import app

    result = CliRunner().invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row["description"] for row in json.loads(result.output)["strategies"]}
    assert rows["fixed"].startswith("Tasks drawn from curriculum.prior")
    assert rows["uniform"].startswith("Deprecated name of fixed: samples from curriculum.prior")


def test_a_study_saved_with_strategy_uniform_is_reused(tmp_path):
    base = tiny_settings(tmp_path / "x", **{"optim.max_steps": 101})
    root = tmp_path / "study"
    for name in ("baseline", "full"):
        run_dir = root / f"{name}-seed{base.seed}"
        saved = registered_arm_settings(base, name, base.seed, run_dir)
        if name == "baseline":  # trained before the rename
            saved = saved.model_copy(update={"curriculum": saved.curriculum.model_copy(update={"strategy": "uniform"})})
        (run_dir / "checkpoints" / "last").mkdir(parents=True)
        (run_dir / "config.json").write_text(saved.model_dump_json())
        (run_dir / DONE_MARKER).write_text(json.dumps({"status": "finished", "settings_sha256": settings_digest(saved)}))
    runs = plan(AblateSettings(output_dir=root, seeds=1, arms=["baseline", "full"]), base)
    assert [r.action for r in runs] == ["reuse", "reuse"]
    assert runs[0].settings.curriculum.strategy == "uniform"  # kept as saved: its digest is the marker's


def test_the_plan_imports_no_torch():
    probe = "import sys, acct.train.plan; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
