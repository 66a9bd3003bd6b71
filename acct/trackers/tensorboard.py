"""`--report-to tensorboard`: event files in RUN_DIR/trackers/tensorboard/, through torch's SummaryWriter."""

from __future__ import annotations

import json
from typing import Any

from acct.trackers import Tracker, register_tracker

# Validation scalars the HParams dashboard shows beside each run's hyperparameters.
HPARAM_METRICS = ("val/accuracy", "val/macro_accuracy")


@register_tracker("tensorboard")
class TensorBoardTracker(Tracker):
    """TensorBoard event files in RUN_DIR/trackers/tensorboard/ (local; extra: tensorboard)."""

    library = "tensorboard"
    extra = "tensorboard"

    def start(self) -> str | None:
        self.import_library()  # torch's writer needs it; a missing one is our one-line error
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        run = self.run
        log_dir = run.files
        # On resume the same folder goes on: events a crashed process logged after the checkpoint
        # (steps > start_step) are purged, so the curves match metrics.jsonl.
        purge = run.start_step + 1 if run.resumed else None
        self.writer: Any = SummaryWriter(log_dir=str(log_dir), purge_step=purge)
        if not run.resumed:
            self.writer.add_text("run_dir", str(run.run_dir), 0)
            self.writer.add_text("settings", "```\n" + json.dumps(run.hyperparameters, indent=2) + "\n```", 0)
            # The HParams dashboard's records, in this run's own event file (add_hparams would open another run).
            for summary in hparams(run.hyperparameters, {name: 0.0 for name in HPARAM_METRICS}):
                self.writer.file_writer.add_summary(summary)
        self.writer.flush()
        return f"tensorboard: {log_dir} (view with: tensorboard --logdir {run.run_dir})"

    def log(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def finish(self, status: str) -> None:
        self.writer.flush()
        self.writer.close()
