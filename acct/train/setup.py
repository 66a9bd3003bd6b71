"""Everything a run builds before its first step, as small functions in the order the loop
calls them: data and split, tokenizer and encoded splits, model (wrapped for DDP and
torch.compile), optimizer and schedule, sampler and curriculum. `setup` runs them and returns a
`Run`, what the loop reads.

The order of these calls is the order a run draws random numbers in (model initialisation,
tokenizer training): keep it, or a run's numbers change.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from acct import plugins, registry
from acct.config.fields import TINY
from acct.config.notes import contrastive_notice
from acct.config.train import CodeFile, TrainSettings
from acct.curriculum.curriculum import Curriculum
from acct.data.batching import TaskBatchSampler
from acct.data.dedup import identical_choices_notice
from acct.data.manifests import apply_manifest, build_manifest
from acct.data.protocols import DataSplit
from acct.data.tiny_tokenizer import train_tiny_tokenizer
from acct.data.tokenize import (
    EncodedExamples,
    default_cache_dir,
    encode_examples_cached,
    example_lengths,
    example_texts,
    load_tokenizer,
)
from acct.data.tokenize import pad_id as tokenizer_pad_id
from acct.errors import CheckpointError, UsageError
from acct.gradients import check_fits_weighting
from acct.model.encoder import (
    HeadConfig,
    MultipleChoiceModel,
    build_encoder,
    encoder_from_config_dir,
)
from acct.run import checkpoint as ckpt_io
from acct.run import init_from, provenance
from acct.run.rundir import (
    MetricsLog,
    RunWriter,
    check_no_remote_code,
    check_settings_unchanged,
    fingerprint,
    settings_record,
)
from acct.scoring.metrics import majority_answer
from acct.train import distributed
from acct.train.data import check_batch_fits, data_source, make_split, task_categories
from acct.train.device import configure_backends, seed_everything
from acct.train.plan import RunPlan, make_plan
from acct.train.state import Resumable, TrainState, restore
from acct.train.step import Optimization, Weightings

# -- optimizer and schedule -----------------------------------------------------------------------


def build_optimizer(
    model: torch.nn.Module, lr: float, weight_decay: float, device: torch.device,
    extra_groups: Sequence[dict[str, Any]] = (),
) -> torch.optim.AdamW:
    """AdamW over the model (no decay on biases, norms and 1-d gains) and `extra_groups` (e.g. a task weighting's)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # Biases, norms and embeddings' 1-d gains carry no useful decay.
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}, *extra_groups]
    # fused also runs on CPU, and its found_inf argument skips a non-finite step without a host sync.
    return torch.optim.AdamW(groups, lr=lr, fused=True)


def lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def check_batch_splits(settings: TrainSettings, world_size: int) -> None:
    questions_per_batch = settings.batch.questions_per_batch
    if questions_per_batch % world_size:
        raise UsageError(
            f"the global batch of {questions_per_batch} questions (tasks_per_batch {settings.batch.tasks_per_batch} x "
            f"examples_per_task {settings.batch.examples_per_task}) does not split evenly over {world_size} processes; "
            f"make it a multiple of {world_size} (e.g. --examples-per-task) or change --nproc_per_node"
        )


@dataclass
class RunData:
    """The split a run trains on, its task list (the checkpoint's on a resume) and their categories."""

    split: DataSplit
    tasks: list[str]
    categories: dict[str, str]
    resume_ckpt: Path | None  # the 'last' checkpoint of a resume


