"""The training loop and evaluation, as plain functions: no Typer, no rich, no printing.

`train` is a generator of events; the CLI renders them, tests read them. Everything a later
command needs (settings, split manifest, task list, confusion matrix, curriculum state) is
written into the run directory as training goes.
"""

from __future__ import annotations

import contextlib
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

from acct import checkpoint as ckpt_io
from acct.config import TINY, DataSettings, EvaluateSettings, TrainSettings
from acct.curriculum import Curriculum, TaskBatchSampler
from acct.data import DataSplit, Example, MMLU_CATEGORIES, apply_manifest, build_manifest, load_csv_source, load_hub_source, standard_split, subject_split
from acct.errors import AcctError, CheckpointError, UsageError
from acct.losses import classification_loss, normalized_entropy, weighted_info_nce
from acct.metrics import EvalResult, majority_answer, summarize
from acct.model import HeadConfig, MultipleChoiceModel, build_encoder, encoder_from_config_dir
from acct.synthetic import SYNTHETIC_CATEGORIES, generate_suite
from acct.tokenize import EncodedExamples, collate, encode_examples, example_texts, load_tokenizer, train_tiny_tokenizer

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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


# -- data -----------------------------------------------------------------------------------------


def load_source(data: DataSettings, seed: int) -> dict[str, list[Example]]:
    if data.source == "synthetic":
        return generate_suite(examples_per_task=data.synthetic_examples_per_task, seed=seed)
    if data.source == "csv":
        return load_csv_source(Path(data.data_dir))
    return load_hub_source(data.hub_dataset)


def make_split(source: dict[str, list[Example]], data: DataSettings, seed: int) -> DataSplit:
    if data.protocol == "standard":
        return standard_split(source)
    return subject_split(source, fractions=data.split_fractions, seed=seed)


def task_categories(tasks: Sequence[str]) -> dict[str, str]:
    """Category of every task: MMLU's four, the synthetic suite's own, else 'other'."""
    known = {**MMLU_CATEGORIES, **SYNTHETIC_CATEGORIES}
    return {t: known.get(t, "other") for t in tasks}


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
            out = model(batch.input_ids, batch.attention_mask, batch.sequence_task_ids, batch.choice_mask)
        probs_chunks.append((idx, out.scores.float().softmax(-1).cpu()))
    model.train(was_training)
    k_max = max((p.shape[1] for _, p in probs_chunks), default=2)
    probs = torch.zeros(len(encoded), k_max)
    for idx, p in probs_chunks:
        probs[torch.tensor(idx), : p.shape[1]] = p
    return probs.argmax(-1).tolist(), probs


# -- the run directory ----------------------------------------------------------------------------


RUN_FILES = ("config.json", "split.json", "metrics.jsonl")


def prepare_run_dir(settings: TrainSettings) -> Path:
    run_dir = settings.run_dir()
    if settings.resume:
        ckpt_io.checkpoint_dir(run_dir, "last")
        return run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"output path {run_dir} is a file")
    if ckpt_io.is_run_dir(run_dir):
        if not settings.overwrite:
            raise UsageError(f"{run_dir} already holds a run; pass --overwrite to replace it or --resume to continue it")
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        for stale in run_dir.glob("eval-*.json"):
            stale.unlink()
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create run directory {run_dir}: {exc.strerror}") from None
    return run_dir


def load_run_settings(run_dir: Path) -> TrainSettings:
    """The settings a run was trained with, as written to its config.json."""
    if not ckpt_io.is_run_dir(run_dir):
        raise UsageError(f"{run_dir} is not an acct run directory (no config.json)")
    saved = ckpt_io.read_json(Path(run_dir) / "config.json", "run settings")
    try:
        return TrainSettings.model_validate(saved)
    except Exception as exc:
        raise CheckpointError(f"{run_dir}/config.json does not hold valid settings: {str(exc).splitlines()[0]}") from None


