"""Short tiny-preset runs of the training budgets: epochs, gradient accumulation, early stopping."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import run_to_end, tiny_settings

pytestmark = pytest.mark.slow  # every test here trains a model

SMALL = {"data.synthetic_examples_per_task": 30, "log_every_n_steps": 1, "seed": 1}


def events(run: list, name: str) -> list:
    return [ev for ev in run if type(ev).__name__ == name]


def test_an_epoch_budget_is_rounded_up_and_validates_once_per_epoch(tmp_path: Path):
    from acct.config.layers import nest
    from acct.config.resolve import resolve_train

    # --epochs without --max-steps (and no eval_every_n_steps): the budget and the validations come from epochs.
    settings = resolve_train(nest({"output_dir": tmp_path / "run", "device": "cpu", "optim.epochs": 1.3,
                                   "data.synthetic_examples_per_task": 30, "seed": 1}), preset="tiny")
    assert settings.optim.max_steps is None and settings.eval_every_n_steps is None
    run = run_to_end(settings)
    [started] = events(run, "RunStarted")
    per_step = settings.batch.tasks_per_batch * settings.batch.examples_per_task * settings.batch.grad_accum_steps
    steps_per_epoch = math.ceil(started.num_train / per_step)
    total = math.ceil(1.3 * steps_per_epoch)
    assert 1.3 * steps_per_epoch != total  # the budget really is rounded up
    assert (started.steps_per_epoch, started.total_steps) == (steps_per_epoch, total)
    assert [v.step for v in events(run, "Validated")] == [steps_per_epoch, total]
    [finished] = events(run, "Finished")
    assert (finished.step, finished.reason) == (total, "completed")
    logged = events(run, "StepLogged")
    assert logged[-1].step == total and logged[-1].epoch == pytest.approx(total / steps_per_epoch)


def test_gradient_accumulation_counts_optimizer_steps(tmp_path: Path):
    flags = {**SMALL, "optim.max_steps": 4, "eval_every_n_steps": 4, "batch.grad_accum_steps": 2,
             "curriculum.update_every_n_steps": 2}
    settings = tiny_settings(tmp_path / "run", **flags)
    batch = settings.batch.tasks_per_batch * settings.batch.examples_per_task
    run = run_to_end(settings)
    [started] = events(run, "RunStarted")
    # One step is two batches: an epoch has half as many steps.
    assert started.steps_per_epoch == math.ceil(started.num_train / (2 * batch))
    logged = events(run, "StepLogged")
    assert [ev.step for ev in logged] == [1, 2, 3, 4]
    assert [ev.epoch for ev in logged] == pytest.approx([k / started.steps_per_epoch for k in (1, 2, 3, 4)])
    # Two optimizer steps of two batches each between curriculum events.
    updates = events(run, "CurriculumUpdated")
    assert [u.step for u in updates] == [2, 4]
    assert [sum(u.sampled.values()) for u in updates] == [2 * 2 * batch] * 2
    # The logged loss is the mean over the micro-batches, not their sum: a random-init model
    # starts near ln(4) on four-choice questions.
    assert logged[0].cls_loss == pytest.approx(math.log(4), abs=0.15)
    assert 0 <= logged[0].accuracy <= 1
    [finished] = events(run, "Finished")
    assert (finished.step, finished.reason) == (4, "completed")


def test_patience_stops_a_run_that_no_longer_improves(tmp_path: Path):
    # A learning rate this small leaves every prediction as it was: the first validation is the
    # best, and each later one counts against the patience.
    flags = {**SMALL, "optim.max_steps": 20, "eval_every_n_steps": 2, "patience": 2, "optim.lr": 1e-12}
    run = run_to_end(tiny_settings(tmp_path / "run", **flags))
    validations = events(run, "Validated")
    assert [(v.step, v.improved) for v in validations] == [(2, True), (4, False), (6, False)]
    assert len({v.result.accuracy for v in validations}) == 1
    [finished] = events(run, "Finished")
    assert (finished.step, finished.reason, finished.best_step) == (6, "early_stopping", 2)
    assert max(ev.step for ev in events(run, "StepLogged")) == 6
