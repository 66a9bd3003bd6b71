"""`acct train`: parse flags, resolve settings, run the engine, render its events."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Optional

import typer

from acct.cli._common import err, eval_tables, handles_errors, pct
from acct.config import FLAG_NAMES, TrainSettings, nest, resolve_train
from acct.errors import UsageError


def field_help(path: str) -> str:
    """The description of a (dotted) TrainSettings field, so flags and settings share one text."""
    model: Any = TrainSettings
    *parents, leaf = path.split(".")
    for p in parents:
        model = model.model_fields[p].annotation
    return model.model_fields[leaf].description or ""


# flag -> dotted settings path; the order is the order of --help.
FLAGS = {
    "--strategy": "curriculum.strategy",
    "--model": "model.name_or_path",
    "--tokenizer": "model.tokenizer",
    "--data-source": "data.source",
    "--data-dir": "data.data_dir",
    "--protocol": "data.protocol",
    "--allow-overlap": "data.allow_overlap",
    "--output-dir": "output_dir",
    "--init-from": "init_from",
    "--max-steps": "optim.max_steps",
    "--epochs": "optim.epochs",
    "--lr": "optim.lr",
    "--batch-size": "batch.batch_size",
    "--tasks-per-batch": "batch.tasks_per_batch",
    "--examples-per-task": "batch.examples_per_task",
    "--group-by-length": "batch.group_by_length",
    "--lambda-contrastive": "loss.lambda_contrastive",
    "--gather-negatives": "loss.gather_negatives",
    "--seed": "seed",
    "--device": "device",
    "--precision": "precision",
    "--eval-every-n-steps": "eval_every_n_steps",
    "--save-every-n-steps": "save_every_n_steps",
    "--deterministic": "deterministic",
    "--tf32": "tf32",
}
FLAG_NAMES.update({path: flag for flag, path in FLAGS.items()})

EPILOG = (
    "Every setting can also come from --config FILE.yaml (nested keys, e.g. optim: {lr: 2e-5}) or from an "
    "ACCT_SECTION__FIELD environment variable (e.g. ACCT_OPTIM__LR=2e-5). Precedence: defaults < preset < "
    "YAML < environment < flags. The resolved settings are written to RUN_DIR/config.json."
)


def settings_option(flag: str, off: str | None = None, **kw: Any) -> Any:
    """A Typer option for one of FLAGS, unset by default, with the setting's own description.

    `off` names the flag that sets a boolean setting to False (needed where the default is True).
    """
    decl = flag if off is None else f"{flag}/{off}"
    return typer.Option(None, decl, help=field_help(FLAGS[flag]), show_default=False, **kw)


_opt = settings_option


@handles_errors
def train_command(
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of settings (see below).", show_default=False),
    preset: Optional[str] = typer.Option(
        None, "--preset", help="tiny: offline CPU run on the synthetic suite; default: DeBERTa-v3-base on cais/mmlu."
    ),
    strategy: Optional[str] = _opt("--strategy"),
    model: Optional[str] = _opt("--model"),
    tokenizer: Optional[str] = _opt("--tokenizer"),
    data_source: Optional[str] = _opt("--data-source"),
    data_dir: Optional[Path] = _opt("--data-dir"),
    protocol: Optional[str] = _opt("--protocol"),
    allow_overlap: Optional[bool] = _opt("--allow-overlap"),
    output_dir: Optional[Path] = _opt("--output-dir"),
    init_from: Optional[str] = _opt("--init-from", metavar="RUN_DIR[:best|last]"),
    max_steps: Optional[int] = _opt("--max-steps"),
    epochs: Optional[float] = _opt("--epochs"),
    lr: Optional[float] = _opt("--lr"),
    batch_size: Optional[int] = _opt("--batch-size"),
    tasks_per_batch: Optional[int] = _opt("--tasks-per-batch"),
    examples_per_task: Optional[int] = _opt("--examples-per-task"),
    group_by_length: Optional[bool] = _opt("--group-by-length", "--no-group-by-length"),
    lambda_contrastive: Optional[float] = _opt("--lambda-contrastive"),
    gather_negatives: Optional[bool] = _opt("--gather-negatives"),
    seed: Optional[int] = _opt("--seed"),
    device: Optional[str] = _opt("--device"),
    precision: Optional[str] = _opt("--precision"),
    eval_every_n_steps: Optional[int] = _opt("--eval-every-n-steps"),
    save_every_n_steps: Optional[int] = _opt("--save-every-n-steps"),
    deterministic: Optional[bool] = _opt("--deterministic"),
    tf32: Optional[bool] = _opt("--tf32", "--no-tf32"),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow a hub model or tokenizer to run its own code (off by default)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run already in the output directory."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run (RUN_DIR or --output-dir) from its 'last' checkpoint, with its saved settings."
    ),
    run_dir: Optional[Path] = typer.Argument(
        None, help="Run directory to resume: `acct train --resume RUN_DIR`.", show_default=False
    ),
) -> None:
    """Train one configuration and save its checkpoints to the run directory."""
    values = locals()
    flat = {path: values[flag[2:].replace("-", "_")] for flag, path in FLAGS.items()}
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
        from acct.engine import load_run_settings

        settings = load_run_settings(target).model_copy(update={"resume": True, "output_dir": target, "overwrite": False})
    else:
        if trust_remote_code:
            flat["model.trust_remote_code"] = True
        if overwrite:
            flat["overwrite"] = True
        settings = resolve_train(nest(flat), preset=preset, config_file=config)
    run(settings)


def run(settings: TrainSettings) -> None:
    """Run the engine with a progress bar; SIGINT/SIGTERM finish the step, save and exit 130.

    Under torchrun every rank runs this: rank 0 draws the progress, the others consume the same
    events silently; the process group is torn down (barrier, then destroy) when training ends.
    """
    from acct import distributed

    stop = {"requested": False}

    def request_stop(signum: int, frame: Any) -> None:
        stop["requested"] = True

    rank = distributed.launched()[0]
    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with distributed.session():
            from acct import engine

            events = engine.train(settings, should_stop=lambda: stop["requested"])
            finished = render(events) if rank == 0 else drain(events)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if finished is not None and finished.reason == "interrupted":
        if rank == 0:
            err.print(f"[yellow]interrupted at step {finished.step}; saved {finished.run_dir}/checkpoints/last.[/] "
                      f"Continue with: acct train --resume {finished.run_dir}")
        raise typer.Exit(130)


def drain(events) -> Any:
    """Consume the events without drawing them (torchrun ranks other than 0); return Finished."""
    from acct import engine

    finished = None
    for ev in events:
        if isinstance(ev, engine.Finished):
            finished = ev
    return finished


def render(events, *, next_hint: bool = True) -> Any:
    """Draw the engine's events: notices, a progress bar, validation tables, the final summary."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from acct import engine

    finished = None
    progress = Progress(
        TextColumn("[bold]train[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    bar = None
    with progress:
        for ev in events:
            if isinstance(ev, engine.RunStarted):
                for note in ev.notices:
                    style = "bold yellow" if "RANDOM" in note else "dim"
                    progress.console.print(f"[{style}]{note}[/]", highlight=False)
                progress.console.print(
                    f"run [bold]{ev.run_dir}[/]: {len(ev.tasks)} tasks, {ev.num_train} train / {ev.num_val} val questions, "
                    f"{ev.total_steps} steps ({ev.steps_per_epoch}/epoch) on {ev.device} ({ev.precision})"
                    + (f" x {ev.world_size} processes" if ev.world_size > 1 else ""),
                    highlight=False,
                )
                bar = progress.add_task("train", total=ev.total_steps, completed=ev.start_step, stats="")
            elif isinstance(ev, engine.StepLogged):
                stats = (
                    f"loss {ev.loss:.4f} acc {pct(ev.accuracy)} lr {ev.lr:.2e} "
                    f"{ev.questions_per_s:.0f} q/s"
                )
                if ev.skipped_steps:
                    stats += f" [yellow]skipped {ev.skipped_steps}[/]"
                progress.update(bar, completed=ev.step, stats=stats)
            elif isinstance(ev, engine.CurriculumUpdated):
                top = sorted(ev.weights.items(), key=lambda kv: -kv[1])[:3]
                progress.console.print(
                    f"[dim]step {ev.step} curriculum: " + ", ".join(f"{t} {w:.3f}" for t, w in top) + " …[/]",
                    highlight=False,
                )
            elif isinstance(ev, engine.Validated):
                mark = "[green]new best[/]" if ev.improved else f"best {pct(ev.best_accuracy)}"
                for table in eval_tables(ev.result, title=f"validation at step {ev.step} (epoch {ev.epoch:.2f}) — {mark}", limit=5):
                    progress.console.print(table)
            elif isinstance(ev, engine.CheckpointSaved):
                progress.console.print(f"[dim]saved {', '.join(ev.tags)} -> {ev.path}[/]", highlight=False)
            elif isinstance(ev, engine.Finished):
                finished = ev
    if finished is not None and finished.reason != "interrupted":
        err.print(
            f"[bold green]done[/] ({finished.reason.replace('_', ' ')}) at step {finished.step}: "
            f"best val accuracy {pct(finished.best_accuracy)} at step {finished.best_step}."
            + (f" Next: acct evaluate {finished.run_dir} --split test" if next_hint else ""),
            highlight=False,
        )
    return finished
