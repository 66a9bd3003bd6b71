"""The task curriculum of acct: tracking inter-task confusion and per-task statistics, turning
them into task-sampling probabilities (the strategies), and drawing task-grouped batches.

Owns every piece of curriculum state that a checkpoint must carry for a bit-exact resume:
the confusion matrix and task statistics (with their not-yet-folded windows), the current task
weights, and the sampler's per-task epochs and used examples. The method is described in README.md
("What it does"); the strategy contract in docs/extending.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from acct.errors import CheckpointError, UsageError
from acct.registry import register_strategy, strategies
from acct.train.plan import strategy_options

if TYPE_CHECKING:
    from acct.losses import Observation

# What the task-sampling prior may be: curriculum.prior.
PRIORS = ("uniform", "proportional", "temperature")

# A statistic whose spread is below this is treated as constant: z-scoring it would only
# amplify rounding noise into a preference between tasks.
_MIN_STD = 1e-12


def _accumulator_dtype(device: torch.device) -> torch.dtype:
    # Windows can sum many thousands of pair values; fp64 keeps the sums exact enough, except
    # on backends without fp64.
    return torch.float32 if device.type == "mps" else torch.float64


def _check_decay(decay: float) -> None:
    if not 0.0 <= decay < 1.0:
        raise UsageError(f"decay must be in [0, 1), got {decay}")


def _check_num_tasks(num_tasks: int) -> None:
    if num_tasks < 1:
        raise UsageError(f"num_tasks must be at least 1, got {num_tasks}")


def _load_tensor(state: dict[str, Any], key: str, like: Tensor, owner: str) -> Tensor:
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
        _check_num_tasks(num_tasks)
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
        self.matrix = _load_tensor(state, "matrix", self.matrix, name)
        self.seen = _load_tensor(state, "seen", self.seen, name)
        self.pending_sum = _load_tensor(state, "pending_sum", self.pending_sum, name)
        self.pending_count = _load_tensor(state, "pending_count", self.pending_count, name)


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
        _check_num_tasks(num_tasks)
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
            setattr(self, key, _load_tensor(state, key, current, "task stats"))


# ---------------------------------------------------------------------------------------------
# Strategies: objects from tracked statistics to task weights (acct/strategies/, one per file).
# The helpers below are what the built-ins are made of; plugins may use them too.


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise UsageError(f"curriculum temperature must be positive, got {temperature}")


def _zscore(x: Tensor) -> Tensor:
    x = x.detach().to(device="cpu", dtype=torch.float64)
    if x.numel() == 0 or not bool(torch.isfinite(x).all()):
        return torch.zeros_like(x)
    std = x.std(correction=0)
    if not bool(torch.isfinite(std)) or float(std) < _MIN_STD:
        return torch.zeros_like(x)
    return (x - x.mean()) / std


def uniform_weights(num_tasks: int) -> Tensor:
    """Equal probability for every task."""
    _check_num_tasks(num_tasks)
    return torch.full((num_tasks,), 1.0 / num_tasks, dtype=torch.float64)


def difficulty_weights(error_rate: Tensor, temperature: float = 2.0) -> Tensor:
    """softmax(zscore(error_rate) / temperature): tasks the model gets wrong more often."""
    _check_temperature(temperature)
    return torch.softmax(_zscore(error_rate) / temperature, dim=0)


def uncertainty_gradient_weights(confusion_scores: Tensor, temperature: float = 2.0) -> Tensor:
    """softmax(zscore(c) / temperature): tasks whose embeddings are most confused with others.

    Without the z-score the confusion scores (all small) would give near-uniform weights.
    """
    _check_temperature(temperature)
    return torch.softmax(_zscore(confusion_scores) / temperature, dim=0)


def mix_with_floor(weights: Tensor, floor: float, prior: Tensor | None = None) -> Tensor:
    """(1 - floor) * w + floor * prior, so no task's probability drops below floor * prior_t.

    Without `prior` (the uniform prior) this is (1 - floor) * w + floor / T.
    """
    if not 0.0 <= floor <= 1.0:
        raise UsageError(f"curriculum floor must be in [0, 1], got {floor}")
    w = weights.detach().to(device="cpu", dtype=torch.float64)
    if prior is None:
        return (1.0 - floor) * w + floor / w.numel()
    return (1.0 - floor) * w + floor * prior.detach().to(device="cpu", dtype=torch.float64)


def prior_weights(prior: str, task_sizes: Sequence[int], alpha: float = 0.5) -> Tensor:
    """The task-sampling prior: uniform, p_t ∝ n_t (proportional) or p_t ∝ n_t^alpha (temperature).

    n_t are the training questions of task t; a task without questions gets 0 under the
    size-based priors. With `uniform` this is exactly `uniform_weights(T)`.
    """
    if prior not in PRIORS:
        raise UsageError(f"curriculum prior must be one of {', '.join(PRIORS)}, got {prior!r}")
    num_tasks = len(task_sizes)
    if prior == "uniform":
        return uniform_weights(num_tasks)
    if not alpha > 0:
        raise UsageError(f"curriculum alpha must be positive, got {alpha}")
    sizes = torch.tensor([float(n) for n in task_sizes], dtype=torch.float64)
    if num_tasks < 1 or bool((sizes < 0).any()) or not float(sizes.sum()) > 0:
        raise UsageError(f"the {prior} prior needs the training questions of each task, got sizes {list(task_sizes)}")
    raw = sizes if prior == "proportional" else sizes.pow(alpha)
    return raw / raw.sum()


def impute_unseen(values: Tensor, seen: Tensor) -> Tensor:
    """`values` (float64, CPU) with every unseen task set to the mean of the seen ones.

    A task without observations yet then sits at z-score 0 instead of looking like the
    easiest / least confused task; with no task seen at all, every value is 0.
    """
    values = values.detach().to(device="cpu", dtype=torch.float64)
    seen = seen.detach().cpu()
    if not bool(seen.any()):
        return torch.zeros_like(values)
    return torch.where(seen, values, values[seen].mean())


_impute_unseen = impute_unseen


@dataclass
class CurriculumStats:
    """What a strategy's `weights(stats)` sees at an update: T = number of tasks.

    Tensors are copies on the CPU; the EMAs hold 0 for a task not observed yet (`seen`).
    """

    tasks: list[str]  # task names, in task-id order
    task_sizes: list[int]  # training questions per task
    categories: list[str]  # category of each task
    step: int  # optimizer steps done (1-based step of this update)
    total_steps: int  # optimizer steps the run will take
    error_rate: Tensor  # [T] EMA of the share of questions answered wrong
    uncertainty: Tensor  # [T] EMA of the normalised entropy of the choice distribution
    loss: Tensor  # [T] EMA of the per-question cross-entropy
    seen: Tensor  # [T] bool: the task has been observed
    confusion: Tensor  # [T, T] EMA of the entropy-weighted embedding similarity of task pairs
    confusion_seen: Tensor  # [T, T] bool: the pair has been observed
    prior: Tensor | None = None  # [T] float64 task-sampling prior (None: uniform)

    def prior_weights(self) -> Tensor:
        """The prior as a [T] float64 probability vector (uniform when none was given)."""
        return uniform_weights(len(self.tasks)) if self.prior is None else self.prior.clone()

    def confusion_scores(self) -> Tensor:
        """c_t: mean confusion of task t with the other tasks over the pairs seen so far (0 if none)."""
        seen = self.confusion_seen.to(self.confusion.dtype)
        total = (self.confusion * seen).sum(dim=1)
        return total / seen.sum(dim=1).clamp(min=1.0)


def build_strategy(strategy: str, tasks: Sequence[str], options: dict[str, Any]) -> Any:
    """An instance of the registered strategy `strategy`; a bad option is one UsageError."""
    cls = strategies.get(strategy)
    try:
        impl = cls(list(tasks), **options)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"curriculum.options do not fit strategy {strategy!r}: {exc}") from None
    if not callable(getattr(impl, "weights", None)):
        raise UsageError(f"strategy {strategy!r} has no weights(stats) method")
    return impl


def _as_weights(raw: Any, num_tasks: int, strategy: str) -> Tensor:
    """A strategy's answer as a float64 CPU probability vector; a wrong answer is one UsageError."""
    try:
        w = torch.as_tensor(raw if isinstance(raw, Tensor) else [float(x) for x in raw], dtype=torch.float64)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"strategy {strategy!r} returned weights that are not numbers: {exc}") from None
    w = w.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
    if w.numel() != num_tasks:
        raise UsageError(f"strategy {strategy!r} returned {w.numel()} weights for {num_tasks} tasks")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or not float(w.sum()) > 0:
        raise UsageError(f"strategy {strategy!r} returned weights that are not finite, non-negative and not all zero")
    total = float(w.sum())
    # A strategy that already returns probabilities keeps its exact values.
    return w if abs(total - 1.0) <= 1e-12 else w / total


