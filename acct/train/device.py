"""Devices, precision and process-wide kernel and seed settings of a run."""

from __future__ import annotations

import contextlib
import os
import random

import torch

from acct.errors import UsageError


def resolve_device(device: str, precision: str) -> tuple[torch.device, str]:
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    dev = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
    if precision == "auto":
        precision = "bf16" if dev.type == "cuda" else "fp32"
    if precision == "fp16" and dev.type != "cuda":
        raise UsageError("fp16 needs CUDA; on a CPU use --precision fp32 (or bf16)")
    return dev, precision


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def configure_backends(device: torch.device, precision: str, *, deterministic: bool, tf32: bool) -> dict[str, bool]:
    """Set the process-wide kernel choices a run asks for; returns what is in effect (recorded with the run)."""
    if deterministic:
        # cuBLAS needs a fixed workspace for reproducible results; it is read when CUDA starts.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if torch.are_deterministic_algorithms_enabled() != deterministic:
        # Only on a change: the call imports torch's compiler stack (about 2.5 s on a CPU).
        torch.use_deterministic_algorithms(deterministic)
    use_tf32 = tf32 and device.type == "cuda" and precision == "fp32"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = use_tf32
        torch.backends.cudnn.allow_tf32 = use_tf32
        torch.set_float32_matmul_precision("high" if use_tf32 else "highest")
    return {"deterministic": deterministic, "tf32": use_tf32}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
