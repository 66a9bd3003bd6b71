"""Interruption and resume with real processes: SIGKILL mid-run, SIGTERM, and exact continuation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.conftest import logged_outcomes

ARGS = ["--preset", "tiny", "--device", "cpu", "--max-steps", "40", "--eval-every-n-steps", "20",
        "--save-every-n-steps", "7", "--seed", "1"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def acct(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "acct", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def last_step(run_dir: Path) -> int:
    link = run_dir / "checkpoints" / "last"
    return int(os.readlink(link).split("-")[1]) if link.is_symlink() else -1


def wait_for_checkpoint(proc: subprocess.Popen, run_dir: Path, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while last_step(run_dir) < step:
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.02)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / "last" / "model.safetensors"))


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    code, out = finish(acct("train", *ARGS, "--output-dir", str(full)))
    assert code == 0, out

    proc = acct("train", *ARGS, "--output-dir", str(killed))
    wait_for_checkpoint(proc, killed, 14)  # the second periodic checkpoint
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 14 <= last_step(killed) < 40
    last_step_before = last_step(killed)

    code, out = finish(acct("train", "--resume", str(killed)))
    assert code == 0, out
    assert "resumed from step" in out
    assert logged_outcomes(killed / "metrics.jsonl") == logged_outcomes(full / "metrics.jsonl")
    assert [e["step"] for e in map(json.loads, (killed / "metrics.jsonl").read_text().splitlines())
            if e["event"] == "resumed"] == [last_step_before]
    a, b = weights(full), weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_saves_last_and_exits_130(tmp_path):
    run_dir = tmp_path / "run"
    proc = acct("train", *ARGS, "--output-dir", str(run_dir), "--max-steps", "400")
    wait_for_checkpoint(proc, run_dir, 7)
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc)
    assert code == 130, out
    assert "interrupted at step" in out and "acct train --resume" in out
    stopped = last_step(run_dir)
    assert 7 <= stopped < 400
    assert f"interrupted at step {stopped}" in out

    code, out = finish(acct("train", "--resume", str(run_dir), "--max-steps", "10"))
    assert code == 2 and "remove --max-steps" in out
