"""Provenance: the block in config.json, UTC times and throughput in metrics.jsonl, the resumed event."""

from __future__ import annotations

import json
import platform
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import torch
import transformers

from acct import __version__, engine
from acct.run import provenance
from tests.conftest import run_to_end, tiny_settings


def _utc(stamp: str) -> datetime:
    assert stamp.endswith("Z"), stamp
    return datetime.fromisoformat(stamp[:-1]).replace(tzinfo=timezone.utc)


def _lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def interrupted_then_resumed(tmp_path_factory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("prov") / "run"
    settings = tiny_settings(run_dir, **{"optim.max_steps": 6, "eval_every_n_steps": 3, "log_every_n_steps": 2})
    began = datetime.now(timezone.utc)
    events = list(engine.train(settings, should_stop=lambda: True))  # stops after the first step, saving 'last'
    assert events[-1].reason == "interrupted"
    first = json.loads((run_dir / "config.json").read_text())
    run_to_end(settings.model_copy(update={"resume": True}))
    return run_dir, {"first": first, "began": began}


@pytest.mark.slow
def test_config_json_has_a_provenance_block_beside_the_settings(interrupted_then_resumed):
    run_dir, seen = interrupted_then_resumed
    saved = json.loads((run_dir / "config.json").read_text())
    block = saved["provenance"]
    assert block["acct"] == __version__ and block["python"] == platform.python_version()
    assert block["torch"] == torch.__version__ and block["transformers"] == transformers.__version__
    assert block["datasets"] and block["hostname"] == socket.gethostname() and block["world_size"] == 1
    assert block["command"] == sys.argv
    assert seen["began"] - timedelta(seconds=1) <= _utc(block["started_at"]) <= datetime.now(timezone.utc)
    assert "cuda" not in block  # a CPU run
    assert saved == seen["first"]  # the resume leaves the run's own provenance alone
    # The settings still load, and a resume accepted the file (the run finished).
    settings = engine.load_run_settings(run_dir)
    assert settings.optim.max_steps == 6 and not hasattr(settings, "provenance")


@pytest.mark.slow
def test_every_metrics_line_is_timestamped_and_train_lines_have_throughput(interrupted_then_resumed):
    run_dir, seen = interrupted_then_resumed
    lines = _lines(run_dir)
    times = [_utc(e["time"]) for e in lines]
    assert times == sorted(times) and times[0] >= seen["began"] - timedelta(seconds=1)
    train = [e for e in lines if e["event"] == "train"]
    assert [e["step"] for e in train] == [2, 4, 6]
    assert all(e["questions_per_s"] > 0 and e["tokens_per_s"] > e["questions_per_s"] for e in train)


@pytest.mark.slow
def test_resume_appends_a_resumed_event_with_its_own_provenance(interrupted_then_resumed):
    run_dir, seen = interrupted_then_resumed
    lines = _lines(run_dir)
    resumed = [e for e in lines if e["event"] == "resumed"]
    assert len(resumed) == 1 and resumed[0]["step"] == 1
    block = resumed[0]["provenance"]
    assert block["started_at"] > seen["first"]["provenance"]["started_at"]
    assert set(block) == set(seen["first"]["provenance"])
    # It follows what the first process logged up to its checkpoint and precedes the rest.
    kinds = [e["event"] for e in lines]
    assert kinds.index("resumed") < kinds.index("train")


def test_git_commit_and_dirty_flag(tmp_path, monkeypatch):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.txt").write_text("one\n")
    subprocess.run([*git, "-C", str(tmp_path), "add", "a.txt"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "one"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    monkeypatch.chdir(tmp_path)
    assert provenance.collect()["git"] == {"commit": head, "dirty": False}
    (tmp_path / "a.txt").write_text("two\n")
    assert provenance.collect()["git"] == {"commit": head, "dirty": True}
    outside = tmp_path.parent / "not-a-repo"
    outside.mkdir(exist_ok=True)
    assert provenance.git_state(outside) is None
