"""Settings models of `acct predict`, `acct ablate` and `acct inspect-confusion`.

One strict model per command (unknown settings are errors), resolved with the same precedence
as every acct command: defaults < ACCT_* environment < flags (the training settings `acct
ablate` varies come from acct.config's `TrainSettings`, with its presets and YAML layer). Like
`acct evaluate`, the variables carry the plain ACCT_ prefix (ACCT_SPLIT, ACCT_CHECKPOINT,
ACCT_DEVICE ... mean the same for every command). Free of torch, like acct.config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from acct import registry
from acct.config import CheckpointName, Device, EvalSplit, Precision, _registered, resolve

ABLATION_CONFIGS = ("baseline", "contrastive", "full")  # acct's own arms; plugins add more


class PredictSettings(BaseSettings):
    """Everything `acct predict` needs: one question, or a file of them."""

    model_config = SettingsConfigDict(env_prefix="ACCT_", extra="forbid")

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


class AblateSettings(BaseSettings):
    """What `acct ablate` adds to the training settings (which come from `acct train`'s own model)."""

    model_config = SettingsConfigDict(env_prefix="ACCT_", extra="forbid")

    output_dir: Path = Field(Path("runs/ablation"), description="Directory of the study: DIR/<config>-seed<k>/, ablation.json, ablation.md.")
    seeds: int = Field(1, ge=1, description="Seeds per configuration: the training seed, seed+1, ...")
    split: EvalSplit = Field("test", description="Held-out split of the runs' shared manifest to compare on.")
    checkpoint: CheckpointName = Field("best", description="Which checkpoint of each run to score (best is picked on val).")
    configs: list[str] = Field(
        list(ABLATION_CONFIGS),
        description="Configurations to run: registered ablation arms (see `acct list`), always in registration order "
        "(baseline, contrastive, full, then plugins'); baseline is always included as the reference.",
    )
    eval_batch_size: int = Field(64, gt=0, description="Questions per evaluation batch.")
    bootstrap_resamples: int = Field(10_000, ge=100, description="Resamples of the paired bootstrap.")
    top_tasks: int = Field(5, ge=0, description="Per-task deltas shown: this many largest gains and losses.")
    overwrite: bool = Field(False, description="Retrain every run even if a finished one is there.")
    allow_identical: bool = Field(
        False, description="Run a study even if two arms would train identically (the report's notes say so)."
    )
    plot_dir: Path | None = Field(None, description="Write the study's PNG figures here (needs the acct[plot] extra).")

    @field_validator("configs")
    @classmethod
    def _known_arms(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return _registered(registry.ablation_arms, value, info)

    @model_validator(mode="after")
    def _baseline_first(self) -> AblateSettings:
        chosen = {"baseline", *self.configs}
        order = registry.ablation_arms.names() + sorted(chosen - set(registry.ablation_arms.names()))
        self.configs = [name for name in order if name in chosen]
        return self


class InspectSettings(BaseSettings):
    """Everything `acct inspect-confusion` needs."""

    model_config = SettingsConfigDict(env_prefix="ACCT_", extra="forbid")

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
