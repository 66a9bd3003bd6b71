#!/usr/bin/env python
"""Throughput of acct against a plain PyTorch multiple-choice loop, measured side by side.

In one process, on the same model architecture, data, batch shape and precision, three
trainers and an evaluation pass take turns (A B C D, B C D A, ...) one log window at a time:

  plain          a multiple-choice fine-tuning loop written the obvious way: AutoModel + a
                 linear scorer over each (question, choice) pair, AdamW, batches pre-tokenised
                 once and padded per batch by a DataLoader's collate_fn (as in the Hugging Face
                 multiple-choice tutorial);
  acct_baseline  acct.engine.train with loss.lambda_contrastive=0 and curriculum.strategy=uniform;
  acct_full      acct.engine.train with loss.lambda_contrastive=0.3 and uncertainty_gradient.

  eval           one acct.engine.predict_encoded pass over the held-out questions.

acct is measured through its real code path: `acct.engine.train(settings)` is a generator
and its `StepLogged` events carry questions/s and tokens/s of each log window. Validation is
pushed beyond the measured steps; the first window of each runner (warm-up) is dropped;
figures are medians, ratios are medians of per-round ratios (wall time, and CPU time too).

Also measured: `acct --help` / `acct train --help` in fresh processes, whether `import acct.cli`
loads torch, the tokenisation cache (cold vs hit), collate against the row-by-row reference,
padding efficiency of several batchings, MFU against a measured matmul peak, and `acct predict`
latency (cold, and warm per question in file mode; a cold `load_run` + one prediction when the
command does not exist).

    python benchmarks/throughput.py --size tiny --json-out bench-tiny.json
    python benchmarks/throughput.py --size tiny --short          # CI: ~35 s on 2 cores
    python benchmarks/throughput.py --size base --device cuda    # DeBERTa-v3-base, bf16

Figures are printed, never asserted. BENCHMARKS.md holds the measured figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared"

TARGETS = {
    "acct_full_over_plain": ">= 1.0",
    "overhead_full_over_baseline": "<= 3%",
    "acct_help_s": "<= 0.4",
    "eval_over_train": ">= 3.0",
}


def log(msg: str = "") -> None:
    print(msg, flush=True)


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


# -- machine ------------------------------------------------------------------------------------


def _loadavg() -> str | None:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return None


def machine_info(device: str) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "loadavg_at_start": _loadavg(),
        "cpu": cpu,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "device": device,
        "cuda_available": torch.cuda.is_available(),
    }
    with contextlib.suppress(Exception):
        import transformers

        info["transformers"] = transformers.__version__
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# -- settings -------------------------------------------------------------------------------------


@dataclass
class Size:
    name: str
    preset: str | None
    flags: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def size_flags(args: argparse.Namespace) -> Size:
    """Settings shared by the three trainers (model, data, batch shape, precision)."""
    big = 10**9  # validation and the end of the schedule stay beyond the measured steps
    common = {
        "device": args.device,
        "precision": args.precision,
        "optim.max_steps": big,
        "eval_every_n_steps": big,
        "log_every_n_steps": args.window_steps,
        "seed": 0,
    }
    for flag, dotted in (("max_length", "model.max_length"), ("tasks_per_batch", "batch.tasks_per_batch"),
                         ("examples_per_task", "batch.examples_per_task")):
        if getattr(args, flag) is not None:
            common[dotted] = getattr(args, flag)
    if args.size == "tiny":
        return Size("tiny", "tiny", {**common, "curriculum.warmup_epochs": 0.0})
    shared = Path(args.shared)
    config_dir = Path(args.model) if args.model else shared / "models" / "deberta-v3-base"
    if not (config_dir / "config.json").is_file():
        raise SystemExit(f"--size base needs a model directory with config.json; none at {config_dir} (use --model)")
    notes = []
    tok_dir = shared / "tokenizers" / "deberta-v3-base"
    flags = {
        "model.max_length": 256,
        "batch.tasks_per_batch": 4,
        "batch.examples_per_task": 4,
        **common,
        "model.name_or_path": str(config_dir),
        "curriculum.warmup_epochs": 0.0,
        "curriculum.update_every_n_steps": max(1, args.window_steps),
    }
    if args.shape_note:
        notes.append(args.shape_note)
    if tok_dir.is_dir():
        flags["model.tokenizer"] = str(tok_dir)
    else:
        flags["model.tokenizer"] = "tiny"
        notes.append(f"no DeBERTa-v3 tokenizer at {tok_dir}: a tiny WordPiece tokenizer was used")
    mmlu = shared / "data" / "mmlu"
    if (mmlu / "val").is_dir():
        flags.update({"data.source": "csv", "data.data_dir": str(mmlu)})
    else:
        flags["data.source"] = "synthetic"
        notes.append(f"no MMLU CSVs at {mmlu}: the synthetic suite was used")
    return Size("base", None, flags, notes)


def resolve(size: Size, extra: dict[str, Any]):
    from acct.config.layers import nest
    from acct.config.resolve import resolve_train

    return resolve_train(nest({**size.flags, **extra}), preset=size.preset)


BASELINE = {"loss.lambda_contrastive": 0.0, "curriculum.strategy": "uniform"}
FULL = {"loss.lambda_contrastive": 0.3, "curriculum.strategy": "uncertainty_gradient"}


# -- shared data for the plain loop ---------------------------------------------------------------


@dataclass
class Prepared:
    """What acct's engine derives from the settings, rebuilt here for the plain loop and the eval figure."""

    settings: Any
    split: Any
    tasks: list[str]
    tokenizer: Any
    device: Any
    precision: str
    seconds: dict[str, float]


