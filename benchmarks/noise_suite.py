#!/usr/bin/env python
"""learning_progress against difficulty and proportional sampling on a suite with an unlearnable task.

The synthetic suite with imbalanced task sizes (even_number 120 questions, animal_word 80, the
others 40) and `random_answer` (--noise-size questions), whose gold choice is random. Every strategy trains through the
real engine (`acct.engine.train`) on seeds 0-2 with the same budget; the script prints, per
strategy and seed, the final curriculum weight of the noise task and the final validation
accuracy on the learnable tasks, and writes them as JSON.

What it checks (printed as PASS / FAIL, never raised): on every seed learning_progress gives the
noise task less weight than difficulty does, and its mean accuracy on the learnable tasks is
within 5 points of proportional sampling's.

    python benchmarks/noise_suite.py [--steps 400] [--noise-size 40] [--json-out noise.json]

About 10 CPU-minutes at the default budget on a 2-core machine (nine tiny runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

NOISE = "random_answer"
SEEDS = (0, 1, 2)
STRATEGIES = ("learning_progress", "difficulty", "proportional")


def settings_for(run_dir: Path, strategy: str, seed: int, steps: int, noise_size: int):
    from acct.config.layers import PRESETS, deep_merge
    from acct.config.train import TrainSettings

    layer = {
        "output_dir": str(run_dir), "seed": seed, "device": "cpu", "eval_every_n_steps": steps // 2,
        "data": {"synthetic_examples_per_task": 40,
                 "options": {"task_sizes": {"even_number": 120, "animal_word": 80, NOISE: noise_size},
                             "noise_task": True}},
        "model": {"tiny": {"hidden_size": 32, "num_hidden_layers": 1, "intermediate_size": 64, "vocab_size": 300}},
        "optim": {"max_steps": steps},
        "curriculum": {"strategy": strategy, "update_every_n_steps": 10, "warmup_epochs": 0.5},
    }
    return TrainSettings.model_validate(deep_merge(PRESETS["tiny"], layer))


def final_numbers(run_dir: Path) -> tuple[dict[str, float], dict[str, float]]:
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    weights = [e["weights"] for e in events if e["event"] == "curriculum"][-1]
    tasks = [e["tasks"] for e in events if e["event"] == "validation"][-1]
    return weights, {t: r["accuracy"] for t, r in tasks.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="Optimizer steps of every run.")
    parser.add_argument("--noise-size", type=int, default=40,
                        help="Questions of the noise task. A small one is memorised within the budget: its training "
                             "error falls and its loss keeps changing, so it no longer looks unlearnable.")
    parser.add_argument("--json-out", type=Path, help="Write the figures here as JSON.")
    args = parser.parse_args()
    from acct import engine

    rows = []
    with tempfile.TemporaryDirectory(prefix="acct-noise-") as tmp:
        for strategy in STRATEGIES:
            for seed in SEEDS:
                run_dir = Path(tmp) / f"{strategy}-{seed}"
                start = time.perf_counter()
                for _ in engine.train(settings_for(run_dir, strategy, seed, args.steps, args.noise_size)):
                    pass
                weights, accs = final_numbers(run_dir)
                learnable = [a for t, a in accs.items() if t != NOISE]
                row = {"strategy": strategy, "seed": seed, "noise_weight": weights[NOISE],
                       "learnable_accuracy": sum(learnable) / len(learnable), "noise_accuracy": accs.get(NOISE),
                       "seconds": round(time.perf_counter() - start, 1)}
                rows.append(row)
                print(f"{strategy:18s} seed {seed}: noise-task weight {row['noise_weight']:.4f}, learnable-task "
                      f"accuracy {100 * row['learnable_accuracy']:.2f}% ({row['seconds']} s)", flush=True)
    by = {(r["strategy"], r["seed"]): r for r in rows}
    below = [by["learning_progress", s]["noise_weight"] < by["difficulty", s]["noise_weight"] for s in SEEDS]
    mean = {st: sum(by[st, s]["learnable_accuracy"] for s in SEEDS) / len(SEEDS) for st in STRATEGIES}
    keeps = mean["learning_progress"] >= mean["proportional"] - 0.05
    print(f"{'PASS' if all(below) else 'FAIL'}: learning_progress's noise-task weight below difficulty's on seeds "
          f"{[s for s, b in zip(SEEDS, below) if b]} of {list(SEEDS)}")
    print(f"{'PASS' if keeps else 'FAIL'}: learnable-task accuracy, mean over seeds: learning_progress "
          f"{100 * mean['learning_progress']:.2f}%, proportional {100 * mean['proportional']:.2f}%, difficulty "
          f"{100 * mean['difficulty']:.2f}% (tolerance 5 points)")
    if args.json_out:
        args.json_out.write_text(json.dumps({"steps": args.steps, "noise_size": args.noise_size, "runs": rows, "mean_learnable_accuracy": mean,
                                             "noise_weight_below_difficulty": below}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
