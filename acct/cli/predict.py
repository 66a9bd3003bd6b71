"""`acct predict`: score one question, or a file of questions, with a trained run."""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TextIO

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

if TYPE_CHECKING:
    from acct.config.commands import PredictSettings

EPILOG = (
    "Single question: acct predict RUN_DIR --question TEXT --choices C1 C2 [C3 ...] [--task NAME]. "
    "Everything after --choices that is not an option is a choice; put -- before choices that start with '-'. "
    "File mode: acct predict RUN_DIR --input FILE.jsonl|FILE.csv|FILE.parquet|- [--output FILE.jsonl] (- reads JSON "
    "lines from stdin); JSONL rows hold question, choices, optional task and optional answer (0-based index or "
    "letter); CSV files use the original MMLU layout question,A,B,C,D[,answer letter]. A run trained on its own "
    "files (--data-source files, or hub) also reads rows in the columns it was trained with. Without --task (and without a task in the row or the CSV file name) the "
    "model uses the task-agnostic embedding: the mean of the run's task embeddings."
)


@handles_errors
def predict_command(
    ctx: typer.Context,
    run_dir: Path = typer.Argument(..., help="Run directory written by `acct train`, or a folder written by `acct export`.", show_default=False),
    choice_args: Optional[list[str]] = typer.Argument(
        None, metavar="CHOICES", help="The answer options, given after --choices.", show_default=False
    ),
    question: Optional[str] = typer.Option(None, "--question", "-q", help="The question text.", show_default=False),
    choices_flag: bool = typer.Option(
        False, "--choices", help="The answer options follow: --choices C1 C2 [C3 ...] (two or more)."
    ),
    task: Optional[str] = typer.Option(
        None, "--task", help="Subject name from the run's task list; without it the model is task-agnostic.", show_default=False
    ),
    input_path: Optional[Path] = typer.Option(
        None, "--input",
        help="File mode: a .jsonl, MMLU-layout .csv or .parquet file of questions, or - for JSON lines on stdin; "
        "a file in the run's own columns (a files or hub run) is read through its column mapping.",
        show_default=False
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", help="File mode: write the JSON lines here instead of to stdout.", show_default=False
    ),
) -> None:
    """Predict the answer to a question (or a file of questions) with a trained run, offline."""
    from acct.config.commands import PredictSettings
    from acct.config.resolve import resolve_flags

    given = flags.scoring(ctx)
    import_code(given.code)
    known = [opt for p in ctx.command.get_params(ctx) for opt in (*p.opts, *p.secondary_opts) if opt.startswith("-")]
    _no_stray_options(choice_args or [], ctx.meta.get("acct_literal", []), known)
    if choice_args and not choices_flag:
        raise UsageError(f"unexpected arguments {' '.join(choice_args)!r}: answer options go after --choices")
    choices = list(choice_args or []) if choices_flag else None
    settings: PredictSettings = resolve_flags(PredictSettings, {
        "run_dir": run_dir, "question": question, "choices": choices, "task": task, "input": input_path,
        "output": output, **given.settings(),
    })
    if settings.input is not None:
        _file_mode(settings, given.as_json, given.trust_remote_code)
    else:
        _single(settings, given.as_json, given.trust_remote_code)


_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?%?$")


class PredictCommand(flags.OptionsCommand):
    """The scoring options after its own (no --data-dir: predict reads no run data); remembers the
    arguments given after `--`: those are choices whatever they look like."""

    option_sets = (flags.ScoringOptions("PredictSettings", data_dir=False),)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta["acct_literal"] = args[args.index("--") + 1:] if "--" in args else []
        return super().parse_args(ctx, args)


# How acct.cli registers the command (typer.Typer.command's arguments).
REGISTER = {"epilog": EPILOG, "cls": PredictCommand, "context_settings": {"ignore_unknown_options": True}}


def _no_stray_options(args: list[str], literal: list[str], known: list[str]) -> None:
    """Unknown options reach the choices (so that `--choices -3 8 11` works): refuse those that are not numbers.

    `known` are the command's own options, for the hint at a misspelt one."""
    checked = args[: len(args) - len(literal)] if literal and args[len(args) - len(literal):] == literal else args
    for arg in checked:
        if arg.startswith("-") and len(arg) > 1 and not _NUMBER.match(arg):
            close = difflib.get_close_matches(arg.split("=")[0], known, n=3, cutoff=0.6)
            hint = f" (Possible options: {', '.join(close)})" if close else ""
            raise UsageError(f"No such option: {arg}{hint}; to give a choice that starts with '-', "
                             f"put -- before the choices: --choices -- {arg} ...")


def _agnostic_notice(n_tasks: int) -> str:
    return f"scored with the task-agnostic embedding (the mean of the run's {n_tasks} task embeddings)"


