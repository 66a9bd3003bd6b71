#!/usr/bin/env python
"""How long `acct train --preset default` takes to stop when the hub cannot be reached, printed.

tests/cli/test_offline_start.py checks what the user sees (one line, no retries); how long it takes
depends on the machine and its load, so it is measured here and not asserted. The endpoint is a
closed port on the loopback interface (refused at once): nothing is sent off this machine. The
hub client's own retries, which acct turns off, took about half a minute.

    python benchmarks/offline_failure.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_failure(url: str) -> tuple[float, int, str]:
    """Seconds until the command exits, its exit status and its last stderr line."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_ENDPOINT": url, "HF_HOME": str(Path(tmp) / "hf")}
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "ACCT_DEBUG"):
            env.pop(name, None)
        start = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "acct", "train", "--preset", "default", "--max-steps", "1",
             "--output-dir", str(Path(tmp) / "runs" / "r")],
            cwd=tmp, env=env, capture_output=True, text=True, timeout=600,
        )
        elapsed = time.monotonic() - start
    lines = result.stderr.strip().splitlines()
    return elapsed, result.returncode, lines[-1] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per endpoint; the median is printed")
    args = parser.parse_args()
    # Only this machine's own addresses: a closed port on the loopback interface.
    for name, url in (("closed port", f"http://127.0.0.1:{free_port()}"),):
        runs = [one_failure(url) for _ in range(args.repeat)]
        seconds = [r[0] for r in runs]
        print(f"{name:12s} median {statistics.median(seconds):5.1f} s (min {min(seconds):.1f}, max {max(seconds):.1f}), "
              f"exit {sorted({r[1] for r in runs})}: {runs[-1][2]}")


if __name__ == "__main__":
    main()