def prepare(settings) -> Prepared:
    from acct import engine
    from acct.config.fields import TINY
    from acct.data.tiny_tokenizer import train_tiny_tokenizer
    from acct.data.tokenize import example_texts, load_tokenizer

    seconds: dict[str, float] = {}
    device, precision = engine.resolve_device(settings.device, settings.precision)
    engine.seed_everything(settings.seed)
    t = time.perf_counter()
    source = engine.load_source(settings.data, settings.seed)
    split = engine.make_split(source, settings.data, settings.seed)
    seconds["load_data"] = time.perf_counter() - t
    t = time.perf_counter()
    if settings.model.tokenizer == TINY:
        tokenizer = train_tiny_tokenizer(example_texts(split.train), settings.model.tiny.vocab_size)
    else:
        tokenizer = load_tokenizer(settings.model.tokenizer or settings.model.name_or_path)
    seconds["load_tokenizer"] = time.perf_counter() - t
    return Prepared(settings, split, split.tasks(), tokenizer, device, precision, seconds)


# -- the plain loop -------------------------------------------------------------------------------


def plain_trainer(prep: Prepared, window_steps: int) -> Iterator[dict[str, float]]:
    """A multiple-choice fine-tuning loop as a user would write it; yields one figure per window.

    Written from the Hugging Face multiple-choice recipe: tokenise (question, choice) pairs once,
    pad each batch in the DataLoader's collate_fn, AutoModel + nn.Linear on the first token,
    cross-entropy over the choices, AdamW with a linear schedule, gradient clipping, and the
    running loss read with .item() as every progress bar does.
    """
    import torch
    from torch import nn
    from torch.utils.data import DataLoader
    from transformers import AutoConfig, AutoModel, get_linear_schedule_with_warmup

    from acct.config.fields import TINY
    from acct.model.encoder import tiny_encoder_config

    settings, tokenizer, device = prep.settings, prep.tokenizer, prep.device
    max_length = settings.model.max_length

    # Tokenise once, up front.
    train = prep.split.train
    firsts = [ex.question for ex in train for _ in ex.choices]
    seconds = [c for ex in train for c in ex.choices]
    # truncation=True (longest first), as in the tutorial: "only_first" raises on the MMLU pairs whose
    # choice alone exceeds max_length. Sequence lengths are the same as acct's for all other pairs.
    enc = tokenizer(firsts, seconds, truncation=True, max_length=max_length, return_token_type_ids=False)
    features, pos = [], 0
    for ex in train:
        k = len(ex.choices)
        features.append({"input_ids": enc["input_ids"][pos : pos + k], "label": ex.answer})
        pos += k

    def collate_fn(batch):
        flat = [{"input_ids": ids} for f in batch for ids in f["input_ids"]]
        padded = tokenizer.pad(flat, padding=True, return_tensors="pt")
        num_choices = len(batch[0]["input_ids"])
        return {
            "input_ids": padded["input_ids"],
            "attention_mask": padded["attention_mask"],
            "labels": torch.tensor([f["label"] for f in batch]),
            "num_choices": num_choices,
        }

    loader = DataLoader(
        features, batch_size=settings.batch.questions_per_batch, shuffle=True, collate_fn=collate_fn, drop_last=True
    )

    if settings.model.name_or_path == TINY:
        config = tiny_encoder_config(settings.model, len(tokenizer))
    else:
        config = AutoConfig.from_pretrained(settings.model.name_or_path)

    class MultipleChoice(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_config(config)
            self.scorer = nn.Linear(config.hidden_size, 1)

        def forward(self, input_ids, attention_mask, num_choices):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return self.scorer(hidden[:, 0]).view(-1, num_choices)

    model = MultipleChoice().to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.optim.lr, weight_decay=settings.optim.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=100, num_training_steps=10**9)
    use_amp = prep.precision in ("bf16", "fp16") and device.type == "cuda"
    amp_dtype = torch.bfloat16 if prep.precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and prep.precision == "fp16")

    def batches():  # epoch after epoch, reshuffled each time
        while True:
            yield from loader

    stream = batches()
    running_loss = 0.0
    while True:
        questions = tokens = 0
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(window_steps):
            batch = next(stream)
            questions += batch["labels"].shape[0]
            tokens += int(batch["attention_mask"].sum())
            input_ids = batch["input_ids"].to(device)
            attention_mask = batch["attention_mask"].to(device)
            labels = batch["labels"].to(device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                logits = model(input_ids, attention_mask, batch["num_choices"])
            loss = nn.functional.cross_entropy(logits.float(), labels)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad()
            running_loss += loss.item()
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        yield {"questions_per_s": questions / elapsed, "tokens_per_s": tokens / elapsed, "wall_s": elapsed,
               "questions_per_cpu_s": questions / cpu}


# -- acct through its engine ----------------------------------------------------------------------


def acct_trainer(settings) -> Iterator[dict[str, float]]:
    """Drive acct.engine.train; yield the figures of each StepLogged window (the engine's own, wall clock)."""
    from acct.engine import StepLogged, train

    questions = settings.batch.questions_per_batch * settings.batch.grad_accum_steps * settings.log_every_n_steps
    events = train(settings)
    start, cpu_start = time.perf_counter(), time.process_time()
    for event in events:
        if isinstance(event, StepLogged):
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            yield {"questions_per_s": event.questions_per_s, "tokens_per_s": event.tokens_per_s, "wall_s": wall,
                   "questions_per_cpu_s": questions / cpu}
            start, cpu_start = time.perf_counter(), time.process_time()


# -- side by side ---------------------------------------------------------------------------------


def measure_training(args, size: Size, workdir: Path, result: dict[str, Any]) -> Prepared:
    log(f"== training throughput: size {size.name}, {args.window_steps} steps per window, "
        f"{args.warmup_windows} warm-up + {args.windows} measured windows per trainer")
    baseline = resolve(size, {**BASELINE, "output_dir": str(workdir / "acct_baseline")})
    full = resolve(size, {**FULL, "output_dir": str(workdir / "acct_full")})
    t = time.perf_counter()
    prep = prepare(baseline)
    result["setup_s"] = {**prep.seconds}
    log(f"   data + tokenizer for the plain loop: {time.perf_counter() - t:.1f} s; "
        f"{len(prep.split.train)} training questions, {len(prep.tasks)} tasks, device {prep.device}, precision {prep.precision}")

    trainers: dict[str, Iterator[dict[str, float]]] = {}
    t = time.perf_counter()
    trainers["plain"] = plain_trainer(prep, args.window_steps)
    trainers["acct_baseline"] = acct_trainer(baseline)
    trainers["acct_full"] = acct_trainer(full)
    with_eval = "eval" not in args.skip
    if with_eval:  # evaluation passes take their turn too, so eval/train is measured under the same conditions
        trainers["eval"] = eval_runner(args, prep)
    runners = list(trainers)
    names = [n for n in runners if n != "eval"]
    windows: dict[str, list[dict[str, float]]] = {n: [] for n in runners}
    warm: dict[str, list[dict[str, float]]] = {n: [] for n in runners}
    for w in range(args.warmup_windows):
        for n in runners:
            warm[n].append(next(trainers[n]))
    result["setup_s"]["first_windows_incl_setup"] = time.perf_counter() - t
    for r in range(args.windows):
        k = r % len(runners)
        for n in runners[k:] + runners[:k]:  # rotate so no runner always goes first
            windows[n].append(next(trainers[n]))
        log("   round %d: %s" % (r + 1, ", ".join(f"{n} {windows[n][-1]['questions_per_s']:.1f} q/s" for n in runners)))
    for gen in trainers.values():
        gen.close()

    figures: dict[str, Any] = {}
    for n in names:
        q = [w["questions_per_s"] for w in windows[n]]
        tk = [w["tokens_per_s"] for w in windows[n]]
        figures[n] = {
            "questions_per_s": median(q),
            "tokens_per_s": median(tk),
            "questions_per_s_windows": q,
            "tokens_per_s_windows": tk,
            "window_wall_s": [w["wall_s"] for w in windows[n]],
            "questions_per_cpu_s": median([w["questions_per_cpu_s"] for w in windows[n]]),
            "warmup_questions_per_s": [w["questions_per_s"] for w in warm[n]],
            "step_ms": 1000.0 * median([w["wall_s"] for w in windows[n]]) / args.window_steps,
        }
    # Ratios per round (the three windows of a round ran back to back) and their median: robust
    # to a machine whose speed drifts. The ratio of the medians is kept as a cross-check.
    def per_round(num: str, den: str, key: str = "questions_per_s") -> list[float]:
        return [windows[num][i][key] / windows[den][i][key] for i in range(args.windows)]

    full_plain, base_plain = per_round("acct_full", "plain"), per_round("acct_baseline", "plain")
    full_base = per_round("acct_full", "acct_baseline")
    p, bq, fq = (figures[n]["questions_per_s"] for n in names)
    ratios = {
        "acct_baseline_over_plain": median(base_plain),
        "acct_full_over_plain": median(full_plain),
        # extra step time of full as a fraction of baseline's step time
        "overhead_full_over_baseline": median([1.0 / x - 1.0 for x in full_base]),
        "per_round": {
            "acct_baseline_over_plain": base_plain,
            "acct_full_over_plain": full_plain,
            "acct_full_over_acct_baseline": full_base,
        },
        "of_medians": {
            "acct_baseline_over_plain": bq / p,
            "acct_full_over_plain": fq / p,
            "overhead_full_over_baseline": bq / fq - 1.0,
        },
        "tokens_acct_full_over_plain": figures["acct_full"]["tokens_per_s"] / figures["plain"]["tokens_per_s"],
        # The same ratios from CPU time (time.process_time) instead of wall time: on a CPU shared with
        # other jobs they do not count the time this process waited for a core.
        "cpu_time": {
            "acct_baseline_over_plain": median(per_round("acct_baseline", "plain", "questions_per_cpu_s")),
            "acct_full_over_plain": median(per_round("acct_full", "plain", "questions_per_cpu_s")),
            "overhead_full_over_baseline": median(
                [1.0 / x - 1.0 for x in per_round("acct_full", "acct_baseline", "questions_per_cpu_s")]
            ),
        },
    }
    result["training"] = figures
    result["ratios"] = ratios
    if with_eval:
        ev = [w["questions_per_s"] for w in windows["eval"]]
        eval_train = per_round("eval", "acct_full")
        result["eval"] = {
            "questions": windows["eval"][0]["questions"],
            "eval_batch_size": full.batch.eval_batch_size,
            "questions_per_s": median(ev),
            "questions_per_s_windows": ev,
            "train_questions_per_s_acct_full": fq,
            "eval_over_train": median(eval_train),
            "eval_over_train_per_round": eval_train,
            "eval_over_train_cpu_time": median(per_round("eval", "acct_full", "questions_per_cpu_s")),
        }
    om = ratios["of_medians"]
    log("")
    ct = ratios["cpu_time"]
    log(f"   {'trainer':<15}{'questions/s':>13}{'tokens/s':>12}{'ms/step':>10}{'q/CPU-s':>10}   (medians of {args.windows} windows)")
    for n in names:
        fg = figures[n]
        log(f"   {n:<15}{fg['questions_per_s']:>13.1f}{fg['tokens_per_s']:>12.0f}{fg['step_ms']:>10.1f}{fg['questions_per_cpu_s']:>10.1f}")
    log("   ratios: median over rounds, wall time [ratio of the medians] {median over rounds, CPU time}")
    log(f"   acct_baseline / plain   {ratios['acct_baseline_over_plain']:.3f}  [{om['acct_baseline_over_plain']:.3f}]"
        f"  {{{ct['acct_baseline_over_plain']:.3f}}}")
    log(f"   acct_full / plain       {ratios['acct_full_over_plain']:.3f}  [{om['acct_full_over_plain']:.3f}]"
        f"  {{{ct['acct_full_over_plain']:.3f}}}   target {TARGETS['acct_full_over_plain']}")
    log(f"   overhead full/baseline  {100 * ratios['overhead_full_over_baseline']:+.1f}%  "
        f"[{100 * om['overhead_full_over_baseline']:+.1f}%]  {{{100 * ct['overhead_full_over_baseline']:+.1f}%}}"
        f"   target {TARGETS['overhead_full_over_baseline']}")
    if with_eval:
        e = result["eval"]
        log(f"== evaluation: predict_encoded {e['questions_per_s']:.1f} q/s (batch {e['eval_batch_size']}, {e['questions']} "
            f"questions) vs training (acct_full) {fq:.1f} q/s: {e['eval_over_train']:.2f}x, median over rounds "
            f"{{CPU time {e['eval_over_train_cpu_time']:.2f}x}} (target {TARGETS['eval_over_train']})")
    return prep


def matmul_peak(device, precision: str) -> tuple[float, str]:
    """Best FLOP/s of a square matmul in the training precision (bf16/fp16 on CUDA, fp32 on a CPU)."""
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    if device.type != "cuda":
        dtype = torch.float32  # CPU runs are fp32 (autocast is off there)
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(10 if device.type == "cuda" else 5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(5):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t) / 5)
    return 2 * n**3 / best, str(dtype).replace("torch.", "")


