"""How long `acct --help` takes, and what it imports: fresh processes, medians.

    python benchmarks/cli_help.py [--runs 9] [--against DIR] [--json-out FILE]

For each figure, --runs fresh processes: the wall and CPU (user + sys) time of `acct --help` and
`acct train --help`, of a bare interpreter, and the time `python -X importtime -c "import acct.cli"`
reports for acct.cli (cumulative: the interpreter's own start-up is left out); then whether
`acct --help` imported the settings models (acct.config, pydantic) or an engine library.

--against DIR measures another source tree too, e.g. the previous commit
(`git archive HEAD~1 | tar -x -C DIR`), through PYTHONPATH, its processes alternating with this
tree's so that both see the same load. The figures depend on the machine's load: only a before and
an after measured together compare.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

WATCHED = ("acct.config", "pydantic", "pydantic_settings", "yaml", "torch", "transformers", "datasets")

# `acct ARGS` as the console script runs it.
RUN_ACCT = """
from acct.cli import main
try:
    main()
except SystemExit as exc:
    if exc.code not in (0, None):
        raise
"""
# `acct --help`, then which of WATCHED it imported.
PROBE = """
import json, sys
sys.argv = ["acct", "--help"]
from acct.cli import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\n" + json.dumps({name: name in sys.modules for name in %r}) + "\\n")
""" % (WATCHED,)

FIGURES = {
    "acct --help": [sys.executable, "-c", RUN_ACCT, "--help"],
    "acct train --help": [sys.executable, "-c", RUN_ACCT, "train", "--help"],
    "python -c pass": [sys.executable, "-c", "pass"],
}


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall and CPU seconds of one fresh process, and its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    # Run from a neutral directory: `python -c` puts the working directory first on sys.path.
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed: {done.stderr.strip()[-500:]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, done.stderr


def import_seconds(stderr: str) -> float:
    line = next(line for line in stderr.splitlines() if re.search(r"\|\s+acct\.cli$", line))
    return int(line.split("|")[1]) / 1e6


def summary(values: list[float]) -> dict[str, Any]:
    return {"median_s": round(median(values), 4), "runs_s": [round(v, 4) for v in values]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh processes per figure (default 9)")
    parser.add_argument("--against", type=Path, help="another acct source tree to measure alongside (through PYTHONPATH)")
    parser.add_argument("--json-out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    base = {**os.environ, "COLUMNS": "100"}
    base.pop("PYTHONPATH", None)
    trees = {"this tree": base}
    if args.against is not None:
        trees[f"against {args.against}"] = {**base, "PYTHONPATH": str(args.against.resolve())}

    raw: dict[str, dict[str, list[float]]] = {tree: {} for tree in trees}
    for _ in range(args.runs):
        for name, cmd in FIGURES.items():
            for tree, env in trees.items():  # alternating: both trees see the same load
                wall, cpu, _ = timed(cmd, env)
                raw[tree].setdefault(f"{name} wall", []).append(wall)
                raw[tree].setdefault(f"{name} cpu", []).append(cpu)
        for tree, env in trees.items():
            _, _, stderr = timed([sys.executable, "-X", "importtime", "-c", "import acct.cli"], env)
            raw[tree].setdefault("import acct.cli (-X importtime)", []).append(import_seconds(stderr))

    result: dict[str, Any] = {"runs": args.runs, "load_average": os.getloadavg()[0]}
    for tree, env in trees.items():
        modules = json.loads(timed([sys.executable, "-c", PROBE], env)[2].strip().splitlines()[-1])
        result[tree] = {name: summary(values) for name, values in raw[tree].items()}
        result[tree]["acct --help imports"] = [name for name, yes in modules.items() if yes]
        print(f"{tree}:")
        for name, figure in result[tree].items():
            if name != "acct --help imports":
                print(f"  {name}: median {figure['median_s']:.3f} s")
        print(f"  acct --help imports: {', '.join(result[tree]['acct --help imports']) or 'none of ' + ', '.join(WATCHED)}")
    print(f"{args.runs} fresh processes per figure; 1-minute load average {result['load_average']:.1f}")
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
