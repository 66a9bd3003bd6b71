"""`acct train`: parse flags, resolve settings, run the engine, render its events."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from acct.cli import flags
from acct.cli._common import (
    code_option,
    err,
    escape,
    eval_tables,
    handles_errors,
    import_code,
    needs_hub,
    offline_unless_hub_reachable,
    pct,
)
from acct.errors import UsageError

if TYPE_CHECKING:
    from acct.config.train import TrainSettings


# flag -> dotted settings path of the training flags (train takes them all; see acct.cli.flags).
FLAGS = {flag: entry.path for flag, entry in flags.SETTINGS_FLAGS.items()}


class TrainCommand(flags.OptionsCommand):
    """`acct train`: every training flag, after --config and --preset."""

    option_sets = (flags.TrainingFlags(),)
    after = "preset"

EPILOG = (
    "Every setting can also come from --config FILE.yaml (nested keys, e.g. optim: {lr: 2e-5}) or from an "
    "ACCT_SECTION__FIELD environment variable (e.g. ACCT_OPTIM__LR=2e-5). Precedence: defaults < preset < "
    "YAML < environment < flags. The resolved settings are written to RUN_DIR/config.json."
)


# How acct.cli registers the command (typer.Typer.command's arguments).
REGISTER = {"epilog": EPILOG, "cls": TrainCommand}


@handles_errors
def train_command(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(
        None, "--config", help="YAML file of settings, nested as in RUN_DIR/config.json (e.g. optim: {lr: 2e-5}).",
        show_default=False,
    ),
    preset: Optional[str] = typer.Option(
        None, "--preset", help="tiny: offline CPU run on the synthetic suite; default: DeBERTa-v3-base on cais/mmlu."
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow a hub model or tokenizer (or, with --resume, the run's checkpoint) to run its own code; off by default, never read from a run directory."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run already in the output directory."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run (RUN_DIR or --output-dir) from its 'last' checkpoint, with its saved settings."
    ),
    run_dir: Optional[Path] = typer.Argument(
        None, help="Run directory to resume: `acct train --resume RUN_DIR`.", show_default=False
    ),
    code: Optional[list[Path]] = code_option(),
) -> None:
    """Train one configuration and save its checkpoints to the run directory."""
    flat = flags.overrides(ctx)
    output_dir = flat["output_dir"]
    if run_dir is not None and not resume:
        raise UsageError(f"unexpected argument {run_dir}: give the run directory with --output-dir (or add --resume)")
    if resume:
        target = run_dir or output_dir
        if target is None:
            raise UsageError("--resume needs the run directory: acct train --resume RUN_DIR")
        given = [flag for flag, path in FLAGS.items() if flat[path] is not None and path != "output_dir"]
        given += [name for name, v in (("--config", config), ("--preset", preset), ("--overwrite", overwrite)) if v]
        if given:
            raise UsageError(
                f"--resume continues with the run's saved settings; remove {', '.join(given)}, or start a new run "
                f"from its weights with other settings: acct train --init-from {target} --output-dir NEW_DIR ..."
            )
        if code:
            raise UsageError("--resume imports the run's own copy of its plugins (RUN_DIR/code/, checked by sha256); remove --code")
        from acct.engine import load_run_settings, user_trusts_remote_code

        saved = load_run_settings(target)
        # Trust is asked for again: the saved config.json never grants it.
        trusted = saved.model.model_copy(update={"trust_remote_code": user_trusts_remote_code(trust_remote_code)})
        settings = saved.model_copy(update={"resume": True, "output_dir": target, "overwrite": False, "model": trusted})
    else:
        if trust_remote_code:
            flat["model.trust_remote_code"] = True
        if overwrite:
            flat["overwrite"] = True
        refs = import_code(code)
        if refs:
            flat["plugins"] = refs
        from acct.config.layers import nest
        from acct.config.resolve import resolve_train

        settings = resolve_train(nest(flat), preset=preset, config_file=config)
    run(settings)


def run(settings: TrainSettings) -> None:
    """Run the engine with a progress bar; SIGINT/SIGTERM finish the step, save and exit 130.

    Under torchrun every rank runs this: rank 0 draws the progress, the others consume the same
    events silently; the process group is torn down (barrier, then destroy) when training ends.
    """
    from acct.train import distributed

    if needs_hub(settings):
        offline_unless_hub_reachable()
    stop = {"requested": False}

    def request_stop(signum: int, frame: Any) -> None:
        stop["requested"] = True

    rank = distributed.launched()[0]
    created = first_missing(settings.run_dir())
    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with distributed.session():
            from acct import engine

            events = engine.train(settings, should_stop=lambda: stop["requested"])
            finished = render(events) if rank == 0 else drain(events)
    except BaseException:
        if rank == 0 and created is not None:
            remove_empty(settings.run_dir(), created)  # a failed start leaves no empty run directory
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if finished is not None and finished.reason == "interrupted":
        if rank == 0:
            err.print(f"[yellow]interrupted at step {finished.step}; saved {escape(str(finished.run_dir))}/checkpoints/last.[/] "
                      f"Continue with: acct train --resume {escape(str(finished.run_dir))}", soft_wrap=True)
        raise typer.Exit(130)


def first_missing(path: Path) -> Path | None:
    """The outermost directory of `path` that does not exist yet (None if `path` exists)."""
    path = Path(path).absolute()
    try:
        if path.exists():
            return None
        while not path.parent.exists() and path.parent != path:
            path = path.parent
    except OSError:  # a name too long, a parent not readable: training reports it
        return None
    return path


def remove_empty(path: Path, created: Path) -> None:
    """Remove `path` and its parents up to `created` as long as they are empty directories."""
    path, created = Path(path).absolute(), Path(created).absolute()
    while True:
        try:
            path.rmdir()  # only ever removes an empty directory
        except OSError:
            return
        if path == created or created not in path.parents:
            return
        path = path.parent


def drain(events) -> Any:
    """Consume the events without drawing them (torchrun ranks other than 0); return Finished."""
    from acct import engine

    finished = None
    for ev in events:
        if isinstance(ev, engine.Finished):
            finished = ev
    return finished


def render(events, *, next_hint: bool = True, plain: bool | None = None) -> Any:
    """Draw the engine's events: notices, progress, validation summaries, the final summary.

    On a terminal, progress is a live bar; otherwise (a log file, a pipe, a batch job) each
    log step is one plain line, and no line is ever cut.
    """
    from acct import engine

    if plain is None:
        plain = not err.is_terminal
    view = _PlainView() if plain else _LiveView()
    finished = None
    try:
        for ev in events:
            if isinstance(ev, engine.RunStarted):
                view.started(ev)
            elif isinstance(ev, engine.ModelLoaded):
                view.print(f"[dim]{escape(model_line(ev))}[/]")
            elif isinstance(ev, engine.StepLogged):
                view.step(ev)
            elif isinstance(ev, engine.CurriculumUpdated):
                line = view.curriculum.line(ev)
                if line is not None:
                    view.print(f"[dim]{line}[/]")
            elif isinstance(ev, engine.Validated):
                view.validated(ev)
            elif isinstance(ev, engine.CheckpointSaved):
                view.print(f"[dim]saved {', '.join(ev.tags)} -> {escape(str(ev.path))}[/]")
            elif isinstance(ev, engine.Finished):
                finished = ev
    finally:
        view.close()
    if finished is not None and finished.reason != "interrupted":
        err.print(
            f"[bold green]done[/] ({finished.reason.replace('_', ' ')}) at step {finished.step}: "
            f"best val accuracy {pct(finished.best_accuracy)} at step {finished.best_step}."
            + (f" Next: acct evaluate {escape(str(finished.run_dir))} --split test" if next_hint else ""),
            highlight=False, soft_wrap=True,
        )
    return finished


def run_line(ev: Any) -> str:
    return (
        f"run [bold]{escape(str(ev.run_dir))}[/]: {len(ev.tasks)} tasks, {ev.num_train} train / {ev.num_val} val questions, "
        f"{ev.total_steps} steps ({ev.steps_per_epoch}/epoch) on {ev.device} ({ev.precision})"
        + (f" x {ev.world_size} processes" if ev.world_size > 1 else "")
    )


def model_line(ev: Any) -> str:
    """What the run loaded, e.g. 'encoder: microsoft/deberta-v3-base (DebertaV2Model, 184M parameters); tokenizer: ...'."""
    return (f"encoder: {ev.encoder} ({ev.encoder_class}, {_count(ev.parameters)} parameters); "
            f"tokenizer: {ev.tokenizer} ({ev.tokenizer_class}, {ev.vocab_size:,} tokens)")


def _count(n: int) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def per_second(rate: float) -> str:
    """A throughput with three significant figures (0.412, 12.3; whole numbers from 100 on: 845, 12034)."""
    if rate >= 100:
        return f"{rate:.0f}"
    if rate and rate < 0.001:
        return f"{rate:.2e}"
    return f"{rate:.3g}"


def validation_title(ev: Any) -> str:
    mark = "[green]new best[/]" if ev.improved else f"best {pct(ev.best_accuracy)}"
    return f"validation at step {ev.step} (epoch {ev.epoch:.2f}) — {mark}"


def step_line(ev: Any, eta_s: float | None) -> str:
    """One log step as a plain line: step/total, epoch, loss and its parts, accuracy, lr, questions/s, ETA."""
    line = (
        f"step {ev.step}/{ev.total_steps} epoch {ev.epoch:.2f} loss {ev.loss:.4f} "
        f"(cls {ev.cls_loss:.4f}, contrastive {ev.contrastive_loss:.4f}) acc {pct(ev.accuracy)} "
        f"lr {ev.lr:.2e} {per_second(ev.questions_per_s)} q/s eta {_duration(eta_s)}"
    )
    if ev.skipped_steps:
        line += f" skipped {ev.skipped_steps}"
    return line


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class CurriculumLines:
    """Curriculum lines only when the weights change: 'uniform (warm-up)', or the top-3 and bottom-3 tasks."""

    def __init__(self) -> None:
        self.last: tuple[tuple[str, float], ...] | None = None

    def line(self, ev: Any) -> str | None:
        rounded = tuple((t, round(w, 3)) for t, w in sorted(ev.weights.items()))
        if rounded == self.last:
            return None
        self.last = rounded
        values = [w for _, w in rounded]
        if max(values) - min(values) < 5e-4:
            return f"step {ev.step} curriculum: uniform (warm-up)"
        ranked = sorted(ev.weights.items(), key=lambda kv: (-kv[1], kv[0]))
        show = lambda items: ", ".join(f"{escape(t)} {w:.3f}" for t, w in items)  # noqa: E731
        if len(ranked) <= 6:
            return f"step {ev.step} curriculum: {show(ranked)}"
        return f"step {ev.step} curriculum: top {show(ranked[:3])}; bottom {show(ranked[-3:])}"


class _PlainView:
    def __init__(self) -> None:
        import time

        self.clock = time.monotonic
        self.curriculum = CurriculumLines()
        self.t0: float | None = None
        self.start_step = 0

    def print(self, text: str) -> None:
        err.print(text, highlight=False, soft_wrap=True)

    def started(self, ev: Any) -> None:
        for note in ev.notices:
            style = "bold yellow" if "RANDOM" in note else "dim"
            self.print(f"[{style}]{escape(note)}[/]")
        self.print(run_line(ev))
        self.t0, self.start_step = self.clock(), ev.start_step

    def eta(self, ev: Any) -> float | None:
        done = ev.step - self.start_step
        if self.t0 is None or done <= 0:
            return None
        return (self.clock() - self.t0) / done * max(ev.total_steps - ev.step, 0)

    def step(self, ev: Any) -> None:
        self.print(step_line(ev, self.eta(ev)))

    def validated(self, ev: Any) -> None:
        r = ev.result
        cats = "".join(f", {escape(name)} {pct(acc)}" for name, acc in r.categories.items())
        self.print(f"{validation_title(ev)}: accuracy {pct(r.accuracy)}, macro {pct(r.macro_accuracy)}{cats} "
                   f"on {r.n} questions (chance {pct(r.chance)})")

    def close(self) -> None:
        pass


class _LiveView(_PlainView):
    def __init__(self) -> None:
        super().__init__()
        self.progress: Any = None
        self.bar: Any = None

    def print(self, text: str) -> None:
        console = self.progress.console if self.progress is not None else err
        console.print(text, highlight=False, soft_wrap=True)

    def started(self, ev: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        super().started(ev)
        # Started only now: a failure before training leaves no empty bar (no blank line before the error).
        self.progress = Progress(
            TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=err, transient=False,
        )
        self.progress.start()
        self.bar = self.progress.add_task("train", total=ev.total_steps, completed=ev.start_step, stats="")

    def step(self, ev: Any) -> None:
        stats = f"loss {ev.loss:.4f} acc {pct(ev.accuracy)} lr {ev.lr:.2e} {per_second(ev.questions_per_s)} q/s"
        if ev.skipped_steps:
            stats += f" [yellow]skipped {ev.skipped_steps}[/]"
        self.progress.update(self.bar, completed=ev.step, stats=stats)

    def validated(self, ev: Any) -> None:
        self.print(validation_title(ev))  # its own line: a table title would wrap at the table's width
        for table in eval_tables(ev.result, title=None, limit=5):
            self.progress.console.print(table)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
