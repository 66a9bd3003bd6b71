"""What `pcgrad` and `upgrad` share: the Jacobian of the per-task objectives, stacked over the
micro-batches of an optimizer step and aggregated once by a torchjd aggregator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from acct.errors import UsageError

INSTALL_HINT = "pip install 'acct[mtl]'"

class TorchJDGradient:
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
