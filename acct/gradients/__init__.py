"""How a step's gradient is formed (`loss.gradient`): `mean`, the gradient of the total loss, or
gradient surgery across the task slots of the batch, `pcgrad` (Yu et al. 2020) and `upgrad`
(Quinton & Rey 2024), both from the torchjd library (`pip install 'acct[mtl]'`). One file per
aggregation (the file's name is the registered name); this module holds what the rest of acct asks
of them.

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

from typing import TYPE_CHECKING

from acct.errors import UsageError
from acct.registry import gradients, register_gradient, task_weightings

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["check_fits_weighting", "register_gradient", "slot_objectives"]


def slot_objectives(per_question: Tensor, task_ids: Tensor, lambda_cls: float) -> list[Tensor]:
    """One objective per task in the batch: lambda_cls * (its questions' summed cross-entropy) / B, in task-id order."""
    import torch

    b = per_question.shape[0]
    return [lambda_cls * per_question[task_ids == t].sum() / b for t in torch.unique(task_ids).tolist()]


def check_fits_weighting(gradient: str, task_weighting: str) -> None:
    """Refuse a gradient aggregation that combines the task slots' own gradients (`per_slot`) with a
    task weighting that is not neutral: the aggregation weights the slots itself."""
    if not getattr(gradients.get(gradient), "per_slot", False) or getattr(task_weightings.get(task_weighting), "neutral", False):
        return
    neutral = [n for n in task_weightings.names() if getattr(task_weightings.get(n), "neutral", False)]
    raise UsageError(f"loss.gradient {gradient} combines the task slots' own gradients and needs "
                     f"loss.task_weighting {' or '.join(neutral)}, not {task_weighting}")
