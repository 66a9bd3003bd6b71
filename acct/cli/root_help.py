"""`acct --help`: usage, summary, options and commands in panels like those of a command's own --help.

Typer's help renderer (typer.rich_utils) imports rich's Markdown, syntax highlighting and traceback
support on the way, a tenth of a second spent before `acct --help` prints a dozen lines. The group's
help needs only panels and tables, drawn here with those few rich classes; every command's own
--help is still Typer's. The styles are Typer's defaults, and TERMINAL_WIDTH, FORCE_COLOR and
PY_COLORS are honoured as Typer honours them.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

OPTION = "bold cyan"
USAGE = "yellow"
BORDER = "dim"


def _console() -> Any:
    from rich.console import Console

    width = os.environ.get("TERMINAL_WIDTH", "")
    force = True if os.environ.get("GITHUB_ACTIONS") or os.environ.get("FORCE_COLOR") or os.environ.get("PY_COLORS") else None
    if os.environ.get("_TYPER_FORCE_DISABLE_TERMINAL"):
        force = False
    return Console(width=int(width) if width.isdigit() else None, force_terminal=force, highlight=False)


def _panel(title: str, rows: list[tuple[str, str]]) -> Any:
    from rich import box
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1), expand=True)
    table.add_column(style=OPTION, no_wrap=True)
    table.add_column(ratio=1)
    for name, text in rows:
        table.add_row(name, Text(text))
    return Panel(table, title=title, title_align="left", border_style=BORDER, box=box.ROUNDED)


def _summary(command: Any) -> str:
    """The first paragraph of a command's help, on one line."""
    return " ".join(inspect.cleandoc(command.short_help or command.help or "").split("\n\n")[0].split())


def render(group: Any, ctx: Any) -> None:
    """Print the help of `group`, a Typer group whose `commands` may hold stand-ins that carry a summary."""
    from rich.padding import Padding
    from rich.text import Text

    console = _console()
    usage = " ".join([ctx.command_path, *group.collect_usage_pieces(ctx)])
    console.print(Padding(Text.assemble(("Usage: ", USAGE), (usage, "bold")), 1))
    console.print(Padding(Text(_summary(group)), (0, 1, 1, 1)))
    options = [(", ".join([*p.opts, *p.secondary_opts]), p.help or "") for p in group.get_params(ctx)
               if not getattr(p, "hidden", False)]
    console.print(_panel("Options", options))
    # The group's own entries: asking get_command for them would build every command.
    commands = [group.commands[name] for name in group.list_commands(ctx)]
    console.print(_panel("Commands", [(c.name, _summary(c)) for c in commands if not c.hidden]))