def setup_data(settings: TrainSettings, dist: distributed.Distributed, notices: list[str]) -> RunData:
    # Data and its manifest: a resumed run re-reads the split it was given, never re-draws it.
    run_dir = settings.run_dir()
    reader = data_source(settings.data)
    source = reader.load(settings.data, settings.seed)
    if settings.resume:
        split = apply_manifest(source, ckpt_io.read_json(run_dir / "split.json", "split manifest"))
    else:
        split = make_split(source, settings.data, settings.seed)
        notices.extend(split.notices)
        twins = identical_choices_notice(split.train + split.val + split.test)
        if twins is not None:
            notices.append(twins)
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
    missing = sorted({ex.task for ex in split.train + split.val} - set(tasks))
    if missing:
        raise CheckpointError(f"tasks {missing[:3]} are not in the checkpoint's task list")
    categories = task_categories(tasks, getattr(reader, "categories", None))
    contrastive = contrastive_notice(settings, dist.world_size, len(tasks))
    if contrastive is not None:
        notices.append(contrastive)
    return RunData(split, tasks, categories, resume_ckpt)


def setup_tokenizer(settings: TrainSettings, data: RunData, init: Any, notices: list[str]) -> Any:
    if data.resume_ckpt is not None:
        return load_tokenizer(str(data.resume_ckpt / "tokenizer"), trust_remote_code=settings.model.trust_remote_code)
    if init is not None:
        tokenizer, init_notices = init_from.tokenizer_for(init, settings.model)
        notices.extend(init_notices)
        return tokenizer
    if settings.model.tokenizer == TINY:
        tokenizer = train_tiny_tokenizer(example_texts(data.split.train), settings.model.tiny.vocab_size)
        notices.append(f"tokenizer: WordPiece with {len(tokenizer)} pieces trained offline on the training split")
        return tokenizer
    return load_tokenizer(
        settings.model.tokenizer or settings.model.name_or_path, trust_remote_code=settings.model.trust_remote_code
    )


def check_same_inputs(data: RunData, tokenizer: Any, dist: distributed.Distributed) -> dict[str, Any] | None:
    """The split manifest of a new run (None on a resume), checked to be the same on every rank."""
    # Every rank built its own split and tokenizer; a rank that read other data would silently
    # train a different problem, so compare fingerprints once.
    manifest = build_manifest(data.split) if dist.enabled or data.resume_ckpt is None else None
    if dist.enabled:
        vocab = sorted(tokenizer.get_vocab().items())
        dist.check_same((fingerprint(manifest), fingerprint(vocab)), "the data split and tokenizer")
    return manifest


def encode_splits(settings: TrainSettings, data: RunData, tokenizer: Any) -> tuple[EncodedExamples, EncodedExamples]:
    """The training and validation splits, tokenised."""
    task_index = {t: i for i, t in enumerate(data.tasks)}
    # Tokenised once per (tokenizer, text, max_length) and cached on disk: a rerun, a resume or
    # the next run of an ablation starts without re-tokenising.
    cache = default_cache_dir()
    train_enc = encode_examples_cached(tokenizer, data.split.train, task_index, settings.model.max_length, cache)
    val_enc = encode_examples_cached(tokenizer, data.split.val, task_index, settings.model.max_length, cache)
    return train_enc, val_enc


