#!/usr/bin/env python
"""Cost per optimizer step of gradient surgery (`loss.gradient`: mean, pcgrad, upgrad).

In one process, one `acct.engine.train` run per gradient mode, same settings and seed, take
turns one log window at a time (A B C, B C A, ...), so that a busy machine slows them alike. Each
window's `StepLogged` event gives questions/s; ms/step is the batch's questions over it. The first
window of each run (warm-up) is dropped; figures are medians, and ratios are medians of the
per-round ratios to `mean`.

    python benchmarks/gradient_surgery.py                      # tiny preset, CPU
    python benchmarks/gradient_surgery.py --lambda-contrastive 0 --steps 120

pcgrad and upgrad need torchjd (pip install 'acct[mtl]'). Figures are printed, never asserted;
BENCHMARKS.md holds the measured ones.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

MODES = ("mean", "pcgrad", "upgrad")


def _loadavg() -> str | None:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=90, help="optimizer steps per mode")
    parser.add_argument("--window", type=int, default=10, help="steps per log window (one measurement)")
    parser.add_argument("--lambda-contrastive", type=float, default=None,
                        help="override the preset's InfoNCE weight (0: no contrastive objective)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from acct import engine
    from acct.config.layers import nest
    from acct.config.resolve import resolve_train

    load_start = _loadavg()
    root = Path(tempfile.mkdtemp(prefix="acct-surgery-bench-"))
    runs = {}
    for mode in MODES:
        flags = {"output_dir": root / mode, "optim.max_steps": args.steps, "eval_every_n_steps": args.steps,
                 "log_every_n_steps": args.window, "device": args.device, "loss.gradient": mode,
                 "curriculum.strategy": "uniform"}
        if args.lambda_contrastive is not None:
            flags["loss.lambda_contrastive"] = args.lambda_contrastive
        settings = resolve_train(nest(flags), preset="tiny")
        runs[mode] = engine.train(settings)
    questions = settings.batch.questions_per_batch * settings.batch.grad_accum_steps

    rates: dict[str, list[float]] = {m: [] for m in MODES}
    rounds = args.steps // args.window
    for r in range(rounds):
        order = MODES[r % len(MODES):] + MODES[: r % len(MODES)]
        for mode in order:
            for event in runs[mode]:
                if isinstance(event, engine.StepLogged):
                    rates[mode].append(event.questions_per_s)
                    break
    for run in runs.values():
        for _ in run:  # validation and the final checkpoint
            pass

    ms = {m: [1000 * questions / q for q in rates[m][1:]] for m in MODES}
    result = {
        "device": args.device,
        "load_average": {"start": load_start, "end": _loadavg()},
        "torch_threads": torch.get_num_threads(),
        "questions_per_step": questions,
        "lambda_contrastive": settings.loss.lambda_contrastive,
        "windows": len(ms["mean"]),
        "ms_per_step": {m: statistics.median(ms[m]) for m in MODES},
        "over_mean": {m: statistics.median([a / b for a, b in zip(ms[m], ms["mean"])]) for m in MODES},
    }
    objectives = f"up to {settings.batch.tasks_per_batch} tasks" + (
        " + InfoNCE" if settings.loss.lambda_contrastive > 0 else "")
    print(f"tiny preset on {args.device}, {questions} questions/step, objectives: {objectives}; "
          f"medians of {result['windows']} windows of {args.window} steps; "
          f"{result['torch_threads']} thread(s), load {result['load_average']['start']} -> {result['load_average']['end']}")
    for m in MODES:
        print(f"  {m:7s} {result['ms_per_step'][m]:8.1f} ms/step   x{result['over_mean'][m]:.2f} of mean")
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
