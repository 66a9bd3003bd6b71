"""The run directory: its lock while training (`RunWriter`), `config.json` and the settings
digest a checkpoint vouches for, `metrics.jsonl` (`MetricsLog`), and rebuilding a saved run
for inference (`load_run`, `load_run_split`).

A run directory holds config.json, split.json, metrics.jsonl, checkpoints/ (see
acct/run/checkpoint.py) and eval-<split>.json files; README.md describes it for users.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from acct import plugins, registry
from acct.config.environment import env_trusts_remote_code
from acct.config.layers import flatten
from acct.config.resolve import format_validation_error
from acct.config.train import TrainSettings, field_defaults
from acct.data.manifests import apply_manifest
from acct.data.protocols import DataSplit
from acct.data.tokenize import load_tokenizer
from acct.errors import CheckpointError, UsageError
from acct.model.encoder import HeadConfig, MultipleChoiceModel, encoder_from_config_dir
from acct.run import checkpoint as ckpt_io
from acct.run import provenance
from acct.run.exported import is_export_dir, load_export
from acct.run.loaded import LoadedRun
from acct.run.lock import LOCK_NAME, RunLock
from acct.train.data import load_source, task_categories

RUN_FILES = ("config.json", "split.json", "metrics.jsonl")


def check_resumable(settings: TrainSettings) -> Path:
    """The run directory of a resume: it must hold a 'last' checkpoint."""
    run_dir = settings.run_dir()
    ckpt_io.checkpoint_dir(run_dir, "last")
    return run_dir


class RunWriter:
    """Rank 0's hold on the run directory while it trains.

    `begin` takes the directory's lock (see acct.run.lock), refuses an existing run without
    --overwrite and a directory that holds anything but an acct run; `set_aside` moves an
    overwritten run into RUN_DIR/.old-<time>/ once the new run's data and tokenizer are known
    to be good; `saved` deletes it after the new run's first checkpoint. `end` releases the
    lock and, after a failed start (no checkpoint saved), removes what this start wrote (only
    entries that were not there when it began) and puts the old run back.
    """

    def __init__(self, settings: TrainSettings):
        self.settings = settings
        self.run_dir = settings.run_dir()
        self.lock: RunLock | None = None
        self.created_dir = False
        self.created_parents: list[Path] = []
        self.aside: Path | None = None
        self.wrote_files = False
        self.checkpointed = False
        self.present: set[str] = set()  # names in the directory before this start wrote anything

    def begin(self) -> None:
        run_dir = self.run_dir
        if self.settings.resume:
            self.lock = RunLock.acquire(run_dir)
            return
        if run_dir.exists() and not run_dir.is_dir():
            raise UsageError(f"output path {run_dir} is a file")
        self.created_dir = not run_dir.exists()
        # The folders this start creates, deepest first (runs/NAME may create runs/ too): a failed
        # start removes those it left empty.
        self.created_parents = [p for p in run_dir.parents if not p.exists()]
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create run directory {run_dir}: {exc.strerror}") from None
        try:
            self.lock = RunLock.acquire(run_dir)
            if ckpt_io.is_run_dir(run_dir) and not self.settings.overwrite:
                raise UsageError(f"{run_dir} already holds a run; pass --overwrite to replace it or --resume to continue it")
            self.present = {entry.name for entry in run_dir.iterdir()} - {LOCK_NAME}
            if self.present and not ckpt_io.is_run_dir(run_dir):
                # Files acct did not write: a failed start must never be able to touch them.
                shown = ", ".join(sorted(self.present)[:3]) + (" ..." if len(self.present) > 3 else "")
                raise UsageError(f"{run_dir} is not empty and holds no acct run (no config.json; it holds {shown}); "
                                 "a run needs a new or empty directory: choose another --output-dir")
        except BaseException:
            self.end(ok=False)
            raise

    def set_aside(self) -> str | None:
        """Move the run being overwritten out of the way; a notice saying where, or None."""
        if not ckpt_io.is_run_dir(self.run_dir):
            return None
        aside = self.run_dir / f".old-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        aside.mkdir()
        self.aside = aside
        for entry in self._run_entries():
            os.replace(entry, aside / entry.name)
            self.present.discard(entry.name)  # its place is this start's now
        self.present.add(aside.name)
        return (f"--overwrite: the previous run was moved to {aside}; it is deleted once this run saves its first "
                "checkpoint, and put back if this run fails before that")

    def _run_entries(self) -> list[Path]:
        # trackers/: see acct/tracking.py; code/: the run's copies of its plugins (acct/plugins.py).
        names = [*RUN_FILES, "checkpoints", "trackers", plugins.CODE_DIR]
        entries = [self.run_dir / n for n in names if (self.run_dir / n).exists() or (self.run_dir / n).is_symlink()]
        # What `acct evaluate` writes into a run (acct/scoring/score.py) belongs to the run too.
        return entries + sorted(self.run_dir.glob("eval-*.json")) + sorted(self.run_dir.glob("predictions-*.jsonl"))

    def saved(self) -> None:
        self.checkpointed = True
        if self.aside is not None:
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None

    def end(self, ok: bool) -> None:
        try:
            if not self.checkpointed and not self.settings.resume and self.lock is not None:
                self._undo_start()
        finally:
            if self.lock is not None:
                failed_start = not self.checkpointed and not self.settings.resume
                self.lock.release(remove=failed_start and (self.created_dir or self.lock.created))
                self.lock = None
            if self.created_dir and not self.checkpointed:
                with contextlib.suppress(OSError):
                    self.run_dir.rmdir()
                    for parent in self.created_parents:
                        parent.rmdir()

    def _undo_start(self) -> None:
        if self.wrote_files or self.aside is not None:
            for entry in self._run_entries():
                if entry.name in self.present:
                    continue  # not written by this start
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        if self.aside is not None:
            for entry in self.aside.iterdir():
                os.replace(entry, self.run_dir / entry.name)
            self.aside.rmdir()
            self.aside = None


# Settings whose default changed: a config.json written before the setting existed trained with
# the old behaviour, which is this value, not today's default.
LEGACY_DEFAULTS: dict[str, Any] = {"curriculum.prior": "uniform"}


def with_legacy_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """`saved` with every setting of LEGACY_DEFAULTS it lacks set to the value it then meant."""
    out = json.loads(json.dumps(saved))
    for dotted, value in LEGACY_DEFAULTS.items():
        *sections, key = dotted.split(".")
        node = out
        for section in sections:
            node = node.get(section) if isinstance(node, dict) else None
        if isinstance(node, dict) and key not in node:
            node[key] = value
    return out


def load_run_settings(run_dir: Path) -> TrainSettings:
    """The settings a run was trained with, as written to its config.json."""
    if not ckpt_io.is_run_dir(run_dir):
        raise UsageError(f"{run_dir} is not an acct run directory (no config.json)")
    saved = provenance.without_provenance(ckpt_io.read_json(Path(run_dir) / "config.json", "run settings"))
    saved = with_legacy_defaults(saved)
    try:
        return TrainSettings.model_validate(saved)
    except ValidationError as exc:
        raise CheckpointError(f"{run_dir}/config.json does not hold valid settings: {format_validation_error(exc)}") from None
    except Exception as exc:
        raise CheckpointError(f"{run_dir}/config.json does not hold valid settings: {str(exc).splitlines()[0]}") from None


class MetricsLog:
    """Append-only JSONL of run events, each with its UTC time; truncated back to the last checkpoint on resume.

    Under torchrun only rank 0's log writes (`enabled=False` elsewhere).
    """

    def __init__(self, path: Path, enabled: bool = True):
        self.path = path
        self.enabled = enabled

    def write(self, kind: str, **fields: Any) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": kind, "time": provenance.utc_now(), **fields}) + "\n")

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def sync(self) -> None:
        """Flush the log to the disk (before a checkpoint records its length)."""
        if self.enabled and self.path.exists():
            with open(self.path, "ab") as f:
                f.flush()
                os.fsync(f.fileno())

    def truncate(self, size: int) -> None:
        if self.enabled and self.path.exists():
            with open(self.path, "r+b") as f:
                f.truncate(size)

    def restore(self, size: int, step: int) -> str | None:
        """Bring the log back to a checkpoint that recorded `size` bytes at `step`; a notice if it cannot be exact.

        A longer log lost nothing: its tail after the checkpoint is cut. A shorter one lost
        records the checkpoint cannot rebuild: its partial last line is dropped and a
        "segment" record marks where the log starts again. Never padded.
        """
        if not self.enabled:
            return None
        if not self.path.exists():
            self.write("segment", step=step, reason="metrics.jsonl was missing at resume")
            return f"metrics.jsonl was missing; a new log starts at step {step} (earlier records are lost)"
        have = self.size()
        if have >= size:
            self.truncate(size)
            return None
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1
        self.truncate(keep)
        self.write("segment", step=step, reason=f"metrics.jsonl had {have} of the {size} bytes the checkpoint recorded")
        return (f"metrics.jsonl is shorter than the checkpoint recorded ({have} < {size} bytes): its lost tail "
                f"cannot be rebuilt; a new segment starts at step {step}")


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def user_trusts_remote_code(flag: bool = False) -> bool:
    """Trust comes from the person running the command: their flag or ACCT_MODEL__TRUST_REMOTE_CODE, never a run directory."""
    return bool(flag) or env_trusts_remote_code()


def check_no_remote_code(ckpt: Path, trust_remote_code: bool) -> None:
    """Refuse a checkpoint whose encoder or tokenizer config points at code, unless the user trusts it."""
    if trust_remote_code:
        return
    for part in ("encoder/config.json", "tokenizer/tokenizer_config.json", "tokenizer/config.json"):
        path = ckpt / part
        if not path.is_file():
            continue
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(cfg, dict) and cfg.get("auto_map"):
            raise CheckpointError(
                f"{path} names code to run (auto_map); acct never runs code from a run directory on its own: "
                "if you trust where this run came from, pass --trust-remote-code (or set ACCT_MODEL__TRUST_REMOTE_CODE=1)"
            )


# Fields a checkpoint's settings digest leaves out: how this invocation was asked for, where the
# run and its CSV files live (the split manifest's fingerprints guard the data itself), trust,
# which is never read from the run directory, and the trackers it reports to.
_UNDIGESTED = ("resume", "overwrite", "output_dir", "model.trust_remote_code", "data.data_dir", "report_to")




def settings_record(settings: TrainSettings) -> dict[str, Any]:
    """The settings a checkpoint vouches for, flattened to dotted names."""
    flat = flatten(json.loads(settings.model_dump_json()))
    return {k: v for k, v in flat.items() if k not in _UNDIGESTED}


def check_settings_unchanged(run_dir: Path, settings: TrainSettings, meta: dict[str, Any]) -> None:
    """Refuse to resume when config.json no longer matches the settings the checkpoint was saved with."""
    digest = meta.get("settings_digest")
    if digest is None:
        return
    now = settings_record(settings)
    saved = meta.get("settings") or {}
    if saved:
        # A setting added to acct after the checkpoint was saved is not in its record: it counts as
        # unchanged while it has the value that means the behaviour of then (its default, or its
        # legacy default when the default changed).
        defaults = field_defaults()
        now = {k: v for k, v in now.items()
               if k in saved or v != LEGACY_DEFAULTS.get(k, defaults.get(k, object()))}
    if fingerprint(now) == digest:
        return
    changed = sorted(k for k in now.keys() | saved.keys() if now.get(k) != saved.get(k))
    detail = ", ".join(f"{k} ({saved.get(k)!r} -> {now.get(k)!r})" for k in changed[:4]) or "unknown fields"
    raise CheckpointError(
        f"{run_dir}/config.json was edited after the checkpoint was saved: {detail}"
        f"{' ...' if len(changed) > 4 else ''}; put the saved values back to resume, or start a new run"
    )


def load_run(
    run_dir: Path, which: str = "best", device: torch.device | None = None, *, trust_remote_code: bool = False,
) -> LoadedRun:
    """Rebuild the model of a run from its checkpoint alone (offline); a folder written by `acct export` too.

    The checkpoint link is resolved once and read from that directory under a shared lock the
    trainer respects; if training replaced it anyway, it is resolved and read once more.
    Code named in the checkpoint runs only if the caller trusts it (`user_trusts_remote_code`).
    """
    if is_export_dir(run_dir):
        return load_export(Path(run_dir), device)
    trust = user_trusts_remote_code(trust_remote_code)
    for attempt in range(2):
        ckpt = ckpt_io.checkpoint_dir(run_dir, which)
        with ckpt_io.reading(ckpt) as present:
            try:
                if present:
                    return _load_checkpoint(Path(run_dir), ckpt, device, trust)
            except Exception:
                if ckpt_io.checkpoint_dir(run_dir, which) == ckpt and (ckpt / "acct.json").is_file():
                    raise
    raise CheckpointError(
        f"the checkpoint changed while it was being read ({run_dir}/checkpoints/{which}: training is saving into "
        "this run); try again"
    )


def _load_checkpoint(run_dir: Path, ckpt: Path, device: torch.device | None, trust: bool) -> LoadedRun:
    saved = load_run_settings(run_dir)
    settings = saved.model_copy(update={"model": saved.model.model_copy(update={"trust_remote_code": trust})})
    meta = ckpt_io.read_meta(ckpt)
    head_dict = meta["head"]
    try:
        head = HeadConfig(**head_dict)
    except TypeError:
        raise CheckpointError(f"{ckpt}/acct.json has an unreadable head description") from None
    if head.num_tasks != len(meta["tasks"]):
        raise CheckpointError(f"{ckpt}: head has {head.num_tasks} tasks but the task list has {len(meta['tasks'])}")
    for folder in ("encoder", "tokenizer"):
        if not (ckpt / folder).is_dir():
            raise CheckpointError(f"{ckpt} is incomplete: the {folder}/ folder is missing (a partial copy?)")
    if not (ckpt / "encoder" / "config.json").is_file():
        raise CheckpointError(f"{ckpt} is incomplete: encoder/config.json is missing (a partial copy?)")
    if not (ckpt / "tokenizer").is_dir():
        raise CheckpointError(f"{ckpt} is incomplete: the tokenizer folder is missing (a partial copy?)")
    check_no_remote_code(ckpt, trust)
    tokenizer = load_tokenizer(str(ckpt / "tokenizer"), trust_remote_code=trust)
    encoder = encoder_from_config_dir(ckpt / "encoder", trust_remote_code=trust)
    model = MultipleChoiceModel(encoder, head, attention_backend=settings.model.attention, device=device)
    ckpt_io.load_model_weights(model, ckpt)
    if device is not None:
        model.to(device)
    model.eval()
    tasks = list(meta["tasks"])
    return LoadedRun(
        run_dir=run_dir,
        checkpoint=ckpt,
        settings=settings,
        meta=meta,
        tasks=tasks,
        categories=meta.get("task_categories") or task_categories(tasks),
        tokenizer=tokenizer,
        model=model,
    )


def load_run_split(run: LoadedRun, data_dir: Path | None = None) -> DataSplit:
    """The run's own split, re-read from its data source through the saved manifest."""
    data = run.settings.data
    if data.source not in registry.data_sources:
        raise UsageError(plugins.needs_code(run.run_dir, run.settings.plugins, f"data source {data.source!r}"))
    if data_dir is not None:
        if not getattr(registry.data_sources.find(data.source), "needs_data_dir", False):
            raise UsageError(f"--data-dir {data_dir}: the run's data source {data.source!r} reads no data directory; "
                             "drop --data-dir")
        data = data.model_copy(update={"data_dir": data_dir})
    source = load_source(data, run.settings.seed)
    manifest = run.split_manifest or run.run_dir / "split.json"
    return apply_manifest(source, ckpt_io.read_json(manifest, "split manifest"))
