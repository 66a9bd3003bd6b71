"""The curriculum and the loss weightings reach training: engine-level checks through the
`sampled` counts of curriculum events and the logged loss values."""

from __future__ import annotations

import json

import pytest

from acct import engine
from acct.registry import register_strategy
from tests.conftest import run_to_end, tiny_settings

pytestmark = pytest.mark.slow  # every test here trains a model


@register_strategy("test_all_on_first")
class AllOnFirst:
    """All weight on the first task (a test strategy)."""

    def __init__(self, tasks):
        self.tasks = tasks

    def weights(self, stats):
        return [1.0] + [0.0] * (len(stats.tasks) - 1)


def test_the_sampler_follows_the_logged_weights_with_the_floor(tmp_path):
    settings = tiny_settings(tmp_path / "r", **{
        "optim.max_steps": 40, "eval_every_n_steps": 40, "curriculum.strategy": "test_all_on_first",
        "curriculum.warmup_epochs": 0, "curriculum.update_every_n_steps": 20,
    })
    events = run_to_end(settings)
    tasks = next(e for e in events if isinstance(e, engine.RunStarted)).tasks
    first, second = [e for e in events if isinstance(e, engine.CurriculumUpdated)]
    # 1 on the first task, 0 elsewhere, mixed with 10 % of uniform: no task below 0.1 / 8.
    assert first.weights[tasks[0]] == pytest.approx(0.9 + 0.1 / 8)
    assert all(first.weights[t] == pytest.approx(0.1 / 8) for t in tasks[1:])
    # Steps 1-20 drew from the uniform prior, steps 21-40 from the weights logged at step 20.
    assert sum(first.sampled.values()) == sum(second.sampled.values()) == 20 * 16
    assert first.sampled[tasks[0]] / (20 * 16) < 0.35
    assert second.sampled[tasks[0]] / (20 * 16) > 0.75, second.sampled
    logged = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [e["sampled"] for e in logged if e["event"] == "curriculum"] == [first.sampled, second.sampled]


def test_infonce_is_weighted_by_the_entropy_not_by_ones(tmp_path):
    def first_step(anchor: str) -> engine.StepLogged:
        settings = tiny_settings(tmp_path / anchor, **{
            "optim.max_steps": 1, "eval_every_n_steps": 1, "log_every_n_steps": 1, "loss.anchor_weighting": anchor,
        })
        return next(e for e in run_to_end(settings) if isinstance(e, engine.StepLogged))

    entropy, ones = first_step("entropy"), first_step("uniform")
    # Same model, same first batch: the same cross-entropy; every u_i lies in [0, 1] and a
    # freshly initialised model is unsure but not exactly uniform, so the entropy-weighted
    # InfoNCE is a little below the unweighted one.
    assert entropy.cls_loss == ones.cls_loss
    assert 0.5 * ones.contrastive_loss < entropy.contrastive_loss < ones.contrastive_loss - 1e-5
