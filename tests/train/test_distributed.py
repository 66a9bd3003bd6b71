"""Training under torchrun: 2 CPU processes on gloo, launched with `python -m torch.distributed.run`.

One 2-process reference run (module fixture) is checked four ways: it completes and leaves one
run directory with one checkpoint set, its ranks agree bit for bit (curriculum weights and final
parameters, read from the per-rank trace that ACCT_DEBUG_RANK_DIR turns on), so do the
log-variances of its uncertainty task weighting, and its loss curve matches a single-process
run of the same seed and global batch. A second 2-process run is
stopped by a SIGTERM sent to rank 1 alone, then resumed under torchrun, and must end exactly
where the reference run ended. The in-process tests at the end cover what needs no launcher.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed
from safetensors.torch import load_file

from acct.train import distributed
from acct import engine
from acct.errors import UsageError
from acct.losses import Observation, weighted_info_nce
from acct.train.step import gather_global_batch
from tests.conftest import logged_outcomes

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="this torch build has no gloo backend",
)

STEPS = 20
# Dropout off: two processes draw other dropout masks than one, and the comparison with a single
# process is about the split of the batch, not about random streams. The curriculum acts from
# the start (no warm-up, an update every 4 steps), so its weights steer the sampled batches.
# The uncertainty task weighting: its log-variances are parameters outside the DDP module.
# A one-layer encoder: what is tested is how the batch is split, not what the encoder learns.
CONFIG = """\
model: {dropout: 0.0, tiny: {hidden_size: 32, num_hidden_layers: 1, intermediate_size: 64, vocab_size: 300}}
data: {synthetic_examples_per_task: 32}
curriculum: {warmup_epochs: 0.0, update_every_n_steps: 4}
loss: {task_weighting: uncertainty, task_weighting_options: {lr: 0.05}}
log_every_n_steps: 1
save_every_n_steps: 4
report_to: [tensorboard]
"""
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
       "PYTHONUNBUFFERED": "1"}
# Relative difference allowed between the 1- and 2-process loss at every step. The two runs do
# the same arithmetic in another order (each rank pads its own share, DDP sums two gradient
# halves, the gathered InfoNCE sums in another order), so they stay a few float32 ulps apart
# (at most 4e-7 over the 20 steps here). A wrong normalisation is far larger: without the
# world-size factor on the gathered InfoNCE gradient the curves part by 1e-4 at step 2, by 3e-3
# at step 7 and by 1e-2 at step 10.
LOSS_RTOL = 2e-4
WEIGHTS_ATOL = 1e-4


def train_args(config: Path, output_dir: Path) -> list[str]:
    return ["train", "--preset", "tiny", "--device", "cpu", "--config", str(config), "--seed", "3",
            "--max-steps", str(STEPS), "--eval-every-n-steps", str(STEPS), "--gather-negatives",
            "--output-dir", str(output_dir)]


def launch(args: list[str], trace_dir: Path) -> subprocess.Popen:
    """`python -m torch.distributed.run --standalone --nproc_per_node 2 -m acct ...`, each rank tracing to `trace_dir`."""
    env = {**ENV, distributed.TRACE_ENV: str(trace_dir)}
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return subprocess.Popen([sys.executable, *launcher, "-m", "acct", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"run did not finish in time:\n{out[-3000:]}")
    return proc.returncode, out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def trace(trace_dir: Path, rank: int, event: str) -> list[dict]:
    return [e for e in read_jsonl(trace_dir / f"rank-{rank}.jsonl") if e["event"] == event]


def metrics(run_dir: Path, event: str) -> list[dict]:
    return [e for e in read_jsonl(run_dir / "metrics.jsonl") if e["event"] == event]


def tensorboard_losses(run_dir: Path) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "trackers" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars("train/loss")]


def last_step(run_dir: Path) -> int:
    link = run_dir / "checkpoints" / "last"
    return int(os.readlink(link).split("-")[1]) if link.is_symlink() else -1


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    pytest.importorskip("tensorboard")  # the torchrun runs report to tensorboard (its extra)
    path = tmp_path_factory.mktemp("config") / "distributed.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, config) -> tuple[Path, Path]:
    """(run_dir, trace_dir) of one uninterrupted 2-process run."""
    root = tmp_path_factory.mktemp("torchrun")
    run_dir, trace_dir = root / "run", root / "trace"
    code, out = finish(launch(train_args(config, run_dir), trace_dir))
    assert code == 0, out
    return run_dir, trace_dir


@pytest.mark.slow
def test_two_processes_write_one_run_and_agree_bit_for_bit(reference):
    run_dir, trace_dir = reference
    # One checkpoint set, written by rank 0 alone: eval at the last step makes it best and last.
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best", "last", f"step-{STEPS:08d}"]
    # Rank 0 alone held the run's lock (one lock file, no per-rank files) and reported to the tracker.
    assert sorted(p.name for p in run_dir.iterdir()) == [
        ".acct.lock", "checkpoints", "config.json", "metrics.jsonl", "split.json", "trackers"]
    assert [e["step"] for e in metrics(run_dir, "train")] == list(range(1, STEPS + 1))  # logged once, not per rank
    assert len(list((run_dir / "trackers" / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert tensorboard_losses(run_dir) == [(e["step"], pytest.approx(e["loss"])) for e in metrics(run_dir, "train")]
    assert len(metrics(run_dir, "validation")) == 1
    assert json.loads((run_dir / "config.json").read_text())["loss"]["gather_negatives"] is True
    meta = json.loads((run_dir / "checkpoints" / "last" / "acct.json").read_text())
    assert meta["step"] == STEPS and len(meta["tasks"]) == 8

    started = [trace(trace_dir, r, "started") for r in (0, 1)]
    assert [s[0]["world_size"] for s in started] == [2, 2]
    # Curriculum weights: equal floats (JSON keeps every bit) on both ranks, and what rank 0 logged.
    w0, w1 = trace(trace_dir, 0, "curriculum"), trace(trace_dir, 1, "curriculum")
    assert [e["step"] for e in w0] == list(range(4, STEPS + 1, 4))
    assert w0 == w1
    assert len({tuple(e["weights"]) for e in w0}) > 1, "the curriculum never moved: the test would prove little"
    logged = metrics(run_dir, "curriculum")
    assert [list(e["weights"].values()) for e in logged] == [e["weights"] for e in w0]
    # DDP kept the replicas identical; the saved weights are the inner module's, keys unchanged.
    f0, f1 = trace(trace_dir, 0, "finished"), trace(trace_dir, 1, "finished")
    assert f0[0]["reason"] == f1[0]["reason"] == "completed"
    assert f0[0]["parameters"] == f1[0]["parameters"]
    run = engine.load_run(run_dir, "last")
    assert distributed.parameter_digest(run.model) == f0[0]["parameters"]


@pytest.mark.slow
def test_loss_curve_matches_a_single_process(reference, config, tmp_path):
    from typer.testing import CliRunner

    from acct.cli import app

    run_dir, _ = reference
    single = tmp_path / "single"
    # The single process is this one (the launcher is what the 2-process run is about), on one
    # thread like each rank.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = CliRunner().invoke(app, train_args(config, single))
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output

    one, two = metrics(single, "train"), metrics(run_dir, "train")
    assert [e["step"] for e in one] == [e["step"] for e in two]
    for a, b in zip(one, two):
        for key in ("loss", "cls_loss", "contrastive_loss"):
            assert b[key] == pytest.approx(a[key], rel=LOSS_RTOL), (a["step"], key, a[key], b[key])
        # A mean of 16 booleans: early on, a question's choice scores are nearly tied, and the
        # float noise above may flip one of them, never more.
        assert abs(b["accuracy"] - a["accuracy"]) <= 1 / 16 + 1e-9, a["step"]
    for a, b in zip(metrics(single, "curriculum"), metrics(run_dir, "curriculum"), strict=True):
        assert a["step"] == b["step"]
        assert a["weights"] == pytest.approx(b["weights"], abs=WEIGHTS_ATOL)
    assert metrics(single, "validation")[0]["accuracy"] == metrics(run_dir, "validation")[0]["accuracy"]


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_both_and_resume_under_torchrun_is_exact(reference, config, tmp_path):
    ref_dir, ref_trace = reference
    run_dir, trace_dir = tmp_path / "run", tmp_path / "trace"
    proc = launch(train_args(config, run_dir), trace_dir)
    deadline = time.monotonic() + 240
    while last_step(run_dir) < 4 or len(trace(trace_dir, 1, "started")) < 1:
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.01)
    os.kill(trace(trace_dir, 1, "started")[0]["pid"], signal.SIGTERM)  # rank 1 only
    code, out = finish(proc)
    assert code != 0, out  # torchrun reports its workers' exit 130 as a failure

    f0, f1 = trace(trace_dir, 0, "finished"), trace(trace_dir, 1, "finished")
    assert f0 and f1, out
    assert f0[0]["reason"] == f1[0]["reason"] == "interrupted", out
    stopped = f0[0]["step"]
    assert f1[0]["step"] == stopped and 4 <= stopped < STEPS
    assert last_step(run_dir) == stopped  # saved on the way out

    resumed_trace = tmp_path / "trace-resumed"
    code, out = finish(launch(["train", "--resume", str(run_dir)], resumed_trace))
    assert code == 0, out
    assert f"resumed from step {stopped}" in out
    assert logged_outcomes(run_dir / "metrics.jsonl") == logged_outcomes(ref_dir / "metrics.jsonl")
    # The tracker's run went on in the same folder: every step once, as in metrics.jsonl.
    assert tensorboard_losses(run_dir) == [(e["step"], pytest.approx(e["loss"])) for e in metrics(run_dir, "train")]
    a, b = load_file(str(ref_dir / "checkpoints/last/model.safetensors")), load_file(str(run_dir / "checkpoints/last/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for rank in (0, 1):
        # Each rank got its own RNG stream back, not rank 0's.
        want, got = trace(ref_trace, rank, "finished")[0], trace(resumed_trace, rank, "finished")[0]
        assert (got["parameters"], got["rng"]) == (want["parameters"], want["rng"]), rank
    assert trace(resumed_trace, 0, "finished")[0]["rng"] != trace(resumed_trace, 1, "finished")[0]["rng"]


@pytest.mark.slow
def test_uncertainty_log_variances_are_averaged_like_ddp_and_agree_on_both_ranks(reference):
    """The task weighting's parameters live outside the DDP module: their gradient is all-reduced by acct."""
    run_dir, trace_dir = reference
    # Each rank weights its own half of the batch (other questions, other per-task losses): only
    # the averaged gradient keeps their log-variances equal.
    s0, s1 = (trace(trace_dir, r, "finished")[0]["task_weighting"] for r in (0, 1))
    assert s0 == s1 and len(s0[0]) == 8 and sum(v != 0 for v in s0[0]) >= 4
    saved = load_file(str(run_dir / "checkpoints" / "last" / "state.safetensors"))["weightings.task_parameters.0"]
    assert saved.tolist() == s0[0]


