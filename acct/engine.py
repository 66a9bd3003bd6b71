"""acct's engine, as plain functions: no Typer, no rich, no printing. This module is the public
face the CLI, the benchmarks and the tests import from; the code lives in

- `acct.train` (the training loop: `events`, `device`, `data`, `setup`, `step`, `state`, `loop`),
- `acct.run.rundir` (the run directory: lock, config.json, metrics.jsonl, loading a saved run),
- `acct.scoring.score` (scoring examples, evaluating a run on a split).

`train` is a generator of events; the CLI renders them, tests read them. Everything a later
command needs (settings, split manifest, task list, confusion matrix, curriculum state) is
written into the run directory as training goes.
"""

from __future__ import annotations

from acct.run.rundir import (
    LoadedRun,
    MetricsLog,
    RunWriter,
    check_no_remote_code,
    check_resumable,
    load_run,
    load_run_settings,
    load_run_split,
    settings_record,
    user_trusts_remote_code,
)
from acct.scoring.score import evaluate, predict_encoded, score_examples
from acct.train.data import data_source, load_source, make_split, task_categories
from acct.train.device import (
    autocast,
    configure_backends,
    resolve_device,
    seed_everything,
)
from acct.train.events import (
    CheckpointSaved,
    CurriculumUpdated,
    Event,
    Finished,
    ModelLoaded,
    RunStarted,
    StepLogged,
    Validated,
)
from acct.train.loop import train
from acct.train.setup import build_optimizer, lr_lambda
from acct.train.step import (
    Optimization,
    StepOutput,
    Weightings,
    forward_losses,
    train_step,
)

__all__ = [
    "CheckpointSaved", "CurriculumUpdated", "Event", "Finished", "LoadedRun", "MetricsLog", "ModelLoaded",
    "Optimization", "RunStarted",
    "RunWriter", "StepLogged", "StepOutput", "Validated", "Weightings", "autocast", "build_optimizer",
    "check_no_remote_code", "check_resumable", "configure_backends", "data_source", "evaluate", "forward_losses",
    "load_run", "load_run_settings", "load_run_split", "load_source", "lr_lambda", "make_split", "predict_encoded",
    "resolve_device", "score_examples", "seed_everything", "settings_record", "task_categories", "train", "train_step",
    "user_trusts_remote_code",
]
