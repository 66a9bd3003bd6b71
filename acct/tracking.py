"""A run's experiment trackers (`report_to`): opened when training starts, fed the engine's events, closed at the end.

`acct.train.loop.train` drives `RunTrackers` on rank 0, so `acct train`, `acct ablate` (each arm
and seed is its own tracker run, named after its run directory) and the Python API all report.
Every tracker receives the same things:

- when the run starts: the resolved settings as hyperparameters (dotted names, e.g.
  `optim.lr`; lists and mappings as JSON text) and `run_dir`, the run directory's absolute path;
- at each log step: train/loss, train/cls_loss, train/contrastive_loss, train/accuracy,
  train/lr, train/questions_per_s, train/tokens_per_s, train/epoch, train/skipped_steps;
- at each validation: val/accuracy, val/macro_accuracy, val/best_accuracy,
  val/category/<category>, val/task/<task>;
- at each curriculum update: curriculum/weight/<task> and curriculum/sampled/<task> (questions
  drawn since the previous update);

all at the optimizer step. What a tracker stores to continue its run on resume (its run id)
is kept in RUN_DIR/trackers/state.json; its local files, if any, under RUN_DIR/trackers/<name>/.
Whatever a tracker's library prints goes to stderr, so that a command's --json output stays clean.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from acct import registry
from acct.config.train import TrainSettings
from acct.errors import AcctError
from acct.run import checkpoint as ckpt_io
from acct.trackers import Hyperparameter, TrackedRun, Tracker, expand
from acct.train.events import (
    CurriculumUpdated,
    Event,
    Finished,
    RunStarted,
    StepLogged,
    Validated,
)

FOLDER = "trackers"  # RUN_DIR/trackers/
STATE_FILE = "state.json"


def tracker_classes(names: list[str]) -> dict[str, type[Tracker]]:
    """The registered trackers of `report_to` (after `all` and `none`), each checked to be installed."""
    classes = {}
    for name in expand(names):
        cls = registry.trackers.get(name)
        cls.require()
        classes[name] = cls
    return classes


def hyperparameters(settings: TrainSettings, run_dir: Path) -> dict[str, Hyperparameter]:
    """The resolved settings flattened to dotted names, scalars kept and anything else as JSON; plus run_dir."""
    flat: dict[str, Hyperparameter] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else key)
        elif isinstance(node, (bool, int, float, str)):
            flat[prefix] = node
        else:
            flat[prefix] = json.dumps(node)

    walk(json.loads(settings.model_dump_json()), "")
    flat["run_dir"] = str(run_dir)
    return flat


def train_scalars(ev: StepLogged) -> dict[str, float]:
    names = ("loss", "cls_loss", "contrastive_loss", "accuracy", "lr", "questions_per_s", "tokens_per_s", "epoch", "skipped_steps")
    return {f"train/{name}": float(getattr(ev, name)) for name in names}


def validation_scalars(ev: Validated) -> dict[str, float]:
    r = ev.result
    scalars = {"val/accuracy": r.accuracy, "val/macro_accuracy": r.macro_accuracy, "val/best_accuracy": ev.best_accuracy}
    scalars.update({f"val/category/{name}": acc for name, acc in r.categories.items()})
    scalars.update({f"val/task/{name}": row["accuracy"] for name, row in r.tasks.items()})
    return {k: float(v) for k, v in scalars.items()}


def curriculum_scalars(ev: CurriculumUpdated) -> dict[str, float]:
    scalars = {f"curriculum/weight/{task}": float(w) for task, w in ev.weights.items()}
    scalars.update({f"curriculum/sampled/{task}": float(n) for task, n in ev.sampled.items()})
    return scalars


class RunTrackers:
    """The trackers of one run, on the process that reports (rank 0); a no-op elsewhere or with report_to none.

    Built before training starts, on every process: a tracker that is not registered or whose
    library is missing stops the run there, with one line naming the pip command.
    """

    def __init__(self, settings: TrainSettings, *, enabled: bool = True) -> None:
        self.settings = settings
        classes = tracker_classes(settings.report_to)
        self.classes = classes if enabled else {}
        self.open: dict[str, Tracker] = {}
        self.status = "failed"  # until a Finished event says otherwise

    def observe(self, event: Event) -> None:
        """Pass one engine event on: RunStarted opens the trackers (adding their notices to it); the others log scalars."""
        if not self.classes:
            return
        if isinstance(event, RunStarted):
            event.notices.extend(self.start(event))
        elif isinstance(event, StepLogged):
            self.log(train_scalars(event), event.step)
        elif isinstance(event, Validated):
            self.log(validation_scalars(event), event.step)
        elif isinstance(event, CurriculumUpdated):
            self.log(curriculum_scalars(event), event.step)
        elif isinstance(event, Finished):
            self.status = event.reason

    def start(self, started: RunStarted) -> list[str]:
        run_dir = Path(started.run_dir).absolute()
        folder = run_dir / FOLDER
        state_path = folder / STATE_FILE
        resumed = bool(self.settings.resume)
        saved = ckpt_io.read_json(state_path, "tracker state") if resumed and state_path.is_file() else {}
        params = hyperparameters(self.settings, run_dir)
        notices = []
        for name, cls in self.classes.items():
            run = TrackedRun(
                run_dir=run_dir, name=run_dir.name, hyperparameters=dict(params), resumed=resumed,
                start_step=started.start_step, files=folder / name, state=dict(saved.get(name) or {}),
            )
            tracker = cls(run)
            notice = self._call(name, tracker.start)
            self.open[name] = tracker
            saved[name] = run.state
            if notice:
                notices.append(notice)
        if any(saved.values()):
            folder.mkdir(parents=True, exist_ok=True)
            ckpt_io.write_json(state_path, saved)
        return notices

    def log(self, scalars: dict[str, float], step: int) -> None:
        for name, tracker in self.open.items():
            self._call(name, lambda: tracker.log(scalars, step))

    def close(self, *, raise_errors: bool = True) -> None:
        """Finish every open tracker with the run's status; the first error is raised after all are closed (if asked)."""
        first: AcctError | None = None
        for name, tracker in list(self.open.items()):
            try:
                self._call(name, lambda: tracker.finish(self.status))
            except AcctError as exc:
                first = first or exc
        self.open.clear()
        if first is not None and raise_errors:
            raise first

    @staticmethod
    def _call(name: str, fn: Callable[[], Any]) -> Any:
        with _library_output_to_stderr():
            try:
                return fn()
            except AcctError:
                raise
            except Exception as exc:
                line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise AcctError(f"tracker {name}: {line}") from exc


@contextlib.contextmanager
def _library_output_to_stderr() -> Iterator[None]:
    with contextlib.redirect_stdout(sys.stderr):
        yield
