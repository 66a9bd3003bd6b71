"""How long `acct --help` takes, and what it imports: fresh processes, medians.

    python benchmarks/cli_help.py [--runs 9] [--json-out FILE]

Prints, over --runs fresh processes each: the wall time of `acct --help`, `acct train --help` and
a bare interpreter; the time `python -X importtime -c "import acct.cli"` reports for acct.cli
(cumulative, so the interpreter's own start-up is left out); and whether `acct --help` imported
the settings models (acct.config, pydantic) or an engine library (torch, transformers, datasets).
The figures depend on the machine's load: compare a before and an after measured back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

WATCHED = ("acct.config", "pydantic", "pydantic_settings", "yaml", "torch", "transformers", "datasets")

# `acct --help` as the console script runs it, with sys.modules read once the help is printed.
PROBE = """
import json, sys
from acct.cli import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write(json.dumps({name: name in sys.modules for name in %r}) + "\\n")
""" % (WATCHED,)


def acct_command() -> list[str]:
    exe = shutil.which("acct")
    return [exe] if exe else [sys.executable, "-m", "acct"]


def wall(cmd: list[str], runs: int, env: dict[str, str]) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    return {"median_s": round(median(times), 4), "runs_s": [round(t, 4) for t in times]}


def import_time(runs: int, env: dict[str, str]) -> dict[str, Any]:
    """Cumulative microseconds -X importtime gives the acct.cli line, as seconds."""
    times = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import acct.cli"], capture_output=True,
                              text=True, env=env)
        line = next(l for l in done.stderr.splitlines() if re.search(r"\|\s+acct\.cli$", l))
        times.append(int(line.split("|")[1]) / 1e6)
    return {"median_s": round(median(times), 4), "runs_s": [round(t, 4) for t in times]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh processes per figure (default 9)")
    parser.add_argument("--json-out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    env = {**os.environ, "COLUMNS": "100"}
    cmd = acct_command()
    probe = subprocess.run([sys.executable, "-c", PROBE, "--help"], capture_output=True, text=True, env=env)
    result = {
        "acct --help": wall(cmd + ["--help"], args.runs, env),
        "acct train --help": wall(cmd + ["train", "--help"], args.runs, env),
        "python -c pass": wall([sys.executable, "-c", "pass"], args.runs, env),
        "import acct.cli (-X importtime)": import_time(args.runs, env),
        "acct --help imports": json.loads(probe.stderr.strip().splitlines()[-1]),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "runs": args.runs,
    }
    for name in ("acct --help", "acct train --help", "python -c pass", "import acct.cli (-X importtime)"):
        print(f"{name}: median {result[name]['median_s']:.3f} s over {args.runs} fresh processes")
    loaded = [name for name, yes in result["acct --help imports"].items() if yes]
    print(f"acct --help imports: {', '.join(loaded) or 'none of ' + ', '.join(WATCHED)}")
    print(f"1-minute load average: {result['load_average']}")
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