def setup_model(
    settings: TrainSettings, data: RunData, tokenizer: Any, init: Any, dist: distributed.Distributed,
    device: torch.device, notices: list[str],
) -> tuple[MultipleChoiceModel, torch.nn.Module, HeadConfig]:
    """The model (what is evaluated and saved, keys unchanged), the module trained, and the head's description."""
    resume_ckpt = data.resume_ckpt
    head = HeadConfig(num_tasks=len(data.tasks), projection_dim=settings.model.projection_dim, pooling=settings.model.pooling)
    if resume_ckpt is not None:
        encoder = encoder_from_config_dir(resume_ckpt / "encoder", trust_remote_code=settings.model.trust_remote_code)
    elif init is not None:
        encoder, encoder_notices = init.build_encoder(settings.model, len(tokenizer))
        notices.extend(encoder_notices)
    else:
        encoder, encoder_notices = build_encoder(settings.model, len(tokenizer))
        notices.extend(encoder_notices)
    if resume_ckpt is None:
        check_max_length(settings.model.max_length, encoder.config, settings.model.name_or_path)
    model = MultipleChoiceModel(encoder, head, attention_backend=settings.model.attention, device=device)
    notices.extend(model.notices)
    if resume_ckpt is not None:
        ckpt_io.load_model_weights(model, resume_ckpt)
    elif init is not None:
        notices.extend(init.apply_heads(model, data.tasks))
    model.to(device)
    model.train()
    # `model` is what is evaluated and saved (keys unchanged); `train_model` is what is trained.
    train_model: torch.nn.Module = model
    if dist.enabled:
        train_model = wrap_ddp(model, settings, device)
        if resume_ckpt is None and dist.rank > 0:
            # Identical initialisation above (same seed; DDP broadcasts rank 0's weights anyway),
            # then a dropout stream of this rank's own.
            seed_everything(distributed.rank_seed(settings.seed, dist.rank))

    if settings.model.compile:
        # Batch widths change every step: one graph with symbolic shapes, not one per width.
        train_model = torch.compile(train_model, dynamic=True)
    return model, train_model, head


# Encoders whose positions start after the padding index (fairseq's convention): of their
# max_position_embeddings, pad_token_id + 1 are never a token's position.
_PADDING_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert")


def position_limit(config: Any) -> int | None:
    """The longest sequence the encoder's config declares (max_position_embeddings), or None if it declares none."""
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or limit <= 0:
        return None
    if getattr(config, "model_type", None) in _PADDING_OFFSET_POSITIONS:
        limit -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return limit


def check_max_length(max_length: int, config: Any, name: str) -> None:
    """Refuse a max_length above the encoder's position limit, before anything is written.

    An encoder with absolute positions has no embedding beyond it (an index error at the first
    long batch). DeBERTa-v3 (relative positions, position_biased_input false) runs longer
    sequences, but it was pretrained at that length, and the memory of attention grows with the
    square of the length: a budget far above it trains on short batches, then runs out of memory
    when validation pads to the longest question. One rule for both: refused, naming the limit.
    """
    limit = position_limit(config)
    if limit is None or max_length <= limit:
        return
    kind = ("relative positions, pretrained at that length" if getattr(config, "relative_attention", False)
            and not getattr(config, "position_biased_input", True) else "absolute positions")
    raise UsageError(
        f"model.max_length {max_length} is above the position limit of the encoder {name} (max_position_embeddings "
        f"{limit} in its config; {kind}): use --max-length {limit} or less"
    )


def wrap_ddp(model: torch.nn.Module, settings: TrainSettings, device: torch.device) -> torch.nn.Module:
    ddp_class = torch.nn.parallel.DistributedDataParallel
    # No buffer changes during training (no batch norm); syncing them would add a collective
    # to every forward. (The argument was renamed in recent torch.)
    no_buffer_sync = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in inspect.signature(ddp_class.__init__).parameters
        else {"broadcast_buffers": False}
    )
    return ddp_class(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        **no_buffer_sync,
        # Without the contrastive loss the projection head gets no gradient. (DDP then notes
        # once that it "did not find any unused parameters": it looks from the outputs, where
        # the head is used, not from the loss; without the flag the second step fails.)
        find_unused_parameters=settings.loss.lambda_contrastive == 0,
    )


# The run's schedule is its plan (acct.train.plan): how long it is, when it validates and saves, and
# when the curriculum acts, computed as the ablation guard computes it.
Schedule = RunPlan


def setup_schedule(settings: TrainSettings, data: RunData) -> RunPlan:
    """The run's plan over its training tasks, in the run's task order."""
    counts = Counter(ex.task for ex in data.split.train)
    return make_plan(settings, [counts[t] for t in data.tasks])


