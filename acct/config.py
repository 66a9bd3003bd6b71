"""Settings for every command: one strict pydantic model per command, and how values resolve.

Precedence, lowest first: field defaults < preset < YAML file < ``ACCT_*`` environment
variables (nested with ``__``, e.g. ``ACCT_OPTIM__LR``) < command-line flags.
This module must stay free of torch so that ``acct --help`` is fast.
"""

from __future__ import annotations

import contextvars
import copy
import difflib
import json
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, NoDecode, SettingsConfigDict

from acct import registry
from acct.errors import UsageError

Strategy = str  # a name registered in acct.registry.strategies
Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
CheckpointName = Literal["best", "last"]
EvalSplit = Literal["val", "test"]

TINY = "tiny"  # model / tokenizer value meaning "build the small offline one"

# Passed as validation context by `resolve`: names are checked against their registries when
# settings are resolved for a command, not when a saved run's config.json is read back (a run
# may name a plugin that the reading command does not need and so has not imported).
# (pydantic-settings' own __init__ drops a validation context on the way to nested sections, so
# `resolve` also sets this flag while it validates.)
CHECK_REGISTRIES = {"check_registries": True}
_checking_registries: contextvars.ContextVar[bool] = contextvars.ContextVar("acct_check_registries", default=False)


def _registered(reg: registry.Registry, value: Any, info: ValidationInfo) -> Any:
    if _checking_registries.get() or (info.context and info.context.get("check_registries")):
        for name in value if isinstance(value, list) else [value]:
            reg.check(name)
    return value


