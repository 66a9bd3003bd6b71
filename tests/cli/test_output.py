"""What a user reads while training: plain log lines off a terminal, the live view on one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from acct.cli.train import CurriculumLines

REPO = Path(__file__).resolve().parents[2]


def acct(*args: str, cwd: Path, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80", **(env or {})}
    full.pop("ACCT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "acct", *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=300, **kw)


STEP = re.compile(
    r"^step (\d+)/40 epoch \d+\.\d\d loss \d+\.\d{4} \(cls \d+\.\d{4}, contrastive \d+\.\d{4}\) "
    r"acc \d+\.\d\d% lr \d\.\d\de[+-]\d\d \d+ q/s eta \d+:\d\d$"
)


@pytest.mark.slow
def test_batch_job_log_has_one_plain_line_per_log_step(tmp_path):
    """stderr is a pipe (tee, SLURM, nohup): every log step is a full line; the preset names the run directory."""
    result = acct("train", "--preset", "tiny", "--max-steps", "40", "--eval-every-n-steps", "20", "--device", "cpu",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    steps = [int(m.group(1)) for m in map(STEP.match, lines) if m]
    assert steps == [10, 20, 30, 40], result.stderr
    assert any(len(line) > 80 for line in lines)  # never cut at the default 80 columns
    validations = [line for line in lines if line.startswith("validation at step ")]
    assert len(validations) == 2 and all(" accuracy " in v and " macro " in v for v in validations), result.stderr
    assert "runs/tiny-seed0" in lines[-1] and (tmp_path / "runs" / "tiny-seed0" / "config.json").is_file()
    assert not any(c in result.stderr for c in "━\r\x1b")  # no progress bar drawn into the log
    assert "" not in lines  # no blank lines


class _Ev:
    def __init__(self, step, weights):
        self.step, self.weights = step, weights


def test_curriculum_lines_only_when_weights_change():
    lines = CurriculumLines()
    tasks = [f"t{i}" for i in range(8)]
    assert lines.line(_Ev(20, dict.fromkeys(tasks, 0.125))) == "step 20 curriculum: uniform (warm-up)"
    assert lines.line(_Ev(40, dict.fromkeys(tasks, 0.125))) is None
    weights = {t: 0.05 + 0.01 * i for i, t in enumerate(tasks)}
    line = lines.line(_Ev(60, weights))
    assert line == "step 60 curriculum: top t7 0.120, t6 0.110, t5 0.100; bottom t2 0.070, t1 0.060, t0 0.050"
    assert lines.line(_Ev(80, dict(weights))) is None


@pytest.mark.slow
def test_terminal_shows_a_bar_and_one_line_validation_titles(tmp_path):
    import pty
    import select

    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "160", "LINES": "50", "TERM": "xterm"}
    env.pop("ACCT_DEBUG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "acct", "train", "--preset", "tiny", "--max-steps", "20", "--eval-every-n-steps", "20",
         "--device", "cpu", "--output-dir", str(tmp_path / "run")],
        stdin=slave, stdout=slave, stderr=slave, env=env, cwd=tmp_path,
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))
    assert proc.returncode == 0, text
    assert "━" in text  # the live bar
    assert re.search(r"validation at step 20 \(epoch 0\.20\) — new best\s*\r?\n", text), text


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_failure_is_one_line_without_retries(tmp_path, monkeypatch):
    """The hub is unreachable and HF_HUB_OFFLINE is unset: acct's one line and no retries (how long it
    takes is printed by benchmarks/offline_failure.py, not asserted)."""
    url = f"http://127.0.0.1:{_free_port()}"  # a closed port on this machine: no traffic leaves it
    # The suite runs offline (conftest); this test's child process must not inherit it.
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_VERBOSITY", "DATASETS_VERBOSITY"):
        monkeypatch.delenv(name, raising=False)
    env = {"HF_ENDPOINT": url, "HF_HOME": str(tmp_path / "hf")}
    result = acct("train", "--preset", "default", "--max-steps", "1", "--output-dir", str(tmp_path / "runs" / "r"),
                  cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: offline (the Hugging Face hub did not answer)"), result.stderr
    for piece in ("dataset 'cais/mmlu'", "tokenizer 'microsoft/deberta-v3-base'", "model 'microsoft/deberta-v3-base'"):
        assert piece in lines[0]  # every missing piece at once
    assert "Retrying" not in result.stderr and "unexpected" not in result.stderr
    assert not (tmp_path / "runs").exists()  # the failed start left no empty run directory