def measure_mfu(prep: Prepared, result: dict[str, Any]) -> None:
    """Model FLOPs utilisation: 6 x (non-embedding parameters) x (real tokens/s) over the matmul peak.

    6 * N * T counts the dense layers' forward and backward only (attention scores, DeBERTa's
    relative-position terms and padding are left out), so it is a lower bound.
    """
    import torch
    from transformers import AutoConfig, AutoModel

    from acct.config.fields import TINY
    from acct.model.encoder import tiny_encoder_config

    settings = prep.settings
    if settings.model.name_or_path == TINY:
        config = tiny_encoder_config(settings.model, len(prep.tokenizer))
    else:
        config = AutoConfig.from_pretrained(settings.model.name_or_path)
    with torch.device("meta"):
        encoder = AutoModel.from_config(config)
    params = sum(p.numel() for name, p in encoder.named_parameters() if "word_embeddings" not in name)
    peak, dtype = matmul_peak(prep.device, prep.precision)
    out: dict[str, Any] = {"non_embedding_parameters": params, "matmul_peak_flops": peak, "matmul_dtype": dtype}
    for n in ("plain", "acct_baseline", "acct_full"):
        achieved = 6 * params * result["training"][n]["tokens_per_s"]
        out[n] = {"model_flops_per_s": achieved, "mfu": achieved / peak}
    result["mfu"] = out
    log(f"== MFU (6 N T, N = {params / 1e6:.1f}M non-embedding parameters; {dtype} matmul peak {peak / 1e12:.2f} TFLOP/s): "
        + ", ".join(f"{n} {100 * out[n]['mfu']:.1f}%" for n in ("plain", "acct_baseline", "acct_full")))


