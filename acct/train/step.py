"""One optimizer step: the forward pass and its losses (`forward_losses`), the gather of the
global batch under torchrun, and the backward pass and update (`train_step`).

The per-question signals of a batch travel in one `acct.losses.Observation`: the task-loss and
anchor weightings read it, the gather carries each of its per-question fields to every rank, and
the curriculum observes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from acct import registry
from acct.config.train import TrainSettings
from acct.data.tokenize import Batch
from acct.errors import CheckpointError, UsageError
from acct.gradients import slot_objectives
from acct.losses import (
    Observation,
    choice_log_probs,
    normalized_entropy,
    total_loss,
    weighted_info_nce,
)
from acct.train import distributed
from acct.train.device import autocast


@dataclass
class Weightings:
    """The run's registered task-loss weighting and contrastive anchor weighting."""

    task: Any
    anchor: Any
    num_tasks: int

    @classmethod
    def build(cls, settings: TrainSettings, tasks: Sequence[str]) -> Weightings:
        loss = settings.loss
        built = []
        for reg, name, options in (
            (registry.task_weightings, loss.task_weighting, loss.task_weighting_options),
            (registry.anchor_weightings, loss.anchor_weighting, loss.anchor_weighting_options),
        ):
            try:
                built.append(reg.get(name)(list(tasks), **options))
            except (TypeError, ValueError) as exc:
                raise UsageError(f"the options do not fit {reg.kind} {name!r}: {exc}") from None
        return cls(built[0], built[1], len(tasks))

    def parameters(self) -> list[torch.Tensor]:
        """The task weighting's learnable tensors (its optional `parameters()`); [] for most weightings."""
        get = getattr(self.task, "parameters", None)
        if not callable(get):
            return []
        params = list(get())
        name = getattr(type(self.task), "registry_name", type(self.task).__name__)
        for p in params:
            if not (isinstance(p, torch.Tensor) and p.is_leaf and p.requires_grad and p.is_floating_point()):
                raise UsageError(f"task weighting {name!r}: parameters() must give floating-point leaf tensors "
                                 "that require grad")
        return params

    def to(self, device: torch.device) -> Weightings:
        """Move the task weighting's parameters to `device`, in place (the optimizer holds these very tensors)."""
        with torch.no_grad():
            for p in self.parameters():
                p.data = p.data.to(device)
        return self

    def parameter_group(self, lr: float) -> dict[str, Any] | None:
        """The AdamW group of the task weighting's parameters: no weight decay, at its `lr` or the run's."""
        params = self.parameters()
        if not params:
            return None
        own = getattr(self.task, "lr", None)
        return {"params": params, "weight_decay": 0.0, "lr": float(own) if own is not None else lr}

    def logged(self, tasks: Sequence[str]) -> dict[str, dict[str, float]]:
        """What the task weighting reports at each validation (its optional `logged()`), by task."""
        get = getattr(self.task, "logged", None)
        if not callable(get):
            return {}
        return {name: {t: float(v) for t, v in zip(tasks, values)} for name, values in get().items()}

    def state_dict(self) -> dict[str, Any]:
        state = {key: part.state_dict() for key, part in (("task", self.task), ("anchor", self.anchor))
                 if callable(getattr(part, "state_dict", None))}
        params = self.parameters()
        if params:
            # Tensors: the checkpoint writes them to state.safetensors.
            state["task_parameters"] = [p.detach().cpu().clone() for p in params]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, part in (("task", self.task), ("anchor", self.anchor)):
            if key in state and callable(getattr(part, "load_state_dict", None)):
                part.load_state_dict(state[key])
        params = self.parameters()
        if params:
            saved = state.get("task_parameters")
            if saved is None or len(saved) != len(params):
                raise CheckpointError("the checkpoint does not hold the task weighting's parameters")
            with torch.no_grad():
                for p, value in zip(params, saved):
                    if tuple(value.shape) != tuple(p.shape):
                        raise CheckpointError(f"task weighting parameter of shape {tuple(value.shape)} in the "
                                              f"checkpoint, {tuple(p.shape)} in the run")
                    p.copy_(value.to(device=p.device, dtype=p.dtype))


