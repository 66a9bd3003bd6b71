"""The `learning_progress` strategy: a bandit rewarded by absolute learning progress."""

from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import observation

from acct.run.checkpoint import load_state, save_state
from acct.curriculum.curriculum import Curriculum, CurriculumStats
from acct.strategies.learning_progress import LearningProgress

TASKS = ["fast", "slow", "noise"]


def _stats(loss: list[float], error: list[float]) -> CurriculumStats:
    t = len(loss)
    return CurriculumStats(
        tasks=TASKS[:t], task_sizes=[10] * t, categories=["x"] * t, step=0, total_steps=100,
        error_rate=torch.tensor(error), uncertainty=torch.zeros(t), loss=torch.tensor(loss),
        seen=torch.ones(t, dtype=torch.bool), confusion=torch.zeros(t, t),
        confusion_seen=torch.zeros(t, t, dtype=torch.bool),
    )


def test_q_values_and_policy_by_hand() -> None:
    lp = LearningProgress(TASKS, temperature=1.0, step_size=0.5)
    assert lp.weights(_stats([1.0, 1.0, 1.0], [0.5] * 3)).tolist() == pytest.approx([1 / 3] * 3)  # no reward yet
    lp.weights(_stats([0.5, 0.75, 1.0625], [0.5] * 3))
    assert lp.q == [0.5, 0.25, 0.0625]  # first reward starts Q (values exact in float32)
    w = lp.weights(_stats([0.25, 0.5, 1.0], [0.5] * 3))
    q = [0.5 + 0.5 * (0.25 - 0.5), 0.25 + 0.5 * (0.25 - 0.25), 0.0625 + 0.5 * (0.0625 - 0.0625)]
    assert lp.q == pytest.approx(q)
    qt = torch.tensor(q, dtype=torch.float64)
    expected = torch.softmax((qt - qt.mean()) / qt.std(correction=0), 0)
    assert w.tolist() == pytest.approx(expected.tolist())
    # A task whose EMA did not move was not drawn: it keeps its Q.
    lp.weights(_stats([0.125, 0.5, 1.0], [0.5] * 3))
    assert lp.q[1] == pytest.approx(q[1]) and lp.q[2] == pytest.approx(q[2])


def _trajectory(k: int, rng: torch.Generator) -> list[float]:
    """Per-update mean losses: two tasks being learned, one with random answers (loss ~ ln 4)."""
    jitter = float(torch.randn((), generator=rng)) * 0.003
    return [1.4 * math.exp(-0.08 * k) + 0.05, 1.4 * math.exp(-0.03 * k) + 0.05, math.log(4) + jitter]


def _run_curriculum(strategy: str, seed: int) -> torch.Tensor:
    c = Curriculum(strategy, 3, warmup_steps=3, update_every_n_steps=1, floor=0.1, temperature=1.0,
                   tasks=TASKS, task_sizes=[40, 40, 40])
    rng = torch.Generator().manual_seed(seed)
    for k in range(1, 31):
        loss = _trajectory(k, rng)
        error = [min(0.74, x / 2) for x in loss[:2]] + [0.75]
        tasks = torch.arange(3).repeat_interleave(4)
        correct = torch.rand(12, generator=rng) >= torch.tensor(error).repeat_interleave(4)
        c.observe(observation(torch.randn(12, 4, generator=rng), tasks, torch.full((12,), 0.5), correct,
                  torch.tensor(loss).repeat_interleave(4)))
        c.step(k)
    return c.weights


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noise_task_is_down_weighted_where_difficulty_up_weights_it(seed: int) -> None:
    lp = _run_curriculum("learning_progress", seed)
    difficulty = _run_curriculum("difficulty", seed)
    assert difficulty[2] == difficulty.max()  # the noise task is always the most wrong
    assert lp[2] == lp.min() and lp[2] < 1 / 3  # no progress on it
    assert lp[2] < difficulty[2]
    assert lp.min() >= 0.1 / 3 - 1e-12  # floor


def test_flat_q_values_give_back_the_prior_under_a_floor() -> None:
    c = Curriculum("learning_progress", 3, warmup_steps=0, update_every_n_steps=1, floor=0.2,
                   prior="proportional", tasks=TASKS, task_sizes=[50, 30, 20])
    for k in range(1, 4):
        c.observe(observation(torch.randn(3, 4), torch.arange(3), torch.full((3,), 0.5), torch.ones(3, dtype=torch.bool),
                  torch.full((3,), 1.0 - 0.1 * k)))  # same progress on every task
        w = c.step(k)
    assert w.tolist() == pytest.approx([0.5, 0.3, 0.2], abs=1e-12)


def test_state_round_trip_through_a_checkpoint_gives_the_same_future(tmp_path) -> None:
    def make() -> Curriculum:
        return Curriculum("learning_progress", 3, warmup_steps=0, update_every_n_steps=2, floor=0.1,
                          tasks=TASKS, task_sizes=[40, 40, 40])

    def feed(c: Curriculum, steps: range, rng: torch.Generator) -> list:
        out = []
        for k in steps:
            c.observe(observation(torch.randn(6, 4, generator=rng), torch.tensor([0, 0, 1, 1, 2, 2]), torch.rand(6, generator=rng),
                      torch.rand(6, generator=rng) < 0.5, torch.rand(6, generator=rng) * 2))
            w = c.step(k)
            out.append(None if w is None else w.tolist())
        return out

    original, rng = make(), torch.Generator().manual_seed(5)
    feed(original, range(1, 10), rng)  # mid-window
    assert any(original.impl.rewarded)
    save_state(tmp_path, "state", {"curriculum": original.state_dict()})
    saved = original.impl.state_dict()
    rng_state = rng.get_state()
    expected = feed(original, range(10, 30), rng)

    resumed = make()
    resumed.load_state_dict(load_state(tmp_path, "state")["curriculum"])
    assert resumed.impl.state_dict() == saved
    rng.set_state(rng_state)
    assert feed(resumed, range(10, 30), rng) == expected
    assert resumed.impl.q == original.impl.q

