"""The `acct` command line: one Typer app, one module per command.

Commands are registered here without importing torch: each command imports the engine
inside its function, so `acct --help` stays fast.
"""

from __future__ import annotations

import typer

from acct import __version__
from acct.cli import ablate as _ablate
from acct.cli import evaluate as _evaluate
from acct.cli import export as _export
from acct.cli import inspect_confusion as _inspect_confusion
from acct.cli import predict as _predict
from acct.cli import train as _train

app = typer.Typer(
    name="acct",
    help="Multi-task fine-tuning with a confusion-driven task curriculum and uncertainty-weighted InfoNCE.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"acct {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """acct: does this curriculum, this auxiliary loss, actually help multi-task transfer?"""


app.command("train")(_train.train_command)
app.command("evaluate")(_evaluate.evaluate_command)
app.command("predict", epilog=_predict.EPILOG)(_predict.predict_command)
app.command("ablate", epilog=_ablate.EPILOG)(_ablate.ablate_command)
app.command("inspect-confusion")(_inspect_confusion.inspect_confusion_command)
app.command("export")(_export.export_command)


def main() -> None:
    app()