def collate_per_row(encoded, indices, pad_id):
    """acct's collate before this benchmark existed: one torch.tensor per row (kept as a reference)."""
    import torch

    from acct.data.tokenize import Batch

    seqs = [s for i in indices for s in encoded.sequences[i]]
    counts = [len(encoded.sequences[i]) for i in indices]
    longest = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), longest), dtype=torch.long)
    for row, s in enumerate(seqs):
        input_ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
        attention_mask[row, : len(s)] = 1
    k_max = max(counts)
    counts_t = torch.tensor(counts)
    task_ids = torch.tensor([encoded.task_ids[i] for i in indices], dtype=torch.long)
    return Batch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        sequence_task_ids=task_ids.repeat_interleave(counts_t),
        choice_mask=torch.arange(k_max)[None, :] < counts_t[:, None],
        labels=torch.tensor([encoded.answers[i] for i in indices], dtype=torch.long),
        task_ids=task_ids,
        num_tokens=sum(len(s) for s in seqs),
    )


# -- tokenisation cache ---------------------------------------------------------------------------


def measure_tokenize(prep: Prepared, workdir: Path, result: dict[str, Any]) -> None:
    from acct.data import tokenize

    examples = prep.split.train
    task_index = {t: i for i, t in enumerate(prep.tasks)}
    max_length = prep.settings.model.max_length
    out: dict[str, Any] = {"examples": len(examples)}
    t = time.perf_counter()
    plain = tokenize.encode_examples(prep.tokenizer, examples, task_index, max_length)
    out["encode_s"] = time.perf_counter() - t
    if hasattr(tokenize, "encode_examples_cached"):
        cache = workdir / "token-cache"
        t = time.perf_counter()
        tokenize.encode_examples_cached(prep.tokenizer, examples, task_index, max_length, cache)
        out["cache_miss_s"] = time.perf_counter() - t
        hits = []
        for _ in range(3):
            t = time.perf_counter()
            again = tokenize.encode_examples_cached(prep.tokenizer, examples, task_index, max_length, cache)
            hits.append(time.perf_counter() - t)
        out["cache_hit_s"] = median(hits)
        out["cache_hit_identical"] = again.sequences == plain.sequences and again.task_ids == plain.task_ids
    # collate: per-batch cost of building the padded tensors, against the per-row reference
    from acct.data.batching import TaskBatchSampler
    from acct.curriculum.weights import uniform_weights

    bs = prep.settings.batch
    sampler = TaskBatchSampler(plain.task_ids, len(prep.tasks), bs.tasks_per_batch, bs.examples_per_task, seed=0)
    weights = uniform_weights(len(prep.tasks))
    batches = [sampler.batch(step, weights) for step in range(100)]
    pad_id = tokenize.pad_id(prep.tokenizer)
    for name, fn in (("collate", tokenize.collate), ("collate_per_row_reference", collate_per_row)):
        fn(plain, batches[0], pad_id)
        t = time.perf_counter()
        for b in batches:
            fn(plain, b, pad_id)
        out[f"{name}_ms_per_batch"] = 1000 * (time.perf_counter() - t) / len(batches)
    # padding: share of real tokens in the padded [N, L] input, by how batches are formed
    import numpy as np

    lengths = [len(s) for choices in plain.sequences for s in choices]
    first = np.cumsum([0] + [len(c) for c in plain.sequences])

    def efficiency(batch_list: list[list[int]]) -> float:
        real = padded = 0
        for b in batch_list:
            ls = [lengths[j] for i in b for j in range(first[i], first[i + 1])]
            real += sum(ls)
            padded += len(ls) * max(ls)
        return real / padded

    rng = np.random.default_rng(0)
    random_batches = [rng.choice(len(plain), bs.questions_per_batch, replace=False).tolist() for _ in range(100)]
    lens = tokenize.example_lengths(plain)
    by_length = TaskBatchSampler(plain.task_ids, len(prep.tasks), bs.tasks_per_batch, bs.examples_per_task, seed=0,
                                 lengths=lens)
    # Global length sorting ignores the task slots: the bound for any batching of these questions.
    by_width = np.argsort(lens, kind="stable")
    grouped = [by_width[i : i + bs.questions_per_batch].tolist() for i in range(0, len(by_width), bs.questions_per_batch)]
    out["padding_efficiency"] = {
        "random_batches (plain loop)": efficiency(random_batches),
        "acct_task_slots": efficiency(batches),
        "acct_task_slots_group_by_length (acct default)": efficiency([by_length.batch(s, weights) for s in range(100)]),
        "global_length_sort (bound)": efficiency(grouped),  # every batch: the first ones are the shortest
    }
    result["tokenize"] = out
    log(f"== tokenisation of {len(examples)} training questions: encode {out['encode_s']:.2f} s"
        + (f", cache miss {out['cache_miss_s']:.2f} s, cache hit {out['cache_hit_s']:.3f} s"
           f" (identical: {out['cache_hit_identical']})" if "cache_hit_s" in out else "")
        + f"; collate {out['collate_ms_per_batch']:.3f} ms per batch (per-row reference "
        f"{out['collate_per_row_reference_ms_per_batch']:.3f} ms)")
    log("   real tokens / padded tokens: " + ", ".join(f"{k} {v:.2f}" for k, v in out["padding_efficiency"].items()))


