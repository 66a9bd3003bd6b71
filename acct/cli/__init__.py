"""The `acct` command line: one Typer app, one module per command.

The group lists its commands from COMMANDS and imports a command's module only when that command
runs or shows its own help; each command imports the engine and acct.config inside its function.
So `acct --help` imports neither torch nor the settings models nor the commands' modules.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

try:  # recent Typer releases carry their own copy of click
    from typer._click import exceptions as click
except ImportError:  # pragma: no cover - older Typer uses click itself
    from click import exceptions as click

from acct import __version__
from acct.cli._common import err, escape

# The commands in the order `acct --help` lists them: name -> (module of acct.cli, function, summary).
# The summary is the first paragraph of the function's docstring (tests/cli/test_help.py holds them
# equal): `acct --help` shows it without importing the command's module, which it imports only when
# the command runs or shows its own help. A module's REGISTER holds its typer.Typer.command arguments.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("train", "train_command", "Train one configuration and save its checkpoints to the run directory."),
    "evaluate": ("evaluate", "evaluate_command",
                 "Score the run's held-out split (never an example used in training): overall, macro, categories, "
                 "tasks."),
    "predict": ("predict", "predict_command",
                "Predict the answer to a question (or a file of questions) with a trained run, offline."),
    "ablate": ("ablate", "ablate_command",
               "Train the arms of a study on one split and compare them on the same held-out questions."),
    "inspect-confusion": ("inspect_confusion", "inspect_confusion_command",
                          "Show the task pairs the model confuses most, the most-confused tasks and their curriculum "
                          "weights."),
    "list": ("list_cmd", "list_command",
             "List every registered strategy, loss weighting, gradient aggregation, data source, ablation arm and "
             "tracker, plugins included."),
    "export": ("export", "export_command",
               "Export a run: encoder (save_pretrained) + tokenizer, acct's heads, and a README.md model card."),
}


class CommandSummary(TyperCommand):
    """A command's name and summary, standing in for it in the group until it is asked for."""

    def __init__(self, name: str, module: str, function: str, summary: str) -> None:
        super().__init__(name=name, help=summary, rich_markup_mode="rich")
        self.module, self.function = module, function

    def load(self) -> Any:
        """The command itself, built by Typer from its function as `app.command` would."""
        import importlib

        import typer.main

        module = importlib.import_module(f"acct.cli.{self.module}")
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="rich")
        single.command(self.name, **getattr(module, "REGISTER", {}))(getattr(module, self.function))
        return typer.main.get_command(single)


class AcctGroup(TyperGroup):
    """Typer's group, with click's usage errors (missing or unknown options ...) as acct's one red line.

    Its commands are built when first asked for: the group's own help lists their summaries.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, (module, function, summary) in COMMANDS.items():
            self.commands.setdefault(name, CommandSummary(name, module, function, summary))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if isinstance(command, CommandSummary):
            command = self.commands[cmd_name] = command.load()
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from acct.cli import root_help

        root_help.render(self, ctx)

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


# The first threshold of Python's cyclic garbage collector while acct runs. Importing torch and
# transformers makes hundreds of thousands of objects that live as long as the process; at the
# default threshold (700 allocations) the collector walks them thousands of times before the first
# step. At 50,000 it runs about 70 times less often: a command that trains starts with about 0.8 s
# less CPU (benchmarks/cli_startup.py). Objects in reference cycles are freed later, which
# costs little memory next to a model.
GC_FIRST_THRESHOLD = 50_000


def main() -> None:
    """The `acct` console script (and `python -m acct`)."""
    gc.set_threshold(GC_FIRST_THRESHOLD, *gc.get_threshold()[1:])
    app()