def setup_optimization(
    model: torch.nn.Module, settings: TrainSettings, schedule: Schedule, device: torch.device, precision: str,
    weightings: Weightings | None = None, dist: distributed.Distributed = distributed.SINGLE,
) -> Optimization:
    """The optimizer (with the task weighting's own parameter group, if it has parameters), schedule,
    loss scaler and the run's gradient aggregation (`loss.gradient`)."""
    gradient = build_gradient(settings, dist)
    total_steps = schedule.total_steps
    group = weightings.parameter_group(settings.optim.lr) if weightings is not None else None
    optimizer = build_optimizer(model, settings.optim.lr, settings.optim.weight_decay, device,
                                [group] if group is not None else [])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total_steps, schedule.lr_warmup_steps))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    return Optimization(optimizer, scheduler, scaler, [p for p in model.parameters() if p.requires_grad],
                        settings.optim.max_grad_norm, gradient)


def build_gradient(settings: TrainSettings, dist: distributed.Distributed) -> Any:
    """The registered gradient aggregation of `loss.gradient`; refused under torchrun unless it runs there."""
    name = settings.loss.gradient
    cls = registry.gradients.get(name)
    if dist.enabled and not getattr(cls, "torchrun", False):
        raise UsageError(
            f"loss.gradient {name} cannot run under torchrun: it needs the Jacobian of the whole global batch, "
            "which DDP does not gather; train in one process, or use loss.gradient mean"
        )
    return cls()


def setup_curriculum(
    settings: TrainSettings, data: RunData, train_enc: EncodedExamples, schedule: Schedule,
    dist: distributed.Distributed, device: torch.device,
) -> tuple[TaskBatchSampler, Curriculum]:
    tasks = data.tasks
    sampler = TaskBatchSampler(
        train_enc.task_ids, len(tasks), settings.batch.tasks_per_batch, settings.batch.examples_per_task, settings.seed,
        lengths=example_lengths(train_enc) if settings.batch.group_by_length else None,
    )
    curriculum = Curriculum(
        settings.curriculum.strategy,
        len(tasks),
        temperature=settings.curriculum.temperature,
        floor=settings.curriculum.floor,
        # The plan's first recomputing update: the same gate as the warm-up itself (an update step
        # past it), taken from the plan so that the curriculum acts where a study predicts.
        warmup_steps=schedule.curriculum_from,
        update_every_n_steps=schedule.update_every,
        decay=settings.curriculum.ema_decay,
        prior=settings.curriculum.prior,
        alpha=settings.curriculum.alpha,
        options=settings.curriculum.options,
        tasks=tasks,
        task_sizes=sampler.task_sizes,
        categories=[data.categories[t] for t in tasks],
        total_steps=schedule.total_steps,
    )
    return sampler, curriculum


def to_training_device(curriculum: Curriculum, dist: distributed.Distributed, device: torch.device) -> None:
    if dist.enabled:
        # Only rank 0 observes (the gathered global batch), but every rank all-reduces the
        # windows, so they must live on the training device everywhere (NCCL needs it).
        curriculum.confusion.to(device)
        curriculum.task_stats.to(device)


def write_new_run(
    settings: TrainSettings, writer: RunWriter, manifest: dict[str, Any] | None, dist: distributed.Distributed,
    device: torch.device,
) -> TrainSettings:
    """Write a new run's config.json and split.json; the settings as recorded (with the run's plugin copies)."""
    run_dir = settings.run_dir()
    writer.wrote_files = True  # from here on a failed start has files of its own to remove (code/ first)
    if settings.plugins:
        # The run keeps its own copy of every plugin, for --resume (after a sha256 check).
        copies = dist.on_main(lambda: plugins.copy_into_run(run_dir, settings.plugins))
        settings = settings.model_copy(update={"plugins": [CodeFile(**c) for c in copies]})

    def write_run_files() -> None:
        started = provenance.collect(world_size=dist.world_size, device=device)
        ckpt_io.write_json(run_dir / "config.json", {**json.loads(settings.model_dump_json()), provenance.KEY: started})
        ckpt_io.write_json(run_dir / "split.json", manifest)

    dist.on_main(write_run_files)
    return settings


