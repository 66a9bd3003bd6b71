"""Pinned numbers of one fixed tiny run: refactors of the engine, the curriculum or the
registries must leave every logged loss, accuracy and curriculum weight where it was.

The expected values live in tests/data/regression_tiny_seed3.json; they were written by
`python -m tests.test_regression` from the code as it stood before the registries were
introduced. Regenerate them only for a change that is meant to alter a run's numbers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import run_to_end, tiny_settings

EXPECTED = Path(__file__).parent / "data" / "regression_tiny_seed3.json"
FLAGS = {
    "optim.max_steps": 200,
    "eval_every_n_steps": 100,
    "seed": 3,
    "curriculum.strategy": "uncertainty_gradient",
    # The prior the numbers were pinned with (the default is now proportional).
    "curriculum.prior": "uniform",
}
TRAIN_FIELDS = ("loss", "cls_loss", "contrastive_loss", "accuracy", "lr", "skipped_steps")
# Same code, same seed, same CPU: the numbers repeat bit for bit. The tolerance only absorbs
# float32 rounding differences between CPU kernels (e.g. another vector instruction set).
TOL = 1e-6


def pinned_numbers(run_dir: Path) -> dict:
    """The numbers this test pins, read from a run's metrics.jsonl."""
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "train": [{"step": e["step"], **{k: e[k] for k in TRAIN_FIELDS}} for e in events if e["event"] == "train"],
        "curriculum": [{"step": e["step"], "weights": e["weights"]} for e in events if e["event"] == "curriculum"],
        "validation": [
            {"step": e["step"], "accuracy": e["accuracy"], "tasks": {t: r["accuracy"] for t, r in e["tasks"].items()}}
            for e in events if e["event"] == "validation"
        ],
    }


def _close(actual, expected, where: str) -> None:
    if isinstance(expected, dict):
        assert set(actual) == set(expected), f"{where}: keys {sorted(actual)} != {sorted(expected)}"
        for key in expected:
            _close(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{where}: {len(actual)} entries, expected {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            _close(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, abs=TOL, rel=TOL), f"{where}: {actual} != {expected}"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def test_fixed_tiny_run_reproduces_its_pinned_numbers(tmp_path):
    run_to_end(tiny_settings(tmp_path / "run", **FLAGS))
    actual = pinned_numbers(tmp_path / "run")
    expected = json.loads(EXPECTED.read_text())
    # The run must exercise the curriculum past warm-up, or the weights pin nothing.
    assert any(len(set(u["weights"].values())) > 1 for u in expected["curriculum"])
    _close(actual, expected, "metrics")


if __name__ == "__main__":
    import tempfile

    out = Path(tempfile.mkdtemp()) / "run"
    run_to_end(tiny_settings(out, **FLAGS))
    EXPECTED.parent.mkdir(exist_ok=True)
    EXPECTED.write_text(json.dumps(pinned_numbers(out), indent=1) + "\n")
    sys.stdout.write(f"wrote {EXPECTED}\n")
