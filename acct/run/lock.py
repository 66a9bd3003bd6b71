"""One writer per run directory: an exclusive `flock` on RUN_DIR/.acct.lock.

The kernel drops the lock when its process ends, however it ends (SIGKILL included), so a
killed run never leaves its directory locked. The file holds the holder's PID and host, which
a second writer names in its error. The file itself stays: deleting a lock file while another
process may be opening it would let two writers hold two different locks.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from acct.errors import UsageError

LOCK_NAME = ".acct.lock"


class RunLock:
    def __init__(self, run_dir: Path, fd: int, created: bool):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = fd
        self.created = created  # this process made the lock file

    @classmethod
    def acquire(cls, run_dir: Path) -> RunLock:
        """Lock `run_dir` (which must exist) for writing, or fail at once naming the holder."""
        path = Path(run_dir) / LOCK_NAME
        created = not path.exists()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UsageError(f"cannot create the lock file {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise UsageError(
                f"{run_dir} is in use by another acct process ({holder}); one process writes a run at a time: "
                "wait for it to finish or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        return cls(Path(run_dir), fd, created)

    def release(self, *, remove: bool = False) -> None:
        """Unlock; `remove` also deletes the lock file (a failed start that made it)."""
        if self._fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        else:
            os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "PID and host unknown"
