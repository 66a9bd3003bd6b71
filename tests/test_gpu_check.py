"""benchmarks/gpu_check: its Python steps on the CPU, so the one GPU call is not where they are debugged."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_check_reads_a_finished_run(tiny_run):
    result = _module().run_check(tiny_run)
    assert result["ok"], result
    assert result["skipped_steps"] == 0 and result["parameter_dtypes"] == ["torch.float32"]
    assert result["val_accuracy"] > result["chance"]


def test_resume_exact_compares_an_interrupted_run_with_an_uninterrupted_one():
    from tests.conftest import ONE_LAYER

    result = _module().resume_exact("cpu", **ONE_LAYER)
    assert result["ok"] and result["uninterrupted"] == result["resumed"], result


def test_the_script_skips_the_cuda_steps_with_one_line_each_and_gathers_results(tmp_path):
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(tmp_path)], capture_output=True,
                          text=True, timeout=300, env={**__import__("os").environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr
    import torch

    if torch.cuda.is_available():  # this test is about the CPU path
        return
    assert "no CUDA device: the CUDA steps are skipped" in done.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["env"]["cuda_available"] is False
    cuda_steps = [k for k in results if k != "env"]
    assert len(cuda_steps) >= 8 and all(results[k] == {"skipped": "no CUDA device"} for k in cuda_steps)
