"""What the curriculum tracks while a run trains: the inter-task confusion in embedding space
(`ConfusionTracker`) and per-task error rate, uncertainty and loss (`TaskStats`), each an EMA over
windows that a checkpoint carries for a bit-exact resume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from acct.errors import CheckpointError, UsageError

if TYPE_CHECKING:
    pass


def _accumulator_dtype(device: torch.device) -> torch.dtype:
    # Windows can sum many thousands of pair values; fp64 keeps the sums exact enough, except
    # on backends without fp64.
    return torch.float32 if device.type == "mps" else torch.float64


def _check_decay(decay: float) -> None:
    if not 0.0 <= decay < 1.0:
        raise UsageError(f"decay must be in [0, 1), got {decay}")


def check_num_tasks(num_tasks: int) -> None:
    if num_tasks < 1:
        raise UsageError(f"num_tasks must be at least 1, got {num_tasks}")


def load_tensor(state: dict[str, Any], key: str, like: Tensor, owner: str) -> Tensor:
    if key not in state:
        raise CheckpointError(f"{owner} state is missing '{key}'")
    value = torch.as_tensor(state[key])
    if tuple(value.shape) != tuple(like.shape):
        raise CheckpointError(
            f"{owner} state '{key}' has shape {tuple(value.shape)}, "
            f"expected {tuple(like.shape)} (different number of tasks?)"
        )
    return value.to(device=like.device, dtype=like.dtype).clone()


class ConfusionTracker:
    """Exponential moving average of how alike the embeddings of different tasks look.

    For every cross-task pair of items in a batch the value max(0, cos) * (u_i + u_j) / 2 is
    accumulated per task pair into `pending_sum` / `pending_count` (public so a distributed
    trainer can all-reduce them); `fold()` turns the window's per-pair means into the EMA.
    """

    def __init__(self, num_tasks: int, decay: float = 0.9) -> None:
        check_num_tasks(num_tasks)
        _check_decay(decay)
        self.num_tasks = num_tasks
        self.decay = decay
        device = torch.device("cpu")
        acc = _accumulator_dtype(device)
        self.matrix = torch.zeros(num_tasks, num_tasks, dtype=torch.float32)
        self.seen = torch.zeros(num_tasks, num_tasks, dtype=torch.bool)
        self.pending_sum = torch.zeros(num_tasks, num_tasks, dtype=acc)
        self.pending_count = torch.zeros(num_tasks, num_tasks, dtype=acc)

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    def to(self, device: torch.device | str) -> ConfusionTracker:
        """Move all state to `device` (observe does this on its own).

        The copies are made outside inference mode even when called inside it (as observe may
        be, during an evaluation): state made there would be inference tensors, which `fold()`
        and training could no longer update in place.
        """
        device = torch.device(device)
        acc = _accumulator_dtype(device)
        with torch.inference_mode(False):
            self.matrix = self.matrix.to(device)
            self.seen = self.seen.to(device)
            self.pending_sum = self.pending_sum.to(device=device, dtype=acc)
            self.pending_count = self.pending_count.to(device=device, dtype=acc)
        return self

    def pending_tensors(self) -> list[Tensor]:
        """The window accumulators, to be summed across ranks before `fold()`."""
        return [self.pending_sum, self.pending_count]

    def observe(self, z: Tensor, task_ids: Tensor, uncertainty: Tensor) -> None:
        """Accumulate the cross-task pairs of one batch; no host synchronisation."""
        if z.dim() != 2 or task_ids.shape != (z.shape[0],) or uncertainty.shape != (z.shape[0],):
            raise UsageError(
                f"observe expects z [B, D], task_ids [B], uncertainty [B]; got "
                f"{tuple(z.shape)}, {tuple(task_ids.shape)}, {tuple(uncertainty.shape)}"
            )
        if z.device != self.device:
            self.to(z.device)
        acc = self.pending_sum.dtype
        z = torch.nn.functional.normalize(z.detach().to(acc), dim=-1)
        u = uncertainty.detach().to(device=z.device, dtype=acc)
        tasks = task_ids.detach().to(device=z.device, dtype=torch.long)

        cross = (tasks[:, None] != tasks[None, :]).to(acc)
        values = z.matmul(z.T).clamp(min=0.0) * (u[:, None] + u[None, :]) * 0.5 * cross
        # One-hot rows let two matmuls sum item pairs into task pairs; both (i, j) and (j, i)
        # are in `values`, so the result is symmetric.
        onehot = torch.zeros(tasks.shape[0], self.num_tasks, dtype=acc, device=z.device)
        onehot.scatter_(1, tasks[:, None], 1.0)
        self.pending_sum += onehot.T.matmul(values).matmul(onehot)
        self.pending_count += onehot.T.matmul(cross).matmul(onehot)

    def fold(self) -> None:
        """Fold the window's per-pair means into the EMA and clear the window."""
        has = self.pending_count > 0
        mean = (self.pending_sum / self.pending_count.clamp(min=1.0)).to(torch.float32)
        blended = self.decay * self.matrix + (1.0 - self.decay) * mean
        # A pair's first observation starts its EMA instead of being pulled toward zero.
        updated = torch.where(self.seen, blended, mean)
        self.matrix = torch.where(has, updated, self.matrix)
        self.seen = self.seen | has
        self.pending_sum.zero_()
        self.pending_count.zero_()

    def task_scores(self) -> Tensor:
        """c_t: mean confusion of task t with the other tasks, over the pairs seen so far.

        Pairs never observed are left out rather than counted as zero, so a task that has
        simply met fewer partners yet is not ranked as less confused. A task with no observed
        pair scores 0; `task_seen()` tells which those are.
        """
        seen = self.seen.to(self.matrix.dtype)
        total = (self.matrix * seen).sum(dim=1)
        return total / seen.sum(dim=1).clamp(min=1.0)

    def task_seen(self) -> Tensor:
        """[T] bool: whether task t has been observed against at least one other task."""
        return self.seen.any(dim=1)

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "matrix": self.matrix.detach().cpu().clone(),
            "seen": self.seen.cpu().clone(),
            "pending_sum": self.pending_sum.cpu().clone(),
            "pending_count": self.pending_count.cpu().clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        name = "confusion tracker"
        self.matrix = load_tensor(state, "matrix", self.matrix, name)
        self.seen = load_tensor(state, "seen", self.seen, name)
        self.pending_sum = load_tensor(state, "pending_sum", self.pending_sum, name)
        self.pending_count = load_tensor(state, "pending_count", self.pending_count, name)


