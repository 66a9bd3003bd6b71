"""The events `acct.train.loop.train` yields: the CLI renders them, tests and benchmarks read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from acct.scoring.metrics import EvalResult


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
class ModelLoaded:
    """Which encoder and tokenizer the run loaded; yielded right after `RunStarted`."""

    encoder: str  # hub id or local path; a resume's checkpoint directory; "tiny" for the offline preset
    encoder_class: str  # the encoder's class, e.g. DebertaV2Model
    parameters: int  # the encoder's parameters (the task embedding and heads not counted)
    tokenizer: str  # hub id or local path; "tiny" for the WordPiece trained on the training split
    tokenizer_class: str
    vocab_size: int


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
    # What the task weighting reports at validation, {name: {task: value}}: the uncertainty
    # weighting's log_variance and weight; empty for weightings that report nothing.
    task_weighting: dict[str, dict[str, float]] = field(default_factory=dict)


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


Event = RunStarted | ModelLoaded | StepLogged | CurriculumUpdated | Validated | CheckpointSaved | Finished
