"""learning_progress against difficulty on a suite with an unlearnable task, through the engine.

The synthetic suite with imbalanced task sizes and `random_answer`, a task whose gold choice is
random: `difficulty` (z-scored error rate) keeps favouring it, because it stays wrong whatever the
model learns; `learning_progress` rewards change in a task's loss, which a task with random
answers does not show, so it gives that task less. And it must not pay for it on the tasks that
can be learned: their accuracy stays within a tolerance of plain proportional sampling.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_to_end, tiny_settings

NOISE = "random_answer"
SEEDS = (0, 1, 2)
STRATEGIES = ("learning_progress", "difficulty", "proportional")
FLAGS = {
    "data.synthetic_examples_per_task": 40,
    "data.options": {"task_sizes": {"even_number": 120, "animal_word": 80}, "noise_task": True},
    "model.tiny.hidden_size": 32, "model.tiny.num_hidden_layers": 1, "model.tiny.intermediate_size": 64,
    "model.tiny.vocab_size": 300,
    "optim.max_steps": 160, "eval_every_n_steps": 80,
    "curriculum.update_every_n_steps": 10, "curriculum.warmup_epochs": 0.5,
}


def read(run_dir: Path) -> tuple[dict[str, float], dict[str, float]]:
    """The last logged curriculum weights and the last validation's per-task accuracy."""
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    weights = [e["weights"] for e in events if e["event"] == "curriculum"][-1]
    tasks = [e["tasks"] for e in events if e["event"] == "validation"][-1]
    return weights, {t: r["accuracy"] for t, r in tasks.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("noise")
    out = {}
    for strategy in STRATEGIES:
        for seed in SEEDS:
            run_dir = root / f"{strategy}-{seed}"
            run_to_end(tiny_settings(run_dir, **FLAGS, seed=seed, **{"curriculum.strategy": strategy}))
            out[strategy, seed] = read(run_dir)
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_learning_progress_gives_the_noise_task_less_than_difficulty(runs, seed):
    lp, _ = runs["learning_progress", seed]
    hard, _ = runs["difficulty", seed]
    prior, _ = runs["proportional", seed]
    assert lp[NOISE] < hard[NOISE], (lp[NOISE], hard[NOISE])
    assert hard[NOISE] > prior[NOISE]  # difficulty does favour the task that stays wrong


def test_learning_progress_keeps_the_accuracy_of_proportional_on_the_learnable_tasks(runs):
    def learnable_mean(strategy: str) -> float:
        accs = [a for seed in SEEDS for t, a in runs[strategy, seed][1].items() if t != NOISE]
        return sum(accs) / len(accs)

    lp, prop = learnable_mean("learning_progress"), learnable_mean("proportional")
    assert prop > 0.4, prop  # the runs learn something, or the comparison would be empty
    assert lp >= prop - 0.05, (lp, prop)
