"""The `acct` command line: one Typer app, one module per command.

Commands are registered here without importing torch or the settings models: each command
imports the engine and acct.config inside its function, so `acct --help` stays fast.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

try:  # recent Typer releases carry their own copy of click
    from typer._click import exceptions as click
except ImportError:  # pragma: no cover - older Typer uses click itself
    from click import exceptions as click

from acct import __version__
from acct.cli import ablate as _ablate
from acct.cli import evaluate as _evaluate
from acct.cli import export as _export
from acct.cli import inspect_confusion as _inspect_confusion
from acct.cli import list_cmd as _list
from acct.cli import predict as _predict
from acct.cli import train as _train
from acct.cli._common import err, escape


class AcctGroup(TyperGroup):
    """Typer's group, with click's usage errors (missing or unknown options ...) as acct's one red line."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `acct`: Typer shows the help
                from typer import rich_utils

                rich_utils.rich_format_error(exc)
                sys.exit(exc.exit_code)

            message = exc.format_message()
            ctx = getattr(exc, "ctx", None)
            if isinstance(exc, click.UsageError) and ctx is not None:
                message += f" (see: {ctx.command_path} --help)"
            err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            err.print("[bold red]error:[/] interrupted", highlight=False)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=AcctGroup,
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


# The command classes add the options built from the settings models (acct.cli.flags) when the
# command runs or shows its --help, never for `acct --help`.
app.command("train", epilog=_train.EPILOG, cls=_train.TrainCommand)(_train.train_command)
app.command("evaluate", cls=_evaluate.EvaluateCommand)(_evaluate.evaluate_command)
app.command("predict", epilog=_predict.EPILOG, cls=_predict.PredictCommand,
            context_settings={"ignore_unknown_options": True})(
    _predict.predict_command
)
app.command("ablate", epilog=_ablate.EPILOG, cls=_ablate.AblateCommand)(_ablate.ablate_command)
app.command("inspect-confusion", cls=_inspect_confusion.InspectCommand)(_inspect_confusion.inspect_confusion_command)
app.command("list")(_list.list_command)
app.command("export")(_export.export_command)


def main() -> None:
    app()
