"""The `dwa` task-loss weighting: Dynamic Weight Average (Liu, Johns & Davison 2019).

Training is cut into windows of `window` batches (micro-batches under gradient accumulation).
At the end of a window each task's mean cross-entropy over it is recorded. With r_t the ratio
of task t's mean loss over its last two recorded windows, the weights of the next window are

    w_t = K * softmax(r_t / temperature)     over the K tasks that have a ratio,

and every other task (not yet seen in two windows) has weight 1. A task not drawn in a window
keeps its last two means. The classification loss is the batch mean of w_task(i) * loss_i, so
with every weight 1 it is the `equal` weighting's mean cross-entropy.

Under torchrun each process weights with the losses of its own share of the batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from acct.errors import CheckpointError, UsageError
from acct.losses import Observation, register_task_weighting


def dwa_weights(previous: Sequence[float | None], before: Sequence[float | None], temperature: float) -> list[float]:
    """w_t = K * softmax(r_t / temperature) with r_t = previous_t / before_t over the K tasks that
    have both window means; 1 for the others."""
    have = [t for t, (a, b) in enumerate(zip(previous, before)) if a is not None and b is not None]
    weights = [1.0] * len(previous)
    if not have:
        return weights
    ratios = torch.tensor([previous[t] / max(before[t], 1e-12) for t in have], dtype=torch.float64)
    soft = torch.softmax(ratios / temperature, dim=0) * len(have)
    for t, w in zip(have, soft.tolist()):
        weights[t] = w
    return weights


@register_task_weighting("dwa")
class DynamicWeightAverage:
    """Dynamic Weight Average (Liu et al. 2019): w_t = K·softmax(r_t / temperature), r_t = task loss ratio of the last two windows."""

    def __init__(self, tasks: Sequence[str], temperature: float = 2.0, window: int = 50) -> None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise UsageError(f"dwa: temperature must be a positive number, got {temperature!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise UsageError(f"dwa: window must be a positive whole number of batches, got {window!r}")
        self.num_tasks = len(tasks)
        self.temperature = float(temperature)
        self.window = window
        self.batches = 0  # batches of the current window so far
        self._sum: Tensor | None = None  # [T] loss sums of the current window (on the loss's device)
        self._count: Tensor | None = None
        self.previous: list[float | None] = [None] * self.num_tasks  # mean loss of the last window with the task
        self.before: list[float | None] = [None] * self.num_tasks  # ... and of the window before that one
        self.weights = [1.0] * self.num_tasks
        self._device_weights: Tensor | None = None

    def _accumulators(self, device: torch.device) -> tuple[Tensor, Tensor]:
        dtype = torch.float32 if device.type == "mps" else torch.float64
        if self._sum is None or self._sum.device != device:
            base = torch.zeros(self.num_tasks, dtype=dtype)
            self._sum = (base if self._sum is None else self._sum.to(dtype=dtype, device="cpu")).to(device)
            self._count = (base.clone() if self._count is None else self._count.to(dtype=dtype, device="cpu")).to(device)
        assert self._count is not None
        return self._sum, self._count

    def close_window(self) -> None:
        """Record the window's per-task mean losses and compute the next window's weights."""
        if self._sum is not None and self._count is not None:
            sums, counts = self._sum.cpu().tolist(), self._count.cpu().tolist()
            for t, (s, n) in enumerate(zip(sums, counts)):
                if n > 0:
                    self.before[t], self.previous[t] = self.previous[t], s / n
            self._sum.zero_()
            self._count.zero_()
        self.batches = 0
        self.weights = dwa_weights(self.previous, self.before, self.temperature)
        self._device_weights = None

    def loss(self, obs: Observation) -> Tensor:
        losses = obs.loss
        if torch.is_grad_enabled():
            sums, counts = self._accumulators(losses.device)
            tasks = obs.task_ids.to(device=losses.device, dtype=torch.long)
            sums.index_add_(0, tasks, losses.detach().to(sums.dtype))
            counts.index_add_(0, tasks, torch.ones_like(losses, dtype=counts.dtype))
        w_all = self._device_weights
        if w_all is None or w_all.device != losses.device:
            w_all = self._device_weights = torch.tensor(self.weights, dtype=losses.dtype, device=losses.device)
        result = (w_all[obs.task_ids] * losses).mean()
        if torch.is_grad_enabled():
            self.batches += 1
            if self.batches >= self.window:
                self.close_window()
        return result

    def state_dict(self) -> dict[str, Any]:
        zeros = [0.0] * self.num_tasks
        return {
            "batches": self.batches,
            "sum": self._sum.cpu().tolist() if self._sum is not None else zeros,
            "count": self._count.cpu().tolist() if self._count is not None else zeros,
            "previous": [0.0 if v is None else v for v in self.previous],
            "has_previous": [v is not None for v in self.previous],
            "before": [0.0 if v is None else v for v in self.before],
            "has_before": [v is not None for v in self.before],
            "weights": list(self.weights),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("sum", "count", "previous", "has_previous", "before", "has_before", "weights"):
            if key not in state or len(state[key]) != self.num_tasks:
                raise CheckpointError(f"dwa state needs '{key}' for {self.num_tasks} tasks")
        if "batches" not in state:
            raise CheckpointError("dwa state is missing 'batches'")
        self.batches = int(state["batches"])
        self._sum = torch.tensor([float(v) for v in state["sum"]], dtype=torch.float64)
        self._count = torch.tensor([float(v) for v in state["count"]], dtype=torch.float64)
        self.previous = [float(v) if h else None for v, h in zip(state["previous"], state["has_previous"])]
        self.before = [float(v) if h else None for v, h in zip(state["before"], state["has_before"])]
        self.weights = [float(v) for v in state["weights"]]
        self._device_weights = None