def _non_finite(value: Any) -> bool:
    """Whether `value` holds a float that is inf or nan, however deep in lists and mappings."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_non_finite(v) for v in value)
    return False


class _Finite:
    """Refuses inf and nan in every setting: config.json stores them as null, and the run could not be read back.

    Float fields refuse them through `allow_inf_nan=False` (every settings model's config); this
    validator covers what a float field does not: numbers inside options mappings and lists.
    """

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if not isinstance(value, (float, BaseModel)) and _non_finite(value):
            raise ValueError("holds a number that is not finite (inf or nan); settings must be finite numbers")
        return value


class _Section(_Finite, BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class TinyArchitecture(_Section):
    """Sizes of the built-in random-init DebertaV2 used when the model is ``tiny``."""

    hidden_size: int = Field(64, gt=0, description="Hidden size of the tiny encoder.")
    num_hidden_layers: int = Field(2, gt=0, description="Transformer layers of the tiny encoder.")
    num_attention_heads: int = Field(2, gt=0, description="Attention heads of the tiny encoder.")
    intermediate_size: int = Field(128, gt=0, description="Feed-forward size of the tiny encoder.")
    position_buckets: int = Field(32, gt=0, description="Relative-position buckets (DeBERTa-v3 style).")
    vocab_size: int = Field(
        2000, ge=100, description="Vocabulary size of the tokenizer trained offline when the tokenizer is 'tiny'."
    )

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> TinyArchitecture:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        return self


class ModelSettings(_Section):
    name_or_path: str = Field(
        "microsoft/deberta-v3-base",
        description="Encoder: a hub id, a local directory with weights, a local directory holding only "
        "config.json (random init), or 'tiny' (small random-init DebertaV2 built offline).",
    )
    tokenizer: str | None = Field(
        None,
        description="Tokenizer: a hub id or local directory; 'tiny' trains a small WordPiece tokenizer on the "
        "training text offline; empty means the same as the model.",
    )
    max_length: int = Field(
        256, ge=8,
        description="Token budget of one (question, choice) pair; the question is truncated, the choice never. At "
        "most the encoder's position limit (max_position_embeddings in its config): a larger budget is refused.",
    )
    pooling: Literal["cls", "mean"] = Field("cls", description="How a (question, choice) sequence is pooled to one vector.")
    projection_dim: int = Field(256, gt=0, description="Size of the contrastive question embedding.")
    dropout: float | None = Field(None, ge=0, lt=1, description="Override the encoder's dropout; empty keeps the encoder's own.")
    trust_remote_code: bool = Field(False, description="Allow models and tokenizers that run code from the hub.")
    attention: Literal["auto", "hf", "acct", "disentangled_flash"] = Field(
        "auto",
        description="DeBERTa-v2/v3 attention backend, same weights and results: 'hf' the library's forward; 'acct' "
        "acct's faster equivalent forward (any device); 'disentangled_flash' Triton kernels (CUDA, the gpu extra); "
        "'auto' disentangled_flash on CUDA when installed, otherwise acct. Each is checked against the library's "
        "forward when the model is built; other encoders keep their own attention.",
    )
    compile: bool = Field(
        False,
        description="Train through torch.compile (dynamic shapes). Off by default: slower than eager in "
        "acct's measurements (BENCHMARKS.md), and the first steps wait for compilation.",
    )
    tiny: TinyArchitecture = Field(default_factory=TinyArchitecture, description="Sizes used when the model is 'tiny'.")

    @model_validator(mode="before")
    @classmethod
    def _legacy_fast_attention(cls, data: Any) -> Any:
        # Runs saved before `attention` existed wrote `fast_attention: true|false`.
        if isinstance(data, dict) and "fast_attention" in data:
            data = dict(data)
            fast = data.pop("fast_attention")
            data.setdefault("attention", "auto" if fast else "hf")
        return data


# data.files keys (the split names of Hugging Face datasets) -> what they are called in the source.
DATA_FILE_SPLITS = ("train", "validation", "test")
_DATA_FILE_ALIASES = {"val": "validation"}


def _split_files(value: Any) -> Any:
    """data.files as given (a glob, a list, 'split=glob' items, or a mapping) -> a list or a {split: [globs]} mapping."""
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        value = [value]
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
        named = [item.partition("=") for item in items]
        if not any(sep and _DATA_FILE_ALIASES.get(key, key) in DATA_FILE_SPLITS for key, sep, _ in named):
            return items
        mapping: dict[str, list[str]] = {}
        for item, (key, sep, glob) in zip(items, named):
            if not sep or _DATA_FILE_ALIASES.get(key, key) not in DATA_FILE_SPLITS:
                raise ValueError(
                    f"{item!r} names no split: give every file as SPLIT=PATH ({', '.join(DATA_FILE_SPLITS)}) or none"
                )
            mapping.setdefault(key, []).append(glob)
        value = mapping
    if isinstance(value, dict):
        out: dict[str, list[str]] = {}
        for key, globs in value.items():
            split = _DATA_FILE_ALIASES.get(str(key), str(key))
            if split not in DATA_FILE_SPLITS:
                raise ValueError(f"unknown split {key!r}; data files are given per split as {', '.join(DATA_FILE_SPLITS)}")
            globs = [globs] if isinstance(globs, (str, Path)) else list(globs or [])
            out.setdefault(split, []).extend(str(g) for g in globs)
        return out
    return value


class DataSettings(_Section):
    source: str = Field(
        "hub", description="Where examples come from: a registered data source, acct's or a plugin's (`acct list` describes each)."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Options of the data source, passed to its constructor (a mapping)."
    )
    data_dir: Path | None = Field(None, description="Directory of the original MMLU CSV layout (for source 'csv').")
    files: list[str] | dict[str, list[str]] | None = Field(
        None,
        description="Data files of source 'files' (JSONL, CSV or Parquet; globs allowed): a list, which subject-split "
        "splits per task, or files per split, {train: ..., validation: ..., test: ...}, which the standard protocol "
        "uses as given (on the command line: train=PATH validation=PATH test=PATH).",
    )
    files_format: Literal["auto", "json", "csv", "parquet"] = Field(
        "auto", description="Format of the data files; auto: from the extension (.jsonl/.json, .csv/.tsv, .parquet)."
    )
    hub_dataset: str = Field("cais/mmlu", description="Hub dataset id (for source 'hub'), read through the column mapping.")
    hub_config: str | None = Field(
        None, description="Config (subset) of the hub dataset; empty means 'all' for cais/mmlu, else the dataset's default."
    )
    question_column: str = Field("question", min_length=1, description="Column of the question text (sources files and hub).")
    choices_column: str | None = Field(
        None, min_length=1,
        description="Column holding each row's list of choices; empty means 'choices', unless choice_columns are set.",
    )
    choice_columns: list[str] | None = Field(
        None,
        description="One column per choice, in order (e.g. A,B,C,D), instead of a list column; empty cells at the end "
        "of a row mean it has fewer choices.",
    )
    answer_column: str = Field(
        "answer", min_length=1,
        description="Column of the right answer: a 0-based index, a letter (A, B, ...) or the text of the right choice.",
    )
    task_column: str = Field("subject", min_length=1, description="Column naming each row's task.")
    category_column: str | None = Field(
        None, min_length=1,
        description="Column naming each task's category (per-category accuracy); empty: MMLU's categories for MMLU "
        "subjects, else 'other'.",
    )
    protocol: Literal["subject-split", "standard"] = Field(
        "subject-split", description="subject-split: pool every split but auxiliary_train and split each task by "
        "fractions; standard: the given splits (train, or MMLU's auxiliary_train + dev / val / test)."
    )
    split_fractions: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1), description="Train/val/test fractions of each subject under the subject-split protocol."
    )
    allow_overlap: bool = Field(
        False,
        description="standard protocol: train even when val or test questions have an exact copy in training "
        "(they are reported); refused otherwise.",
    )
    synthetic_examples_per_task: int = Field(250, ge=3, description="Questions per task of the synthetic suite.")

    @model_validator(mode="before")
    @classmethod
    def _mmlu_config(cls, data: Any) -> Any:
        # MMLU on the hub needs its config "all"; recorded as such in config.json.
        if isinstance(data, dict) and data.get("hub_config") is None and data.get("hub_dataset", "cais/mmlu") == "cais/mmlu":
            data = {**data, "hub_config": "all"}
        return data

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str, info: ValidationInfo) -> str:
        return _registered(registry.data_sources, value, info)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Saved with the run: evaluate and predict may run from another working directory.
        return None if value is None else Path(os.path.abspath(value.expanduser()))

    @field_validator("files", mode="before")
    @classmethod
    def _files_shape(cls, value: Any) -> Any:
        return _split_files(value)

    @field_validator("files")
    @classmethod
    def _absolute_files(cls, value: list[str] | dict[str, list[str]] | None) -> Any:
        # Absolute, like data_dir, so that a run's files are found from any working directory.
        def absolute(globs: list[str]) -> list[str]:
            if not globs or any(not g.strip() for g in globs):
                raise ValueError("a data file path is empty")
            return [os.path.abspath(os.path.expanduser(g)) for g in globs]

        if value is None:
            return None
        if isinstance(value, dict):
            if not value:
                raise ValueError("no data files given")
            return {split: absolute(globs) for split, globs in value.items()}
        return absolute(value)

    @field_validator("choice_columns")
    @classmethod
    def _choice_columns(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if len(value) < 2 or any(not c for c in value):
            raise ValueError(f"give two or more choice columns (e.g. A,B,C,D), got {value}")
        if len(set(value)) != len(value):
            raise ValueError(f"a choice column is named twice: {value}")
        return value

    @model_validator(mode="after")
    def _check(self) -> DataSettings:
        # What a source needs is asked of its class (None: a plugin's that is not loaded here).
        cls = registry.data_sources.get(self.source) if self.source in registry.data_sources else None
        if getattr(cls, "needs_data_dir", False) and self.data_dir is None:
            raise ValueError(f"data source {self.source!r} needs a data directory (--data-dir)")
        reads_files = getattr(cls, "reads_files", None)
        if reads_files is True and self.files is None:
            raise ValueError(f"data source {self.source!r} needs data files (--data-files PATH, or data.files)")
        if self.files is not None and reads_files is False:
            raise ValueError(f"data files are read by data source 'files', not {self.source!r}: add --data-source files")
        if self.choices_column is not None and self.choice_columns is not None:
            raise ValueError("give either a list column of choices (--choices-column) or one column per choice "
                             "(--choice-columns), not both")
        fr = self.split_fractions
        if min(fr) < 0 or fr[0] <= 0 or abs(sum(fr) - 1.0) > 1e-6:
            raise ValueError("split_fractions must be three non-negative numbers summing to 1 with train > 0")
        return self


def split_comparability_note(data: Any) -> str | None:
    """What a subject-split run's accuracies cannot be compared with (None for other protocols and
    the synthetic suite). MMLU (the csv release or cais/mmlu on the hub) names its leaderboard."""
    cls = registry.data_sources.get(data.source) if data.source in registry.data_sources else None
    if not getattr(cls, "real_data", True) or data.protocol != "subject-split":
        return None
    text = "subject-split protocol: the source's splits pooled and re-split per task; these accuracies are not comparable to "
    if getattr(cls, "is_mmlu", lambda data: False)(data):
        return text + "the standard MMLU leaderboard"
    return text + "results on the dataset's own test split"


class BatchSettings(_Section):
    tasks_per_batch: int = Field(4, gt=0, description="Task slots drawn per batch.")
    examples_per_task: int = Field(4, gt=0, description="Questions drawn per task slot.")
    batch_size: int | None = Field(
        None, gt=0,
        description="Questions per batch. Given alone, it sets examples_per_task to batch_size / tasks_per_batch "
        "(or, with examples_per_task given, tasks_per_batch); given with both, it must equal their product.",
    )
    grad_accum_steps: int = Field(1, gt=0, description="Batches accumulated per optimizer step.")
    group_by_length: bool = Field(
        True,
        description="Fill a batch's task slots with questions of similar length (less padding); every "
        "question is still drawn once per epoch of its task.",
    )
    eval_batch_size: int = Field(64, gt=0, description="Questions per batch at evaluation.")

    @model_validator(mode="before")
    @classmethod
    def _shape_from_batch_size(cls, data: Any) -> Any:
        # `--batch-size N` alone means N questions per batch: the shape's missing factor follows
        # from it (examples_per_task first, the task slots keeping their default).
        if not isinstance(data, dict) or data.get("batch_size") is None:
            return data
        size, slots, per_slot = data["batch_size"], data.get("tasks_per_batch"), data.get("examples_per_task")
        if slots is not None and per_slot is not None:
            return data  # all three given: checked below
        try:
            size = int(size)
        except (TypeError, ValueError):
            return data  # the field's own validation says what is wrong
        if per_slot is None:
            divisor = slots if slots is not None else cls.model_fields["tasks_per_batch"].default
            given, other = "tasks_per_batch", "examples_per_task"
        else:
            divisor, given, other = per_slot, "examples_per_task", "tasks_per_batch"
        try:
            divisor = int(divisor)
        except (TypeError, ValueError):
            return data
        if size <= 0 or divisor <= 0:
            return data
        if size % divisor:
            raise ValueError(
                f"batch_size {size} does not divide into {given} {divisor}: {other} would be {size / divisor:g}; "
                f"give a batch size that is a multiple of {divisor}, or set --tasks-per-batch and --examples-per-task"
            )
        return {**data, other: size // divisor}

    @model_validator(mode="after")
    def _product(self) -> BatchSettings:
        product = self.tasks_per_batch * self.examples_per_task
        if self.batch_size is not None and self.batch_size != product:
            raise ValueError(
                f"batch_size {self.batch_size} must equal tasks_per_batch x examples_per_task "
                f"= {self.tasks_per_batch} x {self.examples_per_task} = {product}"
            )
        return self

    @property
    def questions_per_batch(self) -> int:
        return self.tasks_per_batch * self.examples_per_task


class CurriculumSettings(_Section):
    strategy: Strategy = Field(
        "uncertainty_gradient",
        description="Task sampling: a registered strategy, acct's or a plugin's (`acct list` describes each).",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Options of the strategy, passed to its constructor (a mapping; ACCT_CURRICULUM__OPTIONS as JSON).",
    )
    temperature: float = Field(
        2.0, gt=0, description="Softmax temperature over the z-scored task statistic (for strategies that take one, unless options set it)."
    )
    update_every_n_steps: int = Field(100, gt=0, description="Optimizer steps between curriculum updates.")
    warmup_epochs: float = Field(
        2.0, ge=0, description="Epochs of sampling from the prior before an adaptive curriculum acts."
    )
    floor: float = Field(
        0.1, ge=0, le=1, description="Share of the prior mixed into an adaptive strategy's weights so no task starves."
    )
    ema_decay: float = Field(0.9, ge=0, lt=1, description="Decay of the moving averages of confusion and error.")
    prior: Literal["uniform", "proportional", "temperature"] = Field(
        "proportional",
        description="Task-sampling prior that adaptive strategies reweight, warm-up samples from and the floor mixes in: "
        "uniform (every task alike), proportional (p_t ∝ n_t, the task's training questions) or temperature "
        "(p_t ∝ n_t^alpha).",
    )
    alpha: float = Field(
        0.5, gt=0, description="Exponent of the temperature prior and of the temperature strategy: p_t ∝ n_t^alpha."
    )

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str, info: ValidationInfo) -> str:
        return _registered(registry.strategies, value, info)


class LossSettings(_Section):
    lambda_cls: float = Field(0.7, ge=0, le=1, description="Weight of the choice cross-entropy.")
    lambda_contrastive: float = Field(0.3, ge=0, le=1, description="Weight of the uncertainty-weighted InfoNCE loss.")
    tau: float = Field(0.07, gt=0, description="InfoNCE temperature.")
    gather_negatives: bool = Field(
        False,
        description="Under torchrun: all-gather the contrastive embeddings so that InfoNCE contrasts every "
        "question with the whole global batch, as a single process would, instead of with its own process's "
        "share only. No effect in a single process.",
    )
    task_weighting: str = Field(
        "equal", description="How the classification loss combines questions of different tasks: a registered task-loss weighting."
    )
    task_weighting_options: dict[str, Any] = Field(
        default_factory=dict, description="Options of the task-loss weighting, passed to its constructor."
    )
    anchor_weighting: str = Field(
        "entropy",
        description="Weight of each anchor in the InfoNCE loss: a registered anchor weighting (entropy: the method; "
        "uniform: plain supervised InfoNCE).",
    )
    anchor_weighting_options: dict[str, Any] = Field(
        default_factory=dict, description="Options of the anchor weighting, passed to its constructor."
    )
    gradient: str = Field(
        "mean",
        description="How the gradients of a batch's task slots combine into the update: a registered gradient "
        "aggregation (mean: the gradient of the total loss; pcgrad and upgrad: gradient surgery with torchjd, "
        "pip install 'acct[mtl]'). Anything but mean needs task_weighting equal and a single process.",
    )

    @field_validator("task_weighting")
    @classmethod
    def _known_task_weighting(cls, value: str, info: ValidationInfo) -> str:
        return _registered(registry.task_weightings, value, info)

    @field_validator("anchor_weighting")
    @classmethod
    def _known_anchor_weighting(cls, value: str, info: ValidationInfo) -> str:
        return _registered(registry.anchor_weightings, value, info)

    @field_validator("gradient")
    @classmethod
    def _known_gradient(cls, value: str, info: ValidationInfo) -> str:
        return _registered(registry.gradients, value, info)

    @model_validator(mode="after")
    def _surgery_needs_equal_weighting(self) -> LossSettings:
        if self.gradient != "mean" and self.task_weighting != "equal":
            raise ValueError(
                f"loss.gradient {self.gradient} combines the task slots' own gradients and needs "
                f"loss.task_weighting equal, not {self.task_weighting}"
            )
        return self


class OptimSettings(_Section):
    lr: float = Field(2e-5, gt=0, description="Peak learning rate of AdamW.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not applied to biases and norms).")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Fraction of steps of linear warm-up before the cosine decay to 0.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    epochs: float = Field(10, gt=0, description="Training length in epochs (one epoch = training questions / batch size).")
    max_steps: int | None = Field(None, gt=0, description="Training length in optimizer steps; overrides epochs.")


class CodeFile(_Section):
    """A user's Python file imported with --code, as a run records it."""

    path: str = Field(description="Absolute path the file was imported from.")
    sha256: str = Field(description="SHA-256 of the file's bytes as imported.")
    copy_path: str | None = Field(
        None, description="The run's own copy, relative to the run directory (code/NAME.py); set when the run starts."
    )


