"""`acct export`: a run's checkpoint as a Hugging Face-native folder (acct/run/exported.py), with a
model card (acct/run/model_card.py), written through a temporary folder that a termination
removes; and its upload to the hub.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acct import __version__
from acct.errors import AcctError, UsageError
from acct.model.encoder import quiet_loading
from acct.run.exported import CONFIG_FILE, ENCODER_DIR, FORMAT, FORMAT_VERSION, HEADS_FILE, SPLIT_FILE, is_export_dir
from acct.run.model_card import model_card, read_evaluations
from acct.run.provenance import KEY


@dataclass
class Exported:
    out_dir: Path
    checkpoint: Path
    step: int
    files: list[str]


def export_run(run_dir: Path, out_dir: Path, which: str = "best") -> Exported:
    """Write checkpoint `which` of `run_dir` to `out_dir` (which must not exist or be empty)."""
    import torch

    from acct.run import checkpoint as ckpt_io
    from acct.run.rundir import load_run

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if is_export_dir(run_dir):
        raise UsageError(f"{run_dir} is already an exported folder; export a run directory")
    run = load_run(run_dir, which, torch.device("cpu"))
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UsageError(f"{out_dir} already exists and is not an empty directory; choose a new OUT_DIR")
    if out_dir.resolve().is_relative_to(run_dir.resolve()):
        raise UsageError(f"{out_dir} is inside the run directory {run_dir}; choose an OUT_DIR outside it")
    saved = ckpt_io.read_json(run_dir / "config.json", "run settings")
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    with terminated_as_error(), _removed_at_exit(tmp):
        _write_export(run, run_dir, out_dir, tmp, which, saved)
    files = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    return Exported(out_dir, run.checkpoint, int(run.meta["step"]), files)


class Terminated(AcctError):
    """SIGTERM arrived while acct wrote something it must not leave half-written."""

    exit_code = 143  # 128 + SIGTERM, what a shell reports for a process it terminated


@contextlib.contextmanager
def terminated_as_error() -> Iterator[None]:
    """SIGTERM raises `Terminated` in the main thread while the block runs, so that its cleanup
    (`finally`) runs: the default action would end the process at once, leaving the temporary folder."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated("terminated (SIGTERM) during the export; no partial folder is left behind")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _removed_at_exit(tmp: Path) -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_export(run: Any, run_dir: Path, out_dir: Path, tmp: Path, which: str, saved: Any) -> None:
    """Write the export into `tmp`, then move it to `out_dir` in one rename."""
    from safetensors.torch import save_file

    from acct.run import checkpoint as ckpt_io

    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        with quiet_loading():
            run.model.encoder.save_pretrained(str(tmp / ENCODER_DIR), safe_serialization=True)
        run.tokenizer.save_pretrained(str(tmp / ENCODER_DIR))
        heads = {k: v for k, v in ckpt_io.model_state(run.model).items() if not k.startswith("encoder.")}
        save_file(heads, str(tmp / HEADS_FILE), metadata={"format": "pt"})
        shutil.copyfile(run_dir / "split.json", tmp / SPLIT_FILE)
        evaluations = read_evaluations(run_dir)
        config = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "acct_version": __version__,
            "tasks": run.tasks,
            "task_categories": run.categories,
            "head": run.meta["head"],
            "encoder": ENCODER_DIR,
            "tokenizer": ENCODER_DIR,
            "max_length": run.settings.model.max_length,
            "source": {
                "run_dir": str(run_dir.resolve()),
                "checkpoint": which,
                "step": run.meta["step"],
                "val_accuracy": run.meta.get("val_accuracy"),
            },
            "evaluations": evaluations,
            "settings": json.loads(run.settings.model_dump_json()),
            "provenance": saved.get(KEY) if isinstance(saved, dict) else None,
        }
        ckpt_io.write_json(tmp / CONFIG_FILE, config)
        (tmp / "README.md").write_text(model_card(config), encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except OSError as exc:
        raise UsageError(f"cannot write {out_dir}: {exc.strerror or exc}") from None


def push_to_hub(folder: Path, repo_id: str, *, private: bool = False) -> str:
    """Upload an exported folder to a model repository on the hub (created if needed); returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                          commit_message=f"acct export of {folder.name}")
    except Exception as exc:  # network, authentication and hub errors all arrive as different types
        raise AcctError(f"cannot push {folder} to the hub repository {repo_id}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
                        "the exported folder is complete, push it again later") from None
    return str(url)
