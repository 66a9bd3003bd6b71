"""A short tiny-preset run with the `difficulty` strategy: its weights leave uniform and follow the temperature."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import run_to_end, tiny_settings

pytestmark = pytest.mark.slow  # every test here trains a model


def first_update(run_dir: Path) -> dict[str, float]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    updates = [e for e in lines if e["event"] == "curriculum"]
    assert [u["step"] for u in updates] == [5]
    return updates[0]["weights"]


def test_difficulty_weights_are_not_uniform_and_scale_with_the_temperature(tmp_path: Path):
    # No warm-up and no floor: the first update (step 5) is softmax(zscore(error rate) / T) itself.
    # Both runs draw the same batches up to it (uniform sampling, same seed), so they see the
    # same error rates and the logged weights differ by the temperature alone.
    flags = {"data.synthetic_examples_per_task": 30, "optim.max_steps": 5, "eval_every_n_steps": 5, "seed": 2,
             "curriculum.strategy": "difficulty", "curriculum.warmup_epochs": 0, "curriculum.update_every_n_steps": 5,
             "curriculum.floor": 0.0}
    logits = {}
    for temperature in (0.5, 4.0):
        run_dir = tmp_path / f"t{temperature}"
        run_to_end(tiny_settings(run_dir, **flags, **{"curriculum.temperature": temperature}))
        weights = first_update(run_dir)
        assert sum(weights.values()) == pytest.approx(1.0)
        assert max(weights.values()) / min(weights.values()) > 1.05, weights  # not uniform
        # T * log(w) is zscore(error rate) up to a constant, whatever the temperature.
        scaled = {t: temperature * math.log(w) for t, w in weights.items()}
        mean = sum(scaled.values()) / len(scaled)
        logits[temperature] = {t: v - mean for t, v in scaled.items()}
    assert logits[0.5] == pytest.approx(logits[4.0], abs=1e-3)
    # The z-scores themselves: mean 0, spread 1 (population sd), so the weights are not flat by accident.
    z = list(logits[0.5].values())
    assert math.sqrt(sum(v * v for v in z) / len(z)) == pytest.approx(1.0, abs=1e-3)
