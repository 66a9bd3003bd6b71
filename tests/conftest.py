"""Shared fixtures: tiny seeded settings and one tiny trained run per test session."""

from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path

import pytest

from acct.cli import GC_FIRST_THRESHOLD
from tests import scheduling

# Tests never reach a hub: everything is built from configs, trained offline, or generated.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tokenisation caches of the test runs stay out of the user's ~/.cache.
os.environ.setdefault("ACCT_CACHE_DIR", tempfile.mkdtemp(prefix="acct-test-cache-"))
# So do the Arrow copies `datasets` makes of the files the tests generate.
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="acct-test-datasets-"))
# So do the trackers' (trackio reads TRACKIO_DIR when it is first imported), and wandb stays offline.
os.environ.setdefault("TRACKIO_DIR", tempfile.mkdtemp(prefix="acct-test-trackio-"))
os.environ.setdefault("WANDB_MODE", "offline")
# The suite runs in parallel processes (pytest-xdist, one per core; see pyproject.toml). The tiny
# models gain nothing from intra-op threads, and several processes each spinning up one OpenMP
# thread per core fight over the cores: one thread per process, and per child process it starts.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

# The garbage collector's first threshold that `acct` itself sets (acct.cli.main), for a process
# that holds torch's and transformers' objects: the test processes spend about half as much time
# in the collector.
gc.set_threshold(GC_FIRST_THRESHOLD, *gc.get_threshold()[1:])

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


# The small encoder of the tests about what surrounds the model (processes, batching, plugins,
# reports) rather than what it learns: one layer, and a vocabulary of 300 built from the suite's text.
# As a settings value (`"model.tiny": SMALL_MODEL`) and as a YAML line for a --config file.
SMALL_MODEL = {"hidden_size": 32, "num_hidden_layers": 1, "intermediate_size": 64, "vocab_size": 300}
SMALL_MODEL_YAML = "model: {tiny: {" + ", ".join(f"{k}: {v}" for k, v in SMALL_MODEL.items()) + "}}\n"
# The same encoder with the preset's vocabulary, so that questions tokenise to the preset's lengths:
# `tiny_settings(dir, **ONE_LAYER, ...)`.
ONE_LAYER = {f"model.tiny.{k}": v for k, v in SMALL_MODEL.items() if k != "vocab_size"}


def tiny_settings(output_dir: Path, **flags):
    """The tiny preset with test-sized budgets; keyword flags are nested settings (dotted keys allowed)."""
    from acct.config.layers import nest
    from acct.config.resolve import resolve_train

    base = {"output_dir": output_dir, "optim.max_steps": 240, "eval_every_n_steps": 120, "device": "cpu"}
    base.update(flags)
    return resolve_train(nest(base), preset="tiny")


def run_to_end(settings):
    """Consume the engine's events; return them as a list."""
    from acct.engine import train

    return list(train(settings))


# Fixtures that train a model: a test that uses one is in the slow tier (`-m "not slow"` leaves it out).
TRAINING_FIXTURES = frozenset({
    "tiny_run", "held_out_even",
    # module fixtures of the files that train their own runs
    "study", "printed", "swept", "study_run", "trained", "quiz", "tracked", "reference", "interrupted_then_resumed",
    "source", "short_run", "leaky_run", "in_process", "through_jobs",
})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    # The longest files first (tests/scheduling.py); a stable sort keeps each file's own order.
    items.sort(key=lambda item: scheduling.file_rank(item.nodeid))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` as this suite means it (pyproject.toml): see tests/scheduling.py."""
    if config.getoption("dist") != "loadgroup":
        return None
    return scheduling.make_scheduler(config, log)


def _train_once_per_test_run(tmp_path_factory, name: str, train) -> Path:
    """`train(run_dir)` once for the whole test run, shared by every xdist process; each process
    gets its own copy, so that what one test writes into it (an eval file) is not another's."""
    import shutil

    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the folder the processes' own basetemps share
    shared = root / f"shared-{name}"
    with FileLock(str(shared) + ".lock"):
        if not (shared / "trained").exists():
            shutil.rmtree(shared, ignore_errors=True)
            train(shared / "run")
            (shared / "trained").touch()
    run_dir = tmp_path_factory.mktemp("runs") / name
    shutil.copytree(shared / "run", run_dir, symlinks=True)
    return run_dir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny run trained once per test run (full configuration: contrastive + uncertainty_gradient)."""
    return _train_once_per_test_run(tmp_path_factory, "tiny", lambda run_dir: run_to_end(tiny_settings(run_dir)))


@pytest.fixture(scope="session")
def held_out_even(tiny_run):
    """A held-out `even_number` question (test split of the tiny run) that the run's evaluation answers correctly.

    Tests of the prediction paths use it instead of a hand-written question, so they check that
    predict agrees with the engine's scoring rather than how well a 240-step model generalises.
    """
    import torch

    from acct import engine
    from acct.data.tokenize import encode_examples

    run = engine.load_run(tiny_run)
    task_index = {t: i for i, t in enumerate(run.tasks)}
    candidates = [ex for ex in engine.load_run_split(run).test if ex.task == "even_number" and len(ex.choices) == 4]
    encoded = encode_examples(run.tokenizer, candidates, task_index, run.settings.model.max_length)
    predicted, _ = engine.predict_encoded(
        run.model, encoded, device=torch.device("cpu"), precision="fp32", batch_size=64, pad_id=run.pad_id
    )
    right = [ex for ex, p in zip(candidates, predicted) if p == ex.answer]
    assert right, "the tiny run answers none of its held-out even_number questions"
    return right[0]


# Fields of metrics.jsonl that depend on the clock, and events that only an interrupted run has.
CLOCK_FIELDS = ("time", "questions_per_s", "tokens_per_s")


def logged_outcomes(path: Path) -> list[dict]:
    """metrics.jsonl without its clock readings and `resumed` events: what training computed."""
    import json

    lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return [{k: v for k, v in e.items() if k not in CLOCK_FIELDS} for e in lines if e["event"] != "resumed"]


def observation(z, task_ids, uncertainty, correct, loss=None):
    """An `Observation` of one hand-made batch, as the curriculum reads it (loss optional)."""
    from acct.losses import Observation

    return Observation(task_ids, correct, uncertainty, loss, None if loss is None else loss.mean(),
                       int(task_ids.max()) + 1, embeddings=z)