# -- in-process: no launcher needed ---------------------------------------------------------------


def test_a_single_process_joins_no_process_group(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.launched() == (0, 1, 0)
    assert distributed.init("cpu") is distributed.SINGLE
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node 1
    assert distributed.init("cpu") is distributed.SINGLE
    assert not torch.distributed.is_initialized()


def test_inconsistent_launcher_environment_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UsageError, match="inconsistent launcher environment"):
        distributed.launched()


def test_global_batch_must_split_evenly_over_the_processes(monkeypatch, tmp_path):
    from tests.conftest import tiny_settings

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    settings = tiny_settings(tmp_path / "r", **{"batch.tasks_per_batch": 3, "batch.examples_per_task": 3})
    with pytest.raises(UsageError, match="global batch of 9 questions .* does not split evenly over 2 processes"):
        next(engine.train(settings))
    assert not torch.distributed.is_initialized() and not (tmp_path / "r").exists()


class FakeRank(distributed.Distributed):
    """One rank of a simulated job: all_gather_rows reads the other ranks' rows from `shared`."""

    def __init__(self, rank: int, world_size: int, shared: dict):
        super().__init__(rank=rank, world_size=world_size)
        self.shared = shared

    def all_gather_rows(self, x):
        self.shared[self.rank] = x.detach()
        if len(self.shared) < self.world_size:  # recording pass: right shape, values unused
            return torch.cat([x] * self.world_size)
        return torch.cat([x if r == self.rank else self.shared[r] for r in range(self.world_size)])

    def all_gather_object(self, obj):
        self.shared[self.rank] = obj
        return [self.shared[r] for r in range(self.world_size)]


