"""The registries and the strategy contract: lazy built-ins, name checks, options, state."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import torch

from acct import registry
from acct.curriculum.curriculum import Curriculum, CurriculumStats
from acct.registry import register_strategy
from acct.errors import UsageError
from acct.losses import Observation


def test_builtins_are_listed_without_being_imported():
    probe = (
        "import json, sys\n"
        "from acct import registry\n"
        "names = {k: r.names() for k, r in registry.REGISTRIES.items()}\n"
        "print(json.dumps([names, sorted(m for m in sys.modules if m.startswith(('acct.strategies', 'acct.data.sources', 'acct.weightings', 'acct.anchors', 'acct.study.arms', 'acct.gradients', 'acct.trackers.', 'torch')))]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    names, loaded = json.loads(done.stdout)
    # Each built-in is the file of its name in its kind's package, listed alphabetically.
    assert names["strategies"] == [
        "difficulty", "fixed", "learning_progress", "phased", "proportional", "temperature", "uncertainty_gradient",
        "uniform",
    ]
    assert names["task_weightings"] == ["dwa", "equal", "uncertainty"] and names["anchor_weightings"] == ["entropy", "uniform"]
    assert names["gradients"] == ["mean", "pcgrad", "upgrad"]
    assert names["data_sources"] == ["csv", "files", "hub", "synthetic"]
    assert names["ablation_arms"] == [
        "baseline", "contrastive", "dwa", "full", "infonce_unweighted", "learning_progress", "pcgrad", "phased",
        "temperature", "uncertainty_weighting", "uniform_tasks", "upgrad",
    ]
    assert names["trackers"] == ["mlflow", "tensorboard", "trackio", "wandb"]
    assert loaded == []


def test_registering_checks_names():
    reg = registry.Registry("widget", "acct.data.sources")  # its files' names are the built-in names

    class A:
        """An A."""

    class B:
        pass

    reg.register("a", A)
    reg.register("a", A)  # the same object again is fine (a module imported twice)
    with pytest.raises(UsageError, match="already registered"):
        reg.register("a", B)
    with pytest.raises(UsageError, match="one of acct's own"):
        reg.register("hub", B)
    with pytest.raises(UsageError, match="non-empty word"):
        reg.register("two words", B)
    with pytest.raises(UsageError, match="registered: csv, files, hub, synthetic, a"):
        reg.get("zzz")
    assert reg.describe("a") == "An A." and "a" in reg and "zzz" not in reg


@register_strategy("test_recording")
class Recording:
    """Records what it is given (a test strategy)."""

    def __init__(self, tasks, boost=2.0):
        self.tasks, self.boost, self.seen_stats, self.calls = tasks, boost, None, 0

    def weights(self, stats):
        self.seen_stats, self.calls = stats, self.calls + 1
        return torch.tensor([self.boost] + [1.0] * (len(stats.tasks) - 1))

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = int(state["calls"])


def _curriculum(strategy="test_recording", **kw):
    args = dict(warmup_steps=0, update_every_n_steps=1, floor=0.0, tasks=["a", "b", "c"], task_sizes=[5, 6, 7],
                categories=["x", "x", "y"], total_steps=9)
    args.update(kw)
    return Curriculum(strategy, 3, **args)


def _feed(curriculum):
    z = torch.nn.functional.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    loss = torch.tensor([3.0, 1.0, 1.0, 1.0, 2.0, 2.0])
    curriculum.observe(Observation(torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 1, 1, 1, 1, 1]).bool(),
                                   torch.full((6,), 0.5), loss, loss.mean(), 3, embeddings=z))


def test_a_strategy_gets_the_documented_stats_and_options():
    curriculum = _curriculum(options={"boost": 3.0})
    _feed(curriculum)
    weights = curriculum.step(1)
    assert weights.tolist() == pytest.approx([0.6, 0.2, 0.2])  # normalised by acct
    stats: CurriculumStats = curriculum.impl.seen_stats
    assert (stats.tasks, stats.task_sizes, stats.categories, stats.step, stats.total_steps) == (
        ["a", "b", "c"], [5, 6, 7], ["x", "x", "y"], 1, 9)
    assert stats.error_rate.tolist() == pytest.approx([0.5, 0.0, 0.0])
    assert stats.loss.tolist() == pytest.approx([2.0, 1.0, 2.0])
    assert stats.uncertainty.tolist() == pytest.approx([0.5, 0.5, 0.5])
    assert stats.confusion.shape == (3, 3) and stats.seen.all()


def test_the_floor_is_acct_s_and_the_strategy_state_is_saved():
    curriculum = _curriculum(options={"boost": 7.0}, floor=0.5)
    _feed(curriculum)
    w = curriculum.step(1)
    assert w.tolist() == pytest.approx([0.5 * 7 / 9 + 0.5 / 3, 0.5 / 9 + 0.5 / 3, 0.5 / 9 + 0.5 / 3])
    buffer = io.BytesIO()
    torch.save(curriculum.state_dict(), buffer)
    buffer.seek(0)
    resumed = _curriculum(options={"boost": 7.0}, floor=0.5)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.impl.calls == 1 and torch.equal(resumed.weights, w)


def test_bad_options_and_bad_weights_are_usage_errors():
    with pytest.raises(UsageError, match="do not fit strategy 'test_recording'"):
        _curriculum(options={"nope": 1})
    with pytest.raises(UsageError, match="registered: difficulty, fixed, learning_progress"):
        _curriculum("nope")
    for bad in ([1.0, 2.0], [1.0, -1.0, 1.0], [0.0, 0.0, 0.0], [float("nan"), 1.0, 1.0]):
        curriculum = _curriculum()
        curriculum.impl.weights = lambda stats, bad=bad: bad
        with pytest.raises(UsageError, match="strategy 'test_recording' returned"):
            curriculum.step(1)


def test_difficulty_temperature_comes_from_settings_or_options():
    def top_weight(**kw):
        curriculum = _curriculum("difficulty", **kw)
        _feed(curriculum)
        return curriculum.step(1)[0].item()

    assert top_weight(temperature=0.5) > top_weight(temperature=2.0) > top_weight(temperature=8.0) > 1 / 3
    assert top_weight(temperature=2.0, options={"temperature": 0.5}) == top_weight(temperature=0.5)