class TaskStats:
    """Exponential moving averages of each task's error rate, mean uncertainty and mean loss.

    Per-task sums and counts of a window are accumulated in the public `pending_*` tensors
    (all-reducible) and folded by `fold()`.
    """

    _STATE_KEYS = (
        "error_rate",
        "uncertainty",
        "loss",
        "seen",
        "pending_errors",
        "pending_uncertainty",
        "pending_loss",
        "pending_count",
    )
    # Added after the first checkpoints were written: a state without them starts them at zero.
    _OPTIONAL_KEYS = ("loss", "pending_loss")

    def __init__(self, num_tasks: int, decay: float = 0.9) -> None:
        check_num_tasks(num_tasks)
        _check_decay(decay)
        self.num_tasks = num_tasks
        self.decay = decay
        acc = _accumulator_dtype(torch.device("cpu"))
        self.error_rate = torch.zeros(num_tasks, dtype=torch.float32)
        self.uncertainty = torch.zeros(num_tasks, dtype=torch.float32)
        self.loss = torch.zeros(num_tasks, dtype=torch.float32)
        self.seen = torch.zeros(num_tasks, dtype=torch.bool)
        self.pending_errors = torch.zeros(num_tasks, dtype=acc)
        self.pending_uncertainty = torch.zeros(num_tasks, dtype=acc)
        self.pending_loss = torch.zeros(num_tasks, dtype=acc)
        self.pending_count = torch.zeros(num_tasks, dtype=acc)

    @property
    def device(self) -> torch.device:
        return self.error_rate.device

    def to(self, device: torch.device | str) -> TaskStats:
        """Move all state to `device` (observe does this on its own), outside inference mode (see ConfusionTracker.to)."""
        device = torch.device(device)
        acc = _accumulator_dtype(device)
        with torch.inference_mode(False):
            self.error_rate = self.error_rate.to(device)
            self.uncertainty = self.uncertainty.to(device)
            self.loss = self.loss.to(device)
            self.seen = self.seen.to(device)
            self.pending_errors = self.pending_errors.to(device=device, dtype=acc)
            self.pending_uncertainty = self.pending_uncertainty.to(device=device, dtype=acc)
            self.pending_loss = self.pending_loss.to(device=device, dtype=acc)
            self.pending_count = self.pending_count.to(device=device, dtype=acc)
        return self

    def pending_tensors(self) -> list[Tensor]:
        """The window accumulators, to be summed across ranks before `fold()`."""
        return [self.pending_errors, self.pending_uncertainty, self.pending_loss, self.pending_count]

    def observe(self, task_ids: Tensor, correct: Tensor, uncertainty: Tensor, loss: Tensor | None = None) -> None:
        """Accumulate one batch's per-question outcomes (and losses, when given); no host synchronisation."""
        shape = task_ids.shape
        if task_ids.dim() != 1 or correct.shape != shape or uncertainty.shape != shape:
            raise UsageError(
                f"observe expects task_ids, correct, uncertainty all [B]; got "
                f"{tuple(task_ids.shape)}, {tuple(correct.shape)}, {tuple(uncertainty.shape)}"
            )
        if task_ids.device != self.device:
            self.to(task_ids.device)
        acc = self.pending_count.dtype
        tasks = task_ids.detach().to(torch.long)
        wrong = (~correct.detach().to(device=tasks.device, dtype=torch.bool)).to(acc)
        u = uncertainty.detach().to(device=tasks.device, dtype=acc)
        self.pending_errors.index_add_(0, tasks, wrong)
        self.pending_uncertainty.index_add_(0, tasks, u)
        if loss is not None:
            self.pending_loss.index_add_(0, tasks, loss.detach().to(device=tasks.device, dtype=acc))
        self.pending_count.index_add_(0, tasks, torch.ones_like(u))

    def fold(self) -> None:
        """Fold the window's per-task means into the EMAs and clear the window."""
        has = self.pending_count > 0
        count = self.pending_count.clamp(min=1.0)
        pairs = (
            ("error_rate", self.pending_errors),
            ("uncertainty", self.pending_uncertainty),
            ("loss", self.pending_loss),
        )
        for name, pending in pairs:
            current: Tensor = getattr(self, name)
            mean = (pending / count).to(current.dtype)
            blended = self.decay * current + (1.0 - self.decay) * mean
            # A task's first window starts its EMA instead of being pulled toward zero.
            updated = torch.where(self.seen, blended, mean)
            setattr(self, name, torch.where(has, updated, current))
        self.seen = self.seen | has
        for pending in self.pending_tensors():
            pending.zero_()

    def state_dict(self) -> dict[str, Tensor]:
        return {key: getattr(self, key).cpu().clone() for key in self._STATE_KEYS}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in self._STATE_KEYS:
            current = getattr(self, key)
            if key not in state and key in self._OPTIONAL_KEYS:
                setattr(self, key, torch.zeros_like(current))
                continue
            setattr(self, key, load_tensor(state, key, current, "task stats"))
