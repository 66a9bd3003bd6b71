"""What a run carries from one step to the next, and how a checkpoint saves and restores it.

`TrainState` is the loop's own bookkeeping (step, best accuracy and step, the patience counter,
questions drawn per task, the unlogged metrics window, this rank's RNG streams).
`checkpoint_state` packs it with the optimizer's schedule, the curriculum, the loss weightings
and the sampler into the checkpoint's state; `restore` reads the same layout back, so save and
resume are one pair.

Rank-local state (RNG streams, the unlogged metrics window) is saved for every rank: rank 0's
at the top level, ranks 1.. under "ranks".
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from acct.curriculum.curriculum import Curriculum
from acct.data.batching import TaskBatchSampler
from acct.run import checkpoint as ckpt_io
from acct.run.rundir import MetricsLog
from acct.train import distributed
from acct.train.device import seed_everything
from acct.train.step import Optimization, Weightings


def rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": json.dumps(random.getstate())}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


@dataclass
class MetricsWindow:
    """What is summed on the device between two logged lines; read only at log time."""

    sums: torch.Tensor  # loss, cls, contrastive, correct
    skipped: torch.Tensor  # non-finite steps skipped so far
    streak: torch.Tensor  # consecutive non-finite steps
    questions: int = 0
    tokens: int = 0
    # Throughput counts training time only: validation and checkpoint time is paused out.
    start: float = 0.0
    paused: float = 0.0

    @classmethod
    def zeros(cls, device: torch.device) -> MetricsWindow:
        return cls(torch.zeros(4, device=device), torch.zeros((), device=device), torch.zeros((), device=device))

    def add_step(self, step_sums: torch.Tensor, found_inf: torch.Tensor) -> None:
        self.sums += step_sums
        self.skipped += found_inf
        self.streak = (self.streak + 1) * found_inf

    def restart(self, now: float) -> None:
        """Clear what was logged; the running counts of skipped steps stay."""
        self.sums.zero_()
        self.questions = self.tokens = 0
        self.start, self.paused = now, 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"sums": self.sums.cpu(), "skipped": self.skipped.cpu(), "streak": self.streak.cpu(),
                "questions": self.questions, "tokens": self.tokens}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.sums.device
        self.sums, self.skipped, self.streak = (state[k].to(device) for k in ("sums", "skipped", "streak"))
        self.questions, self.tokens = int(state["questions"]), int(state["tokens"])


@dataclass
class TrainState:
    """The loop's bookkeeping; `state_dict` holds what every rank shares, `rank_state` what is this rank's own."""

    window: MetricsWindow
    sampled: list[int]  # questions drawn per task since the last curriculum event (over the global batch)
    step: int = 0
    best_accuracy: float | None = None
    best_step: int | None = None
    bad_evals: int = 0  # validations in a row without improvement (the patience counter)

    @classmethod
    def start(cls, num_tasks: int, device: torch.device) -> TrainState:
        return cls(MetricsWindow.zeros(device), [0] * num_tasks)

    def validated(self, accuracy: float) -> bool:
        """Record a validation accuracy; whether it is the best so far."""
        improved = self.best_accuracy is None or accuracy > self.best_accuracy
        if improved:
            self.best_accuracy, self.best_step, self.bad_evals = accuracy, self.step, 0
        else:
            self.bad_evals += 1
        return improved

    def take_sampled(self) -> list[int]:
        """The per-task counts since the last curriculum event, starting a new count."""
        sampled, self.sampled = self.sampled, [0] * len(self.sampled)
        return sampled

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "best_accuracy": self.best_accuracy, "best_step": self.best_step,
                "bad_evals": self.bad_evals, "sampled": list(self.sampled)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.best_accuracy, self.best_step, self.bad_evals = state["best_accuracy"], state["best_step"], state["bad_evals"]
        saved_sampled = state.get("sampled")
        if saved_sampled is not None and len(saved_sampled) == len(self.sampled):
            self.sampled = [int(n) for n in saved_sampled]

    def rank_state(self, device: torch.device) -> dict[str, Any]:
        return {"rng": rng_state(device), "window": self.window.state_dict()}


@dataclass
class Resumable:
    """The training parts whose state a checkpoint carries besides the model's weights."""

    opt: Optimization
    curriculum: Curriculum
    weightings: Weightings
    sampler: TaskBatchSampler


