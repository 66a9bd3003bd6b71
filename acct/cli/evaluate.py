"""`acct evaluate`: score a run's held-out split and print or emit the result."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from acct.cli import flags
from acct.cli._common import (
    err,
    escape,
    eval_tables,
    handles_errors,
    import_code,
    out,
    print_json,
)


class EvaluateCommand(flags.OptionsCommand):
    """`acct evaluate`: the scoring options after its own, described by EvaluateSettings."""

    option_sets = (flags.ScoringOptions("EvaluateSettings"),)


# How acct.cli registers the command (typer.Typer.command's arguments).
REGISTER = {"cls": EvaluateCommand}


@handles_errors
def evaluate_command(
    ctx: typer.Context,
    run_dir: Path = typer.Argument(..., help="Run directory written by `acct train`, or a folder written by `acct export`.", show_default=False),
    split: Optional[str] = typer.Option(None, "--split", help="val or test (default test): the run's held-out split to score."),
) -> None:
    """Score the run's held-out split (never an example used in training): overall, macro, categories, tasks."""
    from acct.config.commands import EvaluateSettings
    from acct.config.resolve import resolve

    given = flags.scoring(ctx)
    import_code(given.code)
    values = {"run_dir": run_dir, "split": split, **given.settings()}
    settings = resolve(EvaluateSettings, {k: v for k, v in values.items() if v is not None})

    from acct.scoring.score import evaluate

    result = evaluate(settings, trust_remote_code=given.trust_remote_code)
    note = comparability_note(settings.run_dir)
    if note is not None:
        err.print(f"[dim]note: {note}[/]", highlight=False, soft_wrap=True)
    if given.as_json:
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
    from acct.run.rundir import load_run_settings

    try:
        saved = load_run_settings(run_dir)
    except Exception:
        return None
    from acct.config.notes import split_comparability_note

    return split_comparability_note(saved.data)