def test_gathered_info_nce_gives_the_single_process_gradient_after_ddp_averaging():
    """Each rank back-propagates the global InfoNCE into its own rows; DDP's mean then equals one process."""
    torch.manual_seed(0)
    world, batch, dim = 3, 12, 8
    x = torch.randn(batch, dim, dtype=torch.float64)
    tasks = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    u = torch.rand(batch, dtype=torch.float64)
    weight = torch.randn(dim, dim, dtype=torch.float64)

    def embed(w, rows):
        return torch.nn.functional.normalize(x[rows] @ w, dim=-1)

    w_single = weight.clone().requires_grad_()
    single = weighted_info_nce(embed(w_single, slice(None)), tasks, u)
    (want,) = torch.autograd.grad(single, w_single)

    shared: dict = {}
    ranks = [FakeRank(r, world, shared) for r in range(world)]
    replicas = [weight.clone().requires_grad_() for _ in ranks]

    def gathered(r):
        rows = slice(r, None, world)
        z = embed(replicas[r], rows).float()
        share = Observation(tasks[rows], tasks[rows] == 0, u[rows].float(), 2 * u[rows].float(), u[rows].mean(), 4)
        return gather_global_batch(ranks[r], share, z, grad=True)

    for r in range(world):
        gathered(r)  # every rank's rows are known after this pass
    grads = []
    for r in range(world):
        everyone = gathered(r)
        z, t, uu, correct, loss = everyone.embeddings, everyone.task_ids, everyone.uncertainty, everyone.correct, everyone.loss
        assert torch.equal(t, tasks) and torch.equal(correct, tasks == 0)  # back in the sampler's order
        assert torch.equal(loss, 2 * u.float())
        assert torch.allclose(z.double(), embed(weight, slice(None)), atol=1e-6)
        loss = weighted_info_nce(z, t, uu)
        assert loss.item() == pytest.approx(single.item(), rel=1e-5)
        grads.append(torch.autograd.grad(loss, replicas[r])[0])
    ddp_mean = torch.stack(grads).mean(0)
    assert torch.allclose(ddp_mean, want, rtol=1e-4, atol=1e-6), (ddp_mean - want).abs().max()


def test_sharded_evaluation_is_reassembled_in_order_without_duplicates():
    total, world = 11, 3
    items = list(range(total))
    shared: dict = {}
    ranks = [FakeRank(r, world, shared) for r in range(world)]
    for r in ranks:
        shared[r.rank] = items[r.rank :: world]
    assert ranks[0].gather_strided(items[0::world], total) == items