@dataclass
class Run:
    """What setup built and the loop reads; it does not change while the run trains."""

    settings: TrainSettings
    dist: distributed.Distributed
    device: torch.device
    precision: str
    backends: dict[str, bool]
    trace: distributed.RankTrace
    data: RunData
    tokenizer: Any
    pad_id: int
    train_enc: EncodedExamples
    val_enc: EncodedExamples
    model: MultipleChoiceModel
    train_model: torch.nn.Module
    head: HeadConfig
    schedule: Schedule
    parts: Resumable
    log: MetricsLog
    writer: RunWriter
    record: dict[str, Any]  # the settings a checkpoint vouches for (settings_record)
    majority: int  # the most frequent answer position in training (the baseline in summaries)
    notices: list[str] = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        return self.data.tasks


def setup(
    settings: TrainSettings, writer: RunWriter, dist: distributed.Distributed, device: torch.device, precision: str,
) -> tuple[Run, TrainState]:
    """Build a run and its starting state (a resume's is read from its 'last' checkpoint)."""
    run_dir = settings.run_dir()
    check_batch_splits(settings, dist.world_size)
    check_fits_weighting(settings.loss.gradient, settings.loss.task_weighting)
    backends = configure_backends(device, precision, deterministic=settings.deterministic, tf32=settings.tf32)
    trace = distributed.RankTrace(dist.rank)
    trace.write("started", pid=os.getpid(), world_size=dist.world_size)
    # A new run from another's weights: read (and check) the source before the run directory is touched.
    init = None
    if settings.init_from is not None and not settings.resume:
        init = init_from.open_source(settings.init_from, output_dir=run_dir)
    seed_everything(settings.seed)
    notices: list[str] = []

    data = setup_data(settings, dist, notices)
    tokenizer = setup_tokenizer(settings, data, init, notices)
    manifest = check_same_inputs(data, tokenizer, dist)
    train_enc, val_enc = encode_splits(settings, data, tokenizer)
    if data.resume_ckpt is None and settings.overwrite:
        # Settings, data, split and tokenizer are good: only now is the old run moved aside.
        moved = dist.on_main(writer.set_aside)
        if moved:
            notices.append(moved)
    model, train_model, head = setup_model(settings, data, tokenizer, init, dist, device, notices)
    schedule = setup_schedule(settings, data)
    # The loss weightings before the optimizer: a task weighting's parameters are trained by it.
    weightings = Weightings.build(settings, data.tasks).to(device)
    opt = setup_optimization(model, settings, schedule, device, precision, weightings, dist)
    sampler, curriculum = setup_curriculum(settings, data, train_enc, schedule, dist, device)
    # A strategy chosen by a name it no longer goes by says so once (its class's `notice`).
    renamed = getattr(registry.strategies.get(settings.curriculum.strategy), "notice", None)
    if renamed:
        notices.append(renamed)
    parts = Resumable(opt, curriculum, weightings, sampler)
    to_training_device(curriculum, dist, device)

    log = MetricsLog(run_dir / "metrics.jsonl", enabled=dist.is_main)
    state = TrainState.start(len(data.tasks), device)
    if data.resume_ckpt is not None:
        notices.extend(restore(data.resume_ckpt, state, parts, log, dist, device, settings.seed))
        log.write("resumed", step=state.step, provenance=provenance.collect(world_size=dist.world_size, device=device))
    else:
        settings = write_new_run(settings, writer, manifest, dist, device)
    run = Run(
        settings, dist, device, precision, backends, trace, data, tokenizer, tokenizer_pad_id(tokenizer), train_enc,
        val_enc, model, train_model, head, schedule, parts, log, writer, settings_record(settings),
        majority_answer(data.split.train), notices,
    )
    return run, state
