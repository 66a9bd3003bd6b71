"""How a step's gradient is formed (`loss.gradient`): `mean`, the gradient of the total loss, or
gradient surgery across the task slots of the batch, `pcgrad` (Yu et al. 2020) and `upgrad`
(Quinton & Rey 2024), both from the torchjd library (`pip install 'acct[mtl]'`).

The objectives of gradient surgery. With B questions in a batch, each task t present in it
(its task slots: two slots that drew the same task are one objective) gives

    f_t = lambda_cls * (sum of the cross-entropy of task t's questions in the batch) / B,

and, when lambda_contrastive > 0, the InfoNCE term is one more objective,
f_con = lambda_contrastive * InfoNCE (it contrasts tasks with each other and belongs to no one
slot). The f sum to the run's total loss, and both aggregations add their projected gradients
with weight 1 (PCGrad as in the paper; UPGrad with a preference vector of ones), so on a batch
whose gradients do not conflict each gives exactly the `mean` gradient.

Gradient accumulation: every micro-batch's objectives are rows of one Jacobian, aggregated once
per optimizer step, so an optimizer step of A micro-batches is one surgery over all of their
objectives, not A surgeries averaged (a task drawn in two micro-batches gives two rows, where a
batch A times larger would give one). fp16's loss scaler multiplies every objective by
the same scale, and both aggregations are positively homogeneous, so unscaling afterwards gives
the unscaled result; a non-finite Jacobian is passed on as a non-finite gradient, so the step is
skipped like any other. Clipping applies to the aggregated gradient. Under torchrun the
Jacobian of the global batch would have to be gathered: acct refuses these aggregations there.

Contract (docs/extending.md): a class registered with `register_gradient(name)`, built with no
arguments. With `per_slot = True` it receives each micro-batch's per-task objectives, else a
one-element list with the micro-batch's total loss; `backward(objectives, params)` is called
once per micro-batch (objectives already scaled for fp16 and divided by the number of
micro-batches) and `finish(params)` once after the last, leaving the step's gradient in each
parameter's `.grad`. `torchrun = True` declares that it runs under torchrun; `neutral = True`, that it
is plain multi-task training (a study names every other).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from acct.errors import UsageError
from acct.registry import register_gradient

INSTALL_HINT = "pip install 'acct[mtl]'"


@register_gradient("mean")
class MeanGradient:
    """The gradient of the total loss (no surgery): what every multi-task run does by default."""

    per_slot = False
    torchrun = True  # DDP averages it
    neutral = True  # plain multi-task fine-tuning: a study's descriptions leave it unsaid

    def backward(self, objectives: Sequence[Tensor], params: Sequence[Tensor]) -> None:
        torch.autograd.backward(list(objectives))

    def finish(self, params: Sequence[Tensor]) -> None:
        pass


class _TorchJDGradient:
    """Jacobian of the per-task objectives, stacked over the micro-batches, aggregated by torchjd."""

    per_slot = True
    torchrun = False

    def __init__(self) -> None:
        name = getattr(type(self), "registry_name", type(self).__name__)
        try:
            from torchjd.autojac import backward, jac_to_grad

            self.aggregator(1)  # fails early when the aggregator's own dependencies are missing
        except ImportError:
            raise UsageError(f"loss.gradient {name} needs the torchjd library: {INSTALL_HINT}") from None
        self._backward, self._jac_to_grad = backward, jac_to_grad
        self._rows: list[list[Tensor]] | None = None

    def aggregator(self, rows: int) -> Any:
        raise NotImplementedError

    def backward(self, objectives: Sequence[Tensor], params: Sequence[Tensor]) -> None:
        # One backward pass per objective (no vmap: it does not run through every attention
        # backend or a compiled model); each leaves its gradient as one row of `.jac`.
        self._backward(list(objectives), inputs=list(params), parallel_chunk_size=1)
        if self._rows is None:
            self._rows = [[] for _ in params]
        for rows, p in zip(self._rows, params):
            rows.append(p.jac)  # type: ignore[attr-defined]
            del p.jac  # type: ignore[attr-defined]

    def finish(self, params: Sequence[Tensor]) -> None:
        if self._rows is None:
            raise RuntimeError("finish() before any backward()")
        jacobians = [torch.cat(rows) if len(rows) > 1 else rows[0] for rows in self._rows]
        self._rows = None
        if not bool(torch.stack([torch.isfinite(j).all() for j in jacobians]).all()):
            # Overflowed under fp16 loss scaling (or a NaN loss): a non-finite gradient, so the
            # step is skipped and the scale lowered, as without surgery.
            for p, j in zip(params, jacobians):
                p.grad = j.sum(0)
            return
        for p, j in zip(params, jacobians):
            p.jac = j  # type: ignore[attr-defined]
        self._jac_to_grad(list(params), self.aggregator(jacobians[0].shape[0]), optimize_gramian_computation=True)


@register_gradient("pcgrad")
class PCGradGradient(_TorchJDGradient):
    """PCGrad (Yu et al. 2020): each task's gradient in the batch projected off those it conflicts with, then summed (torchjd)."""

    def aggregator(self, rows: int) -> Any:
        from torchjd.aggregation import PCGrad

        return PCGrad()


@register_gradient("upgrad")
class UPGradGradient(_TorchJDGradient):
    """UPGrad (Quinton & Rey 2024): each task's gradient in the batch projected onto the dual cone of all, then summed (torchjd)."""

    def aggregator(self, rows: int) -> Any:
        from torchjd.aggregation import UPGrad

        # Weight 1 per projected gradient (torchjd's default averages them): without conflict,
        # the sum of the objectives' gradients, i.e. the total loss's.
        return UPGrad(pref_vector=torch.ones(rows))


def slot_objectives(per_question: Tensor, task_ids: Tensor, lambda_cls: float) -> list[Tensor]:
    """One objective per task in the batch: lambda_cls * (its questions' summed cross-entropy) / B, in task-id order."""
    b = per_question.shape[0]
    return [lambda_cls * per_question[task_ids == t].sum() / b for t in torch.unique(task_ids).tolist()]


def check_fits_weighting(gradient: str, task_weighting: str) -> None:
    """Refuse a gradient aggregation that combines the task slots' own gradients (`per_slot`) with a
    task weighting that is not neutral: the aggregation weights the slots itself."""
    from acct.registry import gradients, task_weightings

    if not getattr(gradients.get(gradient), "per_slot", False) or getattr(task_weightings.get(task_weighting), "neutral", False):
        return
    neutral = [n for n in task_weightings.names() if getattr(task_weightings.get(n), "neutral", False)]
    raise UsageError(f"loss.gradient {gradient} combines the task slots' own gradients and needs "
                     f"loss.task_weighting {' or '.join(neutral)}, not {task_weighting}")
