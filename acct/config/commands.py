"""The settings of `acct evaluate`, `predict`, `ablate` and `inspect-confusion`: one strict model per
command (unknown settings are errors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    SettingsConfigDict,
)

from acct import registry
from acct.config.fields import (
    CheckpointName,
    Device,
    EvalSplit,
    Finite,
    Precision,
    registered,
)


class EvaluateSettings(Finite, BaseSettings):
    """Everything `acct evaluate` needs."""

    model_config = SettingsConfigDict(env_prefix="ACCT_", env_nested_delimiter="__", extra="forbid", allow_inf_nan=False)

    run_dir: Path = Field(description="Run directory written by `acct train`.")
    split: EvalSplit = Field("test", description="Held-out split of the run's manifest to score.")
    checkpoint: CheckpointName = Field("best", description="Which checkpoint to load.")
    batch_size: int = Field(64, gt=0, description="Questions per evaluation batch.")
    device: Device = Field("auto", description="auto picks CUDA when available.")
    precision: Precision = Field("auto", description="auto = bf16 autocast on CUDA, fp32 on CPU.")
    data_dir: Path | None = Field(None, description="Read the CSV data from here instead of the path saved with the run.")


#
# One strict model per command (unknown settings are errors), resolved with the same precedence
# as every acct command: defaults < ACCT_* environment < flags (the training settings `acct
# ablate` varies come from `TrainSettings`, with its presets and YAML layer). Like `acct
# evaluate`, the variables carry the plain ACCT_ prefix (ACCT_SPLIT, ACCT_CHECKPOINT,
# ACCT_DEVICE ... mean the same for every command).

DEFAULT_ARMS = ("baseline", "contrastive", "full")  # acct's own arms; plugins add more


class PredictSettings(Finite, BaseSettings):
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


class AblateSettings(Finite, BaseSettings):
    """What `acct ablate` adds to the training settings (which come from `acct train`'s own model)."""

    model_config = SettingsConfigDict(env_prefix="ACCT_", extra="forbid", allow_inf_nan=False)

    output_dir: Path = Field(Path("runs/ablation"), description="Directory of the study: DIR/<config>-seed<k>/, ablation.json, ablation.md.")
    seeds: int = Field(3, ge=1, description="Seeds per arm (the training seed, seed+1, ...): the seed is the replicate of every test across runs, so fewer than 3 cannot account for training variance.")
    split: EvalSplit = Field("test", description="Held-out split of the runs' shared manifest to compare on.")
    checkpoint: CheckpointName = Field("best", description="Which checkpoint of each run to score (best is picked on val).")
    arms: list[str] = Field(
        list(DEFAULT_ARMS),
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
        return registered(registry.ablation_arms, value, info)

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


class InspectSettings(Finite, BaseSettings):
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
