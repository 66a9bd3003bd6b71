"""`--report-to wandb`: a Weights & Biases run named after the run directory, in project WANDB_PROJECT (default acct).

wandb's own variables apply (WANDB_MODE=offline, WANDB_ENTITY, WANDB_API_KEY, ...). Its local
files go to RUN_DIR/trackers/wandb/ unless WANDB_DIR says otherwise. The run id is stored in
RUN_DIR/trackers/state.json, and a resumed acct run continues that wandb run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from acct.trackers import Tracker, register_tracker

DEFAULT_PROJECT = "acct"


@register_tracker("wandb")
class WandbTracker(Tracker):
    """Weights & Biases, online or offline (WANDB_MODE=offline) (extra: wandb)."""

    library = "wandb"
    extra = "wandb"

    def start(self) -> str | None:
        wandb = self.import_library()
        run = self.run
        folder = None
        if not os.environ.get("WANDB_DIR"):
            folder = run.files
            folder.mkdir(parents=True, exist_ok=True)
        run_id = run.state.get("id") if run.resumed else None
        self.handle: Any = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
            name=run.name,
            id=run_id,
            resume="allow" if run_id else None,
            config=dict(run.hyperparameters),
            dir=None if folder is None else str(folder),
        )
        run.state.update({"id": self.handle.id, "project": self.handle.project})
        if getattr(self.handle, "offline", os.environ.get("WANDB_MODE") in ("offline", "dryrun")):
            where = f"offline, in {Path(self.handle.dir).parent} (upload with: wandb sync)"
        else:
            where = str(self.handle.url)
        return f"wandb: run {self.handle.id} ({'resumed' if run_id else 'new'}), {where}"

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.handle.log(metrics, step=step)

    def finish(self, status: str) -> None:
        self.handle.finish(exit_code=0 if status in ("completed", "early_stopping") else 1)
