"""A training process under signals and readers: SIGTERM saves `last` and exits 130, and readers
of a run that saves every step always get a consistent checkpoint.

One writer per run directory (a second one refused, the lock freed by SIGKILL) is tested with the
SIGKILLed run of tests/train/test_resume.py.
"""

from __future__ import annotations

import signal
import time

import pytest

from acct import engine
from acct.errors import CheckpointError
from tests.train.test_resume import SMALL_YAML, acct, finish, last_step, wait_for_checkpoint

pytestmark = pytest.mark.slow  # every test here trains a model

ARGS = ["--preset", "tiny", "--device", "cpu", "--max-steps", "4000", "--eval-every-n-steps", "1000",
        "--save-every-n-steps", "1", "--seed", "1"]
READS = 20


@pytest.fixture(scope="module")
def read_while_saving(tmp_path_factory) -> dict:
    """A run saving every step, read by this process meanwhile, then stopped by SIGTERM.

    The reads go on until there were `READS` of them and the writer saved twice since the first.
    """
    run_dir = tmp_path_factory.mktemp("lock") / "run"
    (run_dir.parent / "small.yaml").write_text(SMALL_YAML)
    writer = acct("train", *ARGS, "--config", str(run_dir.parent / "small.yaml"), "--output-dir", str(run_dir))
    ok = changed = 0
    try:
        wait_for_checkpoint(writer, run_dir, 2)
        first_read = last_step(run_dir)
        deadline = time.monotonic() + 120
        while ok + changed < READS or last_step(run_dir) < first_read + 2:
            assert time.monotonic() < deadline, "the writer saved nothing while it was read"
            try:
                run = engine.load_run(run_dir, "last")
                assert run.meta["step"] >= 2
                ok += 1
            except CheckpointError as exc:
                assert "the checkpoint changed while it was being read" in str(exc), exc
                changed += 1
        running_after_reads = writer.poll() is None
        saved_meanwhile = last_step(run_dir)
    finally:
        writer.send_signal(signal.SIGTERM)
        code, out = finish(writer)
    return {"run_dir": run_dir, "ok": ok, "changed": changed, "running_after_reads": running_after_reads,
            "first_read": first_read, "saved_meanwhile": saved_meanwhile, "code": code, "out": out}


def test_readers_get_a_consistent_checkpoint_while_training_saves_every_step(read_while_saving):
    r = read_while_saving
    assert r["running_after_reads"], "training ended before the reads did"
    assert r["ok"] >= READS and r["changed"] == 0
    assert r["saved_meanwhile"] >= r["first_read"] + 2  # the reads overlapped saves
    # Checkpoints a reader held are collected by a later save: only best and last remain.
    steps = [p.name for p in (r["run_dir"] / "checkpoints").iterdir() if p.name.startswith(("step-", ".tmp-", ".stale-"))]
    assert len(steps) <= 2


def test_sigterm_saves_last_and_exits_130(read_while_saving, tmp_path):
    from typer.testing import CliRunner

    from acct.cli import app

    code, out, run_dir = read_while_saving["code"], read_while_saving["out"], read_while_saving["run_dir"]
    assert code == 130, out
    assert "interrupted at step" in out and "acct train --resume" in out
    stopped = last_step(run_dir)
    assert read_while_saving["saved_meanwhile"] <= stopped < 4000
    assert f"interrupted at step {stopped}" in out

    result = CliRunner().invoke(app, ["train", "--resume", str(run_dir), "--max-steps", "10"])
    assert result.exit_code == 2 and "remove --max-steps" in result.output
