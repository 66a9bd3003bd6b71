"""A built-in component of any kind is one new file in its kind's package, and nothing else.

docs/extending.md's "What an extension costs" rests on this: a copy of the package gets one new file
per kind (strategy, task-loss weighting, anchor weighting, gradient aggregation, data source,
ablation arm, tracker), no other file changed, and each new name is listed, resolvable in settings
and built from its file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from tests.conftest import REPO

NEW_FILES = {
    "strategies/every_other.py": '''"""A strategy added as one file."""
from acct.curriculum import register_strategy


@register_strategy("every_other")
class EveryOther:
    """Weight 2 on every other task (a test strategy)."""

    def __init__(self, tasks):
        self.n = len(tasks)

    def weights(self, stats):
        return [2.0 if i % 2 else 1.0 for i in range(self.n)]
''',
    "weightings/halved.py": '''"""A task-loss weighting added as one file."""
from acct.losses import register_task_weighting


@register_task_weighting("halved")
class Halved:
    """Half the mean cross-entropy (a test weighting)."""

    def __init__(self, tasks):
        pass

    def loss(self, obs):
        return obs.mean_loss / 2
''',
    "anchors/doubled.py": '''"""An anchor weighting added as one file."""
from acct.losses import register_anchor_weighting


@register_anchor_weighting("doubled")
class Doubled:
    """Every anchor weighted 2 (a test anchor weighting)."""

    def __init__(self, tasks):
        pass

    def weights(self, obs):
        return obs.uncertainty * 0 + 2
''',
    "gradients/summed.py": '''"""A gradient aggregation added as one file."""
from acct.gradients import register_gradient


@register_gradient("summed")
class Summed:
    """The total loss's gradient (a test aggregation)."""

    per_slot = False

    def backward(self, objectives, params):
        import torch

        torch.autograd.backward(list(objectives))

    def finish(self, params):
        pass
''',
    "data/sources/tiny_quiz.py": '''"""A data source added as one file."""
from acct.data import Example, register_data_source


@register_data_source("tiny_quiz")
class TinyQuiz:
    """Two tasks of generated questions (a test source)."""

    def load(self, data, seed):
        rows = [Example(f"q{t}{i}", ("a", "b"), i % 2, f"task{t}", f"task{t}/{i}") for t in range(2) for i in range(40)]
        return {"test": rows}
''',
    "study/arms/halved_loss.py": '''"""An ablation arm added as one file."""
from acct.study import register_ablation_arm


@register_ablation_arm("halved_loss")
def halved_loss(base):
    """baseline with the halved task-loss weighting (a test arm)."""
    return {"loss": {"lambda_contrastive": 0.0, "task_weighting": "halved"}}
''',
    "trackers/stdout_log.py": '''"""A tracker added as one file."""
from acct.trackers import Tracker, register_tracker


@register_tracker("stdout_log")
class StdoutLog(Tracker):
    """Prints nothing (a test tracker)."""

    library = "json"
    extra = None

    def start(self):
        return None

    def log(self, metrics, step):
        pass

    def finish(self, status):
        pass
''',
}

PROBE = """
import json
from acct import registry
from acct.config.resolve import resolve_train
wanted = {"strategies": "every_other", "task_weightings": "halved", "anchor_weightings": "doubled",
          "gradients": "summed", "data_sources": "tiny_quiz", "ablation_arms": "halved_loss", "trackers": "stdout_log"}
listed = {kind: name in registry.REGISTRIES[kind].names() for kind, name in wanted.items()}
built = {kind: registry.REGISTRIES[kind].get(name).__module__ for kind, name in wanted.items()}
settings = resolve_train({"curriculum": {"strategy": "every_other"}, "data": {"source": "tiny_quiz"},
                          "loss": {"task_weighting": "halved", "anchor_weighting": "doubled", "gradient": "summed"},
                          "report_to": ["stdout_log"]}, preset="tiny")
layer = registry.ablation_arms.get("halved_loss")(settings)
print(json.dumps({"listed": listed, "built": built, "layer": layer, "strategy": settings.curriculum.strategy}))
"""


def test_each_kind_of_builtin_is_one_new_file(tmp_path):
    shutil.copytree(REPO / "acct", tmp_path / "acct", ignore=shutil.ignore_patterns("__pycache__"))
    for path, text in NEW_FILES.items():
        target = tmp_path / "acct" / path
        assert not target.exists(), path
        target.write_text(text)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(out["listed"].values()), out["listed"]
    assert out["built"] == {
        "strategies": "acct.strategies.every_other", "task_weightings": "acct.weightings.halved",
        "anchor_weightings": "acct.anchors.doubled", "gradients": "acct.gradients.summed",
        "data_sources": "acct.data.sources.tiny_quiz", "ablation_arms": "acct.study.arms.halved_loss",
        "trackers": "acct.trackers.stdout_log",
    }
    assert out["layer"]["loss"]["task_weighting"] == "halved" and out["strategy"] == "every_other"