# -- evaluation and prediction --------------------------------------------------------------------


def eval_runner(args, prep: Prepared) -> Iterator[dict[str, float]]:
    """One `acct.engine.predict_encoded` pass over held-out questions per window, same architecture as training."""
    import torch

    from acct import engine
    from acct.data import tokenize
    from acct.model.encoder import HeadConfig, MultipleChoiceModel, build_encoder

    settings = prep.settings
    examples = prep.split.val + prep.split.test
    if args.eval_questions:
        examples = examples[: args.eval_questions]
    task_index = {t: i for i, t in enumerate(prep.tasks)}
    encoded = tokenize.encode_examples(prep.tokenizer, examples, task_index, settings.model.max_length)
    encoder, _ = build_encoder(settings.model, len(prep.tokenizer))
    head = HeadConfig(num_tasks=len(prep.tasks), projection_dim=settings.model.projection_dim, pooling=settings.model.pooling)
    model = MultipleChoiceModel(encoder, head, attention_backend=settings.model.attention, device=prep.device).to(prep.device)
    pad_id = tokenize.pad_id(prep.tokenizer)
    tokens = sum(len(s) for choices in encoded.sequences for s in choices)
    while True:
        if prep.device.type == "cuda":
            torch.cuda.synchronize()
        t, cpu_start = time.perf_counter(), time.process_time()
        engine.predict_encoded(
            model, encoded, device=prep.device, precision=prep.precision, batch_size=settings.batch.eval_batch_size, pad_id=pad_id
        )
        if prep.device.type == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu_start
        yield {"questions_per_s": len(encoded) / wall, "tokens_per_s": tokens / wall, "wall_s": wall, "questions": len(encoded),
               "questions_per_cpu_s": len(encoded) / cpu}


