"""The `uncertainty` task-loss weighting: homoscedastic uncertainty (Kendall, Gal & Cipolla 2018).

Each task t has a learnable log-variance s_t (one number, starting at 0). With L_t the mean
cross-entropy of task t's questions in the batch and P the tasks present in it, the
classification loss of the batch is

    L = (1 / |P|) * sum_{t in P} ( exp(-s_t) * L_t + s_t ).

The sum is the paper's; dividing by |P| keeps the loss on the scale of a mean, so that with
every s_t = 0 and equal task slots it is exactly the `equal` weighting's mean cross-entropy.
Its minimiser in s_t is still s_t = log L_t, and dL/ds_t = (1 - exp(-s_t) * L_t) / |P| for a
present task, 0 for an absent one. A task whose loss stays high gets a large s_t, so its
cross-entropy counts less; the s_t term keeps the weights from collapsing to 0.

The s_t are exposed through `parameters()` (the task-weighting contract, docs/extending.md):
acct trains them with the run's AdamW in a group of their own without weight decay, at the run's
learning rate and schedule or at `lr` when set, saves them in the checkpoint's
state.safetensors and restores them (with their optimizer moments) on --resume. `logged()` puts
them into every validation line of metrics.jsonl. Under torchrun each process weights its own
share of the batch, and their gradient is averaged over the processes, as DDP does for the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from acct.errors import UsageError
from acct.losses import Observation, register_task_weighting


def uncertainty_loss(losses: Tensor, task_ids: Tensor, log_variance: Tensor) -> Tensor:
    """(1/|P|) * sum over the present tasks P of exp(-s_t) * L_t + s_t, L_t = mean of `losses` over task t."""
    num_tasks = log_variance.shape[0]
    tasks = task_ids.to(device=losses.device, dtype=torch.long)
    sums = torch.zeros(num_tasks, dtype=losses.dtype, device=losses.device).index_add(0, tasks, losses)
    counts = torch.zeros(num_tasks, dtype=losses.dtype, device=losses.device).index_add(0, tasks, torch.ones_like(losses))
    present = (counts > 0).to(losses.dtype)
    means = sums / counts.clamp(min=1)
    s = log_variance.to(losses.dtype)
    # Masked by multiplication, not indexing: no host sync, and absent tasks get a zero gradient.
    return ((torch.exp(-s) * means + s) * present).sum() / present.sum()


@register_task_weighting("uncertainty")
class UncertaintyWeighting:
    """Homoscedastic uncertainty (Kendall, Gal & Cipolla 2018): mean over present tasks of exp(-s_t)·L_t + s_t, s_t learned."""

    def __init__(self, tasks: Sequence[str], lr: float | None = None) -> None:
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0):
            raise UsageError(f"uncertainty: lr must be a positive number (or unset: the run's), got {lr!r}")
        self.num_tasks = len(tasks)
        # The learning rate of the log-variances' optimizer group; None: the run's optim.lr.
        self.lr = None if lr is None else float(lr)
        self.log_variance = torch.nn.Parameter(torch.zeros(self.num_tasks))

    def parameters(self) -> list[Tensor]:
        return [self.log_variance]

    def loss(self, obs: Observation) -> Tensor:
        return uncertainty_loss(obs.loss, obs.task_ids, self.log_variance)

    def logged(self) -> dict[str, list[float]]:
        s = self.log_variance.detach().float().cpu()
        return {"log_variance": s.tolist(), "weight": torch.exp(-s).tolist()}