class TrainSettings(_Finite, BaseSettings):
    """Everything `acct train` needs; written to RUN_DIR/config.json."""

    model_config = SettingsConfigDict(
        env_prefix="ACCT_", env_nested_delimiter="__", extra="forbid", validate_assignment=True,
        allow_inf_nan=False,
    )

    model: ModelSettings = Field(default_factory=ModelSettings, description="Encoder and heads.")
    data: DataSettings = Field(default_factory=DataSettings, description="Data source and protocol.")
    batch: BatchSettings = Field(default_factory=BatchSettings, description="Batch shape.")
    curriculum: CurriculumSettings = Field(default_factory=CurriculumSettings, description="Task curriculum.")
    loss: LossSettings = Field(default_factory=LossSettings, description="Loss weights.")
    optim: OptimSettings = Field(default_factory=OptimSettings, description="Optimizer and schedule.")
    output_dir: Path | None = Field(
        None, description="Run directory; empty means runs/<strategy>-seed<seed>, or runs/<preset>-seed<seed> with --preset tiny."
    )
    seed: int = Field(0, ge=0, description="Seed of data split, sampling, initialisation and dropout.")
    device: Device = Field("auto", description="auto picks CUDA when available.")
    precision: Precision = Field("auto", description="auto = bf16 autocast on CUDA, fp32 on CPU.")
    eval_every_n_steps: int | None = Field(None, gt=0, description="Validate every N steps; empty means once per epoch.")
    patience: int = Field(3, ge=1, description="Validations without improvement before early stopping.")
    save_every_n_steps: int | None = Field(None, gt=0, description="Also save 'last' every N steps.")
    log_every_n_steps: int = Field(10, gt=0, description="Steps between progress events (the only host syncs).")
    max_nonfinite_steps: int = Field(10, ge=1, description="Consecutive non-finite steps after which training stops.")
    deterministic: bool = Field(
        False,
        description="Use only deterministic kernels (torch.use_deterministic_algorithms, with the cuBLAS workspace "
        "setting it needs). Slower on a GPU; without it, a resumed GPU run restores the exact state but its later "
        "numbers are not bit-identical to an uninterrupted run's (atomic adds in some backward kernels).",
    )
    tf32: bool = Field(
        True,
        description="With --precision fp32 on CUDA, let matmuls and convolutions use TF32 tensor cores "
        "(torch.set_float32_matmul_precision('high')). No effect on a CPU or under bf16/fp16 autocast.",
    )
    overwrite: bool = Field(False, description="Replace an existing run in the output directory.")
    resume: bool = Field(False, description="Continue the run in the output directory from its 'last' checkpoint.")
    plugins: list[CodeFile] = Field(
        default_factory=list,
        description="Python files imported with --code / ACCT_CODE before the settings were resolved; copied into RUN_DIR/code/.",
    )
    report_to: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Experiment trackers that receive the run's training scalars, validation metrics, curriculum weights, "
        "settings and run directory (rank 0 only), as in Hugging Face's report_to: none, all (every registered tracker "
        "whose library is installed), or tracker names (tensorboard, trackio, wandb, mlflow, or a plugin's; `acct list`) "
        "(a list, or a comma-separated string). Each needs its extra, e.g. pip install 'acct[tensorboard]'.",
    )
    init_from: str | None = Field(
        None,
        description="Start from the weights of RUN_DIR[:best|last] (encoder, heads, task rows matched by task name), "
        "a folder written by `acct export`, or a Hugging Face encoder directory (encoder only); a new run with these settings.",
    )

    @field_validator("report_to", mode="before")
    @classmethod
    def _tracker_words(cls, value: Any) -> Any:
        # A comma list from a flag, YAML or ACCT_REPORT_TO (which may also hold a JSON list).
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError:
                    raise ValueError("not a JSON list of tracker names") from None
            return [text]
        return value

    @field_validator("report_to")
    @classmethod
    def _known_trackers(cls, value: list[str], info: ValidationInfo) -> list[str]:
        from acct.trackers import expand

        return _registered(registry.trackers, expand(value), info)

    def run_dir(self) -> Path:
        return self.output_dir or Path("runs") / f"{self.curriculum.strategy}-seed{self.seed}"


