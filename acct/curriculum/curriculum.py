"""The `Curriculum`: the statistics a strategy reads (`CurriculumStats`), the strategy built from its
options, and the task weights it turns them into, with acct's prior, warm-up, update period and
floor around it. Its state (statistics, weights, the strategy's own) is saved in checkpoints.
The method is described in docs/method.md; the strategy contract in docs/extending.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from acct.curriculum.signals import (
    ConfusionTracker,
    TaskStats,
    check_num_tasks,
    load_tensor,
)
from acct.curriculum.weights import (
    mix_with_floor,
    prior_weights,
    uniform_weights,
)
from acct.errors import CheckpointError, UsageError
from acct.registry import strategies
from acct.train.plan import strategy_options

if TYPE_CHECKING:
    from acct.losses import Observation


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
        check_num_tasks(num_tasks)
        if not 0.0 <= floor <= 1.0:
            raise UsageError(f"curriculum floor must be in [0, 1], got {floor}")
        if warmup_steps < 0:
            raise UsageError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if update_every_n_steps < 1:
            raise UsageError(f"update_every_n_steps must be >= 1, got {update_every_n_steps}")
        self.strategy = strategy
        self.num_tasks = num_tasks
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
        self.weights = load_tensor(state, "weights", self.weights, "curriculum")
        self.confusion.load_state_dict(state["confusion"])
        self.task_stats.load_state_dict(state["task_stats"])
        if "strategy_state" in state and callable(getattr(self.impl, "load_state_dict", None)):
            self.impl.load_state_dict(state["strategy_state"])
