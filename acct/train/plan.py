"""The plan of a run: every number the length and rhythm of a run follows, computed once.

Owns `RunPlan` and `make_plan`, the one function that derives from the settings and the training
task sizes how many optimizer steps make an epoch and a run, when the run validates and saves,
the learning-rate and curriculum warm-ups, when the curriculum first acts, and the distribution a
fixed strategy draws tasks from. The engine trains from it (acct.train.setup builds the run's
schedule and curriculum from it, the loop reads it); the ablation guard, `acct ablate
--print-commands` and the study report read the same plan, so what a study predicts about a run is
what the run does.

A strategy says what it is on its own class (docs/extending.md): `schedule = True` (a fixed
function of the step, used from the first batch), `fixed_distribution(sizes, options, prior)` (the
task distribution it always draws from; absent or None: adaptive) and `rounds_to_act` (curriculum
updates past warm-up before its weights can leave the prior). Nothing here knows a strategy's name.

Torch-free: the plan's arithmetic is plain Python (the engine's tensors are computed by
acct.curriculum, to the same values up to rounding).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from acct.registry import strategies


@dataclass(frozen=True)
class RunPlan:
    """The step plan of one run, as the engine follows it."""

    train_questions: int
    steps_per_epoch: int
    total_steps: int
    eval_every: int  # validate after every eval_every-th step, and after the last
    save_every: int | None  # save 'last' after every save_every-th step that does not validate (None: only at validations)
    lr_warmup_steps: int  # steps of linear learning-rate warm-up before the cosine decay
    warmup_steps: int  # steps of sampling from the prior before an adaptive curriculum may act
    update_every: int  # optimizer steps between curriculum updates
    curriculum_from: int  # the first curriculum update past warm-up: from it on, the strategy's weights are computed
    first_update: int | None  # the step after which the curriculum's own weights first draw a batch; None: never adapts
    task_sizes: tuple[int, ...] | None = None  # training questions per task, in task order (when known)
    schedule: bool = False  # the strategy is a fixed function of the step, used from the first batch on
    fixed: bool = False  # the strategy declares one fixed task distribution (it never adapts)
    # The task-sampling probabilities of a run that draws from one fixed distribution throughout (its
    # strategy's, or the prior of a curriculum that cannot act in the budget), when the sizes are known.
    sampling: tuple[float, ...] | None = None
    sampling_kind: str | None = None  # that distribution's name: 'proportional', 'temperature (alpha 0.5)', ...

    @property
    def adapts(self) -> bool:
        """Whether a batch is ever drawn from weights the curriculum computed (not the prior)."""
        return self.first_update is not None and self.first_update < self.total_steps

    @property
    def steps_to_adapt(self) -> int | None:
        """The smallest step budget at which the curriculum's weights draw a batch."""
        return None if self.first_update is None else self.first_update + 1

    @property
    def keeps_prior(self) -> bool:
        """Whether the strategy draws from the prior throughout by its own declaration (the fixed strategy)."""
        return self.fixed and not self.schedule

    def evaluates(self, step: int) -> bool:
        """Whether the run validates after optimizer step `step` (1-based)."""
        return step % self.eval_every == 0 or step == self.total_steps

    @property
    def evaluation_steps(self) -> list[int]:
        """Every step after which the run validates (if it does not stop early)."""
        steps = list(range(self.eval_every, self.total_steps + 1, self.eval_every))
        return steps if steps and steps[-1] == self.total_steps else [*steps, self.total_steps]

    def saves(self, step: int) -> bool:
        """Whether the run saves 'last' after step `step` without validating (a validation saves anyway)."""
        return bool(self.save_every) and step % self.save_every == 0 and not self.evaluates(step)


def normalised(values: Sequence[float]) -> list[float]:
    total = float(sum(values))
    return [v / total for v in values]


def prior_distribution(prior: str, sizes: Sequence[int], alpha: float) -> list[float]:
    """The task-sampling prior over tasks of these sizes: uniform, p_t ∝ n_t or p_t ∝ n_t^alpha."""
    if prior == "uniform":
        return [1.0 / len(sizes)] * len(sizes)
    return normalised([float(n) for n in sizes] if prior == "proportional" else [n ** alpha for n in sizes])


def prior_name(prior: str, alpha: float) -> str:
    """The prior as a study names it: 'proportional', 'uniform' or 'temperature (alpha 0.5)'."""
    return f"temperature (alpha {alpha:g})" if prior == "temperature" else prior


