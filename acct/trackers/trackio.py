"""`--report-to trackio`: a trackio run named after the run directory, in project TRACKIO_PROJECT (default acct).

trackio keeps its data where it is told (TRACKIO_DIR, default ~/.cache/huggingface/trackio), or
in a Space (TRACKIO_SPACE_ID). A resumed acct run continues the trackio run of the same name.
"""

from __future__ import annotations

import os
from typing import Any

from acct.trackers import Tracker, register_tracker

DEFAULT_PROJECT = "acct"


@register_tracker("trackio")
class TrackioTracker(Tracker):
    """trackio: local SQLite storage or a Hugging Face Space (extra: trackio)."""

    library = "trackio"
    extra = "trackio"

    def start(self) -> str | None:
        trackio = self.import_library()
        run = self.run
        project = os.environ.get("TRACKIO_PROJECT") or DEFAULT_PROJECT
        # trackio finds a run again by its name in the project.
        self.handle: Any = trackio.init(
            project=project, name=run.name, config=dict(run.hyperparameters), resume="allow" if run.resumed else "never",
        )
        run.state.update({"project": project, "name": self.handle.name, "id": getattr(self.handle, "id", None)})
        from trackio.utils import TRACKIO_DIR

        where = os.environ.get("TRACKIO_SPACE_ID") or TRACKIO_DIR
        return f"trackio: project {project}, run {self.handle.name} in {where} (view with: trackio show --project {project})"

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.handle.log(metrics, step=step)

    def finish(self, status: str) -> None:
        trackio = self.import_library()
        from trackio import context_vars

        if context_vars.current_run.get() is self.handle:
            trackio.finish()  # also forgets it as trackio's current run (else trackio finishes it again at exit)
        else:
            self.handle.finish()