@dataclass
class StepOutput:
    loss: torch.Tensor
    cls_loss: torch.Tensor
    contrastive_loss: torch.Tensor
    correct: torch.Tensor  # [B] bool, this rank's questions
    # What the curriculum observes: the whole global batch -- this rank's batch in a single
    # process, the gathered one under torchrun -- with its embeddings, all detached.
    observed: Observation
    # The task-slot objectives of gradient surgery (acct.gradients), when asked for; they sum to `loss`.
    objectives: list[torch.Tensor] | None = None


def gather_global_batch(dist: distributed.Distributed, obs: Observation, z: torch.Tensor, *, grad: bool) -> Observation:
    """The observation record of the global batch, rows in the sampler's order, from every rank's share.

    Rank r holds the global rows r, r + W, r + 2W, ...; one all-gather of one packed tensor (the
    embeddings `z` and every per-question field of `obs`) brings them together. With `grad`, this
    rank's embeddings stay attached to the graph with their gradient multiplied by W: each rank
    back-propagates the *global* InfoNCE into its own embeddings only, and DDP then divides the summed gradients by W, so the product is exactly
    the single-process gradient. (The cross-entropy needs no such factor: each rank's is a mean
    over its B / W questions, and the average of those means is the global mean.)
    """
    w = dist.world_size
    zf = z.float()
    if grad:
        # Value unchanged (the second term is exactly zero), gradient scaled by W.
        zf = zf.detach() + (zf - zf.detach()) * w
    else:
        zf = zf.detach()
    fields = Observation.PER_QUESTION
    extra = torch.stack([getattr(obs, name).detach().float() for name in fields], dim=1)
    rows = dist.all_gather_rows(torch.cat([zf, extra], dim=1))
    b = z.shape[0]
    position = torch.arange(b * w, device=rows.device)
    rows = rows.index_select(0, (position % w) * b + position // w)  # rank-major -> global order
    p = z.shape[1]
    columns = {name: rows[:, p + i].to(getattr(obs, name).dtype) for i, name in enumerate(fields)}
    return dataclasses.replace(obs, **columns, mean_loss=columns["loss"].mean(), embeddings=rows[:, :p])


def forward_losses(
    model, batch, settings: TrainSettings, device: torch.device, precision: str,
    dist: distributed.Distributed = distributed.SINGLE, weightings: Weightings | None = None, slots: bool = False,
) -> StepOutput:
    """The batch's losses; with `slots`, also the task-slot objectives of gradient surgery (see acct.gradients)."""
    with autocast(device, precision):
        out = model(**batch.model_inputs())
    if out.embeddings is None:
        raise ValueError("the batch has no question-only sequences: build it with tokenize.collate")
    if weightings is None:
        weightings = Weightings.build(settings, [str(t) for t in range(model_num_tasks(model))])
    scores = out.scores.float()
    log_p = choice_log_probs(scores, batch.choice_mask)
    per_question = -log_p.gather(1, batch.labels[:, None]).squeeze(1)
    u = normalized_entropy(scores.detach(), batch.choice_mask)
    correct = scores.detach().argmax(-1) == batch.labels
    obs = Observation(
        task_ids=batch.task_ids, correct=correct, uncertainty=u, loss=per_question,
        mean_loss=torch.nn.functional.nll_loss(log_p, batch.labels), num_tasks=weightings.num_tasks,
        embeddings=out.embeddings,
    )
    cls = weightings.task.loss(obs)
    contrast = settings.loss.lambda_contrastive > 0
    if dist.enabled:
        gather_grad = contrast and settings.loss.gather_negatives and torch.is_grad_enabled()
        observed = gather_global_batch(dist, obs, out.embeddings, grad=gather_grad)
    else:
        observed = obs.detached()
    if contrast and dist.enabled and settings.loss.gather_negatives:
        everyone = observed
        con = weighted_info_nce(everyone.embeddings, everyone.task_ids, weightings.anchor.weights(everyone),
                                tau=settings.loss.tau)
        observed = everyone.detached()
    elif contrast:
        con = weighted_info_nce(out.embeddings, batch.task_ids, weightings.anchor.weights(obs), tau=settings.loss.tau)
    else:
        con = torch.zeros((), device=scores.device)
    loss = total_loss(cls, con, settings.loss.lambda_cls, settings.loss.lambda_contrastive)
    objectives = None
    if slots:
        objectives = slot_objectives(per_question, batch.task_ids, settings.loss.lambda_cls)
        if contrast:
            objectives.append(settings.loss.lambda_contrastive * con)
    return StepOutput(loss, cls.detach(), con.detach(), correct, observed, objectives)


def model_num_tasks(model: torch.nn.Module) -> int:
    """Number of tasks of a MultipleChoiceModel, also through DDP / torch.compile wrappers."""
    inner = getattr(model, "_orig_mod", model)
    inner = getattr(inner, "module", inner)
    return int(inner.task_embedding.num_embeddings)


@dataclass
class Optimization:
    """What one optimizer step updates: the optimizer, its schedule, the fp16 loss scaler, and how
    the gradient is formed (`loss.gradient`; None: the gradient of the total loss)."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    params: list[torch.nn.Parameter]  # the model's trained parameters: what is clipped
    max_grad_norm: float
    gradient: Any = None  # a registered gradient aggregation (acct.gradients)

    def state_dict(self) -> dict[str, Any]:
        """The schedule and the loss scaler (the optimizer's own state is saved beside the checkpoint's)."""
        return {
            "scheduler": {"last_epoch": self.scheduler.last_epoch, "_step_count": self.scheduler._step_count},
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict({**self.scheduler.state_dict(), **state["scheduler"]})
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


def train_step(
    model: torch.nn.Module,
    batches: Sequence[Batch],
    settings: TrainSettings,
    opt: Optimization,
    *,
    device: torch.device,
    precision: str,
    dist: distributed.Distributed = distributed.SINGLE,
    observe: Callable[[Observation], None] | None = None,
    weightings: Weightings | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step over `batches` (the micro-batches of gradient accumulation).

    `model` is the module being trained: the DDP wrapper under torchrun.

    Returns the micro-batch mean of [loss, cls loss, contrastive loss, accuracy] and `found_inf`
    (1.0 when the gradient was not finite, in which case fused AdamW skipped the update), both
    on the device: nothing here waits for the device. `observe` receives the observation
    record of each micro-batch (the global batch's under torchrun).
    """
    sums = torch.zeros(4, device=device)
    n = len(batches)
    gradient = opt.gradient
    per_slot = bool(getattr(gradient, "per_slot", False))
    weighting_params = weightings.parameters() if weightings is not None else []
    for i, batch in enumerate(batches):
        # Under DDP, gradients are all-reduced once per optimizer step, on the last micro-batch.
        last = i == n - 1
        sync = model.no_sync() if dist.enabled and not last else contextlib.nullcontext()
        with sync:
            out = forward_losses(model, batch, settings, device, precision, dist, weightings, slots=per_slot)
            if gradient is None:
                opt.scaler.scale(out.loss / n).backward()
            else:
                objectives = out.objectives if per_slot else [out.loss]
                assert objectives is not None
                gradient.backward([opt.scaler.scale(f / n) for f in objectives], [*opt.params, *weighting_params])
        if observe is not None:
            observe(out.observed)
        sums += torch.stack([out.loss.detach(), out.cls_loss, out.contrastive_loss, out.correct.float().mean()]) / n
    if gradient is not None:
        gradient.finish([*opt.params, *weighting_params])
    if dist.enabled:
        # DDP averages the model's gradient over the processes; the task weighting's parameters
        # are outside the DDP module, so their gradient is averaged here, the same way.
        for p in weighting_params:
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            p.grad = dist.all_reduce_(grad).div_(dist.world_size)
    return sums, optimizer_step(opt)


def optimizer_step(opt: Optimization) -> torch.Tensor:
    """Unscale, clip and step (skipped when the gradient is not finite); returns `found_inf` on the device."""
    opt.scaler.unscale_(opt.optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(opt.params, opt.max_grad_norm, foreach=True)
    found_inf = (~torch.isfinite(grad_norm)).float()
    if opt.scaler.is_enabled():
        opt.scaler.step(opt.optimizer)
        opt.scaler.update()
    else:
        # Fused AdamW reads found_inf on the device and leaves the parameters alone when it is 1.
        opt.optimizer.found_inf = found_inf
        opt.optimizer.step()
    opt.optimizer.zero_grad(set_to_none=True)
    opt.scheduler.step()
    return found_inf
