"""The training loop and evaluation, as plain functions: no Typer, no rich, no printing.

`train` is a generator of events; the CLI renders them, tests read them. Everything a later
command needs (settings, split manifest, task list, confusion matrix, curriculum state) is
written into the run directory as training goes.

Under torchrun (see acct/distributed.py and docs/scaling.md) the same loop runs on every rank:
all ranks draw the same global batch and each keeps the rows `rank::world_size`; the model is
wrapped in DistributedDataParallel; the curriculum observes the gathered global batch and its
windows are all-reduced before every update, so the task weights are identical on every rank;
rank 0 alone writes the run directory while the others wait for it. Checkpoints carry every
rank's RNG state and unlogged metrics window (gathered to rank 0), so a resume with the same
number of processes is exact; with another number, ranks > 0 are re-seeded from (seed, rank, step).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from acct import distributed, plugins, provenance, registry
from acct import checkpoint as ckpt_io
from acct.config import TINY, CodeFile, DataSettings, EvaluateSettings, TrainSettings, contrastive_notice, format_validation_error
from acct.curriculum import Curriculum, TaskBatchSampler
from acct.data import DataSplit, Example, MMLU_CATEGORIES, apply_manifest, build_manifest, standard_split, subject_split
from acct.errors import AcctError, CheckpointError, UsageError
from acct.losses import Observation, choice_log_probs, normalized_entropy, total_loss, weighted_info_nce
from acct.metrics import EvalResult, majority_answer, summarize
from acct.runlock import RunLock
from acct.model import HeadConfig, MultipleChoiceModel, build_encoder, encoder_from_config_dir
from acct.synthetic import SYNTHETIC_CATEGORIES
from acct.tokenize import (
    Batch,
    EncodedExamples,
    collate,
    default_cache_dir,
    encode_examples_cached,
    example_lengths,
    example_texts,
    load_tokenizer,
    train_tiny_tokenizer,
)
from acct.tokenize import pad_id as tokenizer_pad_id

# -- events ---------------------------------------------------------------------------------------


@dataclass
class RunStarted:
    run_dir: Path
    device: str
    precision: str
    tasks: list[str]
    num_train: int
    num_val: int
    total_steps: int
    steps_per_epoch: int
    start_step: int
    notices: list[str] = field(default_factory=list)
    world_size: int = 1  # processes sharing each global batch (torchrun)


@dataclass
class StepLogged:
    step: int
    total_steps: int
    epoch: float
    loss: float
    cls_loss: float
    contrastive_loss: float
    accuracy: float
    lr: float
    questions_per_s: float
    tokens_per_s: float
    skipped_steps: int


@dataclass
class CurriculumUpdated:
    step: int
    weights: dict[str, float]
    sampled: dict[str, int] = field(default_factory=dict)  # questions drawn per task since the previous update


@dataclass
class Validated:
    step: int
    epoch: float
    result: EvalResult
    improved: bool
    best_accuracy: float


@dataclass
class CheckpointSaved:
    step: int
    path: Path
    tags: list[str]


@dataclass
class Finished:
    step: int
    reason: str  # "completed", "early_stopping", "interrupted"
    best_accuracy: float | None
    best_step: int | None
    run_dir: Path


Event = RunStarted | StepLogged | CurriculumUpdated | Validated | CheckpointSaved | Finished


# -- devices and precision ------------------------------------------------------------------------


def resolve_device(device: str, precision: str) -> tuple[torch.device, str]:
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    dev = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
    if precision == "auto":
        precision = "bf16" if dev.type == "cuda" else "fp32"
    if precision == "fp16" and dev.type != "cuda":
        raise UsageError("fp16 needs CUDA; on a CPU use --precision fp32 (or bf16)")
    return dev, precision


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def configure_backends(device: torch.device, precision: str, *, deterministic: bool, tf32: bool) -> dict[str, bool]:
    """Set the process-wide kernel choices a run asks for; returns what is in effect (recorded with the run)."""
    if deterministic:
        # cuBLAS needs a fixed workspace for reproducible results; it is read when CUDA starts.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    use_tf32 = tf32 and device.type == "cuda" and precision == "fp32"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = use_tf32
        torch.backends.cudnn.allow_tf32 = use_tf32
        torch.set_float32_matmul_precision("high" if use_tf32 else "highest")
    return {"deterministic": deterministic, "tf32": use_tf32}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


# -- data -----------------------------------------------------------------------------------------


def data_source(data: DataSettings) -> Any:
    """The registered data source `data.source`, built with `data.options`."""
    cls = registry.data_sources.get(data.source)
    try:
        return cls(**data.options)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"data.options do not fit data source {data.source!r}: {exc}") from None


def load_source(data: DataSettings, seed: int) -> dict[str, list[Example]]:
    return data_source(data).load(data, seed)


def make_split(source: dict[str, list[Example]], data: DataSettings, seed: int) -> DataSplit:
    if data.protocol == "standard":
        return standard_split(source, allow_overlap=data.allow_overlap)
    return subject_split(source, fractions=data.split_fractions, seed=seed)


def check_batch_fits(settings: TrainSettings, train: Sequence[Example]) -> None:
    """Refuse a batch the training split cannot fill, before anything is built or written."""
    sizes: dict[str, int] = {}
    for ex in train:
        sizes[ex.task] = sizes.get(ex.task, 0) + 1
    largest = max(sizes.values())
    shape = settings.batch
    if shape.examples_per_task > largest:
        raise UsageError(
            f"examples_per_task {shape.examples_per_task} is more than the largest task has ({largest} training "
            f"questions): a task slot can never hold more; use --examples-per-task {largest} or less"
        )
    if shape.questions_per_batch > len(train):
        raise UsageError(
            f"a batch of {shape.questions_per_batch} questions (tasks_per_batch {shape.tasks_per_batch} x examples_per_task "
            f"{shape.examples_per_task}) is larger than the whole training split ({len(train)} questions); "
            "lower --tasks-per-batch or --examples-per-task"
        )


def task_categories(tasks: Sequence[str], extra: dict[str, str] | None = None) -> dict[str, str]:
    """Category of every task: a data source's own (`extra`), MMLU's four, the synthetic suite's, else 'other'."""
    known = {**MMLU_CATEGORIES, **SYNTHETIC_CATEGORIES, **(extra or {})}
    return {t: known.get(t, "other") for t in tasks}


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

    def state_dict(self) -> dict[str, Any]:
        return {key: part.state_dict() for key, part in (("task", self.task), ("anchor", self.anchor))
                if callable(getattr(part, "state_dict", None))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, part in (("task", self.task), ("anchor", self.anchor)):
            if key in state and callable(getattr(part, "load_state_dict", None)):
                part.load_state_dict(state[key])


# -- evaluation -----------------------------------------------------------------------------------


@torch.inference_mode()
def predict_encoded(
    model: MultipleChoiceModel,
    encoded: EncodedExamples,
    *,
    device: torch.device,
    precision: str,
    batch_size: int,
    pad_id: int,
) -> tuple[list[int], torch.Tensor]:
    """Predicted choice and per-choice probabilities ([N, K_max], 0 at padded choices) of every example."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(encoded)), key=lambda i: max(len(s) for s in encoded.sequences[i]))
    probs_chunks: list[tuple[list[int], torch.Tensor]] = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = collate(encoded, idx, pad_id).to(device)
        with autocast(device, precision):
            out = model(**batch.model_inputs(questions=False))
        probs_chunks.append((idx, out.scores.float().softmax(-1).cpu()))
    model.train(was_training)
    k_max = max((p.shape[1] for _, p in probs_chunks), default=2)
    probs = torch.zeros(len(encoded), k_max)
    for idx, p in probs_chunks:
        probs[torch.tensor(idx), : p.shape[1]] = p
    return probs.argmax(-1).tolist(), probs


# -- the run directory ----------------------------------------------------------------------------


RUN_FILES = ("config.json", "split.json", "metrics.jsonl")


def check_resumable(settings: TrainSettings) -> Path:
    """The run directory of a resume: it must hold a 'last' checkpoint."""
    run_dir = settings.run_dir()
    ckpt_io.checkpoint_dir(run_dir, "last")
    return run_dir


class RunWriter:
    """Rank 0's hold on the run directory while it trains.

    `begin` takes the directory's lock (see acct.runlock) and refuses an existing run without
    --overwrite; `set_aside` moves an overwritten run into RUN_DIR/.old-<time>/ once the new
    run's data and tokenizer are known to be good; `saved` deletes it after the new run's
    first checkpoint. `end` releases the lock and, after a failed start (no checkpoint
    saved), removes what this run wrote and puts the old run back.
    """

    def __init__(self, settings: TrainSettings):
        self.settings = settings
        self.run_dir = settings.run_dir()
        self.lock: RunLock | None = None
        self.created_dir = False
        self.aside: Path | None = None
        self.wrote_files = False
        self.checkpointed = False

    def begin(self) -> None:
        run_dir = self.run_dir
        if self.settings.resume:
            self.lock = RunLock.acquire(run_dir)
            return
        if run_dir.exists() and not run_dir.is_dir():
            raise UsageError(f"output path {run_dir} is a file")
        self.created_dir = not run_dir.exists()
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create run directory {run_dir}: {exc.strerror}") from None
        try:
            self.lock = RunLock.acquire(run_dir)
            if ckpt_io.is_run_dir(run_dir) and not self.settings.overwrite:
                raise UsageError(f"{run_dir} already holds a run; pass --overwrite to replace it or --resume to continue it")
        except BaseException:
            self.end(ok=False)
            raise

    def set_aside(self) -> str | None:
        """Move the run being overwritten out of the way; a notice saying where, or None."""
        if not ckpt_io.is_run_dir(self.run_dir):
            return None
        aside = self.run_dir / f".old-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        aside.mkdir()
        self.aside = aside
        for entry in self._run_entries():
            os.replace(entry, aside / entry.name)
        return (f"--overwrite: the previous run was moved to {aside}; it is deleted once this run saves its first "
                "checkpoint, and put back if this run fails before that")

    def _run_entries(self) -> list[Path]:
        names = [*RUN_FILES, "checkpoints"]
        entries = [self.run_dir / n for n in names if (self.run_dir / n).exists() or (self.run_dir / n).is_symlink()]
        return entries + sorted(self.run_dir.glob("eval-*.json"))

    def saved(self) -> None:
        self.checkpointed = True
        if self.aside is not None:
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None

    def end(self, ok: bool) -> None:
        try:
            if not self.checkpointed and not self.settings.resume and self.lock is not None:
                self._undo_start()
        finally:
            if self.lock is not None:
                failed_start = not self.checkpointed and not self.settings.resume
                self.lock.release(remove=failed_start and (self.created_dir or self.lock.created))
                self.lock = None
            if self.created_dir and not self.checkpointed:
                with contextlib.suppress(OSError):
                    self.run_dir.rmdir()

    def _undo_start(self) -> None:
        if self.wrote_files or self.aside is not None:
            for entry in self._run_entries():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        if self.aside is not None:
            for entry in self.aside.iterdir():
                os.replace(entry, self.run_dir / entry.name)
            self.aside.rmdir()
            self.aside = None


def load_run_settings(run_dir: Path) -> TrainSettings:
    """The settings a run was trained with, as written to its config.json."""
    if not ckpt_io.is_run_dir(run_dir):
        raise UsageError(f"{run_dir} is not an acct run directory (no config.json)")
    saved = provenance.without_provenance(ckpt_io.read_json(Path(run_dir) / "config.json", "run settings"))
    try:
        return TrainSettings.model_validate(saved)
    except ValidationError as exc:
        raise CheckpointError(f"{run_dir}/config.json does not hold valid settings: {format_validation_error(exc)}") from None
    except Exception as exc:
        raise CheckpointError(f"{run_dir}/config.json does not hold valid settings: {str(exc).splitlines()[0]}") from None


class MetricsLog:
    """Append-only JSONL of run events, each with its UTC time; truncated back to the last checkpoint on resume.

    Under torchrun only rank 0's log writes (`enabled=False` elsewhere).
    """

    def __init__(self, path: Path, enabled: bool = True):
        self.path = path
        self.enabled = enabled

    def write(self, kind: str, **fields: Any) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": kind, "time": provenance.utc_now(), **fields}) + "\n")

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def sync(self) -> None:
        """Flush the log to the disk (before a checkpoint records its length)."""
        if self.enabled and self.path.exists():
            with open(self.path, "ab") as f:
                f.flush()
                os.fsync(f.fileno())

    def truncate(self, size: int) -> None:
        if self.enabled and self.path.exists():
            with open(self.path, "r+b") as f:
                f.truncate(size)

    def restore(self, size: int, step: int) -> str | None:
        """Bring the log back to a checkpoint that recorded `size` bytes at `step`; a notice if it cannot be exact.

        A longer log lost nothing: its tail after the checkpoint is cut. A shorter one lost
        records the checkpoint cannot rebuild: its partial last line is dropped and a
        "segment" record marks where the log starts again. Never padded.
        """
        if not self.enabled:
            return None
        if not self.path.exists():
            self.write("segment", step=step, reason="metrics.jsonl was missing at resume")
            return f"metrics.jsonl was missing; a new log starts at step {step} (earlier records are lost)"
        have = self.size()
        if have >= size:
            self.truncate(size)
            return None
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1
        self.truncate(keep)
        self.write("segment", step=step, reason=f"metrics.jsonl had {have} of the {size} bytes the checkpoint recorded")
        return (f"metrics.jsonl is shorter than the checkpoint recorded ({have} < {size} bytes): its lost tail "
                f"cannot be rebuilt; a new segment starts at step {step}")


# -- optimizer and schedule -----------------------------------------------------------------------


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # Biases, norms and embeddings' 1-d gains carry no useful decay.
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # fused also runs on CPU, and its found_inf argument skips a non-finite step without a host sync.
    return torch.optim.AdamW(groups, lr=lr, fused=True)


def lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


# -- the loop -------------------------------------------------------------------------------------


@dataclass
class StepOutput:
    loss: torch.Tensor
    cls_loss: torch.Tensor
    contrastive_loss: torch.Tensor
    correct: torch.Tensor  # [B] bool
    uncertainty: torch.Tensor  # [B]
    embeddings: torch.Tensor  # [B, P]
    # What the curriculum observes: (embeddings, task ids, uncertainty, correct) of the whole
    # global batch -- this rank's batch in a single process, the gathered one under torchrun.
    observed: tuple[torch.Tensor, ...] | None = None


def _gather_global_batch(
    dist: distributed.Distributed, z: torch.Tensor, task_ids: torch.Tensor, u: torch.Tensor, correct: torch.Tensor,
    loss: torch.Tensor, *, grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, task ids, u, correct, per-question loss) of the global batch, rows in the sampler's order, from every rank's share.

    Rank r holds the global rows r, r + W, r + 2W, ...; one all-gather of one packed tensor
    brings them together. With `grad`, this rank's embeddings stay attached to the graph with
    their gradient multiplied by W: each rank back-propagates the *global* InfoNCE into its own
    embeddings only, and DDP then divides the summed gradients by W, so the product is exactly
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
    extra = torch.stack([u.detach().float(), task_ids.float(), correct.float(), loss.detach().float()], dim=1)
    rows = dist.all_gather_rows(torch.cat([zf, extra], dim=1))
    b = z.shape[0]
    position = torch.arange(b * w, device=rows.device)
    rows = rows.index_select(0, (position % w) * b + position // w)  # rank-major -> global order
    p = z.shape[1]
    return rows[:, :p], rows[:, p + 1].long(), rows[:, p], rows[:, p + 2].bool(), rows[:, p + 3]


def forward_losses(
    model, batch, settings: TrainSettings, device: torch.device, precision: str,
    dist: distributed.Distributed = distributed.SINGLE, weightings: Weightings | None = None,
) -> StepOutput:
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
    )
    cls = weightings.task.loss(obs)
    contrast = settings.loss.lambda_contrastive > 0
    if dist.enabled:
        gather_grad = contrast and settings.loss.gather_negatives and torch.is_grad_enabled()
        observed = _gather_global_batch(dist, out.embeddings, batch.task_ids, u, correct, per_question, grad=gather_grad)
    else:
        observed = (out.embeddings.detach(), batch.task_ids, u, correct, per_question.detach())
    if contrast and dist.enabled and settings.loss.gather_negatives:
        z, tasks, u_all, correct_all, loss_all = observed
        everyone = Observation(tasks, correct_all, u_all, loss_all, loss_all.mean(), weightings.num_tasks)
        con = weighted_info_nce(z, tasks, weightings.anchor.weights(everyone), tau=settings.loss.tau)
        observed = (z.detach(), *observed[1:])
    elif contrast:
        con = weighted_info_nce(out.embeddings, batch.task_ids, weightings.anchor.weights(obs), tau=settings.loss.tau)
    else:
        con = torch.zeros((), device=scores.device)
    loss = total_loss(cls, con, settings.loss.lambda_cls, settings.loss.lambda_contrastive)
    return StepOutput(loss, cls.detach(), con.detach(), correct, u, out.embeddings.detach(), observed)


def model_num_tasks(model: torch.nn.Module) -> int:
    """Number of tasks of a MultipleChoiceModel, also through DDP / torch.compile wrappers."""
    inner = getattr(model, "_orig_mod", model)
    inner = getattr(inner, "module", inner)
    return int(inner.task_embedding.num_embeddings)


@dataclass
class Optimization:
    """What one optimizer step updates: the optimizer, its schedule, the fp16 loss scaler."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    params: list[torch.nn.Parameter]
    max_grad_norm: float


def train_step(
    model: torch.nn.Module,
    batches: Sequence[Batch],
    settings: TrainSettings,
    opt: Optimization,
    *,
    device: torch.device,
    precision: str,
    dist: distributed.Distributed = distributed.SINGLE,
    observe: Callable[..., None] | None = None,
    weightings: Weightings | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step over `batches` (the micro-batches of gradient accumulation).

    `model` is the module being trained: the DDP wrapper under torchrun.

    Returns the micro-batch mean of [loss, cls loss, contrastive loss, accuracy] and `found_inf`
    (1.0 when the gradient was not finite, in which case fused AdamW skipped the update), both
    on the device: nothing here waits for the device. `observe` receives what the curriculum
    observes of each micro-batch.
    """
    sums = torch.zeros(4, device=device)
    n = len(batches)
    for i, batch in enumerate(batches):
        # Under DDP, gradients are all-reduced once per optimizer step, on the last micro-batch.
        last = i == n - 1
        sync = model.no_sync() if dist.enabled and not last else contextlib.nullcontext()
        with sync:
            out = forward_losses(model, batch, settings, device, precision, dist, weightings)
            opt.scaler.scale(out.loss / n).backward()
        if observe is not None:
            observe(*(out.observed or (out.embeddings, batch.task_ids, out.uncertainty, out.correct)))
        sums += torch.stack([out.loss.detach(), out.cls_loss, out.contrastive_loss, out.correct.float().mean()]) / n
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
    return sums, found_inf


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": json.dumps(random.getstate())}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _shard(encoded: EncodedExamples, rank: int, world_size: int) -> EncodedExamples:
    """Examples rank::world_size: this rank's share of an evaluation, without padding or overlap."""
    if world_size == 1:
        return encoded
    return EncodedExamples(
        sequences=encoded.sequences[rank::world_size],
        answers=encoded.answers[rank::world_size],
        task_ids=encoded.task_ids[rank::world_size],
        questions=None if encoded.questions is None else encoded.questions[rank::world_size],
    )


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class _Resumed:
    """What a checkpoint gives back besides the states it loads in place."""

    step: int
    best_accuracy: float | None
    best_step: int | None
    bad_evals: int
    window: dict[str, Any]  # this rank's unlogged metrics window
    notices: list[str]


def _resume(
    ckpt: Path, opt: Optimization, curriculum: Curriculum, sampler: TaskBatchSampler, log: MetricsLog,
    dist: distributed.Distributed, device: torch.device, seed: int,
) -> _Resumed:
    """Load the training state saved in `ckpt` in place: optimizer, schedule, scaler, curriculum,
    sampler, RNG streams; cut metrics.jsonl back to the checkpoint."""
    state = ckpt_io.load_state(ckpt, "state")
    opt.optimizer.load_state_dict(ckpt_io.load_optimizer_state(ckpt))
    trainer = state["trainer"]
    opt.scheduler.load_state_dict({**opt.scheduler.state_dict(), **trainer["scheduler"]})
    if trainer.get("scaler"):
        opt.scaler.load_state_dict(trainer["scaler"])
    curriculum.load_state_dict(state["curriculum"])
    if not dist.is_main:
        # The saved windows are rank 0's, the only rank that observes; the others contribute
        # zeros to the all-reduce, so loading rank 0's windows here would count them twice.
        for pending in curriculum.pending_tensors():
            pending.zero_()
    sampler.load_state_dict(state["sampler"])
    step = trainer["step"]
    notices = []
    # Rank-local state (RNG streams, the unlogged metrics window) is saved for every rank.
    ranks = [{"rng": state["rng"], "window": trainer["window"]}, *state.get("ranks", [])]
    saved_world = int(state.get("world_size", 1))
    if saved_world == dist.world_size:
        _set_rng_state(ranks[dist.rank]["rng"], device)
        window = ranks[dist.rank]["window"]
    else:
        # Rank 0 keeps its stream; the others cannot have theirs. The half-filled metrics
        # window is shared out as its mean, so the next logged averages stay right.
        if dist.rank == 0:
            _set_rng_state(state["rng"], device)
        else:
            seed_everything(distributed.rank_seed(seed, dist.rank, step))
        window = {
            **trainer["window"],
            "sums": torch.stack([r["window"]["sums"] for r in ranks]).mean(0),
            "questions": 0,
            "tokens": 0,
        }
        notices.append(
            f"checkpoint written by {saved_world} process(es), resumed by {dist.world_size}: training continues "
            "with the same global batch, but dropout draws differ from an uninterrupted run"
        )
    lost = log.restore(trainer["metrics_bytes"], step)
    if lost:
        notices.append(lost)
    notices.append(f"resumed from step {step} ({ckpt.name})")
    return _Resumed(step, trainer["best_accuracy"], trainer["best_step"], trainer["bad_evals"], window, notices)


def user_trusts_remote_code(flag: bool = False) -> bool:
    """Trust comes from the person running the command: their flag or ACCT_MODEL__TRUST_REMOTE_CODE, never a run directory."""
    env = os.environ.get("ACCT_MODEL__TRUST_REMOTE_CODE", "").strip().lower()
    return bool(flag) or env in ("1", "true", "yes", "on", "y", "t")


def check_no_remote_code(ckpt: Path, trust_remote_code: bool) -> None:
    """Refuse a checkpoint whose encoder or tokenizer config points at code, unless the user trusts it."""
    if trust_remote_code:
        return
    for part in ("encoder/config.json", "tokenizer/tokenizer_config.json", "tokenizer/config.json"):
        path = ckpt / part
        if not path.is_file():
            continue
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(cfg, dict) and cfg.get("auto_map"):
            raise CheckpointError(
                f"{path} names code to run (auto_map); acct never runs code from a run directory on its own: "
                "if you trust where this run came from, pass --trust-remote-code (or set ACCT_MODEL__TRUST_REMOTE_CODE=1)"
            )


# Fields a checkpoint's settings digest leaves out: how this invocation was asked for, where the
# run and its CSV files live (the split manifest's fingerprints guard the data itself), and trust,
# which is never read from the run directory.
_UNDIGESTED = ("resume", "overwrite", "output_dir", "model.trust_remote_code", "data.data_dir")


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: obj}


def settings_record(settings: TrainSettings) -> dict[str, Any]:
    """The settings a checkpoint vouches for, flattened to dotted names."""
    flat = _flatten(json.loads(settings.model_dump_json()))
    return {k: v for k, v in flat.items() if k not in _UNDIGESTED}


def check_settings_unchanged(run_dir: Path, settings: TrainSettings, meta: dict[str, Any]) -> None:
    """Refuse to resume when config.json no longer matches the settings the checkpoint was saved with."""
    digest = meta.get("settings_digest")
    if digest is None:
        return
    now = settings_record(settings)
    if _fingerprint(now) == digest:
        return
    saved = meta.get("settings") or {}
    changed = sorted(k for k in now.keys() | saved.keys() if now.get(k) != saved.get(k))
    detail = ", ".join(f"{k} ({saved.get(k)!r} -> {now.get(k)!r})" for k in changed[:4]) or "unknown fields"
    raise CheckpointError(
        f"{run_dir}/config.json was edited after the checkpoint was saved: {detail}"
        f"{' ...' if len(changed) > 4 else ''}; put the saved values back to resume, or start a new run"
    )


def train(settings: TrainSettings, *, should_stop: Callable[[], bool] = lambda: False) -> Iterator[Event]:
    """Train one configuration, yielding events; `should_stop` lets a signal end it cleanly.

    Under torchrun every rank runs this generator; it joins the process group on first use
    (the caller tears it down: see `distributed.session`). Every rank yields the same events,
    only rank 0 writes files, and `should_stop` on any rank stops all of them at the same step.
    Rank 0 holds the run directory's lock from start to end (see RunWriter).
    """
    run_dir = settings.run_dir()
    trust = settings.model.trust_remote_code
    if settings.resume:
        check_resumable(settings)  # read-only: there must be a 'last' checkpoint
    device, precision = resolve_device(settings.device, settings.precision)
    if not settings.resume:
        # Before joining a process group or touching the run directory (a resume checks its saved batch below).
        _check_batch_splits(settings, distributed.launched()[1])
    dist = distributed.init(device)
    if dist.enabled:
        device = dist.device
    writer = RunWriter(settings)
    dist.on_main(writer.begin)
    ok = False
    try:
        if settings.resume:
            # A resumed run continues with the settings it was started with, whatever the caller
            # built (read under the lock), except trust, which only the caller can give.
            saved = load_run_settings(run_dir)
            settings = saved.model_copy(update={
                "resume": True, "output_dir": run_dir, "model": saved.model.model_copy(update={"trust_remote_code": trust}),
            })
            # Its plugins come from the run's own copies, imported only once their sha256 matches.
            plugins.import_run_code(run_dir, settings.plugins)
        yield from _train(settings, writer, dist, device, precision, should_stop)
        ok = True
    finally:
        if dist.is_main:
            writer.end(ok)


def _check_batch_splits(settings: TrainSettings, world_size: int) -> None:
    questions_per_batch = settings.batch.questions_per_batch
    if questions_per_batch % world_size:
        raise UsageError(
            f"the global batch of {questions_per_batch} questions (tasks_per_batch {settings.batch.tasks_per_batch} x "
            f"examples_per_task {settings.batch.examples_per_task}) does not split evenly over {world_size} processes; "
            f"make it a multiple of {world_size} (e.g. --examples-per-task) or change --nproc_per_node"
        )


def _train(
    settings: TrainSettings, writer: RunWriter, dist: distributed.Distributed, device: torch.device, precision: str,
    should_stop: Callable[[], bool],
) -> Iterator[Event]:
    run_dir = settings.run_dir()
    questions_per_batch = settings.batch.questions_per_batch
    _check_batch_splits(settings, dist.world_size)
    backends = configure_backends(device, precision, deterministic=settings.deterministic, tf32=settings.tf32)
    trace = distributed.RankTrace(dist.rank)
    trace.write("started", pid=os.getpid(), world_size=dist.world_size)
    # A new run from another's weights: read (and check) the source before the run directory is touched.
    init = None
    if settings.init_from is not None and not settings.resume:
        from acct import init_from

        init = init_from.open_source(settings.init_from, output_dir=run_dir)
    seed_everything(settings.seed)
    notices: list[str] = []

    # Data and its manifest: a resumed run re-reads the split it was given, never re-draws it.
    reader = data_source(settings.data)
    source = reader.load(settings.data, settings.seed)
    if settings.resume:
        split = apply_manifest(source, ckpt_io.read_json(run_dir / "split.json", "split manifest"))
    else:
        split = make_split(source, settings.data, settings.seed)
        notices.extend(split.notices)
    if not split.train:
        raise UsageError("the training split is empty")
    check_batch_fits(settings, split.train)
    resume_ckpt = ckpt_io.checkpoint_dir(run_dir, "last") if settings.resume else None
    if resume_ckpt is not None:
        meta = ckpt_io.read_meta(resume_ckpt)
        check_settings_unchanged(run_dir, settings, meta)
        check_no_remote_code(resume_ckpt, settings.model.trust_remote_code)
        tasks = list(meta["tasks"])
    else:
        tasks = split.tasks()
    task_index = {t: i for i, t in enumerate(tasks)}
    missing = sorted({ex.task for ex in split.train + split.val} - set(task_index))
    if missing:
        raise CheckpointError(f"tasks {missing[:3]} are not in the checkpoint's task list")
    categories = task_categories(tasks, getattr(reader, "categories", None))
    contrastive = contrastive_notice(settings, dist.world_size, len(tasks))
    if contrastive is not None:
        notices.append(contrastive)

    if resume_ckpt is not None:
        tokenizer = load_tokenizer(str(resume_ckpt / "tokenizer"), trust_remote_code=settings.model.trust_remote_code)
    elif init is not None:
        tokenizer, init_notices = init_from.tokenizer_for(init, settings.model)
        notices.extend(init_notices)
    elif settings.model.tokenizer == TINY:
        tokenizer = train_tiny_tokenizer(example_texts(split.train), settings.model.tiny.vocab_size)
        notices.append(f"tokenizer: WordPiece with {len(tokenizer)} pieces trained offline on the training split")
    else:
        tokenizer = load_tokenizer(
            settings.model.tokenizer or settings.model.name_or_path, trust_remote_code=settings.model.trust_remote_code
        )
    # Every rank built its own split and tokenizer; a rank that read other data would silently
    # train a different problem, so compare fingerprints once.
    manifest = build_manifest(split) if dist.enabled or resume_ckpt is None else None
    if dist.enabled:
        vocab = sorted(tokenizer.get_vocab().items())
        dist.check_same((_fingerprint(manifest), _fingerprint(vocab)), "the data split and tokenizer")
    pad_id = tokenizer_pad_id(tokenizer)
    # Tokenised once per (tokenizer, text, max_length) and cached on disk: a rerun, a resume or
    # the next run of an ablation starts without re-tokenising.
    cache = default_cache_dir()
    train_enc = encode_examples_cached(tokenizer, split.train, task_index, settings.model.max_length, cache)
    val_enc = encode_examples_cached(tokenizer, split.val, task_index, settings.model.max_length, cache)
    if resume_ckpt is None and settings.overwrite:
        # Settings, data, split and tokenizer are good: only now is the old run moved aside.
        moved = dist.on_main(writer.set_aside)
        if moved:
            notices.append(moved)

    head = HeadConfig(num_tasks=len(tasks), projection_dim=settings.model.projection_dim, pooling=settings.model.pooling)
    if resume_ckpt is not None:
        encoder = encoder_from_config_dir(resume_ckpt / "encoder", trust_remote_code=settings.model.trust_remote_code)
    elif init is not None:
        encoder, encoder_notices = init.build_encoder(settings.model, len(tokenizer))
        notices.extend(encoder_notices)
    else:
        encoder, encoder_notices = build_encoder(settings.model, len(tokenizer))
        notices.extend(encoder_notices)
    model = MultipleChoiceModel(encoder, head, attention_backend=settings.model.attention, device=device)
    notices.extend(model.notices)
    if resume_ckpt is not None:
        ckpt_io.load_model_weights(model, resume_ckpt)
    elif init is not None:
        notices.extend(init.apply_heads(model, tasks))
    model.to(device)
    model.train()
    # `model` is what is evaluated and saved (keys unchanged); `train_model` is what is trained.
    train_model: torch.nn.Module = model
    if dist.enabled:
        ddp_class = torch.nn.parallel.DistributedDataParallel
        # No buffer changes during training (no batch norm); syncing them would add a collective
        # to every forward. (The argument was renamed in recent torch.)
        no_buffer_sync = (
            {"forward_sync_buffers": False}
            if "forward_sync_buffers" in inspect.signature(ddp_class.__init__).parameters
            else {"broadcast_buffers": False}
        )
        train_model = ddp_class(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            **no_buffer_sync,
            # Without the contrastive loss the projection head gets no gradient. (DDP then notes
            # once that it "did not find any unused parameters": it looks from the outputs, where
            # the head is used, not from the loss; without the flag the second step fails.)
            find_unused_parameters=settings.loss.lambda_contrastive == 0,
        )
        if resume_ckpt is None and dist.rank > 0:
            # Identical initialisation above (same seed; DDP broadcasts rank 0's weights anyway),
            # then a dropout stream of this rank's own.
            seed_everything(distributed.rank_seed(settings.seed, dist.rank))

    if settings.model.compile:
        # Batch widths change every step: one graph with symbolic shapes, not one per width.
        train_model = torch.compile(train_model, dynamic=True)

    questions_per_step = questions_per_batch * settings.batch.grad_accum_steps
    steps_per_epoch = max(1, math.ceil(len(split.train) / questions_per_step))
    total_steps = settings.optim.max_steps or max(1, math.ceil(settings.optim.epochs * steps_per_epoch))
    eval_every = settings.eval_every_n_steps or steps_per_epoch

    optimizer = build_optimizer(model, settings.optim.lr, settings.optim.weight_decay, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(total_steps, round(settings.optim.warmup_ratio * total_steps))
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    opt = Optimization(optimizer, scheduler, scaler, [p for p in model.parameters() if p.requires_grad],
                       settings.optim.max_grad_norm)
    sampler = TaskBatchSampler(
        train_enc.task_ids, len(tasks), settings.batch.tasks_per_batch, settings.batch.examples_per_task, settings.seed,
        lengths=example_lengths(train_enc) if settings.batch.group_by_length else None,
    )
    curriculum = Curriculum(
        settings.curriculum.strategy,
        len(tasks),
        temperature=settings.curriculum.temperature,
        floor=settings.curriculum.floor,
        warmup_steps=round(settings.curriculum.warmup_epochs * steps_per_epoch),
        update_every_n_steps=settings.curriculum.update_every_n_steps,
        decay=settings.curriculum.ema_decay,
        options=settings.curriculum.options,
        tasks=tasks,
        task_sizes=sampler.task_sizes,
        categories=[categories[t] for t in tasks],
        total_steps=total_steps,
    )
    weightings = Weightings.build(settings, tasks)
    if dist.enabled:
        # Only rank 0 observes (the gathered global batch), but every rank all-reduces the
        # windows, so they must live on the training device everywhere (NCCL needs it).
        curriculum.confusion.to(device)
        curriculum.task_stats.to(device)
    # Questions drawn per task since the last curriculum event (counted over the global batch).
    sampled = [0] * len(tasks)

    log = MetricsLog(run_dir / "metrics.jsonl", enabled=dist.is_main)
    step = 0
    restored_window: dict[str, Any] | None = None
    best_acc: float | None = None
    best_step: int | None = None
    bad_evals = 0
    if resume_ckpt is not None:
        resumed = _resume(resume_ckpt, opt, curriculum, sampler, log, dist, device, settings.seed)
        step, best_acc, best_step, bad_evals = resumed.step, resumed.best_accuracy, resumed.best_step, resumed.bad_evals
        restored_window = resumed.window
        notices.extend(resumed.notices)
        resumed_state = ckpt_io.load_state(resume_ckpt, "state")
        weightings.load_state_dict(resumed_state.get("weightings", {}))
        saved_sampled = resumed_state["trainer"].get("sampled")
        if saved_sampled is not None and len(saved_sampled) == len(tasks):
            sampled = [int(n) for n in saved_sampled]
        log.write("resumed", step=step, provenance=provenance.collect(world_size=dist.world_size, device=device))
    else:
        if settings.plugins:
            # The run keeps its own copy of every plugin, for --resume (after a sha256 check).
            copies = dist.on_main(lambda: plugins.copy_into_run(run_dir, settings.plugins))
            settings = settings.model_copy(update={"plugins": [CodeFile(**c) for c in copies]})

        def write_run_files() -> None:
            started = provenance.collect(world_size=dist.world_size, device=device)
            ckpt_io.write_json(run_dir / "config.json", {**json.loads(settings.model_dump_json()), provenance.KEY: started})
            ckpt_io.write_json(run_dir / "split.json", manifest)

        writer.wrote_files = True
        dist.on_main(write_run_files)

    record = settings_record(settings)

    def save(tags: list[str], val_acc: float | None) -> Event:
        local = {
            "rng": _rng_state(device),
            "window": {"sums": sums.cpu(), "skipped": skipped.cpu(), "streak": streak.cpu(),
                       "questions": window_questions, "tokens": window_tokens},
        }
        everyone = dist.all_gather_object(local)

        def write() -> Path:
            # The log is on disk before a checkpoint records its length.
            log.sync()
            meta = {
                "step": step,
                "epoch": step / steps_per_epoch,
                "tasks": tasks,
                "task_categories": categories,
                "head": head.to_dict(),
                "val_accuracy": val_acc,
                "best_accuracy": best_acc,
                "strategy": settings.curriculum.strategy,
                "backends": backends,
                "curriculum_weights": curriculum.weights.tolist(),
                "confusion": curriculum.confusion.matrix.tolist(),
                "settings": record,
                "settings_digest": _fingerprint(record),
            }
            state = {
                "trainer": {
                    "step": step,
                    "best_accuracy": best_acc,
                    "best_step": best_step,
                    "bad_evals": bad_evals,
                    "scheduler": {"last_epoch": scheduler.last_epoch, "_step_count": scheduler._step_count},
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                    "metrics_bytes": log.size(),
                    "window": everyone[0]["window"],
                    "sampled": list(sampled),
                },
                "curriculum": curriculum.state_dict(),
                "weightings": weightings.state_dict(),
                "sampler": sampler.state_dict(),
                "rng": everyone[0]["rng"],
                "world_size": dist.world_size,
                "ranks": everyone[1:],  # ranks 1.. of a torchrun job: their RNG streams and windows
            }
            contents = ckpt_io.CheckpointContents(model, meta, tokenizer, state=state, optimizer=optimizer.state_dict())
            saved_to = ckpt_io.save_checkpoint(run_dir, contents, tags)
            writer.saved()
            return saved_to

        # Rank 0 writes; the others wait for it (and share its error, if any).
        path = dist.on_main(write)
        return CheckpointSaved(step, path, tags)

    def validate() -> EvalResult:
        # Each rank scores examples rank::W with the plain module (DDP's hooks are for training),
        # then the shards are put back in order: no padding, so no example counts twice.
        local_preds, _ = predict_encoded(
            model, _shard(val_enc, dist.rank, dist.world_size), device=device, precision=precision,
            batch_size=settings.batch.eval_batch_size, pad_id=pad_id,
        )
        preds = dist.gather_strided(local_preds, len(val_enc))
        return summarize("val", split.val, preds, task_categories=categories, majority=majority)

    yield RunStarted(
        run_dir=run_dir,
        device=str(device),
        precision=precision,
        tasks=tasks,
        num_train=len(split.train),
        num_val=len(split.val),
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        start_step=step,
        notices=notices,
        world_size=dist.world_size,
    )

    majority = majority_answer(split.train)
    sums = torch.zeros(4, device=device)  # loss, cls, contrastive, correct; read only at log time
    skipped = torch.zeros((), device=device)  # non-finite steps skipped so far
    streak = torch.zeros((), device=device)  # consecutive non-finite steps
    window_questions = window_tokens = 0
    if restored_window is not None:
        sums, skipped, streak = (restored_window[k].to(device) for k in ("sums", "skipped", "streak"))
        window_questions, window_tokens = int(restored_window["questions"]), int(restored_window["tokens"])
    # Throughput counts training time only: validation and checkpoint time is paused out.
    window_start, window_paused = time.perf_counter(), 0.0
    reason = "completed"
    all_reduce = dist.all_reduce_sum if dist.enabled else None

    while step < total_steps:
        micro_steps = settings.batch.grad_accum_steps
        batches = []
        for micro in range(micro_steps):
            # Every rank draws the same global batch (same weights, same (seed, step) draw, same
            # sampler state) and keeps its own rows of it.
            drawn = sampler.batch(step * micro_steps + micro, curriculum.weights)
            for index in drawn:
                sampled[train_enc.task_ids[index]] += 1
            indices = drawn[dist.rank :: dist.world_size]
            batch = collate(train_enc, indices, pad_id)
            window_questions += batch.num_questions
            window_tokens += batch.num_tokens
            # Pinned host memory lets the non-blocking copy overlap with the GPU's work.
            batches.append((batch.pin_memory() if device.type == "cuda" else batch).to(device))
        step_sums, found_inf = train_step(
            train_model, batches, settings, opt, device=device, precision=precision, dist=dist,
            # Rank 0 observes the whole global batch; the others add zeros to the all-reduce.
            observe=curriculum.observe if dist.is_main else None,
            weightings=weightings,
        )
        sums += step_sums
        skipped += found_inf
        streak = (streak + 1) * found_inf
        step += 1

        weights = curriculum.step(step, all_reduce=all_reduce)
        if weights is not None:
            trace.write("curriculum", step=step, weights=weights.tolist())
            named = {t: float(w) for t, w in zip(tasks, weights.tolist())}
            drawn_per_task = dict(zip(tasks, sampled))
            log.write("curriculum", step=step, weights=named, sampled=drawn_per_task)
            sampled = [0] * len(tasks)
            yield CurriculumUpdated(step, named, drawn_per_task)

        if step % settings.log_every_n_steps == 0 or step == total_steps:
            n = settings.log_every_n_steps if step % settings.log_every_n_steps == 0 else step % settings.log_every_n_steps
            if dist.enabled:
                # The only cross-rank averaging of metrics, at log time: mean over ranks of each
                # rank's mean (equal shares), and throughput summed over ranks.
                totals = dist.all_reduce_(sums.clone())
                values = (totals / (n * dist.world_size)).tolist()
                counts = dist.all_gather_object((window_questions, window_tokens))
                questions, tokens = sum(c[0] for c in counts), sum(c[1] for c in counts)
            else:
                values = (sums / n).tolist()
                questions, tokens = window_questions, window_tokens
            elapsed = max(time.perf_counter() - window_start - window_paused, 1e-9)
            event = StepLogged(
                step=step,
                total_steps=total_steps,
                epoch=step / steps_per_epoch,
                loss=values[0],
                cls_loss=values[1],
                contrastive_loss=values[2],
                accuracy=values[3],
                lr=scheduler.get_last_lr()[0],
                questions_per_s=questions / elapsed,
                tokens_per_s=tokens / elapsed,
                skipped_steps=int(skipped.item()),
            )
            log.write("train", **event.__dict__)
            yield event
            # Gradients are all-reduced, so every rank skipped the same steps and stops together.
            if int(streak.item()) >= settings.max_nonfinite_steps:
                raise AcctError(
                    f"{int(streak.item())} consecutive steps up to step {step} had a non-finite loss or gradient; "
                    "try --precision fp32 or a lower learning rate"
                )
            sums.zero_()
            window_questions = window_tokens = 0
            window_start, window_paused = time.perf_counter(), 0.0

        # A signal may reach one rank only (or reach them a step apart): agree, so that all ranks
        # save the same step and none is left waiting in a collective.
        stop_now = dist.any(should_stop()) if dist.enabled else should_stop()
        pause_start = time.perf_counter()
        if step % eval_every == 0 or step == total_steps:
            result = validate()
            improved = best_acc is None or result.accuracy > best_acc
            if improved:
                best_acc, best_step, bad_evals = result.accuracy, step, 0
            else:
                bad_evals += 1
            log.write("validation", step=step, **result.to_dict())
            yield Validated(step, step / steps_per_epoch, result, improved, best_acc)
            yield save(["last", "best"] if improved else ["last"], result.accuracy)
            # Every rank saw the same predictions, so every rank takes the same decision.
            if bad_evals >= settings.patience:
                reason = "early_stopping"
                break
        elif stop_now or (settings.save_every_n_steps and step % settings.save_every_n_steps == 0):
            yield save(["last"], None)
        window_paused += time.perf_counter() - pause_start
        if stop_now:
            reason = "interrupted"
            break

    if trace.enabled:
        rng = hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()
        trace.write("finished", step=step, reason=reason, parameters=distributed.parameter_digest(model), rng=rng)
    yield Finished(step=step, reason=reason, best_accuracy=best_acc, best_step=best_step, run_dir=run_dir)


# -- evaluate a saved run -------------------------------------------------------------------------


@dataclass
class LoadedRun:
    """A checkpoint rebuilt for inference, with what is needed to read its data."""

    run_dir: Path
    checkpoint: Path
    settings: TrainSettings
    meta: dict[str, Any]
    tasks: list[str]
    categories: dict[str, str]
    tokenizer: Any
    model: MultipleChoiceModel
    split_manifest: Path | None = None  # default: RUN_DIR/split.json

    @property
    def pad_id(self) -> int:
        return tokenizer_pad_id(self.tokenizer)


def load_run(
    run_dir: Path, which: str = "best", device: torch.device | None = None, *, trust_remote_code: bool = False,
) -> LoadedRun:
    """Rebuild the model of a run from its checkpoint alone (offline); a folder written by `acct export` too.

    The checkpoint link is resolved once and read from that directory under a shared lock the
    trainer respects; if training replaced it anyway, it is resolved and read once more.
    Code named in the checkpoint runs only if the caller trusts it (`user_trusts_remote_code`).
    """
    from acct import export

    if export.is_export_dir(run_dir):
        return export.load_export(Path(run_dir), device)
    trust = user_trusts_remote_code(trust_remote_code)
    for attempt in range(2):
        ckpt = ckpt_io.checkpoint_dir(run_dir, which)
        with ckpt_io.reading(ckpt) as present:
            try:
                if present:
                    return _load_checkpoint(Path(run_dir), ckpt, device, trust)
            except Exception:
                if ckpt_io.checkpoint_dir(run_dir, which) == ckpt and (ckpt / "acct.json").is_file():
                    raise
    raise CheckpointError(
        f"the checkpoint changed while it was being read ({run_dir}/checkpoints/{which}: training is saving into "
        "this run); try again"
    )


def _load_checkpoint(run_dir: Path, ckpt: Path, device: torch.device | None, trust: bool) -> LoadedRun:
    saved = load_run_settings(run_dir)
    settings = saved.model_copy(update={"model": saved.model.model_copy(update={"trust_remote_code": trust})})
    meta = ckpt_io.read_meta(ckpt)
    head_dict = meta["head"]
    try:
        head = HeadConfig(**head_dict)
    except TypeError:
        raise CheckpointError(f"{ckpt}/acct.json has an unreadable head description") from None
    if head.num_tasks != len(meta["tasks"]):
        raise CheckpointError(f"{ckpt}: head has {head.num_tasks} tasks but the task list has {len(meta['tasks'])}")
    for folder in ("encoder", "tokenizer"):
        if not (ckpt / folder).is_dir():
            raise CheckpointError(f"{ckpt} is incomplete: the {folder}/ folder is missing (a partial copy?)")
    if not (ckpt / "encoder" / "config.json").is_file():
        raise CheckpointError(f"{ckpt} is incomplete: encoder/config.json is missing (a partial copy?)")
    check_no_remote_code(ckpt, trust)
    tokenizer = load_tokenizer(str(ckpt / "tokenizer"), trust_remote_code=trust)
    encoder = encoder_from_config_dir(ckpt / "encoder", trust_remote_code=trust)
    model = MultipleChoiceModel(encoder, head, attention_backend=settings.model.attention, device=device)
    ckpt_io.load_model_weights(model, ckpt)
    if device is not None:
        model.to(device)
    model.eval()
    tasks = list(meta["tasks"])
    return LoadedRun(
        run_dir=run_dir,
        checkpoint=ckpt,
        settings=settings,
        meta=meta,
        tasks=tasks,
        categories=meta.get("task_categories") or task_categories(tasks),
        tokenizer=tokenizer,
        model=model,
    )


def load_run_split(run: LoadedRun, data_dir: Path | None = None) -> DataSplit:
    """The run's own split, re-read from its data source through the saved manifest."""
    data = run.settings.data
    if data_dir is not None:
        data = data.model_copy(update={"data_dir": data_dir})
    if data.source not in registry.data_sources:
        raise UsageError(plugins.needs_code(run.run_dir, run.settings.plugins, f"data source {data.source!r}"))
    source = load_source(data, run.settings.seed)
    manifest = run.split_manifest or run.run_dir / "split.json"
    return apply_manifest(source, ckpt_io.read_json(manifest, "split manifest"))


def score_examples(
    run: LoadedRun, examples: Sequence[Example], train: Sequence[Example], split: str, *,
    device: torch.device, precision: str, batch_size: int,
) -> tuple[list[int], EvalResult]:
    """Predictions and accuracy summary of `run` on examples of its own split; `train` sets the majority baseline."""
    unknown = sorted({ex.task for ex in examples} - set(run.tasks))
    if unknown:
        raise CheckpointError(f"the checkpoint's task list lacks {unknown[:3]}")
    task_index = {t: i for i, t in enumerate(run.tasks)}
    encoded = encode_examples_cached(run.tokenizer, examples, task_index, run.settings.model.max_length, default_cache_dir())
    preds, _ = predict_encoded(run.model, encoded, device=device, precision=precision, batch_size=batch_size, pad_id=run.pad_id)
    result = summarize(split, examples, preds, task_categories=run.categories, majority=majority_answer(train))
    return [int(p) for p in preds], result


def evaluate(settings: EvaluateSettings, *, trust_remote_code: bool = False) -> EvalResult:
    """Score a held-out split of a run's manifest; writes RUN_DIR/eval-<split>.json."""
    device, precision = resolve_device(settings.device, settings.precision)
    run = load_run(settings.run_dir, settings.checkpoint, device, trust_remote_code=trust_remote_code)
    split = load_run_split(run, settings.data_dir)
    examples = split.val if settings.split == "val" else split.test
    _, result = score_examples(
        run, examples, split.train, settings.split, device=device, precision=precision, batch_size=settings.batch_size
    )
    ckpt_io.write_json(run.run_dir / f"eval-{settings.split}.json", result.to_dict())
    return result
