"""`acct export`: write a run's checkpoint as a Hugging Face-native folder with a model card."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from acct.cli._common import err, handles_errors, out
from acct.errors import UsageError


@handles_errors
def export_command(
    run_dir: Path = typer.Argument(..., help="Run directory written by `acct train`.", show_default=False),
    out_dir: Path = typer.Argument(..., help="New folder to write (must not exist, or be empty).", show_default=False),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
    push_to_hub: Optional[str] = typer.Option(
        None, "--push-to-hub", metavar="REPO_ID", help="Also upload the folder to this hub model repository.",
        show_default=False,
    ),
    private: bool = typer.Option(False, "--private", help="With --push-to-hub: create the repository as private."),
) -> None:
    """Export a run: encoder (save_pretrained) + tokenizer, acct's heads, and a README.md model card."""
    if checkpoint not in ("best", "last"):
        raise UsageError(f"unknown checkpoint {checkpoint!r}; choose best or last")
    if private and push_to_hub is None:
        raise UsageError("--private applies to --push-to-hub REPO_ID only")
    from acct.run import export

    done = export.export_run(run_dir, out_dir, checkpoint)
    out.print(f"exported step {done.step} ({done.checkpoint.name}) of {run_dir} to [bold]{done.out_dir}[/]: "
              + ", ".join(done.files), highlight=False, soft_wrap=True)
    if push_to_hub is not None:
        err.print(f"[dim]uploading {done.out_dir} to {push_to_hub}{' (private)' if private else ''}…[/]", highlight=False)
        url = export.push_to_hub(done.out_dir, push_to_hub, private=private)
        out.print(f"pushed to {url}", highlight=False, soft_wrap=True)
