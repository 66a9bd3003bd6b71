"""`acct evaluate`: score a run's held-out split and print or emit the result."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from acct.cli._common import code_option, err, escape, eval_batch_alias, eval_tables, handles_errors, import_code, out, print_json
from acct.config import EvaluateSettings, resolve


@handles_errors
def evaluate_command(
    run_dir: Path = typer.Argument(..., help="Run directory written by `acct train`, or a folder written by `acct export`.", show_default=False),
    split: Optional[str] = typer.Option(None, "--split", help="val or test (default test): the run's held-out split to score."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="best or last (default best)."),
    eval_batch_size: Optional[int] = typer.Option(
        None, "--eval-batch-size", help="Questions per evaluation batch (default 64)."
    ),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", hidden=True, help="Deprecated spelling of --eval-batch-size."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda (default auto)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto, bf16, fp16 or fp32 (default auto)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Read CSV data from here instead of the run's saved path."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout and nothing else."),
    code: Optional[list[Path]] = code_option(),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code",
        help="Allow the checkpoint's encoder or tokenizer to run code it names (auto_map); off by default, never read from the run directory.",
    ),
) -> None:
    """Score the run's held-out split (never an example used in training): overall, macro, categories, tasks."""
    import_code(code)
    flags = {"run_dir": run_dir, "split": split, "checkpoint": checkpoint, "batch_size": eval_batch_alias(eval_batch_size, batch_size),
             "device": device, "precision": precision, "data_dir": data_dir}
    settings = resolve(EvaluateSettings, {k: v for k, v in flags.items() if v is not None})

    from acct.evaluation import evaluate

    result = evaluate(settings, trust_remote_code=trust_remote_code)
    note = comparability_note(settings.run_dir)
    if note is not None:
        err.print(f"[dim]note: {note}[/]", highlight=False, soft_wrap=True)
    if as_json:
        print_json(result.to_dict())
        return
    out.print(f"{escape(settings.run_dir)} — {settings.split} ({settings.checkpoint} checkpoint)", highlight=False,
              soft_wrap=True)
    for table in eval_tables(result, title=None):
        out.print(table)
    out.print(f"[dim]written to {escape(settings.run_dir / f'eval-{settings.split}.json')}[/]", highlight=False,
              soft_wrap=True)


def comparability_note(run_dir: Path) -> str | None:
    """The note `acct ablate` also gives: a subject-split MMLU run is not comparable to the leaderboard."""
    from acct.rundir import load_run_settings

    try:
        saved = load_run_settings(run_dir)
    except Exception:
        return None
    from acct.config import split_comparability_note

    return split_comparability_note(saved.data)
