"""`--report-to mlflow`: an MLflow run named after the run directory, in experiment MLFLOW_EXPERIMENT_NAME (default acct).

The tracking server is MLflow's own choice (MLFLOW_TRACKING_URI, else its default store). The
settings are the run's parameters, the run directory its tag `acct.run_dir`. The run id is stored
in RUN_DIR/trackers/state.json, and a resumed acct run continues that MLflow run.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from acct.trackers import Tracker, register_tracker

DEFAULT_EXPERIMENT = "acct"
PARAMS_PER_BATCH, METRICS_PER_BATCH = 100, 1000  # MLflow's limits per request


def metric_name(name: str) -> str:
    """MLflow's allowed characters only (a task name may hold others): anything else becomes '_'."""
    return re.sub(r"[^/\w.\- ]", "_", name)


@register_tracker("mlflow")
class MlflowTracker(Tracker):
    """MLflow, to MLFLOW_TRACKING_URI or MLflow's default store (extra: mlflow)."""

    library = "mlflow"
    extra = "mlflow"

    def start(self) -> str | None:
        mlflow = self.import_library()
        from mlflow.entities import Param, RunStatus

        run = self.run
        self.client: Any = mlflow.MlflowClient()
        uri = mlflow.get_tracking_uri()
        run_id = run.state.get("id") if run.resumed else None
        resumed = False
        if run_id is not None:
            try:
                self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
                resumed = True
            except mlflow.exceptions.MlflowException:
                run_id = None  # not in this store: a new run
        if run_id is None:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment is not None else self.client.create_experiment(name)
            created = self.client.create_run(experiment_id, run_name=run.name, tags={"acct.run_dir": str(run.run_dir)})
            run_id = created.info.run_id
            params = [Param(metric_name(k), str(v)[:6000]) for k, v in run.hyperparameters.items()]
            for i in range(0, len(params), PARAMS_PER_BATCH):
                self.client.log_batch(run_id, params=params[i : i + PARAMS_PER_BATCH])
        self.run_id = run_id
        run.state.update({"id": run_id, "tracking_uri": uri})
        return f"mlflow: run {run_id} ({'resumed' if resumed else 'new'}) at {uri}"

    def log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(metric_name(k), float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(batch), METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=batch[i : i + METRICS_PER_BATCH])

    def finish(self, status: str) -> None:
        final = {"completed": "FINISHED", "early_stopping": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED")
        self.client.set_terminated(self.run_id, status=final)
