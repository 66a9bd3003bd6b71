"""The `mean` gradient: the gradient of the total loss, what every multi-task run does by default."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from acct.registry import register_gradient


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
