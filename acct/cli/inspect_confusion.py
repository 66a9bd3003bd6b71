"""`acct inspect-confusion`: the most-confused task pairs of a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from acct.cli._common import code_option, err, escape, eval_batch_alias, handles_errors, import_code, out, pct, print_json
from acct.config import InspectSettings, resolve_flags
from acct.errors import UsageError


@handles_errors
def inspect_confusion_command(
    run_dir: Path = typer.Argument(..., help="Run directory written by `acct train`.", show_default=False),
    top: Optional[int] = typer.Option(None, "--top", help="How many task pairs (and tasks) to show (default 10)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="best or last (default best)."),
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
    eval_batch_size: Optional[int] = typer.Option(
        None, "--eval-batch-size", help="Questions per batch when scoring the split (default 64)."
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
    """Show the task pairs the model confuses most, the most-confused tasks and their curriculum weights."""
    import_code(code)
    if not recompute:
        given = [flag for flag, v in (("--split", split), ("--batches", batches), ("--seed", seed), ("--data-dir", data_dir)) if v is not None]
        if given:
            raise UsageError(f"{', '.join(given)}: only used with --recompute")
    settings: InspectSettings = resolve_flags(InspectSettings, {
        "run_dir": run_dir, "top": top, "checkpoint": checkpoint, "recompute": True if recompute else None,
        "split": split, "batches": batches, "seed": seed, "plot": plot,
        "batch_size": eval_batch_alias(eval_batch_size, batch_size), "device": device, "precision": precision,
        "data_dir": data_dir,
    })
    from acct import confusion_report as confusion

    if settings.plot is not None:
        confusion.require_matplotlib()  # fail before any work
    if settings.recompute:
        err.print(f"[dim]recomputing the confusion matrix from {settings.split} embeddings …[/]", highlight=False, soft_wrap=True)
        report = confusion.recompute_confusion(
            settings.run_dir, settings.checkpoint, split=settings.split, batches=settings.batches, seed=settings.seed,
            batch_size=settings.batch_size, device=settings.device, precision=settings.precision,
            data_dir=settings.data_dir, trust_remote_code=trust_remote_code,
        )
    else:
        report = confusion.saved_confusion(settings.run_dir, settings.checkpoint)
    for note in report.notes:
        err.print(f"[dim]{escape(note)}[/]", highlight=False, soft_wrap=True)
    if settings.plot is not None:
        path = confusion.plot_heatmap(report, settings.plot)
        err.print(f"[dim]heatmap written to {escape(path)}[/]", highlight=False, soft_wrap=True)
    if as_json:
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