def _single(settings: PredictSettings, as_json: bool, trust_remote_code: bool = False) -> None:
    from rich.table import Table

    from acct.scoring.predict import Predictor, Question, canonical_task, check_question

    check_question(settings.question or "", settings.choices or [])
    predictor = Predictor.open(settings.run_dir, settings.checkpoint, device=settings.device, precision=settings.precision,
                               trust_remote_code=trust_remote_code)
    task = canonical_task(settings.task, predictor.tasks)
    if task is None:
        err.print(f"[dim]no --task: {_agnostic_notice(len(predictor.tasks))}; pass --task NAME for a subject[/]",
                  highlight=False, soft_wrap=True)
    [pred] = predictor.predict([Question(settings.question, tuple(settings.choices), task)])
    if as_json:
        print_json(pred.to_dict())
        return
    table = Table(title=escape(settings.question), caption=f"task: {escape(task or 'none (task-agnostic)')}",
                  show_header=True, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("choice")
    table.add_column("probability", justify="right")
    for i, (choice, p) in enumerate(zip(settings.choices, pred.probabilities)):
        mine = i == pred.prediction
        table.add_row(str(i), escape(choice), pct(p), style="bold green" if mine else None, end_section=False)
    out.print(table)
    out.print(f"prediction: [bold green]{escape(pred.choice)}[/] ({pct(pred.probabilities[pred.prediction])})", highlight=False, soft_wrap=True)


def _file_mode(settings: PredictSettings, as_json: bool, trust_remote_code: bool = False) -> None:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from acct.scoring.predict import (
        Predictor,
        predict_stream,
        read_questions,
        run_columns,
        training_questions,
    )

    if as_json and settings.output is None:
        raise UsageError("--json with --input needs --output FILE: the JSON lines would otherwise share stdout with the summary")
    check_output(settings.input, settings.output)
    predictor = Predictor.open(settings.run_dir, settings.checkpoint, device=settings.device,
                               precision=settings.precision, batch_size=settings.batch_size,
                               trust_remote_code=trust_remote_code)
    questions, notices = read_questions(settings.input, predictor.tasks, settings.task, columns=run_columns(predictor.run))
    for note in notices:
        err.print(f"[dim]{escape(note)}[/]", highlight=False, soft_wrap=True)

    progress = Progress(SpinnerColumn(), TextColumn("predict {task.completed} questions"), TimeElapsedColumn(),
                        console=err, transient=True, disable=not err.is_terminal)
    with contextlib.ExitStack() as stack:
        sink: Any = sys.stdout if settings.output is None else stack.enter_context(atomic_output(settings.output))
        with progress:
            bar = progress.add_task("predict", total=None)
            summary = predict_stream(predictor, questions, sink, on_batch=lambda n: progress.update(bar, completed=n),
                                     training=training_questions(predictor.run))

    if summary.agnostic:
        err.print(f"[dim]{summary.agnostic} question(s) without a task {_agnostic_notice(len(predictor.tasks))}[/]",
                  highlight=False, soft_wrap=True)
    report = {"input": "stdin" if str(settings.input) == "-" else str(settings.input),
              "output": None if settings.output is None else str(settings.output), **summary.to_dict()}
    if as_json:
        print_json(report)
        return
    console = out if settings.output is not None else err  # stdout holds the JSON lines otherwise
    where = f"written to {escape(settings.output)}" if settings.output is not None else "written to stdout"
    line = f"{summary.n} question(s) {where}"
    if summary.accuracy is not None:
        line += f"; accuracy {pct(summary.accuracy)} on the {summary.answered} with an answer"
    console.print(line, highlight=False, soft_wrap=True)
    if summary.in_training:
        held_out = "" if summary.held_out_accuracy is None else f"; accuracy without them {pct(summary.held_out_accuracy)}"
        err.print(f"[yellow]{summary.in_training} of the {summary.n} questions are in the run's training split "
                  f"(marked in_training in the output){held_out}[/]", highlight=False, soft_wrap=True)


def check_output(source: Path | None, target: Path | None) -> None:
    """Refuse an --output that cannot take the JSON lines: a directory, or the --input file itself."""
    if target is None:
        return
    if target.is_dir():
        raise UsageError(f"--output {target} is a directory; give a file name")
    if source is None or str(source) == "-":
        return
    same = target.resolve() == source.resolve()
    if not same and target.exists() and source.exists():
        same = os.path.samefile(target, source)  # a hard link, or another path to the same file
    if same:
        raise UsageError(f"--output {target} is the --input file; write the predictions to another file")


@contextlib.contextmanager
def atomic_output(target: Path) -> Iterator[TextIO]:
    """A text file that appears at `target` only once it is complete, renamed into place.

    Each writer gets its own temporary file in the target's directory (same file system, so the
    rename is atomic): two commands writing one --output leave one whole output, never a mix.
    """
    import tempfile

    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        # mkstemp makes the file private (0600); the output gets the permissions of any new file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
