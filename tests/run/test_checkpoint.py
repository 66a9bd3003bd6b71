"""Checkpoints: atomic writes, bounded disk use, safe loading and clear errors on damage."""

from __future__ import annotations

import os
import pickle
import shutil

import pytest
import torch

from acct.run import checkpoint as ckpt_io
from acct import engine
from acct.errors import CheckpointError, UsageError
from tests.conftest import run_to_end, tiny_settings


def copy_run(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return dst


def test_state_round_trip_keeps_tensors_and_plain_values(tmp_path):
    state = {"a": torch.arange(3), "nested": {"x": [1, 2.5, None, "s", torch.ones(2)], "flag": True}}
    ckpt_io.save_state(tmp_path, "state", state)
    back = ckpt_io.load_state(tmp_path, "state")
    assert torch.equal(back["a"], state["a"]) and torch.equal(back["nested"]["x"][4], torch.ones(2))
    assert back["nested"]["x"][:4] == [1, 2.5, None, "s"] and back["nested"]["flag"] is True


@pytest.mark.slow
def test_only_best_and_last_are_kept(tmp_path):
    run_dir = tmp_path / "r"
    run_to_end(tiny_settings(run_dir, **{"optim.max_steps": 12, "eval_every_n_steps": 100, "save_every_n_steps": 3}))
    steps = sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("step-"))
    linked = {os.readlink(run_dir / "checkpoints" / t) for t in ("best", "last")}
    assert set(steps) == linked and os.readlink(run_dir / "checkpoints" / "last") == "step-00000012"
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_a_save_that_dies_midway_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    run_dir = tmp_path / "r"
    settings = tiny_settings(run_dir, **{"optim.max_steps": 20, "eval_every_n_steps": 100, "save_every_n_steps": 5})
    events = engine.train(settings)
    for ev in events:
        if isinstance(ev, engine.CheckpointSaved) and ev.step == 5:
            break

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process were stopped while writing optimizer.pt

    monkeypatch.setattr(ckpt_io.torch, "save", die)
    with pytest.raises(KeyboardInterrupt):
        for _ in events:
            pass
    assert os.readlink(run_dir / "checkpoints" / "last") == "step-00000005"
    run = engine.load_run(run_dir, "last")
    assert run.meta["step"] == 5


def test_truncated_weights_are_a_clear_error(tiny_run, tmp_path):
    run_dir = copy_run(tiny_run, tmp_path / "r")
    weights = run_dir / "checkpoints" / "best" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        engine.load_run(run_dir, "best")


def test_mismatched_architecture_is_a_clear_error(tiny_run, tmp_path):
    run_dir = copy_run(tiny_run, tmp_path / "r")
    config = run_dir / "checkpoints" / "best" / "encoder" / "config.json"
    config.write_text(config.read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 3'))
    with pytest.raises(CheckpointError, match="do not match the model architecture"):
        engine.load_run(run_dir, "best")


def test_task_list_that_disagrees_with_the_head_is_refused(tiny_run, tmp_path):
    import json

    run_dir = copy_run(tiny_run, tmp_path / "r")
    meta_path = run_dir / "checkpoints" / "best" / "acct.json"
    meta = json.loads(meta_path.read_text())
    meta["tasks"] = meta["tasks"][:-1]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="tasks"):
        engine.load_run(run_dir, "best")


class Payload:
    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_payload_in_a_state_file_is_refused_not_run(tiny_run, tmp_path):
    run_dir = copy_run(tiny_run, tmp_path / "r")
    marker = tmp_path / "pwned"
    Payload.marker = marker
    (run_dir / "checkpoints" / "last" / "optimizer.pt").write_bytes(pickle.dumps({"state": Payload()}))
    with pytest.raises(CheckpointError, match="refusing to load"):
        ckpt_io.load_optimizer_state(run_dir / "checkpoints" / "last")
    with pytest.raises(CheckpointError, match="refusing to load"):
        run_to_end(tiny_settings(run_dir).model_copy(update={"resume": True}))
    assert not marker.exists()


def test_missing_run_dir_and_non_run_dir(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        ckpt_io.checkpoint_dir(tmp_path / "nope")
    with pytest.raises(UsageError, match="not an acct run directory"):
        ckpt_io.checkpoint_dir(tmp_path)
