"""`TrainSettings`, the settings of `acct train` (and of every run `acct ablate` trains), section by
section: model, data, batch, curriculum, loss, optim.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    SettingsConfigDict,
)

from acct import registry
from acct.config.fields import (
    Device,
    Finite,
    Precision,
    Section,
    Strategy,
    registered,
)
from acct.trackers import expand


class TinyArchitecture(Section):
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


class ModelSettings(Section):
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


class DataSettings(Section):
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
        return registered(registry.data_sources, value, info)

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


class BatchSettings(Section):
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


class CurriculumSettings(Section):
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
        return registered(registry.strategies, value, info)


class LossSettings(Section):
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
        return registered(registry.task_weightings, value, info)

    @field_validator("anchor_weighting")
    @classmethod
    def _known_anchor_weighting(cls, value: str, info: ValidationInfo) -> str:
        return registered(registry.anchor_weightings, value, info)

    @field_validator("gradient")
    @classmethod
    def _known_gradient(cls, value: str, info: ValidationInfo) -> str:
        return registered(registry.gradients, value, info)


class OptimSettings(Section):
    lr: float = Field(2e-5, gt=0, description="Peak learning rate of AdamW.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not applied to biases and norms).")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Fraction of steps of linear warm-up before the cosine decay to 0.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    epochs: float = Field(10, gt=0, description="Training length in epochs (one epoch = training questions / batch size).")
    max_steps: int | None = Field(None, gt=0, description="Training length in optimizer steps; overrides epochs.")


class CodeFile(Section):
    """A user's Python file imported with --code, as a run records it."""

    path: str = Field(description="Absolute path the file was imported from.")
    sha256: str = Field(description="SHA-256 of the file's bytes as imported.")
    copy_path: str | None = Field(
        None, description="The run's own copy, relative to the run directory (code/NAME.py); set when the run starts."
    )


class TrainSettings(Finite, BaseSettings):
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
        return registered(registry.trackers, expand(value), info)

    def run_dir(self) -> Path:
        return self.output_dir or Path("runs") / f"{self.curriculum.strategy}-seed{self.seed}"


def field_defaults() -> dict[str, Any]:
    """Every training setting at its field default, flattened to dotted names: what a setting means
    when nothing sets it. No ACCT_* variable is read (TrainSettings() would read them)."""
    return dict(_field_defaults())


@functools.cache
def _field_defaults() -> dict[str, Any]:
    from acct.config.layers import flatten

    class Defaults(TrainSettings):
        @classmethod
        def settings_customise_sources(cls, settings_cls: Any, init_settings: Any, **sources: Any) -> tuple[Any, ...]:
            return (init_settings,)

    return flatten(json.loads(Defaults().model_dump_json()))
