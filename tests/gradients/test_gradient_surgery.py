"""`loss.gradient`: PCGrad and UPGrad (through torchjd) on hand-made conflicting gradients, the
task-slot objectives, the refusals, and `acct train --preset tiny` with each gradient mode.

torchjd comes with the `mtl` extra, which CI installs (.ci/run); without it the tests that need it
are skipped, and the missing-extra message is tested with the module hidden.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch
from typer.testing import CliRunner

from acct.train import distributed
from acct.cli import app
from acct.errors import UsageError
from acct.gradients import slot_objectives
from acct.registry import gradients
from acct.train import step as step_module
from acct.train.setup import build_gradient
from tests.conftest import SMALL_MODEL_YAML, tiny_settings

runner = CliRunner()
# g1 = (1, 0) and g2 = (-1, 1) conflict: g1 . g2 = -1.
G1, G2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
# By hand: g1 projected off g2 is g1 - (g1.g2 / |g2|^2) g2 = (1, 0) + (-1, 1) / 2 = (0.5, 0.5);
# g2 projected off g1 is g2 - (g2.g1 / |g1|^2) g1 = (-1, 1) + (1, 0) = (0, 1). Their sum:
PROJECTED_SUM = [0.5, 1.5]
# UPGrad projects each onto the dual cone {v : v.g1 >= 0, v.g2 >= 0}; here both projections land
# on the cone's edges, the same two vectors. torchjd regularises the Gramian by 1e-4.
UPGRAD_ATOL = 1e-3


def _grad(name: str, *micro_batches: list[torch.Tensor], scale: float = 1.0) -> torch.Tensor:
    """The gradient `name` leaves in w for objectives f_i = scale * g_i . w, micro-batch by micro-batch."""
    w = torch.nn.Parameter(torch.tensor([0.3, -0.7]))
    aggregation = gradients.get(name)()
    for rows in micro_batches:
        aggregation.backward([scale * (g * w).sum() for g in rows], [w])
    aggregation.finish([w])
    return w.grad


@pytest.fixture
def torchjd():
    return pytest.importorskip("torchjd")


def test_pcgrad_projects_conflicting_gradients_by_hand(torchjd) -> None:
    assert _grad("pcgrad", [G1, G2]).tolist() == pytest.approx(PROJECTED_SUM, abs=1e-6)
    # Without conflict nothing is projected: the plain sum, i.e. the gradient of the total loss.
    assert _grad("pcgrad", [G1, torch.tensor([1.0, 1.0])]).tolist() == pytest.approx([2.0, 1.0], abs=1e-6)
    assert _grad("mean", [G1, G2]).tolist() == pytest.approx([0.0, 1.0], abs=1e-6)


def test_upgrad_projects_onto_the_dual_cone_by_hand(torchjd) -> None:
    got = _grad("upgrad", [G1, G2])
    assert got.tolist() == pytest.approx(PROJECTED_SUM, abs=UPGRAD_ATOL)
    assert got @ G1 >= 0 and got @ G2 >= 0  # it conflicts with neither
    assert _grad("upgrad", [G1, torch.tensor([1.0, 1.0])]).tolist() == pytest.approx([2.0, 1.0], abs=UPGRAD_ATOL)


@pytest.mark.parametrize("name", ["pcgrad", "upgrad"])
def test_micro_batches_are_one_jacobian_and_scaling_is_undone(name, torchjd) -> None:
    # Gradient accumulation: the rows of two micro-batches are aggregated together, as one batch.
    assert _grad(name, [G1], [G2]).tolist() == pytest.approx(_grad(name, [G1, G2]).tolist(), abs=1e-6)
    # fp16 loss scaling multiplies every objective by the scale: the result scales with it.
    scaled = _grad(name, [G1, G2], scale=1024.0) / 1024.0
    assert scaled.tolist() == pytest.approx(_grad(name, [G1, G2]).tolist(), abs=1e-5)
    # An overflow is passed on as a non-finite gradient, so the step is skipped.
    assert not torch.isfinite(_grad(name, [G1 * float("inf"), G2])).all()


def test_slot_objectives_sum_to_the_weighted_mean_cross_entropy() -> None:
    losses = torch.tensor([0.5, 1.5, 2.0, 0.25, 1.0])
    tasks = torch.tensor([3, 1, 3, 1, 0])
    parts = slot_objectives(losses, tasks, 0.7)
    assert [p.item() for p in parts] == pytest.approx([0.7 * 1.0 / 5, 0.7 * 1.75 / 5, 0.7 * 2.5 / 5])
    assert sum(parts).item() == pytest.approx(0.7 * losses.mean().item())


def test_a_study_whose_arm_pairs_surgery_with_a_weighting_is_refused_before_training(tmp_path) -> None:
    # The pcgrad arm keeps the base settings' task weighting: with uncertainty there, the plan refuses
    # the study in one line, and no run directory is written.
    out = tmp_path / "study"
    bad = runner.invoke(app, ["ablate", "--preset", "tiny", "--arms", "baseline,pcgrad", "--seeds", "1", "--max-steps", "2",
                              "--device", "cpu", "--output-dir", str(out)],
                        env={"ACCT_LOSS__TASK_WEIGHTING": "uncertainty"})
    assert bad.exit_code == 2 and "needs loss.task_weighting equal, not uncertainty" in bad.output, bad.output
    assert "Traceback" not in bad.output and not any(out.glob("*/config.json"))


def test_refusals_are_one_line(tmp_path, monkeypatch) -> None:
    # Under torchrun: the Jacobian of the global batch is not gathered.
    two = distributed.Distributed(rank=0, world_size=2)
    settings = tiny_settings(tmp_path / "r", **{"loss.gradient": "pcgrad"})
    with pytest.raises(UsageError, match="cannot run under torchrun"):
        build_gradient(settings, two)
    assert type(build_gradient(settings.model_copy(update={"loss": settings.loss.model_copy(update={"gradient": "mean"})}),
                               two)).__name__ == "MeanGradient"
    # With a task weighting other than equal: refused when the settings are read.
    bad = runner.invoke(app, ["train", "--preset", "tiny", "--max-steps", "1", "--device", "cpu",
                              "--output-dir", str(tmp_path / "bad")],
                        env={"ACCT_LOSS__GRADIENT": "upgrad", "ACCT_LOSS__TASK_WEIGHTING": "uncertainty"})
    assert bad.exit_code == 2 and "needs loss.task_weighting equal" in bad.output and "Traceback" not in bad.output
    # Without the mtl extra: one line that names it.
    for module in [m for m in sys.modules if m == "torchjd" or m.startswith("torchjd.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "torchjd", None)
    missing = runner.invoke(app, ["train", "--preset", "tiny", "--max-steps", "1", "--device", "cpu",
                                  "--output-dir", str(tmp_path / "missing")], env={"ACCT_LOSS__GRADIENT": "pcgrad"})
    assert missing.exit_code == 2, missing.output
    assert "pip install 'acct[mtl]'" in missing.output and "Traceback" not in missing.output
    assert not (tmp_path / "missing").exists()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["pcgrad", "upgrad"])
def test_acct_train_tiny_with_gradient_surgery(mode, tmp_path, torchjd, monkeypatch) -> None:
    aggregated = []  # rows of the Jacobian of each optimizer step
    cls = gradients.get(mode)
    original = cls.aggregator

    def aggregator(self, rows):
        aggregated.append(rows)
        return original(self, rows)

    monkeypatch.setattr(cls, "aggregator", aggregator)
    tasks_present = []  # distinct tasks of each micro-batch (two slots may draw the same task)
    objectives = step_module.slot_objectives

    def slot_objectives(per_question, task_ids, lambda_cls):
        tasks_present.append(len(set(task_ids.tolist())))
        return objectives(per_question, task_ids, lambda_cls)

    monkeypatch.setattr(step_module, "slot_objectives", slot_objectives)
    config = tmp_path / "surgery.yaml"
    config.write_text(
        SMALL_MODEL_YAML +
        "data: {synthetic_examples_per_task: 24}\n"
        f"loss: {{gradient: {mode}}}\n"
    )
    run_dir = tmp_path / mode
    result = runner.invoke(app, ["train", "--preset", "tiny", "--config", str(config), "--max-steps", "4",
                                 "--eval-every-n-steps", "4", "--grad-accum-steps", "2", "--device", "cpu",
                                 "--output-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "config.json").read_text())["loss"]["gradient"] == mode
    train = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in train if e["event"] == "validation"] == [4]
    assert all(e["skipped_steps"] == 0 for e in train if e["event"] == "train")
    # One Jacobian per step (the first call is the check made when the aggregation is built): the
    # tasks of its 2 micro-batches, and the InfoNCE term of each (tiny: lambda_contrastive 0.3).
    assert len(tasks_present) == 8 and max(tasks_present) == 4
    assert aggregated[1:] == [tasks_present[i] + tasks_present[i + 1] + 2 for i in range(0, 8, 2)]