class MetricsLog:
    """Append-only JSONL of run events; truncated back to the last checkpoint on resume."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, kind: str, **fields: Any) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": kind, **fields}) + "\n")

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def truncate(self, size: int) -> None:
        if self.path.exists():
            with open(self.path, "r+b") as f:
                f.truncate(size)


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


def forward_losses(model, batch, settings: TrainSettings, device: torch.device, precision: str) -> StepOutput:
    with autocast(device, precision):
        out = model(batch.input_ids, batch.attention_mask, batch.sequence_task_ids, batch.choice_mask)
    scores = out.scores.float()
    cls = classification_loss(scores, batch.choice_mask, batch.labels)
    u = normalized_entropy(scores.detach(), batch.choice_mask)
    if settings.loss.lambda_contrastive > 0:
        con = weighted_info_nce(out.embeddings, batch.task_ids, u, tau=settings.loss.tau)
    else:
        con = torch.zeros((), device=scores.device)
    loss = settings.loss.lambda_cls * cls + settings.loss.lambda_contrastive * con
    correct = scores.detach().argmax(-1) == batch.labels
    return StepOutput(loss, cls.detach(), con.detach(), correct, u, out.embeddings.detach())


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


def train(settings: TrainSettings, *, should_stop: Callable[[], bool] = lambda: False) -> Iterator[Event]:
    """Train one configuration, yielding events; `should_stop` lets a signal end it cleanly."""
    run_dir = prepare_run_dir(settings)
    if settings.resume:
        # A resumed run continues with the settings it was started with, whatever the caller built.
        settings = load_run_settings(run_dir).model_copy(update={"resume": True, "output_dir": run_dir})
    device, precision = resolve_device(settings.device, settings.precision)
    seed_everything(settings.seed)
    notices: list[str] = []

    # Data and its manifest: a resumed run re-reads the split it was given, never re-draws it.
    source = load_source(settings.data, settings.seed)
    if settings.resume:
        split = apply_manifest(source, ckpt_io.read_json(run_dir / "split.json", "split manifest"))
    else:
        split = make_split(source, settings.data, settings.seed)
    if not split.train:
        raise UsageError("the training split is empty")
    resume_ckpt = ckpt_io.checkpoint_dir(run_dir, "last") if settings.resume else None
    if resume_ckpt is not None:
        meta = ckpt_io.read_meta(resume_ckpt)
        tasks = list(meta["tasks"])
    else:
        tasks = split.tasks()
    task_index = {t: i for i, t in enumerate(tasks)}
    missing = sorted({ex.task for ex in split.train + split.val} - set(task_index))
    if missing:
        raise CheckpointError(f"tasks {missing[:3]} are not in the checkpoint's task list")
    categories = task_categories(tasks)

    if resume_ckpt is not None:
        tokenizer = load_tokenizer(str(resume_ckpt / "tokenizer"))
    elif settings.model.tokenizer == TINY:
        tokenizer = train_tiny_tokenizer(example_texts(split.train), settings.model.tiny.vocab_size)
        notices.append(f"tokenizer: WordPiece with {len(tokenizer)} pieces trained offline on the training split")
    else:
        tokenizer = load_tokenizer(
            settings.model.tokenizer or settings.model.name_or_path, trust_remote_code=settings.model.trust_remote_code
        )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_enc = encode_examples(tokenizer, split.train, task_index, settings.model.max_length)
    val_enc = encode_examples(tokenizer, split.val, task_index, settings.model.max_length)

    head = HeadConfig(num_tasks=len(tasks), projection_dim=settings.model.projection_dim, pooling=settings.model.pooling)
    if resume_ckpt is not None:
        encoder = encoder_from_config_dir(resume_ckpt / "encoder", trust_remote_code=settings.model.trust_remote_code)
    else:
        encoder, encoder_notices = build_encoder(settings.model, len(tokenizer))
        notices.extend(encoder_notices)
    model = MultipleChoiceModel(encoder, head)
    if resume_ckpt is not None:
        ckpt_io.load_model_weights(model, resume_ckpt)
    model.to(device)
    model.train()

    questions_per_step = settings.batch.questions_per_batch * settings.batch.grad_accum_steps
    steps_per_epoch = max(1, math.ceil(len(split.train) / questions_per_step))
    total_steps = settings.optim.max_steps or max(1, math.ceil(settings.optim.epochs * steps_per_epoch))
    eval_every = settings.eval_every_n_steps or steps_per_epoch

    optimizer = build_optimizer(model, settings.optim.lr, settings.optim.weight_decay, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(total_steps, round(settings.optim.warmup_ratio * total_steps))
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    curriculum = Curriculum(
        settings.curriculum.strategy,
        len(tasks),
        temperature=settings.curriculum.temperature,
        floor=settings.curriculum.floor,
        warmup_steps=round(settings.curriculum.warmup_epochs * steps_per_epoch),
        update_every_n_steps=settings.curriculum.update_every_n_steps,
        decay=settings.curriculum.ema_decay,
    )
    sampler = TaskBatchSampler(
        train_enc.task_ids, len(tasks), settings.batch.tasks_per_batch, settings.batch.examples_per_task, settings.seed
    )

    log = MetricsLog(run_dir / "metrics.jsonl")
    step = 0
    restored_window: tuple = ()
    best_acc: float | None = None
    best_step: int | None = None
    bad_evals = 0
    if resume_ckpt is not None:
        state = ckpt_io.load_state(resume_ckpt, "state")
        optimizer.load_state_dict(ckpt_io.load_optimizer_state(resume_ckpt))
        trainer = state["trainer"]
        step, best_acc, best_step, bad_evals = trainer["step"], trainer["best_accuracy"], trainer["best_step"], trainer["bad_evals"]
        scheduler.load_state_dict({**scheduler.state_dict(), **trainer["scheduler"]})
        if trainer.get("scaler"):
            scaler.load_state_dict(trainer["scaler"])
        curriculum.load_state_dict(state["curriculum"])
        sampler.load_state_dict(state["sampler"])
        _set_rng_state(state["rng"], device)
        log.truncate(trainer["metrics_bytes"])
        window = trainer["window"]
        restored_window = (window["sums"], window["skipped"], window["streak"], window["questions"], window["tokens"])
        notices.append(f"resumed from step {step} ({resume_ckpt.name})")
    else:
        ckpt_io.write_json(run_dir / "config.json", json.loads(settings.model_dump_json()))
        ckpt_io.write_json(run_dir / "split.json", build_manifest(split))

    def save(tags: list[str], val_acc: float | None) -> Event:
        meta = {
            "step": step,
            "epoch": step / steps_per_epoch,
            "tasks": tasks,
            "task_categories": categories,
            "head": head.to_dict(),
            "val_accuracy": val_acc,
            "best_accuracy": best_acc,
            "strategy": settings.curriculum.strategy,
            "curriculum_weights": curriculum.weights.tolist(),
            "confusion": curriculum.confusion.matrix.tolist(),
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
                "window": {"sums": sums, "skipped": skipped, "streak": streak,
                           "questions": window_questions, "tokens": window_tokens},
            },
            "curriculum": curriculum.state_dict(),
            "sampler": sampler.state_dict(),
            "rng": _rng_state(device),
        }
        contents = ckpt_io.CheckpointContents(model, meta, tokenizer, state=state, optimizer=optimizer.state_dict())
        path = ckpt_io.save_checkpoint(run_dir, contents, tags)
        return CheckpointSaved(step, path, tags)

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
    )

    majority = majority_answer(split.train)
    params = [p for p in model.parameters() if p.requires_grad]
    sums = torch.zeros(4, device=device)  # loss, cls, contrastive, correct; read only at log time
    skipped = torch.zeros((), device=device)  # non-finite steps skipped so far
    streak = torch.zeros((), device=device)  # consecutive non-finite steps
    window_questions = window_tokens = 0
    if resume_ckpt is not None:
        sums, skipped, streak = (t.to(device) for t in restored_window[:3])
        window_questions, window_tokens = restored_window[3:]
    window_start = time.perf_counter()
    reason = "completed"

    while step < total_steps:
        micro_steps = settings.batch.grad_accum_steps
        for micro in range(micro_steps):
            indices = sampler.batch(step * micro_steps + micro, curriculum.weights)
            batch = collate(train_enc, indices, pad_id)
            window_questions += batch.num_questions
            window_tokens += batch.num_tokens
            batch = batch.to(device)
            out = forward_losses(model, batch, settings, device, precision)
            scaler.scale(out.loss / micro_steps).backward()
            curriculum.observe(out.embeddings, batch.task_ids, out.uncertainty, out.correct)
            sums += torch.stack(
                [out.loss.detach(), out.cls_loss, out.contrastive_loss, out.correct.float().mean()]
            ) / micro_steps
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, settings.optim.max_grad_norm, foreach=True)
        found_inf = (~torch.isfinite(grad_norm)).float()
        if scaler.is_enabled():
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.found_inf = found_inf
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        skipped += found_inf
        streak = (streak + 1) * found_inf
        step += 1

        weights = curriculum.step(step)
        if weights is not None:
            named = {t: float(w) for t, w in zip(tasks, weights.tolist())}
            log.write("curriculum", step=step, weights=named)
            yield CurriculumUpdated(step, named)

        if step % settings.log_every_n_steps == 0 or step == total_steps:
            n = settings.log_every_n_steps if step % settings.log_every_n_steps == 0 else step % settings.log_every_n_steps
            values = (sums / n).tolist()
            elapsed = max(time.perf_counter() - window_start, 1e-9)
            event = StepLogged(
                step=step,
                total_steps=total_steps,
                epoch=step / steps_per_epoch,
                loss=values[0],
                cls_loss=values[1],
                contrastive_loss=values[2],
                accuracy=values[3],
                lr=scheduler.get_last_lr()[0],
                questions_per_s=window_questions / elapsed,
                tokens_per_s=window_tokens / elapsed,
                skipped_steps=int(skipped.item()),
            )
            log.write("train", **{k: v for k, v in event.__dict__.items() if k not in ("questions_per_s", "tokens_per_s")})
            yield event
            if int(streak.item()) >= settings.max_nonfinite_steps:
                raise AcctError(
                    f"{int(streak.item())} consecutive steps up to step {step} had a non-finite loss or gradient; "
                    "try --precision fp32 or a lower learning rate"
                )
            sums.zero_()
            window_questions = window_tokens = 0
            window_start = time.perf_counter()

        stop_now = should_stop()
        if step % eval_every == 0 or step == total_steps:
            preds, _ = predict_encoded(
                model, val_enc, device=device, precision=precision, batch_size=settings.batch.eval_batch_size, pad_id=pad_id
            )
            result = summarize("val", split.val, preds, task_categories=categories, majority=majority)
            improved = best_acc is None or result.accuracy > best_acc
            if improved:
                best_acc, best_step, bad_evals = result.accuracy, step, 0
            else:
                bad_evals += 1
            log.write("validation", step=step, **result.to_dict())
            yield Validated(step, step / steps_per_epoch, result, improved, best_acc)
            yield save(["last", "best"] if improved else ["last"], result.accuracy)
            if bad_evals >= settings.patience:
                reason = "early_stopping"
                break
        elif stop_now or (settings.save_every_n_steps and step % settings.save_every_n_steps == 0):
            yield save(["last"], None)
        if stop_now:
            reason = "interrupted"
            break

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

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0


def load_run(run_dir: Path, which: str = "best", device: torch.device | None = None) -> LoadedRun:
    """Rebuild the model of a run from its checkpoint alone (offline)."""
    ckpt = ckpt_io.checkpoint_dir(run_dir, which)
    settings = load_run_settings(run_dir)
    meta = ckpt_io.read_meta(ckpt)
    head_dict = meta["head"]
    try:
        head = HeadConfig(**head_dict)
    except TypeError:
        raise CheckpointError(f"{ckpt}/acct.json has an unreadable head description") from None
    if head.num_tasks != len(meta["tasks"]):
        raise CheckpointError(f"{ckpt}: head has {head.num_tasks} tasks but the task list has {len(meta['tasks'])}")
    if not (ckpt / "encoder" / "config.json").is_file():
        raise CheckpointError(f"{ckpt} has no encoder/config.json")
    tokenizer = load_tokenizer(str(ckpt / "tokenizer"))
    encoder = encoder_from_config_dir(ckpt / "encoder", trust_remote_code=settings.model.trust_remote_code)
    model = MultipleChoiceModel(encoder, head)
    ckpt_io.load_model_weights(model, ckpt)
    if device is not None:
        model.to(device)
    model.eval()
    tasks = list(meta["tasks"])
    return LoadedRun(
        run_dir=Path(run_dir),
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
    source = load_source(data, run.settings.seed)
    return apply_manifest(source, ckpt_io.read_json(run.run_dir / "split.json", "split manifest"))


def evaluate(settings: EvaluateSettings) -> EvalResult:
    """Score a held-out split of a run's manifest; writes RUN_DIR/eval-<split>.json."""
    device, precision = resolve_device(settings.device, settings.precision)
    run = load_run(settings.run_dir, settings.checkpoint, device)
    split = load_run_split(run, settings.data_dir)
    examples = split.val if settings.split == "val" else split.test
    unknown = sorted({ex.task for ex in examples} - set(run.tasks))
    if unknown:
        raise CheckpointError(f"the checkpoint's task list lacks {unknown[:3]}")
    task_index = {t: i for i, t in enumerate(run.tasks)}
    encoded = encode_examples(run.tokenizer, examples, task_index, run.settings.model.max_length)
    preds, _ = predict_encoded(
        run.model, encoded, device=device, precision=precision, batch_size=settings.batch_size, pad_id=run.pad_id
    )
    result = summarize(
        settings.split, examples, preds, task_categories=run.categories, majority=majority_answer(split.train)
    )
    ckpt_io.write_json(run.run_dir / f"eval-{settings.split}.json", result.to_dict())
    return result
