"""Interruption and resume: a real process SIGKILLed mid-run (and the lock it held) and resumed exactly,
then each component that keeps state, interrupted and resumed in this process. SIGTERM: test_run_lock.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import SMALL_MODEL, SMALL_MODEL_YAML, logged_outcomes

pytestmark = pytest.mark.slow  # every test here trains a model

# The killed run is stopped (SIGSTOP) once its third periodic checkpoint is written, after the first
# log line (step 10), so that what happens while it holds the run directory does not race its end;
# 16 steps are left to run.
ARGS = ["--preset", "tiny", "--device", "cpu", "--max-steps", "28", "--eval-every-n-steps", "14",
        "--save-every-n-steps", "4", "--seed", "1"]
# What is tested is the processes, not what the encoder learns: a one-layer encoder on 24 questions a task.
SMALL_YAML = SMALL_MODEL_YAML + """\
data: {synthetic_examples_per_task: 24}
"""
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
        time.sleep(0.01)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / "last" / "model.safetensors"))


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory) -> dict:
    """A run SIGKILLed after its third periodic checkpoint and resumed, and the same run uninterrupted.

    While the first process holds the run directory (stopped, so it cannot finish meanwhile), a
    second writer is started in this test process, once resuming and once overwriting: both
    must be refused at once. Then the holder is killed, and this process trains the uninterrupted
    run and resumes the killed one (on one thread, like the child).
    """
    from typer.testing import CliRunner

    from acct.cli import app

    root = tmp_path_factory.mktemp("killed")
    full, killed = root / "full", root / "killed"
    (root / "small.yaml").write_text(SMALL_YAML)
    args = [*ARGS, "--config", str(root / "small.yaml")]
    first = acct("train", *args, "--output-dir", str(killed))
    refusals = []
    try:
        wait_for_checkpoint(first, killed, 12)
        first.send_signal(signal.SIGSTOP)
        for argv in (["train", "--resume", str(killed)],
                     ["train", *args, "--output-dir", str(killed), "--overwrite"]):
            started = time.monotonic()
            result = CliRunner().invoke(app, argv)
            refusals.append((result.exit_code, result.output, time.monotonic() - started, first.poll()))
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    stopped = last_step(killed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        uninterrupted = CliRunner().invoke(app, ["train", *args, "--output-dir", str(full)])
        resumed = CliRunner().invoke(app, ["train", "--resume", str(killed)])
    finally:
        torch.set_num_threads(threads)
    return {"full": full, "killed": killed, "holder": first.pid, "refusals": refusals, "stopped": stopped,
            "uninterrupted": (uninterrupted.exit_code, uninterrupted.output),
            "resumed": (resumed.exit_code, resumed.output)}


def test_a_second_writer_fails_at_once_while_a_process_holds_the_run(killed_then_resumed):
    holder = killed_then_resumed["holder"]
    assert len(killed_then_resumed["refusals"]) == 2
    for code, out, seconds, holder_exit in killed_then_resumed["refusals"]:
        assert code == 2, out
        assert f"in use by another acct process (pid {holder} on host {socket.gethostname()})" in out, out
        assert seconds < 60
        assert holder_exit is None  # the holder is untouched


def test_sigkill_frees_the_lock_and_the_resume_matches_an_uninterrupted_run(killed_then_resumed):
    full, killed, stopped = killed_then_resumed["full"], killed_then_resumed["killed"], killed_then_resumed["stopped"]
    code, out = killed_then_resumed["uninterrupted"]
    assert code == 0, out
    assert 12 <= stopped < 28
    # The lock died with its process: a resume takes it and trains to the end.
    code, out = killed_then_resumed["resumed"]
    assert code == 0, out
    assert f"resumed from step {stopped}" in out
    assert logged_outcomes(killed / "metrics.jsonl") == logged_outcomes(full / "metrics.jsonl")
    assert [e["step"] for e in map(json.loads, (killed / "metrics.jsonl").read_text().splitlines())
            if e["event"] == "resumed"] == [stopped]
    a, b = weights(full), weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# Every component that keeps state between steps, interrupted mid-run and resumed through the CLI.
STATEFUL = {
    # the bandit's Q-values, loss EMAs and rewards (curriculum state), updated every 2 steps
    "learning_progress": {"curriculum.strategy": "learning_progress"},
    # DWA's loss history, stopped in the middle of a window of 2 batches
    "dwa": {"curriculum.strategy": "uniform", "loss.task_weighting": "dwa", "loss.task_weighting_options": {"window": 2}},
    # the learned log-variances and their AdamW moments
    "uncertainty": {"curriculum.strategy": "uniform", "loss.task_weighting": "uncertainty",
                    "loss.task_weighting_options": {"lr": 0.05}},
}
SMALL = {
    "data.synthetic_examples_per_task": 24,
    "model.tiny": SMALL_MODEL,
    "optim.max_steps": 8, "eval_every_n_steps": 4, "log_every_n_steps": 1,
    "curriculum.update_every_n_steps": 2, "curriculum.warmup_epochs": 0.0, "seed": 2,
}


@pytest.mark.parametrize("component", sorted(STATEFUL))
def test_an_interrupted_run_resumes_each_stateful_component_exactly(component, tmp_path):
    from typer.testing import CliRunner

    from acct import engine
    from acct.run.checkpoint import load_state
    from acct.cli import app
    from tests.conftest import run_to_end, tiny_settings

    flags = {**SMALL, **STATEFUL[component]}
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    run_to_end(tiny_settings(full, **flags))
    # Stopped after step 5 (after two bandit updates, in the middle of a DWA window), as the CLI
    # stops on SIGTERM: the engine's should_stop, then a 'last' checkpoint.
    polls = iter(range(100))
    events = list(engine.train(tiny_settings(stopped, **flags), should_stop=lambda: next(polls) >= 4))
    assert events[-1].reason == "interrupted" and events[-1].step == 5 and last_step(stopped) == 5

    result = CliRunner().invoke(app, ["train", "--resume", str(stopped)])
    assert result.exit_code == 0, result.output
    assert "resumed from step 5" in result.output
    assert logged_outcomes(stopped / "metrics.jsonl") == logged_outcomes(full / "metrics.jsonl")
    a, b = weights(full), weights(stopped)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    saved = {d: load_state(d / "checkpoints" / "last", "state") for d in (full, stopped)}
    for part in ("curriculum", "weightings"):
        assert json.dumps(saved[full][part], default=torch.Tensor.tolist) == json.dumps(saved[stopped][part], default=torch.Tensor.tolist)
    # The state under test is there and has moved: the test compares something.
    state = saved[full]
    if component == "learning_progress":
        assert any(state["curriculum"]["strategy_state"]["rewarded"])
    elif component == "dwa":
        assert any(state["weightings"]["task"]["has_before"])
    else:
        assert state["weightings"]["task_parameters"][0].abs().min() > 0


def test_a_resumed_run_keeps_its_patience_counter(tmp_path):
    """Early stopping counts the validations without improvement across an interruption.

    The learning rate is too small to change a prediction, so every validation after the first
    is one without improvement: with patience 2 the run stops at step 6 (validations at 2, 4, 6).
    Stopped after step 5 (one bad validation counted), the resumed run must stop at step 6 too,
    not count afresh and stop at step 8.
    """
    from typer.testing import CliRunner

    from acct import engine
    from acct.run.checkpoint import load_state
    from acct.cli import app
    from tests.conftest import run_to_end, tiny_settings

    flags = {**SMALL, "optim.max_steps": 12, "eval_every_n_steps": 2, "patience": 2, "optim.lr": 1e-12}
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    finished = run_to_end(tiny_settings(full, **flags))[-1]
    assert (finished.reason, finished.step) == ("early_stopping", 6)

    polls = iter(range(100))
    events = list(engine.train(tiny_settings(stopped, **flags), should_stop=lambda: next(polls) >= 4))
    assert (events[-1].reason, events[-1].step) == ("interrupted", 5)
    assert load_state(stopped / "checkpoints" / "last", "state")["trainer"]["bad_evals"] == 1

    result = CliRunner().invoke(app, ["train", "--resume", str(stopped)])
    assert result.exit_code == 0, result.output
    validations = [e["step"] for e in logged_outcomes(stopped / "metrics.jsonl") if e["event"] == "validation"]
    assert validations == [2, 4, 6]
    assert logged_outcomes(stopped / "metrics.jsonl") == logged_outcomes(full / "metrics.jsonl")