class EvaluateSettings(_Finite, BaseSettings):
    """Everything `acct evaluate` needs."""

    model_config = SettingsConfigDict(env_prefix="ACCT_", env_nested_delimiter="__", extra="forbid", allow_inf_nan=False)

    run_dir: Path = Field(description="Run directory written by `acct train`.")
    split: EvalSplit = Field("test", description="Held-out split of the run's manifest to score.")
    checkpoint: CheckpointName = Field("best", description="Which checkpoint to load.")
    batch_size: int = Field(64, gt=0, description="Questions per evaluation batch.")
    device: Device = Field("auto", description="auto picks CUDA when available.")
    precision: Precision = Field("auto", description="auto = bf16 autocast on CUDA, fp32 on CPU.")
    data_dir: Path | None = Field(None, description="Read the CSV data from here instead of the path saved with the run.")


def tiny_preset() -> dict[str, Any]:
    """Offline, CPU-sized: a random-init tiny DebertaV2 learning the synthetic suite in about a minute."""
    return {
        "model": {"name_or_path": TINY, "tokenizer": TINY, "max_length": 64, "projection_dim": 64},
        "data": {"source": "synthetic"},
        "curriculum": {"update_every_n_steps": 20, "warmup_epochs": 1.0},
        "optim": {"lr": 3e-3, "weight_decay": 0.01, "warmup_ratio": 0.05, "epochs": 6},
        "batch": {"eval_batch_size": 128},
        "patience": 4,
    }


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},  # the field defaults are the real job: DeBERTa-v3-base on cais/mmlu
    "tiny": tiny_preset(),
}