class Curriculum:
    """Task-sampling weights from a registered strategy, with the trackers that feed it.

    Call `observe(...)` after each forward pass and `step(step)` after each optimizer step.

    The prior (`prior`: uniform, proportional p_t ∝ n_t, or temperature p_t ∝ n_t^alpha) is
    what an adaptive strategy reweights. Weights are the prior until `warmup_steps`; from then
    on every `update_every_n_steps` the strategy's weights multiply the prior, are normalised,
    and are mixed with the prior by `floor`. A strategy whose weights are flat therefore gives
    back the prior; with the uniform prior the strategy's normalised weights are used as they
    are and the floor mixes with 1/T. Warm-up, update period, prior, floor and logging belong
    here, not to the strategy.

    A *schedule* strategy (class attribute `schedule = True`: proportional, temperature,
    phased) is a fixed function of the step and the task sizes: its weights are used as given
    from the first batch on, recomputed after every optimizer step, with no warm-up, no floor
    and no multiplication by the prior (it applies the prior itself where it uses one).
    """

    def __init__(
        self,
        strategy: str,
        num_tasks: int,
        *,
        temperature: float = 2.0,
        floor: float = 0.1,
        warmup_steps: int,
        update_every_n_steps: int,
        decay: float = 0.9,
        options: dict[str, Any] | None = None,
        tasks: Sequence[str] | None = None,
        task_sizes: Sequence[int] | None = None,
        categories: Sequence[str] | None = None,
        total_steps: int | None = None,
        prior: str = "uniform",
        alpha: float = 0.5,
    ) -> None:
        if strategy not in strategies:
            raise UsageError(strategies.unknown(strategy))
        _check_num_tasks(num_tasks)
        _check_temperature(temperature)
        if not 0.0 <= floor <= 1.0:
            raise UsageError(f"curriculum floor must be in [0, 1], got {floor}")
        if warmup_steps < 0:
            raise UsageError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if update_every_n_steps < 1:
            raise UsageError(f"update_every_n_steps must be >= 1, got {update_every_n_steps}")
        self.strategy = strategy
        self.num_tasks = num_tasks
        self.temperature = temperature
        self.floor = floor
        self.warmup_steps = warmup_steps
        self.update_every_n_steps = update_every_n_steps
        self.tasks = list(tasks) if tasks is not None else [str(t) for t in range(num_tasks)]
        self.task_sizes = list(task_sizes) if task_sizes is not None else [0] * num_tasks
        self.categories = list(categories) if categories is not None else ["other"] * num_tasks
        if not len(self.tasks) == len(self.task_sizes) == len(self.categories) == num_tasks:
            raise UsageError(f"tasks, task_sizes and categories must each name {num_tasks} tasks")
        self.total_steps = total_steps or 0
        self.prior_name = prior
        self.alpha = alpha
        self.prior = prior_weights(prior, self.task_sizes, alpha)
        self.impl = build_strategy(strategy, self.tasks, strategy_options(strategy, options, temperature, alpha))
        self.schedule = bool(getattr(self.impl, "schedule", False))
        self.confusion = ConfusionTracker(num_tasks, decay)
        self.task_stats = TaskStats(num_tasks, decay)
        self._step = 0
        self.weights = self.compute_weights() if self.schedule else self.prior.clone()

    @property
    def _uniform_prior(self) -> bool:
        return self.prior_name == "uniform"

    def observe(self, obs: Observation) -> None:
        """Record one batch's observation record: embeddings for confusion, outcomes and per-question
        losses for the task EMAs."""
        if obs.embeddings is None:
            raise UsageError("the curriculum observes a batch with its embeddings: Observation.embeddings is None")
        self.confusion.observe(obs.embeddings, obs.task_ids, obs.uncertainty)
        self.task_stats.observe(obs.task_ids, obs.correct, obs.uncertainty, obs.loss)

    def pending_tensors(self) -> list[Tensor]:
        return self.confusion.pending_tensors() + self.task_stats.pending_tensors()

    def stats(self, step: int | None = None) -> CurriculumStats:
        """The statistics a strategy sees, as of the last fold."""
        ts, conf = self.task_stats, self.confusion
        return CurriculumStats(
            tasks=list(self.tasks),
            task_sizes=list(self.task_sizes),
            categories=list(self.categories),
            step=self._step if step is None else step,
            total_steps=self.total_steps,
            error_rate=ts.error_rate.detach().cpu().clone(),
            uncertainty=ts.uncertainty.detach().cpu().clone(),
            loss=ts.loss.detach().cpu().clone(),
            seen=ts.seen.cpu().clone(),
            confusion=conf.matrix.detach().cpu().clone(),
            confusion_seen=conf.seen.cpu().clone(),
            prior=self.prior.clone(),
        )

    def compute_weights(self) -> Tensor:
        """The strategy's weights from the current (folded) statistics: a schedule's as given;
        an adaptive strategy's multiplied by the prior, normalised, and mixed with the prior by the floor."""
        w = _as_weights(self.impl.weights(self.stats()), self.num_tasks, self.strategy)
        if self.schedule:
            return w
        if self._uniform_prior:
            return mix_with_floor(w, self.floor)
        reweighted = w * self.prior
        if not float(reweighted.sum()) > 0:
            raise UsageError(f"strategy {self.strategy!r} puts all its weight on tasks the {self.prior_name} prior gives 0")
        return mix_with_floor(reweighted / reweighted.sum(), self.floor, self.prior)

    def step(self, step: int, all_reduce: Callable[[Tensor], None] | None = None) -> Tensor | None:
        """Hook after optimizer step `step` (1-based).

        On update steps: all-reduce the pending windows (in place) if `all_reduce` is given,
        fold them, recompute the weights once past warm-up, and return a copy of the current
        weights (the prior during warm-up too, for logging). Otherwise return None; a schedule
        strategy's weights are recomputed on every step all the same.
        """
        self._step = step
        if step % self.update_every_n_steps != 0:
            if self.schedule:
                self.weights = self.compute_weights()
            return None
        if all_reduce is not None:
            for pending in self.pending_tensors():
                all_reduce(pending)
        self.confusion.fold()
        self.task_stats.fold()
        if self.schedule or step >= self.warmup_steps:
            self.weights = self.compute_weights()
        return self.weights.clone()

    def state_dict(self) -> dict[str, Any]:
        state = {
            "strategy": self.strategy,
            "weights": self.weights.clone(),
            "confusion": self.confusion.state_dict(),
            "task_stats": self.task_stats.state_dict(),
        }
        if callable(getattr(self.impl, "state_dict", None)):
            state["strategy_state"] = self.impl.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("weights", "confusion", "task_stats"):
            if key not in state:
                raise CheckpointError(f"curriculum state is missing '{key}'")
        self.weights = _load_tensor(state, "weights", self.weights, "curriculum")
        self.confusion.load_state_dict(state["confusion"])
        self.task_stats.load_state_dict(state["task_stats"])
        if "strategy_state" in state and callable(getattr(self.impl, "load_state_dict", None)):
            self.impl.load_state_dict(state["strategy_state"])


# ---------------------------------------------------------------------------------------------
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