def checkpoint_state(
    state: TrainState, parts: Resumable, everyone: list[dict[str, Any]], metrics_bytes: int, world_size: int,
) -> dict[str, Any]:
    """The checkpoint's training state; `everyone` is every rank's `rank_state`, gathered to rank 0."""
    shared = state.state_dict()
    return {
        "trainer": {
            **{k: shared[k] for k in ("step", "best_accuracy", "best_step", "bad_evals")},
            **parts.opt.state_dict(),
            "metrics_bytes": metrics_bytes,
            "window": everyone[0]["window"],
            "sampled": shared["sampled"],
        },
        "curriculum": parts.curriculum.state_dict(),
        "weightings": parts.weightings.state_dict(),
        "sampler": parts.sampler.state_dict(),
        "rng": everyone[0]["rng"],
        "world_size": world_size,
        "ranks": everyone[1:],  # ranks 1.. of a torchrun job: their RNG streams and windows
    }


def restore(
    ckpt: Path, state: TrainState, parts: Resumable, log: MetricsLog, dist: distributed.Distributed,
    device: torch.device, seed: int,
) -> list[str]:
    """Load the training state saved in `ckpt` in place: the loop's state, optimizer, schedule,
    scaler, curriculum, weightings, sampler, RNG streams; cut metrics.jsonl back to the
    checkpoint. Returns notices."""
    saved = ckpt_io.load_state(ckpt, "state")
    parts.opt.optimizer.load_state_dict(ckpt_io.load_optimizer_state(ckpt))
    trainer = saved["trainer"]
    parts.opt.load_state_dict(trainer)
    parts.curriculum.load_state_dict(saved["curriculum"])
    if not dist.is_main:
        # The saved windows are rank 0's, the only rank that observes; the others contribute
        # zeros to the all-reduce, so loading rank 0's windows here would count them twice.
        for pending in parts.curriculum.pending_tensors():
            pending.zero_()
    parts.sampler.load_state_dict(saved["sampler"])
    state.load_state_dict(trainer)
    step = state.step
    notices = []
    # Rank-local state (RNG streams, the unlogged metrics window) is saved for every rank.
    ranks = [{"rng": saved["rng"], "window": trainer["window"]}, *saved.get("ranks", [])]
    saved_world = int(saved.get("world_size", 1))
    if saved_world == dist.world_size:
        set_rng_state(ranks[dist.rank]["rng"], device)
        window = ranks[dist.rank]["window"]
    else:
        # Rank 0 keeps its stream; the others cannot have theirs. The half-filled metrics
        # window is shared out as its mean, so the next logged averages stay right.
        if dist.rank == 0:
            set_rng_state(saved["rng"], device)
        else:
            seed_everything(distributed.rank_seed(seed, dist.rank, step))
        window = {
            **trainer["window"],
            "sums": torch.stack([r["window"]["sums"] for r in ranks]).mean(0),
            "questions": 0,
            "tokens": 0,
        }
        notices.append(
            f"checkpoint written by {saved_world} process(es), resumed by {dist.world_size}: training continues "
            "with the same global batch, but dropout draws differ from an uninterrupted run"
        )
    state.window.load_state_dict(window)
    lost = log.restore(trainer["metrics_bytes"], step)
    if lost:
        notices.append(lost)
    notices.append(f"resumed from step {step} ({ckpt.name})")
    parts.weightings.load_state_dict(saved.get("weightings", {}))
    return notices