def deep_merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Merge nested dicts; later layers win key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping of a YAML file names one key twice (PyYAML would keep the last silently)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping: a study's arm or a setting
    written twice would otherwise run only its second definition, without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` merges another mapping; its keys may be overridden
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first_line.get(key)
                except TypeError:  # an unhashable key: the base loader says so
                    continue
                line = key_node.start_mark.line + 1
                if seen is not None:
                    raise DuplicateKeyError(None, None, f"key {key!r} is given twice (lines {seen} and {line})",
                                            key_node.start_mark)
                first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a settings or study file with the safe loader (keys given twice refused); one clear error
    for every way it can be wrong. Every YAML file a user hands acct is read here."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506  a SafeLoader subclass
    except DuplicateKeyError as exc:
        raise UsageError(f"{path}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"malformed YAML in {path}{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping of settings, not {type(data).__name__}")
    return data


def flag_names() -> dict[str, str]:
    """Dotted field path -> the `acct train` flag that sets it, for error messages: the CLI's flag table."""
    from acct.cli.flags import SETTINGS_FLAGS  # plain data; imported when an error is worded, never before

    return {entry.path: flag for flag, entry in SETTINGS_FLAGS.items()}


# Flags spelled otherwise than their setting, by (settings class name, field): --eval-batch-size
# sets `acct evaluate`'s batch_size.
_FLAG_SPELLINGS = {("EvaluateSettings", "batch_size"): "--eval-batch-size"}


def _flag_of(cls: type[BaseModel] | None, path: str) -> str:
    if cls is not None and (cls.__name__, path) in _FLAG_SPELLINGS:
        return _FLAG_SPELLINGS[(cls.__name__, path)]
    if cls is None or cls.__name__ == "TrainSettings" or "." in path:
        return flag_names().get(path) or "--" + path.rsplit(".", 1)[-1].replace("_", "-")
    return "--" + path.replace("_", "-")


def _dotted_keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in tree.items():
        out.add(prefix + key)
        if isinstance(value, dict):
            out |= _dotted_keys(value, f"{prefix}{key}.")
    return out


def format_validation_error(
    exc: ValidationError, *, flags: set[str] | None = None, cls: type[BaseModel] | None = None
) -> str:
    """One line per problem: the field path, the flag or variable that sets it, the message.

    `flags` are the dotted settings the user gave as command-line flags (of settings class `cls`):
    a problem there names the flag the user typed, not the variable that could also set it."""
    parts = []
    whole = True  # every problem is about the settings as a whole (a check across fields)
    for err in exc.errors():
        msg = err["msg"]
        if err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        path = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
        if not path or (err["type"] == "value_error" and path in _sections()):
            parts.append(msg)  # a check across the fields of the settings or of one section
            continue
        whole = False
        env = "ACCT_" + path.upper().replace(".", "__")
        if flags is not None and path in flags:
            where = _flag_of(cls, path)
        else:
            flag = flag_names().get(path)
            where = f"{flag} / {env}" if flag and (cls is None or cls.__name__ == "TrainSettings") else env
        parts.append(f"{path} ({where}): {msg}")
    return "; ".join(parts) if whole else "invalid settings: " + "; ".join(parts)


def _sections() -> set[str]:
    return {name for name in _dotted_fields(TrainSettings) if any(f.startswith(name + ".") for f in _dotted_fields(TrainSettings))}


def _dotted_fields(model: Any, prefix: str = "") -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        names.append(prefix + name)
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            names.extend(_dotted_fields(info.annotation, f"{prefix}{name}."))
    return names


def check_yaml_keys(data: dict[str, Any], path: Path) -> None:
    """Refuse an unknown key of a settings file, naming the file and the closest known key."""
    import difflib

    known = _dotted_fields(TrainSettings)

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if dotted not in known:
                close = difflib.get_close_matches(dotted, known, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise UsageError(f"{path}: unknown setting {dotted}{hint}")
            if isinstance(value, dict) and any(k.startswith(dotted + ".") for k in known):
                walk(value, dotted + ".")

    walk(data, "")


def resolve(cls: type[BaseSettings], flags: dict[str, Any], *, layers: list[dict[str, Any]] = ()) -> Any:
    """Build `cls` from lower layers (preset, YAML), the environment and the flags, in that order."""
    base = deep_merge(*layers)

    def sources(_cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        return (init_settings, env_settings, InitSettingsSource(settings_cls, base))

    layered = type(cls.__name__, (cls,), {"settings_customise_sources": classmethod(sources)})
    try:
        resolved = layered(**flags)
        # Re-validating as the plain class does not read the environment again.
        token = _checking_registries.set(True)
        try:
            return cls.model_validate(resolved.model_dump(), context=CHECK_REGISTRIES)
        finally:
            _checking_registries.reset(token)
    except ValidationError as exc:
        raise UsageError(format_validation_error(exc, flags=_dotted_keys(flags), cls=cls)) from None


def validate_checked(cls: type[BaseModel], data: dict[str, Any]) -> Any:
    """`cls` validated from `data` with registered names checked; one UsageError line if invalid."""
    token = _checking_registries.set(True)
    try:
        return cls.model_validate(data, context=CHECK_REGISTRIES)
    except ValidationError as exc:
        raise UsageError(format_validation_error(exc)) from None
    finally:
        _checking_registries.reset(token)


def resolve_train(
    flags: dict[str, Any], *, preset: str | None = None, config_file: Path | None = None
) -> TrainSettings:
    layers: list[dict[str, Any]] = []
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        layers.append(PRESETS[preset])
    if config_file is not None:
        layer = read_yaml(config_file)
        check_sections(TrainSettings, layer, where=str(config_file))
        check_yaml_keys(layer, config_file)
        given = flags.get("model", {}).get("trust_remote_code") if isinstance(flags.get("model"), dict) else None
        check_no_trust_granted(layer, str(config_file), trusted=bool(given) or env_trusts_remote_code())
        layers.append(layer)
    settings = resolve(TrainSettings, flags, layers=layers)
    if settings.init_from is not None and not settings.resume:
        check_one_encoder(flags, layers[-1] if config_file is not None else {}, config_file)
    if settings.output_dir is None and preset not in (None, "default"):
        # `acct train --preset tiny` writes runs/tiny-seed0, the path the docs use.
        settings = settings.model_copy(update={"output_dir": Path("runs") / f"{preset}-seed{settings.seed}"})
    return settings


def check_one_encoder(flags: dict[str, Any], layer: dict[str, Any], config_file: Path | None) -> None:
    """Refuse --init-from together with an encoder the user named (--model, model.name_or_path in the
    YAML file, ACCT_MODEL__NAME_OR_PATH): the run takes the encoder from the source, and the other
    would be ignored without a word. A preset's model does not count: it is not the user's choice."""
    named = []
    if isinstance(flags.get("model"), dict) and flags["model"].get("name_or_path") is not None:
        named.append(flag_names().get("model.name_or_path", "--model"))
    if isinstance(layer.get("model"), dict) and layer["model"].get("name_or_path") is not None:
        named.append(f"model.name_or_path in {config_file}")
    if any(var.upper() == "ACCT_MODEL__NAME_OR_PATH" for var in os.environ):
        named.append("ACCT_MODEL__NAME_OR_PATH")
    if named:
        raise UsageError(
            f"--init-from takes the encoder (and its tokenizer) from its source, so {named[0]} would be ignored; "
            "give one of them: --init-from SOURCE to start from another run's or an encoder's weights, or the "
            "encoder alone"
        )


TRUST_ENV = "ACCT_MODEL__TRUST_REMOTE_CODE"


def env_trusts_remote_code() -> bool:
    """Whether the person running the command set ACCT_MODEL__TRUST_REMOTE_CODE to a true value."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes", "on", "y", "t")


def check_no_trust_granted(layer: dict[str, Any], where: str, *, trusted: bool = False) -> None:
    """Refuse a file that grants `model.trust_remote_code`: trust comes only from the person running
    the command (--trust-remote-code or ACCT_MODEL__TRUST_REMOTE_CODE), never from a file someone
    may have handed them. A file may repeat trust the user gave (`trusted`), or say false."""
    model = layer.get("model")
    value = model.get("trust_remote_code") if isinstance(model, dict) else None
    if value is None or value is False or trusted:
        return
    raise UsageError(
        f"{where}: model.trust_remote_code is set in a file, which cannot grant trust: trust comes only from the "
        f"person running the command; remove it and pass --trust-remote-code (or set {TRUST_ENV}=1)"
    )


def _section_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def check_sections(cls: type[BaseModel], layer: dict[str, Any], *, where: str, prefix: str = "") -> None:
    """Refuse a section (e.g. `optim:`) given as anything but a mapping.

    Checked on the file itself: once merged with flags that set a field of the section, a list
    or a scalar would be replaced by the flags' mapping, silently dropping the file's values.
    """
    for key, value in layer.items():
        info = cls.model_fields.get(key)
        section = _section_model(info.annotation) if info is not None else None
        if section is None:
            continue
        path = f"{prefix}{key}"
        if not isinstance(value, dict):
            kind = "nothing" if value is None else f"a {type(value).__name__}"
            raise UsageError(
                f"invalid settings: {path} (in {where}): a section must be a mapping of settings "
                f"(e.g. {key}: {{name: value}}), got {kind}"
            )
        check_sections(section, value, where=where, prefix=f"{path}.")


# ACCT_* variables read outside the settings models.
OTHER_ENV_VARS = ("ACCT_DEBUG", "ACCT_CACHE_DIR", "ACCT_DEBUG_RANK_DIR", "ACCT_DIST_TIMEOUT_S", "ACCT_CODE")


def known_env_vars() -> set[str]:
    """Every ACCT_* variable some command reads: each settings field (and section) of every command."""
    names = set(OTHER_ENV_VARS)

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            var = f"{prefix}{name.upper()}"
            names.add(var)
            section = _section_model(info.annotation)
            if section is not None:
                walk(section, var + "__")

    for cls in (TrainSettings, EvaluateSettings, PredictSettings, AblateSettings, InspectSettings):
        walk(cls, "ACCT_")
    return names


def unknown_env_warnings(environ: dict[str, str] | None = None) -> list[str]:
    """One warning per ACCT_* variable that no command reads, naming the closest real one."""
    environ = dict(os.environ) if environ is None else environ
    known = known_env_vars()
    warnings = []
    for var in sorted(environ):
        upper = var.upper()  # pydantic-settings matches names case-insensitively
        if not upper.startswith("ACCT_") or upper in known:
            continue
        squashed = upper.replace("_", "")
        same = sorted(k for k in known if k.replace("_", "") == squashed)
        close = same or difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else "settings are ACCT_SECTION__FIELD, e.g. ACCT_OPTIM__LR"
        warnings.append(f"environment variable {var} matches no setting and is ignored; {hint}")
    return warnings


def contrastive_notice(settings: TrainSettings, world_size: int = 1, num_tasks: int = 2) -> str | None:
    """A notice when the batch shape leaves InfoNCE without positives (same-task pairs) while lambda_con > 0.

    Positives are questions of one task slot in the batch InfoNCE sees: the whole batch in a single
    process or with gather_negatives, else each process's strided share (rows rank::world_size).
    """
    lam = settings.loss.lambda_contrastive
    if lam <= 0:
        return None
    per_slot, slots = settings.batch.examples_per_task, settings.batch.tasks_per_batch
    share = 1 if world_size == 1 or settings.loss.gather_negatives else world_size
    seen = settings.batch.questions_per_batch // share  # questions in the batch one InfoNCE call sees
    shape = f"tasks_per_batch {slots} x examples_per_task {per_slot}" + (f" over {world_size} processes" if share > 1 else "")
    if seen <= 1:
        what = "always 0"
    elif per_slot <= share and num_tasks > 1:
        what = "0 except when two task slots happen to draw the same task"
    else:
        return None
    return (
        f"loss: lambda_contrastive {lam:g} but a batch of {shape} has no same-task pairs (positives), "
        f"so InfoNCE is {what}; use --examples-per-task {share + 1} or more, or --lambda-contrastive 0"
    )


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Turn {'optim.lr': 1e-3} into {'optim': {'lr': 1e-3}}, dropping unset (None) values."""
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        if value is None:
            continue
        node = out
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def debug_enabled() -> bool:
    return os.environ.get("ACCT_DEBUG", "") not in ("", "0", "false", "False")


# -- predict, ablate, inspect-confusion ----------------------------------------------------------
#
# One strict model per command (unknown settings are errors), resolved with the same precedence
# as every acct command: defaults < ACCT_* environment < flags (the training settings `acct
# ablate` varies come from `TrainSettings`, with its presets and YAML layer). Like `acct
# evaluate`, the variables carry the plain ACCT_ prefix (ACCT_SPLIT, ACCT_CHECKPOINT,
# ACCT_DEVICE ... mean the same for every command).