def strategy_options(
    strategy: str, options: dict[str, Any] | None, temperature: float, alpha: float = 0.5
) -> dict[str, Any]:
    """The options a strategy is built with: `curriculum.options`, plus `curriculum.temperature`
    (and `curriculum.alpha`) for a strategy whose constructor names a `temperature` (an `alpha`)
    parameter and that the options leave unset."""
    cls = strategies.get(strategy)
    opts = dict(options or {})
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    if "temperature" in params and "temperature" not in opts:
        opts["temperature"] = temperature
    if "alpha" in params and "alpha" not in opts:
        opts["alpha"] = alpha
    return opts


def declared_distribution(settings: Any, sizes: Sequence[int]) -> list[float] | None:
    """The task distribution the settings' strategy always draws from, by its own declaration
    (`fixed_distribution`), over tasks of these sizes; None for a strategy that adapts or follows a schedule."""
    cur = settings.curriculum
    declare = getattr(strategies.get(cur.strategy), "fixed_distribution", None)
    if declare is None or not sizes or not sum(sizes):
        return None
    options = strategy_options(cur.strategy, cur.options, cur.temperature, cur.alpha)
    found = declare(tuple(sizes), options, prior_distribution(cur.prior, sizes, cur.alpha))
    return None if found is None else [float(p) for p in found]


def make_plan(settings: Any, task_sizes: int | Sequence[int]) -> RunPlan:
    """The plan of a run with these settings over training tasks of `task_sizes` questions each (task
    order), or over `task_sizes` training questions in all (then nothing depends on the tasks)."""
    sizes = None if isinstance(task_sizes, int) else tuple(int(n) for n in task_sizes)
    n_train = task_sizes if sizes is None else sum(sizes)
    per_step = settings.batch.questions_per_batch * settings.batch.grad_accum_steps
    per_epoch = max(1, math.ceil(n_train / per_step))
    total = settings.optim.max_steps or max(1, math.ceil(settings.optim.epochs * per_epoch))
    eval_every = settings.eval_every_n_steps or per_epoch
    lr_warmup = round(settings.optim.warmup_ratio * total)
    cur = settings.curriculum
    warmup = round(cur.warmup_epochs * per_epoch)
    every = cur.update_every_n_steps
    # Updates fall on multiples of `every`; the first past warm-up is the first that computes weights.
    curriculum_from = every * max(1, math.ceil(warmup / every))
    cls = strategies.get(cur.strategy)
    is_schedule = bool(getattr(cls, "schedule", False))
    fixed = getattr(cls, "fixed_distribution", None) is not None
    if is_schedule:
        # A schedule strategy (proportional, temperature, phased) sets the weights of the first batch.
        first: int | None = 0
    elif fixed or cur.floor >= 1.0:
        # A fixed strategy never adapts; with floor 1 the weights are mixed back to the prior at every update.
        first = None
    else:
        # A strategy may need several updates past warm-up before its weights can leave the prior
        # (learning_progress: a reward is a change between two updates).
        rounds = int(getattr(cls, "rounds_to_act", 1))
        first = curriculum_from + every * (rounds - 1)
    adapts = first is not None and first < total
    sampling, kind = None, None
    if sizes and sum(sizes):
        declared = declared_distribution(settings, sizes)
        if declared is not None:
            sampling = declared
            describe = getattr(cls, "distribution_name", None)
            kind = (describe(strategy_options(cur.strategy, cur.options, cur.temperature, cur.alpha),
                             prior_name(cur.prior, cur.alpha)) if describe is not None else cur.strategy)
        elif not adapts and not is_schedule:
            # An adaptive curriculum that cannot act in the budget samples from its prior throughout.
            sampling, kind = prior_distribution(cur.prior, sizes, cur.alpha), prior_name(cur.prior, cur.alpha)
    return RunPlan(
        train_questions=n_train, steps_per_epoch=per_epoch, total_steps=total, eval_every=eval_every,
        save_every=settings.save_every_n_steps or None, lr_warmup_steps=lr_warmup, warmup_steps=warmup,
        update_every=every, curriculum_from=curriculum_from, first_update=first, task_sizes=sizes, schedule=is_schedule, fixed=fixed,
        sampling=None if sampling is None else tuple(sampling), sampling_kind=kind,
    )
