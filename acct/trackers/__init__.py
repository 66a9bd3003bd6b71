"""Experiment trackers (`--report-to`): the contract a tracker meets, and the decorator that registers one.

A tracker reports one run. `start` opens the tracker's own run (or, when acct resumes, reopens
the one it opened before, where the library allows) with the resolved settings as
hyperparameters; `log` receives scalars at an optimizer step; `finish` closes it. acct's training
loop drives them on rank 0 only, through `acct.tracking`, which turns the engine's events into
the scalars (their names are listed there and in docs/tracking.md).

A tracker's library is imported in `start`, never when its module is imported, so that `acct
--help` and `acct list` stay light. `library` and `extra` name what it needs: a run asking for
a tracker whose library is missing stops before training with one line naming the pip command.

acct's own: tensorboard, trackio, wandb, mlflow (one module each in this package). This module
imports nothing heavy.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acct.errors import UsageError
from acct.registry import register_tracker, trackers

__all__ = ["Hyperparameter", "TrackedRun", "Tracker", "expand", "register_tracker"]

Hyperparameter = str | int | float | bool

NONE, ALL = "none", "all"  # report_to's two words that are not tracker names (as in Hugging Face's report_to)


@dataclass
class TrackedRun:
    """The run a tracker reports, as the tracker sees it."""

    run_dir: Path  # absolute
    name: str  # the run directory's name (in an ablation, <arm>-seed<k>): the tracker run's name
    hyperparameters: dict[str, Hyperparameter]  # the resolved settings by dotted name, and run_dir
    resumed: bool  # acct resumed the run from its 'last' checkpoint
    start_step: int  # the step training starts after: 0 for a new run, the checkpoint's step on resume
    files: Path  # RUN_DIR/trackers/<tracker>/: a folder of the tracker's own (created on demand)
    # What this tracker stored at its previous start of this run ({} for a new run); a tracker
    # stores what it needs to continue (e.g. its run id) by updating the dict in `start`.
    state: dict[str, Any] = field(default_factory=dict)


class Tracker:
    """Base of an experiment tracker (subclass it and register it with `register_tracker`)."""

    registry_name: str = ""  # set when registered
    library: str | None = None  # the module `start` imports; None when it needs none
    extra: str | None = None  # the acct extra that installs it: pip install 'acct[<extra>]'

    def __init__(self, run: TrackedRun) -> None:
        self.run = run

    @classmethod
    def installed(cls) -> bool:
        """Whether the tracker's library can be imported (checked without importing it)."""
        if cls.library is None:
            return True
        try:
            return importlib.util.find_spec(cls.library) is not None
        except (ImportError, ValueError):
            return False

    @classmethod
    def install_hint(cls) -> str:
        return f"pip install 'acct[{cls.extra}]'" if cls.extra else f"pip install {cls.library}"

    @classmethod
    def require(cls) -> None:
        """One clear error when the library is missing, naming the pip command that installs it."""
        if not cls.installed():
            raise UsageError(cls.missing(cls.registry_name))

    @classmethod
    def missing(cls, name: str, detail: str = "") -> str:
        return f"--report-to {name} needs the {cls.library} library{detail}: {cls.install_hint()}"

    @classmethod
    def import_library(cls) -> Any:
        """The tracker's library, imported now; a missing or broken one is one clear error."""
        try:
            return importlib.import_module(cls.library)
        except ImportError as exc:
            raise UsageError(cls.missing(cls.registry_name, f" ({exc})")) from exc

    def start(self) -> str | None:
        """Open (or reopen, on resume) the tracker's run and record the hyperparameters; a one-line notice of where it logs."""
        raise NotImplementedError

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Record scalars at an optimizer step."""
        raise NotImplementedError

    def finish(self, status: str) -> None:
        """Close the run: status is completed, early_stopping, interrupted (stopped and saved) or failed."""
        raise NotImplementedError


def expand(names: Iterable[str], *, installed: Callable[[str], bool] | None = None) -> list[str]:
    """report_to's values as tracker names: `none` is no tracker; `all` is every registered one whose library is installed.

    Each entry may be a comma list; names are kept once, in order. `none` alone (or nothing) gives [].
    """
    words: list[str] = []
    for entry in names:
        for word in str(entry).split(","):
            word = word.strip()
            if word and word not in words:
                words.append(word)
    if NONE in words and len(words) > 1:
        raise ValueError(f"'{NONE}' cannot be combined with trackers ({', '.join(w for w in words if w != NONE)})")
    if ALL in words:
        if installed is None:
            installed = lambda name: trackers.get(name).installed()  # noqa: E731
        chosen = [name for name in trackers.names() if installed(name)]
        words = [*chosen, *(w for w in words if w != ALL and w not in chosen)]
    return [w for w in words if w != NONE]