ABLATION_CONFIGS = ("baseline", "contrastive", "full")  # acct's own arms; plugins add more


class PredictSettings(_Finite, BaseSettings):
    """Everything `acct predict` needs: one question, or a file of them."""

    model_config = SettingsConfigDict(env_prefix="ACCT_", extra="forbid", allow_inf_nan=False)

    run_dir: Path = Field(description="Run directory written by `acct train`.")
    question: str | None = Field(None, description="The question text (single-question mode).")
    choices: list[str] | None = Field(None, description="The answer options, two or more (single-question mode).")
    task: str | None = Field(
        None,
        description="Subject name from the run's task list; empty means task-agnostic (the mean task embedding). "
        "In file mode, the task of rows that name none.",
    )
    input: Path | None = Field(None, description="File mode: a .jsonl file (question, choices, task?, answer?) or an MMLU-layout .csv.")
    output: Path | None = Field(None, description="File mode: write the JSON lines here instead of to stdout.")
    checkpoint: CheckpointName = Field("best", description="Which checkpoint to load.")
    batch_size: int = Field(64, gt=0, description="Questions per batch in file mode.")
    device: Device = Field("auto", description="auto picks CUDA when available.")
    precision: Precision = Field("auto", description="auto = bf16 autocast on CUDA, fp32 on CPU.")

    @model_validator(mode="after")
    def _one_mode(self) -> PredictSettings:
        single = self.question is not None or self.choices is not None
        if single and self.input is not None:
            raise ValueError("give either --question/--choices or --input, not both")
        if not single and self.input is None:
            raise ValueError("give --question with --choices, or --input FILE")
        if single and (self.question is None or self.choices is None):
            raise ValueError("single-question mode needs both --question and --choices")
        if self.output is not None and self.input is None:
            raise ValueError("--output is for file mode (--input)")
        return self


