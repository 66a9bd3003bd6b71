"""One writer per run directory and consistent readers, across real processes."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.test_resume import ENV, acct, finish, last_step, wait_for_checkpoint

pytestmark = pytest.mark.slow  # every test here trains a model

ARGS = ["--preset", "tiny", "--device", "cpu", "--max-steps", "4000", "--eval-every-n-steps", "1000",
        "--save-every-n-steps", "2", "--seed", "1"]


def test_a_second_writer_fails_at_once_and_sigkill_frees_the_lock(tmp_path):
    run_dir = tmp_path / "run"
    first = acct("train", *ARGS, "--output-dir", str(run_dir))
    try:
        wait_for_checkpoint(first, run_dir, 2)
        for argv in (["train", "--resume", str(run_dir)],
                     ["train", *ARGS, "--output-dir", str(run_dir), "--overwrite"]):
            started = time.monotonic()
            code, out = finish(acct(*argv))
            assert code == 2, out
            assert f"in use by another acct process (pid {first.pid} on host {socket.gethostname()})" in out, out
            assert time.monotonic() - started < 60
            assert first.poll() is None  # the holder is untouched
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    stopped = last_step(run_dir)
    assert stopped >= 2
    # The lock died with its process: a resume takes it and trains on.
    resumed = acct("train", "--resume", str(run_dir))
    wait_for_checkpoint(resumed, run_dir, stopped + 2)
    resumed.send_signal(signal.SIGTERM)
    code, out = finish(resumed)
    assert code == 130, out
    assert f"resumed from step {stopped}" in out


READER = """
import sys
from acct import engine
from acct.errors import CheckpointError
ok = changed = 0
for _ in range(int(sys.argv[2])):
    try:
        run = engine.load_run(sys.argv[1], "last")
        assert run.meta["step"] >= 2
        ok += 1
    except CheckpointError as exc:
        assert "the checkpoint changed while it was being read" in str(exc), exc
        changed += 1
print(ok, changed)
"""


def test_readers_get_a_consistent_checkpoint_while_training_saves_every_step(tmp_path):
    run_dir = tmp_path / "run"
    writer = acct("train", *ARGS, "--output-dir", str(run_dir), "--save-every-n-steps", "1")
    try:
        wait_for_checkpoint(writer, run_dir, 2)
        reader = subprocess.run([sys.executable, "-c", READER, str(run_dir), "20"], env=ENV, capture_output=True,
                                text=True, timeout=600)
        assert writer.poll() is None, "training ended before the readers did"
        saved_meanwhile = last_step(run_dir)
    finally:
        writer.send_signal(signal.SIGTERM)
        finish(writer)
    assert reader.returncode == 0, reader.stderr
    ok, changed = map(int, reader.stdout.split())
    assert ok == 20 and changed == 0
    assert saved_meanwhile > 2
    # Checkpoints a reader held are collected by a later save: only best and last remain.
    steps = [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(("step-", ".tmp-", ".stale-"))]
    assert len(steps) <= 2
