"""`acct list`: every registered name, by kind, with its one-line description."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from acct import registry
from acct.cli._common import (
    code_option,
    escape,
    handles_errors,
    import_code,
    out,
    print_json,
)

# registry attribute -> heading
KINDS = {
    "strategies": "task-sampling strategies (curriculum.strategy, --strategy)",
    "task_weightings": "task-loss weightings (loss.task_weighting)",
    "anchor_weightings": "contrastive anchor weightings (loss.anchor_weighting)",
    "gradients": "gradient aggregations (loss.gradient)",
    "data_sources": "data sources (data.source, --data-source)",
    "ablation_arms": "ablation arms (acct ablate --arms)",
    "trackers": "experiment trackers (report_to, --report-to)",
}


def listing() -> dict[str, list[dict[str, str]]]:
    """{kind: [{name, description, origin}]} over every registry, acct's own first."""
    result: dict[str, list[dict[str, str]]] = {}
    for kind in KINDS:
        reg = registry.REGISTRIES[kind]
        rows = []
        for name in reg.names():
            component = reg.get(name)
            module = getattr(component, "__module__", "") or ""
            origin = "acct" if module.startswith("acct.") else getattr(__import__("sys").modules.get(module), "__file__", None) or module
            rows.append({"name": name, "description": reg.describe(name), "origin": origin})
        result[kind] = rows
    return result


@handles_errors
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout and nothing else."),
    code: Optional[list[Path]] = code_option(),
) -> None:
    """List every registered strategy, loss weighting, gradient aggregation, data source, ablation arm and tracker, plugins included."""
    from rich.table import Table

    import_code(code)
    data = listing()
    if as_json:
        print_json(data)
        return
    for kind, rows in data.items():
        table = Table(title=KINDS[kind], title_justify="left", show_header=True, header_style="bold")
        # Names and file paths are single words: the description wraps instead of cutting them.
        table.add_column("name", no_wrap=True)
        table.add_column("description")
        table.add_column("from", no_wrap=True)
        for row in rows:
            # Descriptions say things like "needs acct[mtl]": shown literally, never read as markup.
            table.add_row(escape(row["name"]), escape(row["description"]), escape(row["origin"]))
        out.print(table)
