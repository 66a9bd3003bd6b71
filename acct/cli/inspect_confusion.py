"""`acct inspect-confusion`: the most-confused task pairs of a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from acct.cli import flags
from acct.cli._common import (
    err,
    escape,
    handles_errors,
    import_code,
    out,
    pct,
    print_json,
)
from acct.errors import UsageError


class InspectCommand(flags.OptionsCommand):
    """`acct inspect-confusion`: the scoring options (used by --recompute) after its own, described by InspectSettings."""

    option_sets = (flags.ScoringOptions("InspectSettings"),)


# How acct.cli registers the command (typer.Typer.command's arguments).
REGISTER = {"cls": InspectCommand}


@handles_errors
def inspect_confusion_command(
    ctx: typer.Context,
    run_dir: Path = typer.Argument(..., help="Run directory written by `acct train`.", show_default=False),
    top: Optional[int] = typer.Option(None, "--top", help="How many task pairs (and tasks) to show (default 10)."),
    recompute: bool = typer.Option(
        False, "--recompute", help="Rebuild the matrix from the model's embeddings of --split (same definition as training)."
    ),
    split: Optional[str] = typer.Option(None, "--split", help="val or test (default val): the split --recompute embeds."),
    batches: Optional[int] = typer.Option(
        None, "--batches", help="Task-grouped batches --recompute draws (default: one pass over the split)."
    ),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the batches --recompute draws (default 0)."),
    plot: Optional[Path] = typer.Option(
        None, "--plot", help="Write a heatmap PNG, tasks ordered by category, to this file (or DIR/confusion.png for a directory); "
        "needs: pip install 'acct\\[plot]'.", show_default=False
    ),
) -> None:
    """Show the task pairs the model confuses most, the most-confused tasks and their curriculum weights."""
    from acct.config.commands import InspectSettings
    from acct.config.resolve import resolve_flags

    given = flags.scoring(ctx)
    import_code(given.code)
    if not recompute:
        named = [flag for flag, v in (("--split", split), ("--batches", batches), ("--seed", seed),
                                      ("--data-dir", given.data_dir)) if v is not None]
        if named:
            raise UsageError(f"{', '.join(named)}: only used with --recompute")
    settings: InspectSettings = resolve_flags(InspectSettings, {
        "run_dir": run_dir, "top": top, "recompute": True if recompute else None,
        "split": split, "batches": batches, "seed": seed, "plot": plot, **given.settings(),
    })
    from acct.scoring import confusion

    if settings.plot is not None:
        confusion.require_matplotlib()  # fail before any work
    if settings.recompute:
        err.print(f"[dim]recomputing the confusion matrix from {settings.split} embeddings …[/]", highlight=False, soft_wrap=True)
        report = confusion.recompute_confusion(
            settings.run_dir, settings.checkpoint, split=settings.split, batches=settings.batches, seed=settings.seed,
            batch_size=settings.batch_size, device=settings.device, precision=settings.precision,
            data_dir=settings.data_dir, trust_remote_code=given.trust_remote_code,
        )
    else:
        report = confusion.saved_confusion(settings.run_dir, settings.checkpoint)
    for note in report.notes:
        err.print(f"[dim]{escape(note)}[/]", highlight=False, soft_wrap=True)
    if settings.plot is not None:
        path = confusion.plot_heatmap(report, settings.plot)
        err.print(f"[dim]heatmap written to {escape(path)}[/]", highlight=False, soft_wrap=True)
    if given.as_json:
        print_json(report.to_dict(settings.top))
        return
    for table in tables(report, settings.top):
        out.print(table)


def tables(report: Any, top: int) -> list[Any]:
    from rich.table import Table

    acc = report.accuracy or {}
    where = (f"recomputed on the {report.split} split ({report.batches} batches)" if report.source == "recomputed"
             else "saved in the checkpoint")
    acc_label = f"{report.split} acc" if report.source == "recomputed" else "val acc"
    pairs = Table(title=f"most-confused task pairs — {report.checkpoint} checkpoint, step {report.step}, {where}",
                  show_header=True, header_style="bold")
    for col, justify in (("#", "right"), ("task A", "left"), ("task B", "left"), ("confusion", "right"),
                         (f"{acc_label} A", "right"), (f"{acc_label} B", "right")):
        pairs.add_column(col, justify=justify)
    for i, p in enumerate(report.pairs(top), start=1):
        pairs.add_row(str(i), p["task_a"], p["task_b"], f"{p['score']:.4f}", pct(acc.get(p["task_a"])), pct(acc.get(p["task_b"])))
    if not report.pairs(top):
        pairs.add_row("", "(no task pair observed yet)", "", "", "", "")

    scores = report.task_scores()
    ranked = sorted(report.tasks, key=lambda t: (-scores[t], t))[:top]
    weights = dict(zip(report.tasks, report.weights)) if report.weights is not None else {}
    uniform = 1.0 / len(report.tasks)
    tasks = Table(title="most-confused tasks (mean confusion with the other tasks) and their curriculum weights",
                  caption=f"uniform weight would be {uniform:.4f}", show_header=True, header_style="bold")
    for col, justify in (("task", "left"), ("category", "left"), ("confusion", "right"), ("weight", "right"),
                         (acc_label, "right")):
        tasks.add_column(col, justify=justify)
    for t in ranked:
        w = weights.get(t)
        tasks.add_row(t, report.categories.get(t, "other"), f"{scores[t]:.4f}", "-" if w is None else f"{w:.4f}",
                      pct(acc.get(t)))
    return [pairs, tasks]
