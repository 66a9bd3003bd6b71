"""The `phased` strategy: ordered task phases over the training steps."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import observation

from acct.curriculum.curriculum import Curriculum
from acct.data.batching import TaskBatchSampler
from acct.errors import UsageError

TASKS = ["a", "b", "c", "d"]
CATEGORIES = ["stem", "stem", "humanities", "other"]


def _curriculum(phases, total_steps=10, replay=0.0, prior="uniform", sizes=(30, 10, 20, 20), **kw) -> Curriculum:
    return Curriculum("phased", 4, warmup_steps=5, update_every_n_steps=4, floor=0.3, tasks=TASKS,
                      task_sizes=list(sizes), categories=CATEGORIES, total_steps=total_steps, prior=prior,
                      options={"phases": phases, "replay": replay}, **kw)


def _run(c: Curriculum, total: int) -> list[list[float]]:
    """The weights each batch (0-based step s) is drawn with."""
    used = [c.weights.tolist()]
    for step in range(1, total):
        c.observe(observation(torch.randn(4, 4), torch.arange(4), torch.rand(4), torch.ones(4, dtype=torch.bool)))
        c.step(step)
        used.append(c.weights.tolist())
    return used


def test_schedule_is_followed_at_the_phase_boundaries() -> None:
    phases = [{"categories": ["stem"], "fraction": 0.3}, {"tasks": ["c", "d"], "fraction": 0.7}]
    used = _run(_curriculum(phases), 10)
    # round(0.3 * 10) = 3: batches 0..2 from the first phase, 3..9 from the second (no floor, no warm-up).
    for s in range(3):
        assert used[s] == pytest.approx([0.5, 0.5, 0.0, 0.0]), s
    for s in range(3, 10):
        assert used[s] == pytest.approx([0.0, 0.0, 0.5, 0.5]), s


def test_prior_within_a_phase_and_replay_on_earlier_phases() -> None:
    phases = [{"tasks": ["a", "b"], "fraction": 0.5}, {"categories": ["humanities", "other"], "fraction": 0.5}]
    used = _run(_curriculum(phases, replay=0.2, prior="proportional"), 10)
    assert used[0] == pytest.approx([0.75, 0.25, 0.0, 0.0])  # 30:10, no earlier phase to replay
    assert used[5] == pytest.approx([0.2 * 0.75, 0.2 * 0.25, 0.8 * 0.5, 0.8 * 0.5])


def test_sampler_draws_only_the_phase_tasks() -> None:
    phases = [{"tasks": ["a"], "fraction": 0.5}, {"tasks": ["b", "c", "d"], "fraction": 0.5}]
    c = _curriculum(phases, total_steps=8)
    sampler = TaskBatchSampler([0] * 5 + [1] * 5 + [2] * 5 + [3] * 5, 4, 2, 1, seed=0)
    drawn = []
    for s, w in enumerate(_run(c, 8)):
        drawn.append(set(sampler.slot_tasks(s, torch.tensor(w))))
    assert set().union(*drawn[:4]) == {0}
    assert 0 not in set().union(*drawn[4:])


@pytest.mark.parametrize(
    ("phases", "message"),
    [
        ([{"tasks": ["a", "b"], "fraction": 0.5}, {"tasks": ["c", "d"], "fraction": 0.4}], "sum to 1"),
        ([{"tasks": ["a", "z"], "fraction": 1.0}], "unknown task 'z'"),
        ([{"tasks": ["a", "b", "c"], "fraction": 1.0}], "in no phase"),
        ([{"categories": ["law"], "fraction": 1.0}], "category 'law'"),
        ([{"tasks": ["a"], "categories": ["stem"], "fraction": 1.0}], "exactly one"),
        ("a,b", "non-empty list"),
    ],
)
def test_bad_phases_are_one_line(phases, message) -> None:
    with pytest.raises(UsageError, match=message):
        _curriculum(phases)
