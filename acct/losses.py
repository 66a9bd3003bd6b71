"""Loss functions of acct: per-question choice distributions, their normalised entropy, the
classification loss and the entropy-weighted supervised InfoNCE loss (docs/method.md).

Everything here is a pure function of tensors; no state, no host synchronisation. The
registered task-loss weightings and contrastive anchor weightings (acct/weightings/, acct/anchors/ and
plugins: `register_task_weighting`, `register_anchor_weighting`) read one `Observation`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from acct.errors import UsageError
from acct.registry import register_anchor_weighting, register_task_weighting  # noqa: F401  (plugins import them from here)


@dataclass
class Observation:
    """The per-question signals of one batch (B questions), read by the loss weightings, the
    curriculum and, under torchrun, the gather of the global batch.

    `loss` (and `embeddings`) keep their graph (a task-loss weighting trains through the loss);
    the rest is detached. A new per-question signal is one more [B] field here, named in
    `PER_QUESTION` so that the gather of the global batch carries it, and computed in
    `acct.train.step.forward_losses`.
    """

    # The [B] per-question fields, in the order the gather of the global batch packs them.
    PER_QUESTION: ClassVar[tuple[str, ...]] = ("task_ids", "correct", "uncertainty", "loss")

    task_ids: Tensor  # [B] long: task id of each question
    correct: Tensor  # [B] bool: the top-scoring choice is the gold one
    uncertainty: Tensor  # [B] normalised entropy of the choice distribution, in [0, 1]
    loss: Tensor  # [B] cross-entropy of each question
    mean_loss: Tensor  # scalar: the batch's mean cross-entropy, what equal weighting trains on
    num_tasks: int  # T: task ids lie in [0, T)
    step: int = 0  # optimizer steps done before this batch
    embeddings: Tensor | None = None  # [B, P] question embeddings: what the confusion tracker reads

    def detached(self) -> Observation:
        """The same record with no graph attached (what the curriculum keeps)."""
        fields = {name: getattr(self, name).detach() for name in (*self.PER_QUESTION, "mean_loss")}
        embeddings = None if self.embeddings is None else self.embeddings.detach()
        return dataclasses.replace(self, **fields, embeddings=embeddings)


def question_losses(scores: Tensor, choice_mask: Tensor, labels: Tensor) -> Tensor:
    """[B] cross-entropy of the gold choice of each question over its valid choices."""
    log_p = choice_log_probs(scores, choice_mask)
    return -log_p.gather(1, labels[:, None]).squeeze(1)


def _at_least_fp32(x: Tensor) -> Tensor:
    # Softmax, entropy and logsumexp lose too much precision in bf16/fp16; fp64 stays fp64.
    return x.to(torch.promote_types(x.dtype, torch.float32))


def choice_log_probs(scores: Tensor, choice_mask: Tensor) -> Tensor:
    """Log-softmax over the valid choices of each question.

    Args:
        scores: [B, K] choice scores; K is the largest number of choices in the batch.
        choice_mask: [B, K] bool, True where the choice exists.

    Returns:
        [B, K] log-probabilities; padded choices are -inf.
    """
    masked = _at_least_fp32(scores).masked_fill(~choice_mask, float("-inf"))
    return torch.log_softmax(masked, dim=-1)


def normalized_entropy(scores: Tensor, choice_mask: Tensor) -> Tensor:
    """Entropy of each question's choice distribution divided by log(K_i), in [0, 1].

    K_i is the number of valid choices of question i; a question with fewer than two choices
    has no uncertainty to speak of and gets 0.
    """
    log_p = choice_log_probs(scores, choice_mask)
    # Zero the -inf entries before multiplying: p * log p at a padded choice would be 0 * -inf
    # (NaN) in the forward pass and in the gradient.
    safe_log_p = log_p.masked_fill(~choice_mask, 0.0)
    entropy = -(log_p.exp() * safe_log_p).sum(dim=-1)
    num_choices = choice_mask.sum(dim=-1)
    log_k = torch.log(num_choices.clamp(min=2).to(entropy.dtype))
    u = torch.where(num_choices >= 2, entropy / log_k, torch.zeros_like(entropy))
    # Rounding can put a uniform distribution a hair above 1.
    return u.clamp(0.0, 1.0)


def classification_loss(scores: Tensor, choice_mask: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of the gold choice over the valid choices."""
    log_p = choice_log_probs(scores, choice_mask)
    return torch.nn.functional.nll_loss(log_p, labels)


def weighted_info_nce(
    z: Tensor, task_ids: Tensor, weights: Tensor, tau: float = 0.07
) -> Tensor:
    """Weighted supervised-contrastive loss ("L_out" form) with same-task items as positives.

    L_i = -1/|P(i)| * sum_{p in P(i)} log(exp(z_i.z_p/tau) / sum_{a != i} exp(z_i.z_a/tau)),
    L = sum_{i valid} w_i L_i / n_valid, where an anchor is valid when it has a positive.

    Args:
        z: [B, D] L2-normalised embeddings (any float dtype; computed in at least fp32).
        task_ids: [B] long task of each item.
        weights: [B] per-anchor weights; detached here so the loss never trains them.
        tau: temperature.

    Returns:
        Scalar loss; an exact zero still attached to the graph when no anchor is valid.
    """
    if tau <= 0:
        raise UsageError(f"tau must be positive, got {tau}")
    z = _at_least_fp32(z)
    batch = z.shape[0]
    if batch < 2:
        # No pairs at all; every logsumexp row would be empty (-inf) and poison the gradient.
        return z.sum() * 0.0

    sim = (z @ z.T) / tau
    eye = torch.eye(batch, dtype=torch.bool, device=z.device)
    positives = (task_ids[:, None] == task_ids[None, :]) & ~eye

    # With B >= 2 every row keeps at least one finite logit, so the logsumexp is finite.
    logits = sim.masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    # torch.where rather than a product with the mask: the diagonal holds -inf.
    pos_log_prob = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    num_pos = positives.sum(dim=1)
    per_anchor = -pos_log_prob / num_pos.clamp(min=1).to(z.dtype)

    valid = num_pos > 0
    w = weights.detach().to(device=z.device, dtype=z.dtype)
    weighted = torch.where(valid, w * per_anchor, torch.zeros_like(per_anchor))
    # Dividing by max(n_valid, 1) keeps the no-valid-anchor case an attached zero without a
    # host-side branch.
    return weighted.sum() / valid.sum().clamp(min=1).to(z.dtype)


def total_loss(
    cls: Tensor, con: Tensor, lambda_cls: float = 0.7, lambda_con: float = 0.3
) -> Tensor:
    """lambda_cls * classification + lambda_con * contrastive."""
    return lambda_cls * cls + lambda_con * con
