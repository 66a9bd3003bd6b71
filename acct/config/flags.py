"""The training flags: which `acct train` / `acct ablate` flag sets which TrainSettings field.

Plain data, no Typer: the CLI builds its options from this table (acct/cli/flags.py), and settings
errors name the flag that sets a field (acct/config/resolve.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flag:
    """One training flag: the settings field it sets and, for a boolean, the flag that sets it to False.

    A `many` flag is a list of strings: repeatable, and each value may itself be a comma-separated list.
    """

    path: str
    off: str | None = None
    many: bool = False


# flag -> setting; the order is the order of --help.
SETTINGS_FLAGS: dict[str, Flag] = {
    "--strategy": Flag("curriculum.strategy"),
    "--model": Flag("model.name_or_path"),
    "--tokenizer": Flag("model.tokenizer"),
    "--data-source": Flag("data.source"),
    "--data-dir": Flag("data.data_dir"),
    "--data-files": Flag("data.files", many=True),
    "--data-format": Flag("data.files_format"),
    "--hub-dataset": Flag("data.hub_dataset"),
    "--hub-config": Flag("data.hub_config"),
    "--question-column": Flag("data.question_column"),
    "--choices-column": Flag("data.choices_column"),
    "--choice-columns": Flag("data.choice_columns", many=True),
    "--answer-column": Flag("data.answer_column"),
    "--task-column": Flag("data.task_column"),
    "--category-column": Flag("data.category_column"),
    "--protocol": Flag("data.protocol"),
    "--allow-overlap": Flag("data.allow_overlap"),
    "--output-dir": Flag("output_dir"),
    "--init-from": Flag("init_from"),
    "--max-steps": Flag("optim.max_steps"),
    "--epochs": Flag("optim.epochs"),
    "--lr": Flag("optim.lr"),
    "--batch-size": Flag("batch.batch_size"),
    "--grad-accum-steps": Flag("batch.grad_accum_steps"),
    "--tasks-per-batch": Flag("batch.tasks_per_batch"),
    "--examples-per-task": Flag("batch.examples_per_task"),
    "--group-by-length": Flag("batch.group_by_length", off="--no-group-by-length"),
    "--max-length": Flag("model.max_length"),
    "--lambda-contrastive": Flag("loss.lambda_contrastive"),
    "--gather-negatives": Flag("loss.gather_negatives"),
    "--seed": Flag("seed"),
    "--device": Flag("device"),
    "--precision": Flag("precision"),
    "--eval-every-n-steps": Flag("eval_every_n_steps"),
    "--patience": Flag("patience"),
    "--save-every-n-steps": Flag("save_every_n_steps"),
    "--report-to": Flag("report_to", many=True),
    "--deterministic": Flag("deterministic"),
    "--tf32": Flag("tf32", off="--no-tf32"),
}
