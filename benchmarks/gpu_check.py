#!/usr/bin/env python
"""The Python steps of benchmarks/gpu_check.sh: each prints one JSON object on stdout.

    python benchmarks/gpu_check.py env                 # versions, GPU, measured bf16 matmul peak
    python benchmarks/gpu_check.py run-check RUN_DIR   # a finished run: accuracy, non-finite steps, loads on the CPU
    python benchmarks/gpu_check.py sync-count          # host syncs inside 20 training steps (CUDA sync debug mode)
    python benchmarks/gpu_check.py resume-exact [cpu]  # --deterministic: interrupted + resumed == uninterrupted, bit for bit
    python benchmarks/gpu_check.py summarize DIR       # every step's JSON in DIR -> one results file on stdout
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path


def env() -> dict:
    import torch

    out: dict = {"python": platform.python_version(), "torch": torch.__version__, "cuda_available": torch.cuda.is_available()}
    try:  # the installed version, without the seconds of importing the library
        out["transformers"] = importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        pass
    if not torch.cuda.is_available():
        return out
    out.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), gpu=torch.cuda.get_device_name(0))
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    reps = 20
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    out["bf16_matmul_peak_tflops"] = 2 * n**3 * reps / (time.perf_counter() - start) / 1e12
    return out


def run_check(run_dir: Path) -> dict:
    """What a smoke run must show: learning, no skipped steps, a checkpoint a CPU can load."""
    import torch

    from acct.engine import load_run

    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    val = [r for r in lines if r["event"] == "validation"]
    train = [r for r in lines if r["event"] == "train"]
    run = load_run(run_dir, "best", torch.device("cpu"))
    dtypes = sorted({str(p.dtype) for p in run.model.parameters()})
    accuracy = val[-1]["accuracy"] if val else None
    skipped = train[-1]["skipped_steps"] if train else None
    chance = val[-1].get("chance") if val else None
    return {
        "run_dir": str(run_dir),
        "val_accuracy": accuracy,
        "chance": chance,
        "skipped_steps": skipped,
        "parameter_dtypes": dtypes,
        "loads_on_cpu": True,
        "ok": accuracy is not None and chance is not None and accuracy > chance + 0.2 and skipped == 0
        and dtypes == ["torch.float32"],
    }


def _tiny(output_dir: Path, device: str = "cuda", **flags):
    from acct.config.layers import nest
    from acct.config.resolve import resolve_train

    base = {"output_dir": output_dir, "device": device, "eval_every_n_steps": 1000, "log_every_n_steps": 1000}
    base.update(flags)
    return resolve_train(nest(base), preset="tiny")


def sync_count() -> dict:
    """Train with CUDA's sync debug mode on and list where the host waited for the device.

    Steps 21..40 are watched (curriculum updates pushed past them); the log step at 40 reads the
    loss on purpose, so its reads are reported apart. Target: no other wait.
    """
    import linecache

    import torch

    from acct.engine import StepLogged, train

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    with tempfile.TemporaryDirectory() as tmp:
        events = train(_tiny(Path(tmp) / "run", **{"optim.max_steps": 40, "log_every_n_steps": 20,
                                                     "eval_every_n_steps": 40, "curriculum.update_every_n_steps": 1000}))
        for event in events:  # setup, tokenisation and the first steps' allocations
            if isinstance(event, StepLogged):
                break
        torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for event in events:
                if isinstance(event, StepLogged):
                    break
        torch.cuda.set_sync_debug_mode(0)
        list(events)
    where = [f"{Path(w.filename).name}:{w.lineno}: {linecache.getline(w.filename, w.lineno).strip()}" for w in caught]
    log_reads = [w for w in where if "loop.py" in w and any(k in w for k in ("tolist()", ".item()"))]
    others = [w for w in where if w not in log_reads]
    return {"steps_watched": 20, "log_step_reads": log_reads, "waits_in_steps": others, "ok": not others}


def resume_exact(device: str = "cuda", **settings) -> dict:
    """With --deterministic, a run stopped at step 20 and resumed ends with the same weights as one never stopped.

    `settings`: more dotted settings for all three runs (the tests give a smaller encoder).
    """
    import torch

    from acct.engine import Finished, train

    if device == "cuda" and not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    from acct.train.distributed import parameter_digest
    from acct.engine import load_run

    with tempfile.TemporaryDirectory() as tmp:
        flags = {"optim.max_steps": 40, "save_every_n_steps": 20, "deterministic": True, **settings}
        whole = Path(tmp) / "whole"
        list(train(_tiny(whole, device, **flags)))
        parts = Path(tmp) / "parts"
        seen = {"n": 0}

        def stop_at_20() -> bool:
            seen["n"] += 1
            return seen["n"] >= 20

        list(train(_tiny(parts, device, **flags), should_stop=stop_at_20))
        events = list(train(_tiny(parts, device, **flags, resume=True)))
        assert isinstance(events[-1], Finished)
        a = parameter_digest(load_run(whole, "last").model)
        b = parameter_digest(load_run(parts, "last").model)
    return {"device": device, "uninterrupted": a, "resumed": b, "ok": a == b}


def summarize(directory: Path) -> dict:
    out: dict = {}
    for path in sorted(directory.glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError:
            out[path.stem] = {"error": "not JSON", "text": path.read_text()[-2000:]}
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    command, *rest = argv
    if command == "env":
        result = env()
    elif command == "run-check":
        result = run_check(Path(rest[0]))
    elif command == "sync-count":
        result = sync_count()
    elif command == "resume-exact":
        result = resume_exact(*rest[:1])
    elif command == "summarize":
        result = summarize(Path(rest[0]))
    else:
        print(f"unknown step {command!r}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