class AblateSettings(_Finite, BaseSettings):
    """What `acct ablate` adds to the training settings (which come from `acct train`'s own model)."""

    model_config = SettingsConfigDict(env_prefix="ACCT_", extra="forbid", allow_inf_nan=False)

    output_dir: Path = Field(Path("runs/ablation"), description="Directory of the study: DIR/<config>-seed<k>/, ablation.json, ablation.md.")
    seeds: int = Field(3, ge=1, description="Seeds per arm (the training seed, seed+1, ...): the seed is the replicate of every test across runs, so fewer than 3 cannot account for training variance.")
    split: EvalSplit = Field("test", description="Held-out split of the runs' shared manifest to compare on.")
    checkpoint: CheckpointName = Field("best", description="Which checkpoint of each run to score (best is picked on val).")
    arms: list[str] = Field(
        list(ABLATION_CONFIGS),
        description="Registered ablation arms to run, in this order (see `acct list`); the first is the reference "
        "of every comparison unless --reference names another. Ignored when a study file is given.",
    )
    study: Path | None = Field(
        None,
        description="YAML study file declaring named arms as settings overrides on the base settings "
        "(`arms: {name: {section: {setting: value}}}`, optional `reference: name`); replaces --arms.",
    )
    reference: str | None = Field(
        None, description="The arm every other arm is compared with; empty means the first arm."
    )
    eval_batch_size: int = Field(64, gt=0, description="Questions per evaluation batch.")
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Values of dotted training settings to tune every arm over (--sweep optim.lr=1e-5,3e-5); the "
        "grid is their product, every arm trains at every point and seed, and each arm's point with the best mean "
        "validation accuracy over seeds is the one compared on the test split.",
    )
    from_predictions: bool = Field(False, description="Recompute the report from the runs' saved predictions-<split>.jsonl instead of scoring them again (each file is checked against the checkpoint it came from).")
    top_tasks: int = Field(5, ge=0, description="Per-task deltas shown: this many largest gains and losses.")
    overwrite: bool = Field(False, description="Retrain every run even if a finished one is there.")
    allow_identical: bool = Field(
        False, description="Run a study even if two arms would train identically (the report's notes say so)."
    )
    plot_dir: Path | None = Field(None, description="Write the study's PNG figures here (needs the acct[plot] extra).")

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return _registered(registry.ablation_arms, value, info)

    @model_validator(mode="after")
    def _a_comparison(self) -> AblateSettings:
        if self.study is not None:
            return self  # the study file's arms are checked when it is read
        if len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arms: each arm once, got {', '.join(self.arms)}")
        if len(self.arms) < 2:
            raise ValueError(f"arms: a study compares at least two arms, got {', '.join(self.arms) or 'none'}")
        if self.reference is not None and self.reference not in self.arms:
            raise ValueError(f"reference: {self.reference!r} is not one of the arms ({', '.join(self.arms)})")
        return self


