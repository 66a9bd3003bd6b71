"""The `uncertainty` task-loss weighting (Kendall, Gal & Cipolla 2018): its loss and gradient by
hand, its parameter group, and the log-variances moving, logged and saved in a real `acct train`."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from acct.cli import app
from acct.errors import UsageError
from acct.losses import Observation
from acct.registry import task_weightings
from acct.train.plan import make_plan
from acct.train.setup import setup_optimization
from acct.train.step import Weightings
from tests.conftest import SMALL_MODEL_YAML, tiny_settings

TASKS = ["a", "b", "c"]
runner = CliRunner()


def _obs(tasks: list[int], losses: list[float]) -> Observation:
    loss = torch.tensor(losses, dtype=torch.float32, requires_grad=True)
    return Observation(torch.tensor(tasks), torch.ones(len(tasks), dtype=torch.bool), torch.zeros(len(tasks)),
                       loss, loss.mean(), len(TASKS))


def test_hand_computed_loss_and_gradients() -> None:
    weighting = task_weightings.get("uncertainty")(TASKS)
    with torch.no_grad():
        weighting.log_variance.copy_(torch.tensor([0.5, -1.0, 0.2]))
    # Task a: questions with losses 1.0 and 3.0 (L_a = 2.0); task c: one question, L_c = 0.5; b absent.
    obs = _obs([0, 2, 0], [1.0, 0.5, 3.0])
    loss = weighting.loss(obs)
    term_a = math.exp(-0.5) * 2.0 + 0.5
    term_c = math.exp(-0.2) * 0.5 + 0.2
    assert loss.item() == pytest.approx((term_a + term_c) / 2, rel=1e-6)
    loss.backward()
    # dL/ds_t = (1 - exp(-s_t) L_t) / |P| for a present task, 0 for b.
    assert weighting.log_variance.grad.tolist() == pytest.approx(
        [(1 - math.exp(-0.5) * 2.0) / 2, 0.0, (1 - math.exp(-0.2) * 0.5) / 2], rel=1e-6)
    # dL/dloss_i = exp(-s_t) / (n_t |P|).
    assert obs.loss.grad.tolist() == pytest.approx(
        [math.exp(-0.5) / 4, math.exp(-0.2) / 2, math.exp(-0.5) / 4], rel=1e-6)


def test_at_zero_with_equal_slots_it_is_the_mean_cross_entropy() -> None:
    weighting = task_weightings.get("uncertainty")(TASKS)
    obs = _obs([0, 0, 1, 1, 2, 2], [0.3, 0.9, 1.5, 0.1, 2.0, 0.4])
    assert weighting.loss(obs).item() == pytest.approx(obs.mean_loss.item(), rel=1e-6)


def test_its_parameters_get_their_own_adamw_group_without_weight_decay(tmp_path) -> None:
    settings = tiny_settings(tmp_path / "r", **{"loss.task_weighting": "uncertainty", "optim.weight_decay": 0.3})
    model = torch.nn.Linear(4, 4)
    schedule = make_plan(settings, 160)
    for options, lr in (({}, settings.optim.lr), ({"lr": 0.05}, 0.05)):
        settings.loss.task_weighting_options = options
        weightings = Weightings.build(settings, TASKS)
        opt = setup_optimization(model, settings, schedule, torch.device("cpu"), "fp32", weightings)
        [group] = [g for g in opt.optimizer.param_groups if any(p is weightings.task.log_variance for p in g["params"])]
        assert group["weight_decay"] == 0.0 and group["initial_lr"] == lr and len(group["params"]) == 1
        assert any(g["weight_decay"] == 0.3 for g in opt.optimizer.param_groups)  # the model's decayed weights
        assert all(p is not weightings.task.log_variance for p in opt.params)  # clipping is the model's own


def test_bad_lr_is_one_line() -> None:
    with pytest.raises(UsageError, match="lr must be a positive number"):
        task_weightings.get("uncertainty")(TASKS, lr=0)


@pytest.mark.slow
def test_acct_train_moves_logs_and_saves_the_log_variances(tmp_path) -> None:
    config = tmp_path / "uncertainty.yaml"
    config.write_text(
        SMALL_MODEL_YAML +
        "data: {synthetic_examples_per_task: 24}\n"
        "loss: {task_weighting: uncertainty, task_weighting_options: {lr: 0.05}}\n"
    )
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "--preset", "tiny", "--config", str(config), "--max-steps", "8",
                                 "--eval-every-n-steps", "4", "--device", "cpu", "--output-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    validations = [e for e in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
                   if e["event"] == "validation"]
    assert [e["step"] for e in validations] == [4, 8]
    tasks = json.loads((run_dir / "checkpoints" / "last" / "acct.json").read_text())["tasks"]
    logged = [[e["task_weighting"]["log_variance"][t] for t in tasks] for e in validations]
    # Eight steps of 4 task slots (of 8 tasks) at lr 0.05 under AdamW: every log-variance has
    # risen from 0 towards log L_t, about log(ln 4) = 0.33 for a fresh 4-choice model, and they
    # moved on between steps 4 and 8.
    assert all(0 < s < 0.4 for s in logged[1]) and sum(s > 0.05 for s in logged[1]) >= 6
    assert logged[1] != logged[0]
    assert all(w == pytest.approx(math.exp(-s), rel=1e-6)
               for s, w in zip(logged[1], (validations[1]["task_weighting"]["weight"][t] for t in tasks)))
    # The checkpoint holds them as a tensor in state.safetensors: the last logged values.
    saved = load_file(str(run_dir / "checkpoints" / "last" / "state.safetensors"))["weightings.task_parameters.0"]
    assert saved.tolist() == pytest.approx(logged[1], abs=0)
