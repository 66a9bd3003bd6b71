"""Task-grouped batches: the `TaskBatchSampler` draws task slots from the curriculum's weights and
questions within each task without replacement, per task epoch, and saves where it is for an
exact resume.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from acct.errors import CheckpointError, UsageError

if TYPE_CHECKING:
    pass


# Sampling.


def _derive_seed(*parts: int | str) -> int:
    # A hash rather than arithmetic on the seed, so nearby (seed, step) pairs give unrelated
    # streams and the value is the same on every platform and process.
    digest = hashlib.blake2b(",".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class TaskBatchSampler:
    """Draws task-grouped batches: `tasks_per_batch` task slots x `examples_per_task` examples.

    Slot tasks are drawn i.i.d. with replacement from the weights with a generator seeded from
    (seed, step) alone, so every rank agrees and the draw does not depend on history. Each task
    walks its own stream of epochs; epoch k orders the task's examples by a permutation seeded
    from (seed, task, k), and every example is drawn exactly once per epoch of its task.

    Without `lengths` a slot takes the next unused examples in permutation order. With
    `lengths` (per example, the longest sequence it brings to a batch) the epoch order is
    sorted by length (ties keep the permutation order), each batch draws one quantile q from
    (seed, step), and every slot takes the run of unused examples at quantile q of what is
    left of its task's epoch. The slots of a batch then hold questions of similar length, so
    padding to the batch's longest sequence wastes little, while the examples seen over an
    epoch are the same. The state is, per task, the epoch and the positions already used.
    """

    def __init__(
        self,
        example_tasks: Sequence[int],
        num_tasks: int,
        tasks_per_batch: int,
        examples_per_task: int,
        seed: int,
        lengths: Sequence[int] | None = None,
    ) -> None:
        if num_tasks < 1:
            raise UsageError(f"num_tasks must be at least 1, got {num_tasks}")
        if tasks_per_batch < 1:
            raise UsageError(f"tasks_per_batch must be at least 1, got {tasks_per_batch}")
        if examples_per_task < 1:
            raise UsageError(f"examples_per_task must be at least 1, got {examples_per_task}")
        tasks = torch.as_tensor(list(example_tasks), dtype=torch.long)
        if tasks.numel() == 0:
            raise UsageError("the sampler needs at least one example")
        if int(tasks.min()) < 0 or int(tasks.max()) >= num_tasks:
            raise UsageError(
                f"example task ids must lie in [0, {num_tasks}); got range "
                f"[{int(tasks.min())}, {int(tasks.max())}]"
            )
        if lengths is not None and len(lengths) != tasks.numel():
            raise UsageError(f"got {len(lengths)} lengths for {tasks.numel()} examples")
        self.num_tasks = num_tasks
        self.tasks_per_batch = tasks_per_batch
        self.examples_per_task = examples_per_task
        self.seed = seed
        counts = torch.bincount(tasks, minlength=num_tasks)
        order = torch.argsort(tasks, stable=True)
        self._examples: list[np.ndarray] = [m.numpy() for m in torch.split(order, counts.tolist())]
        self._lengths = None if lengths is None else [np.asarray(lengths, dtype=np.int64)[m] for m in self._examples]
        self.task_sizes: list[int] = counts.tolist()
        self.has_examples = counts > 0
        self._epochs = [0] * num_tasks
        self._used = [np.zeros(n, dtype=bool) for n in self.task_sizes]
        # Epoch orders are a pure function of (seed, task, k), so this cache is not state.
        self._order_cache: dict[int, tuple[int, np.ndarray]] = {}

    @property
    def batch_size(self) -> int:
        return self.tasks_per_batch * self.examples_per_task

    def _probabilities(self, weights: Tensor) -> Tensor:
        w = torch.as_tensor(weights).detach().to(device="cpu", dtype=torch.float64)
        if w.shape != (self.num_tasks,):
            raise UsageError(f"expected {self.num_tasks} task weights, got shape {tuple(w.shape)}")
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise UsageError("task weights must be finite and non-negative")
        # Tasks without examples cannot fill a slot; the rest share their probability.
        w = torch.where(self.has_examples, w, torch.zeros_like(w))
        if not float(w.sum()) > 0:
            raise UsageError("task weights put no probability on any task that has examples")
        return w

    def slot_tasks(self, step: int, weights: Tensor) -> list[int]:
        """The task of each of the `tasks_per_batch` slots of batch `step`."""
        w = self._probabilities(weights)
        generator = torch.Generator().manual_seed(_derive_seed("slots", self.seed, step))
        draws = torch.rand(self.tasks_per_batch, generator=generator, dtype=torch.float64)
        cumulative = torch.cumsum(w, dim=0)
        # Dividing by the last element makes the final cdf value exactly 1, so every draw in
        # [0, 1) lands on a task, and zero-weight tasks (flat cdf steps) are never picked.
        cdf = cumulative / cumulative[-1]
        return torch.searchsorted(cdf, draws, right=True).tolist()

    def length_quantile(self, step: int) -> float:
        """The length quantile shared by the slots of batch `step`."""
        generator = torch.Generator().manual_seed(_derive_seed("length", self.seed, step))
        return float(torch.rand((), generator=generator, dtype=torch.float64))

    def _order(self, task: int, k: int) -> np.ndarray:
        """Epoch k of `task`: local example positions in the order they are served."""
        cached = self._order_cache.get(task)
        if cached is not None and cached[0] == k:
            return cached[1]
        order = self._permutation(task, k)
        if self._lengths is not None:
            order = order[np.argsort(self._lengths[task][order], kind="stable")]
        self._order_cache[task] = (k, order)
        return order

    def _permutation(self, task: int, k: int) -> np.ndarray:
        generator = torch.Generator().manual_seed(_derive_seed("perm", self.seed, task, k))
        return torch.randperm(self.task_sizes[task], generator=generator).numpy()

    def _take(self, task: int, count: int, quantile: float) -> list[int]:
        taken: list[int] = []
        while len(taken) < count:
            used = self._used[task]
            free = np.flatnonzero(~used)
            need = count - len(taken)
            if len(free) <= need:
                window = free
            else:
                start = round(quantile * (len(free) - need)) if self._lengths is not None else 0
                window = free[start : start + need]
            order = self._order(task, self._epochs[task])
            taken.extend(self._examples[task][order[window]].tolist())
            used[window] = True
            if used.all():
                self._epochs[task] += 1
                used[:] = False
        return taken

    def batch(self, step: int, weights: Tensor) -> list[int]:
        """Example indices of batch `step`, slot by slot, marking the drawn examples used."""
        quantile = self.length_quantile(step) if self._lengths is not None else 0.0
        indices: list[int] = []
        for task in self.slot_tasks(step, weights):
            indices.extend(self._take(task, self.examples_per_task, quantile))
        return indices

    def state_dict(self) -> dict[str, list]:
        return {
            "epochs": list(self._epochs),
            "used": [np.flatnonzero(u).tolist() for u in self._used],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        epochs, used = state.get("epochs"), state.get("used")
        if epochs is None or used is None or len(epochs) != self.num_tasks or len(used) != self.num_tasks:
            raise CheckpointError(f"sampler state must hold epochs and used positions for {self.num_tasks} tasks")
        masks = []
        for task, positions in enumerate(used):
            mask = np.zeros(self.task_sizes[task], dtype=bool)
            positions = [int(p) for p in positions]
            if any(not 0 <= p < len(mask) for p in positions) or (len(mask) and len(set(positions)) == len(mask)):
                raise CheckpointError(f"sampler state of task {task} does not fit its {len(mask)} examples")
            mask[positions] = True
            masks.append(mask)
        values = [int(e) for e in epochs]
        if any(e < 0 for e in values):
            raise CheckpointError("sampler epochs must be non-negative")
        self._epochs, self._used = values, masks