class InspectSettings(_Finite, BaseSettings):
    """Everything `acct inspect-confusion` needs."""

    model_config = SettingsConfigDict(env_prefix="ACCT_", extra="forbid", allow_inf_nan=False)

    run_dir: Path = Field(description="Run directory written by `acct train`.")
    top: int = Field(10, ge=1, description="How many of the most-confused task pairs to show.")
    checkpoint: CheckpointName = Field("best", description="Which checkpoint to read.")
    recompute: bool = Field(False, description="Rebuild the matrix from the model's embeddings of --split instead of reading the saved one.")
    split: EvalSplit = Field("val", description="Held-out split used by --recompute.")
    batches: int | None = Field(None, gt=0, description="Task-grouped batches drawn by --recompute; empty means one pass over the split.")
    seed: int = Field(0, ge=0, description="Seed of the batches drawn by --recompute.")
    plot: Path | None = Field(None, description="Write a heatmap PNG here (needs the acct[plot] extra).")
    batch_size: int = Field(64, gt=0, description="Questions per batch when scoring the split.")
    device: Device = Field("auto", description="auto picks CUDA when available.")
    precision: Precision = Field("auto", description="auto = bf16 autocast on CUDA, fp32 on CPU.")
    data_dir: Path | None = Field(None, description="Read CSV data from here instead of the run's saved path.")


def resolve_flags(cls: type[BaseSettings], flags: dict[str, Any]) -> Any:
    """Resolve a command's settings from its flags, leaving unset (None) flags to env and defaults."""
    return resolve(cls, {k: v for k, v in flags.items() if v is not None})
