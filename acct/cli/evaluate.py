"""`acct evaluate`: score a run's held-out split and print or emit the result."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from acct.cli._common import eval_tables, handles_errors, out, print_json
from acct.config import EvaluateSettings, resolve


@handles_errors
def evaluate_command(
    run_dir: Path = typer.Argument(..., help="Run directory written by `acct train`, or a folder written by `acct export`.", show_default=False),
    split: Optional[str] = typer.Option(None, "--split", help="val or test (default test): the run's held-out split to score."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="best or last (default best)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Questions per evaluation batch (default 64)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda (default auto)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Read CSV data from here instead of the run's saved path."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout and nothing else."),
) -> None:
    """Score the run's held-out split (never an example used in training): overall, macro, categories, tasks."""
    flags = {"run_dir": run_dir, "split": split, "checkpoint": checkpoint, "batch_size": batch_size,
             "device": device, "data_dir": data_dir}
    settings = resolve(EvaluateSettings, {k: v for k, v in flags.items() if v is not None})

    from acct.engine import evaluate

    result = evaluate(settings)
    if as_json:
        print_json(result.to_dict())
        return
    for table in eval_tables(result, title=f"{settings.run_dir} — {settings.split} ({settings.checkpoint} checkpoint)"):
        out.print(table)
    out.print(f"[dim]written to {settings.run_dir / f'eval-{settings.split}.json'}[/]", highlight=False)
