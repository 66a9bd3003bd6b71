"""What acct's garbage-collector threshold saves: the CPU of a short `acct train`, in fresh processes.

    python benchmarks/cli_startup.py [--runs 7] [--json-out FILE]

Each run starts two processes one after the other, so that both see the same load:
`acct train --preset tiny --max-steps 2` as the console script runs it (acct.cli.main, with its
GC_FIRST_THRESHOLD), and the same command with Python's default first threshold put back. Most of
either is importing torch and transformers. Printed: the median and the smallest CPU time
(user + sys) of each, and the median of the per-run differences.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

from acct.cli import GC_FIRST_THRESHOLD  # importing acct.cli leaves the threshold alone; main() sets it

PYTHON_DEFAULT = gc.get_threshold()[0]  # this interpreter's own first threshold

RUN = """
import sys
import acct.cli
threshold = int(sys.argv.pop(1))
if threshold:
    acct.cli.GC_FIRST_THRESHOLD = threshold
acct.cli.main()
"""


def cpu_of(argv: list[str], env: dict[str, str]) -> float:
    """CPU seconds (user + sys) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cli_startup: {' '.join(argv[3:])} failed:\n{done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="Pairs of processes (default 7).")
    parser.add_argument("--json-out", type=Path, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    figures: dict[str, list[float]] = {"acct": [], "python default": []}
    with tempfile.TemporaryDirectory() as tmp:
        command = ["train", "--preset", "tiny", "--max-steps", "2", "--eval-every-n-steps", "2", "--device", "cpu",
                   "--output-dir", str(Path(tmp) / "run"), "--overwrite"]
        for _ in range(args.runs):
            figures["acct"].append(cpu_of([sys.executable, "-c", RUN, "0", *command], env))
            figures["python default"].append(cpu_of([sys.executable, "-c", RUN, str(PYTHON_DEFAULT), *command], env))
    saved = [b - a for a, b in zip(figures["acct"], figures["python default"])]
    summary = {
        "command": "acct train --preset tiny --max-steps 2 --device cpu",
        "runs": args.runs,
        "cpu_s": {name: {"median": round(median(v), 2), "min": round(min(v), 2)} for name, v in figures.items()},
        "thresholds": {"acct": GC_FIRST_THRESHOLD, "python default": PYTHON_DEFAULT},
        "median_saved_s": round(median(saved), 2),
    }
    for name, v in summary["cpu_s"].items():
        print(f"{name:>15} (first threshold {summary['thresholds'][name]}): CPU median {v['median']:.2f} s, "
              f"min {v['min']:.2f} s over {args.runs} processes")
    print(f"median of the per-run differences: {summary['median_saved_s']:.2f} s less with acct's threshold")
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
