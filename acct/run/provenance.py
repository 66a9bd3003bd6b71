"""Where and how a run was made: versions, code, command line, machine, time.

Written to RUN_DIR/config.json under the key `provenance`, beside the settings and not part of
them: loading a run's settings drops it, so neither resuming nor comparing settings sees it.
A resume writes a `resumed` event with its own provenance to metrics.jsonl.
"""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from acct import __version__

KEY = "provenance"


def utc_now() -> str:
    """The current time, UTC, ISO 8601 to the millisecond (e.g. 2026-01-02T03:04:05.678Z)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_state(directory: Path | None = None) -> dict[str, Any] | None:
    """Commit and dirty flag of the git work tree holding `directory` (default: the working directory)."""
    cwd = str(directory or Path.cwd())

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def collect(*, world_size: int = 1, device: Any = None, argv: list[str] | None = None) -> dict[str, Any]:
    """The provenance block of a run started (or resumed) now."""
    import torch

    block: dict[str, Any] = {
        "acct": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "datasets": _version("datasets"),
        "git": git_state(),
        "command": list(sys.argv if argv is None else argv),
        "hostname": socket.gethostname(),
        "started_at": utc_now(),
        "world_size": world_size,
    }
    if device is not None and getattr(device, "type", str(device)) == "cuda":
        block["cuda"] = torch.version.cuda
        block["cudnn"] = torch.backends.cudnn.version()
        block["gpu"] = torch.cuda.get_device_name(device)
    return block


def without_provenance(saved: Any) -> Any:
    """A saved config.json's settings, without the provenance block written beside them."""
    if isinstance(saved, dict) and KEY in saved:
        return {k: v for k, v in saved.items() if k != KEY}
    return saved
