"""The `proportional` strategy: the sampler draws each task in proportion to its size."""

from __future__ import annotations

import math

import torch

from tests.conftest import observation

from acct.curriculum.curriculum import Curriculum
from acct.data.batching import TaskBatchSampler

SIZES = [60, 30, 10]


def test_weights_are_the_sizes_from_the_first_batch_whatever_the_floor() -> None:
    c = Curriculum("proportional", 3, warmup_steps=100, update_every_n_steps=5, floor=0.5, task_sizes=SIZES)
    assert c.weights.tolist() == [0.6, 0.3, 0.1]
    for step in range(1, 11):
        c.observe(observation(torch.randn(3, 4), torch.arange(3), torch.rand(3), torch.tensor([False, True, True])))
        c.step(step)
        assert c.weights.tolist() == [0.6, 0.3, 0.1]  # never reweighted, never floored


def test_sampler_task_counts_match_the_sizes() -> None:
    example_tasks = [t for t, n in enumerate(SIZES) for _ in range(n)]
    sampler = TaskBatchSampler(example_tasks, 3, tasks_per_batch=4, examples_per_task=1, seed=0)
    c = Curriculum("proportional", 3, warmup_steps=0, update_every_n_steps=1, task_sizes=sampler.task_sizes)
    counts = [0, 0, 0]
    steps = 6000
    for step in range(steps):
        for task in sampler.slot_tasks(step, c.weights):
            counts[task] += 1
    n = steps * sampler.tasks_per_batch
    for t, size in enumerate(SIZES):
        p = size / sum(SIZES)
        # Each count is binomial(n, p): 4 standard deviations.
        assert abs(counts[t] - n * p) <= 4 * math.sqrt(n * p * (1 - p)), (t, counts, n)