def acct_command() -> list[str]:
    exe = shutil.which("acct")
    return [exe] if exe else [sys.executable, "-m", "acct"]


def time_process(cmd: list[str], runs: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Wall time of `cmd` in fresh processes, and the CPU time (user + sys) they used."""
    import resource

    times, cpu, rc = [], [], 0
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        rc = rc or proc.returncode
    return {"median_s": median(times), "median_cpu_s": median(cpu), "runs_s": times, "returncode": rc, "command": " ".join(cmd)}


def measure_cli(args, result: dict[str, Any]) -> None:
    cmd = acct_command()
    env = {**os.environ, "COLUMNS": "100"}
    figures = {
        "acct --help": time_process(cmd + ["--help"], args.cli_runs, env),
        "acct train --help": time_process(cmd + ["train", "--help"], args.cli_runs, env),
        "python -c pass": time_process([sys.executable, "-c", "pass"], args.cli_runs, env),
    }
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, acct.cli; print(int('torch' in sys.modules), int('transformers' in sys.modules))"],
        capture_output=True, text=True, env=env,
    )
    torch_loaded, tf_loaded = (probe.stdout.split() + ["?", "?"])[:2]
    result["cli"] = {**figures, "import_acct_cli_loads_torch": torch_loaded == "1", "import_acct_cli_loads_transformers": tf_loaded == "1"}
    for name in ("acct --help", "acct train --help"):
        log(f"== {name}: median {figures[name]['median_s']:.3f} s wall, {figures[name]['median_cpu_s']:.3f} s CPU over "
            f"{args.cli_runs} fresh processes (target {TARGETS['acct_help_s']} s; bare interpreter "
            f"{figures['python -c pass']['median_s']:.3f} s)")
    log(f"   import acct.cli loads torch: {torch_loaded == '1'}, transformers: {tf_loaded == '1'}")


PREDICT_COLD = r"""
import sys, time
t0 = float(sys.argv[1])
from pathlib import Path
from acct import engine
from acct.data import Example
from acct.data.tokenize import encode_examples
run = engine.load_run(Path(sys.argv[2]), "best")
task = run.tasks[0]
ex = Example(question=sys.argv[3], choices=tuple(sys.argv[4:]), answer=0, task=task, uid="q")
enc = encode_examples(run.tokenizer, [ex], {t: i for i, t in enumerate(run.tasks)}, run.settings.model.max_length)
device, precision = engine.resolve_device("cpu", "auto")
preds, probs = engine.predict_encoded(run.model, enc, device=device, precision=precision, batch_size=1, pad_id=run.pad_id)
print(preds[0], time.time() - t0)
"""


def measure_predict(args, size: Size, workdir: Path, result: dict[str, Any]) -> None:
    """Latency from a saved run: `acct predict` cold (process start to answer) and warm (per question, file mode).

    Falls back to a cold `load_run` + one prediction when the command does not exist.
    """
    from acct import engine

    if size.name != "tiny":
        result["predict"] = {"skipped": "measured at size tiny only (a base checkpoint is ~0.7 GB plus optimizer state)"}
        log(f"== predict: {result['predict']['skipped']}")
        return
    run_dir = workdir / "predict-run"
    settings = resolve(size, {**FULL, "output_dir": str(run_dir), "optim.max_steps": 10, "eval_every_n_steps": 10})
    for _ in engine.train(settings):
        pass
    runs = 1 if args.short else args.cli_runs
    question, choices = "Which of these numbers fits?", ["3", "8", "5", "7"]
    cmd = acct_command()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)} if args.threads else None
    has_predict = subprocess.run(cmd + ["predict", "--help"], capture_output=True, text=True).returncode == 0
    out: dict[str, Any] = {"acct_predict_exists": has_predict, "threads": args.threads}
    if has_predict:
        single = cmd + ["predict", str(run_dir), "--question", question, "--task", "even_number", "--device", "cpu", "--choices", *choices]
        out["cold_single_question"] = time_process(single, runs, env)
        # warm: the difference between a file of many questions and a file of a few, per extra question
        split = engine.load_run_split(engine.load_run(run_dir, "best"))
        held_out = split.val + split.test
        # Enough questions that their time stands well above the noise of two cold starts.
        many = held_out * -(-4000 // len(held_out))
        sizes = (8, len(many))
        per_file = {}
        for n in sizes:
            path = workdir / f"questions-{n}.jsonl"
            with path.open("w", encoding="utf-8") as f:
                for ex in many[:n]:
                    f.write(json.dumps({"question": ex.question, "choices": list(ex.choices), "task": ex.task}) + "\n")
            file_cmd = cmd + ["predict", str(run_dir), "--input", str(path), "--output", str(workdir / f"out-{n}.jsonl"), "--device", "cpu"]
            per_file[n] = time_process(file_cmd, runs, env)
        small, large = sizes
        warm_ms = 1000 * (per_file[large]["median_s"] - per_file[small]["median_s"]) / (large - small)
        out["file_mode"] = {str(n): per_file[n] for n in sizes}
        out["warm_per_question_ms"] = warm_ms
        log(f"== acct predict, cold (process start to answer, one question): median "
            f"{out['cold_single_question']['median_s']:.2f} s wall, {out['cold_single_question']['median_cpu_s']:.2f} s CPU "
            f"(rc {out['cold_single_question']['returncode']})")
        log(f"   file mode: {small} questions {per_file[small]['median_s']:.2f} s, {large} questions "
            f"{per_file[large]['median_s']:.2f} s -> warm {warm_ms:.2f} ms per question")
    else:
        cold = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", PREDICT_COLD, str(time.time()), str(run_dir), question, *choices],
                           capture_output=True, text=True, check=True, env=env)
            cold.append(time.perf_counter() - t)
        out["cold_load_run_plus_one_prediction_s"] = median(cold)
        log(f"== acct predict does not exist yet; cold load_run + one prediction in a fresh process: "
            f"median {out['cold_load_run_plus_one_prediction_s']:.2f} s")
    result["predict"] = out


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=("tiny", "base"), default="tiny",
                   help="tiny: synthetic suite, tiny DebertaV2 (the 'tiny' preset); base: DeBERTa-v3-base architecture "
                   "(random weights) on the MMLU CSVs in --shared")
    p.add_argument("--short", action="store_true", help="CI mode: few windows, few fresh processes (< 60 s at tiny on 2 cores)")
    p.add_argument("--json-out", type=Path, help="write every figure to this JSON file")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto", help="auto: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--windows", type=int, help="measured windows per trainer (default 15 tiny, 7 base on CUDA, 2 base on CPU; --short 6)")
    p.add_argument("--warmup-windows", type=int, help="windows dropped per trainer (default 1)")
    p.add_argument("--window-steps", type=int, help="optimizer steps per window (default 20 tiny, 10 base on CUDA, 1 base on CPU; --short 10)")
    p.add_argument("--threads", type=int,
                   help="torch intra-op threads, the same for every runner (default: torch's own, one per core; 1 with --short "
                   "on a CPU)")
    p.add_argument("--model", help="model directory for --size base (config.json alone means random weights)")
    p.add_argument("--shared", default=str(DEFAULT_SHARED), help="the shared reference folder (models/, tokenizers/, data/)")
    p.add_argument("--max-length", type=int, help="token budget per (question, choice); default 64 tiny, 256 base")
    p.add_argument("--tasks-per-batch", type=int, help="task slots per batch (default 4)")
    p.add_argument("--examples-per-task", type=int, help="questions per task slot (default 4: 16 questions per batch)")
    p.add_argument("--full-shape", action="store_true",
                   help="base on a CPU: keep 16 questions x 256 tokens (by default a CPU run uses 8 x 128, see BENCHMARKS.md)")
    p.add_argument("--cli-runs", type=int, help="fresh processes per CLI timing (default 7; --short 3)")
    p.add_argument("--eval-questions", type=int, help="cap on the questions scored for the evaluation figure (default all; 64 base on CPU)")
    p.add_argument("--skip", nargs="*", default=[], choices=("train", "tokenize", "eval", "cli", "predict"), help="sections to leave out")
    args = p.parse_args(argv)
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    on_cpu = args.device == "cpu"
    args.shape_note = None
    if args.size == "tiny":
        args.window_steps = args.window_steps or (10 if args.short else 20)
        args.windows = args.windows or (6 if args.short else 15)
        if on_cpu and args.short and args.threads is None:
            args.threads = 1  # CI machines are shared: one thread keeps the short run steady and under a minute
    else:
        args.window_steps = args.window_steps or (1 if on_cpu else 10)
        args.windows = args.windows or (2 if on_cpu else 4 if args.short else 7)
        if on_cpu and not args.full_shape:
            if args.max_length is None and args.tasks_per_batch is None and args.examples_per_task is None:
                args.shape_note = (
                    "CPU: batch reduced to 8 questions x 4 choices x <= 128 tokens; at 16 x 256 one training step took "
                    "121 s and 22.8 GB on 2 cores / 23 GB and the third step was killed for memory (--full-shape forces it)"
                )
            args.max_length = args.max_length or 128
            args.examples_per_task = args.examples_per_task or 2
        if on_cpu and args.eval_questions is None:
            args.eval_questions = 64
    args.warmup_windows = 1 if args.warmup_windows is None else args.warmup_windows
    args.cli_runs = args.cli_runs or (3 if args.short else 7)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    size = size_flags(args)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "size": args.size,
        "short": args.short,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "targets": TARGETS,
        "notes": list(size.notes),
    }
    result["machine"] = machine_info(args.device)
    m = result["machine"]
    log(f"acct throughput benchmark: size {args.size}{' (short)' if args.short else ''}; {m['cpu']}, {m['nproc']} cores, "
        f"torch {m['torch']} ({m['torch_threads']} threads), device {args.device}" + (f" ({m['gpu']})" if "gpu" in m else ""))
    for note in size.notes:
        log(f"note: {note}")
    with tempfile.TemporaryDirectory(prefix="acct-bench-") as tmp:
        workdir = Path(tmp)
        prep = None
        if "train" not in args.skip:
            prep = measure_training(args, size, workdir, result)
            measure_mfu(prep, result)
        if prep is None and "tokenize" not in args.skip:
            prep = prepare(resolve(size, {**FULL, "output_dir": str(workdir / "x")}))
        if "tokenize" not in args.skip:
            measure_tokenize(prep, workdir, result)
        if "cli" not in args.skip:
            measure_cli(args, result)
        if "predict" not in args.skip:
            measure_predict(args, size, workdir, result)
    result["machine"]["loadavg_at_end"] = _loadavg()
    result["total_s"] = time.perf_counter() - started
    log(f"total {result['total_s']:.1f} s")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
        log(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
