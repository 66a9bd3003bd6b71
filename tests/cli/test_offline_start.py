"""The default real job started offline with nothing cached: one error that names every missing piece."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIECES = ("dataset 'cais/mmlu' (config 'all')", "tokenizer 'microsoft/deberta-v3-base'",
          "model 'microsoft/deberta-v3-base' (config and weights)")


def train_default(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """`acct train --preset default` in a child process whose Hugging Face caches are empty directories."""
    home = tmp_path / "hf"
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("HF_", "TRANSFORMERS_", "ACCT_")) and k != "HUGGINGFACE_HUB_CACHE"}
    clean.update(HF_HOME=str(home), HF_DATASETS_CACHE=str(home / "datasets"), ACCT_CACHE_DIR=str(tmp_path / "acct"),
                 **env)
    return subprocess.run(
        [sys.executable, "-m", "acct", "train", "--preset", "default", "--device", "cpu",
         "--output-dir", str(tmp_path / "run")],
        capture_output=True, text=True, env=clean, cwd=tmp_path, timeout=600,
    )


def test_offline_names_the_dataset_the_tokenizer_and_the_model_at_once(tmp_path):
    result = train_default(tmp_path, HF_HUB_OFFLINE="1")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: offline (HF_HUB_OFFLINE is set), and 3 of what the run needs are not in the local")
    for piece in PIECES:
        assert piece in line
    assert "--data-source csv --data-dir DIR" in line and "--tokenizer DIR" in line and "--model DIR" in line
    # The libraries' exception names mean nothing to a user.
    for name in ("OfflineModeIsEnabled", "ConnectionError", "LocalEntryNotFoundError", "OSError"):
        assert name not in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_hub_that_does_not_answer_is_named_as_the_cause(tmp_path):
    # Nothing listens on port 9 of this host: the start-up probe fails and acct switches to offline mode itself.
    result = train_default(tmp_path, HF_ENDPOINT="http://127.0.0.1:9")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "offline (the Hugging Face hub did not answer)" in line and "HF_HUB_OFFLINE is set" not in line
    assert all(piece in line for piece in PIECES)
    assert "OfflineModeIsEnabled" not in result.stderr
    # The probe's answer is final: no library retries the hub (how long the failure takes is printed
    # by benchmarks/offline_failure.py, not asserted).
    assert "Retrying" not in result.stderr and "unexpected" not in result.stderr
    assert not (tmp_path / "run").exists()  # the failed start left no empty run directory
