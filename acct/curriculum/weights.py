"""The pieces task weights are made of: priors, z-scored preferences, the floor, imputation of
tasks not seen yet. The built-in strategies (acct/strategies/) are built from them; plugins may
use them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from acct.curriculum.signals import check_num_tasks
from acct.errors import UsageError

if TYPE_CHECKING:
    pass


# What the task-sampling prior may be: curriculum.prior.
PRIORS = ("uniform", "proportional", "temperature")

# A statistic whose spread is below this is treated as constant: z-scoring it would only
# amplify rounding noise into a preference between tasks.
_MIN_STD = 1e-12

# Strategies: objects from tracked statistics to task weights (acct/strategies/, one per file).
# The helpers below are what the built-ins are made of; plugins may use them too.


def check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise UsageError(f"curriculum temperature must be positive, got {temperature}")


def zscore(x: Tensor) -> Tensor:
    x = x.detach().to(device="cpu", dtype=torch.float64)
    if x.numel() == 0 or not bool(torch.isfinite(x).all()):
        return torch.zeros_like(x)
    std = x.std(correction=0)
    if not bool(torch.isfinite(std)) or float(std) < _MIN_STD:
        return torch.zeros_like(x)
    return (x - x.mean()) / std


def uniform_weights(num_tasks: int) -> Tensor:
    """Equal probability for every task."""
    check_num_tasks(num_tasks)
    return torch.full((num_tasks,), 1.0 / num_tasks, dtype=torch.float64)


def difficulty_weights(error_rate: Tensor, temperature: float = 2.0) -> Tensor:
    """softmax(zscore(error_rate) / temperature): tasks the model gets wrong more often."""
    check_temperature(temperature)
    return torch.softmax(zscore(error_rate) / temperature, dim=0)


def uncertainty_gradient_weights(confusion_scores: Tensor, temperature: float = 2.0) -> Tensor:
    """softmax(zscore(c) / temperature): tasks whose embeddings are most confused with others.

    Without the z-score the confusion scores (all small) would give near-uniform weights.
    """
    check_temperature(temperature)
    return torch.softmax(zscore(confusion_scores) / temperature, dim=0)


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
