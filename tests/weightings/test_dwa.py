"""The `dwa` task-loss weighting (Dynamic Weight Average, Liu et al. 2019)."""

from __future__ import annotations

import math

import pytest
import torch

from acct.run.checkpoint import load_state, save_state
from acct.errors import UsageError
from acct.losses import Observation
from acct.registry import task_weightings

TASKS = ["a", "b", "c"]


def _obs(tasks: list[int], losses: list[float], grad: bool = False) -> Observation:
    loss = torch.tensor(losses, dtype=torch.float32, requires_grad=grad)
    return Observation(torch.tensor(tasks), torch.ones(len(tasks), dtype=torch.bool), torch.zeros(len(tasks)),
                       loss, loss.mean(), len(TASKS))


def test_hand_computed_weights_and_loss() -> None:
    dwa = task_weightings.get("dwa")(TASKS, temperature=2.0, window=2)
    # Window 1: a has mean 1.0, b mean 2.0, c unseen.
    dwa.loss(_obs([0, 1], [1.0, 2.0]))
    dwa.loss(_obs([0, 1], [1.0, 2.0]))
    assert dwa.weights == [1.0, 1.0, 1.0]  # nothing seen twice yet
    # Window 2: a mean 0.5, b mean 2.0, c mean 1.0 (first time).
    dwa.loss(_obs([0, 1, 2], [0.4, 2.0, 1.0]))
    dwa.loss(_obs([0], [0.6]))
    # r_a = 0.5, r_b = 1.0; K = 2 tasks have a ratio; c has weight 1.
    e_a, e_b = math.exp(0.5 / 2), math.exp(1.0 / 2)
    expected = [2 * e_a / (e_a + e_b), 2 * e_b / (e_a + e_b), 1.0]
    assert dwa.weights == pytest.approx(expected, rel=1e-7)  # the losses are float32
    assert expected[0] == pytest.approx(0.8756, abs=1e-4)
    obs = _obs([0, 1, 2, 2], [1.0, 1.0, 2.0, 0.0], grad=True)
    loss = dwa.loss(obs)
    assert loss.item() == pytest.approx((expected[0] + expected[1] + 2.0) / 4, rel=1e-6)
    loss.backward()
    assert obs.loss.grad.tolist() == pytest.approx([expected[0] / 4, expected[1] / 4, 0.25, 0.25], rel=1e-6)


def test_all_weights_one_is_the_mean_loss() -> None:
    dwa = task_weightings.get("dwa")(TASKS)
    obs = _obs([0, 1, 2], [0.3, 0.9, 1.5])
    assert dwa.loss(obs).item() == pytest.approx(obs.mean_loss.item())


def test_without_grad_nothing_is_counted() -> None:
    dwa = task_weightings.get("dwa")(TASKS, window=1)
    with torch.no_grad():
        dwa.loss(_obs([0], [1.0]))
    assert dwa.batches == 0 and dwa.previous == [None, None, None]


def test_state_round_trip_through_a_checkpoint(tmp_path) -> None:
    cls = task_weightings.get("dwa")
    rng = torch.Generator().manual_seed(3)
    batches = [(torch.randint(0, 3, (5,), generator=rng).tolist(), (torch.rand(5, generator=rng) * 2).tolist())
               for _ in range(23)]
    original = cls(TASKS, window=3)
    for tasks, losses in batches[:10]:  # ends mid-window
        original.loss(_obs(tasks, losses))
    save_state(tmp_path, "state", {"weightings": {"task": original.state_dict()}})
    saved = original.state_dict()
    expected = [original.loss(_obs(t, l)).item() for t, l in batches[10:]]
    resumed = cls(TASKS, window=3)
    resumed.load_state_dict(load_state(tmp_path, "state")["weightings"]["task"])
    assert resumed.state_dict() == saved
    assert [resumed.loss(_obs(t, l)).item() for t, l in batches[10:]] == expected
    assert resumed.weights == original.weights and resumed.weights != [1.0, 1.0, 1.0]


def test_bad_options_are_one_line() -> None:
    with pytest.raises(UsageError, match="window"):
        task_weightings.get("dwa")(TASKS, window=0)
    with pytest.raises(UsageError, match="temperature"):
        task_weightings.get("dwa")(TASKS, temperature=0)
