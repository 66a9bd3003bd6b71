"""What a user reads while training: plain log lines off a terminal, the live view on one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from acct.cli.train import CurriculumLines
from tests.conftest import SMALL_MODEL_YAML

REPO = Path(__file__).resolve().parents[2]


def acct(*args: str, cwd: Path, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80", **(env or {})}
    full.pop("ACCT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "acct", *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=300, **kw)


# What is tested is what the user reads, not what the encoder learns: a one-layer encoder on 24 questions a task.
SMALL_YAML = SMALL_MODEL_YAML + """\
data: {synthetic_examples_per_task: 24}
"""

STEP = re.compile(
    r"^step (\d+)/40 epoch \d+\.\d\d loss \d+\.\d{4} \(cls \d+\.\d{4}, contrastive \d+\.\d{4}\) "
    r"acc \d+\.\d\d% lr \d\.\d\de[+-]\d\d \d[\d.]*(e-\d\d)? q/s eta \d+:\d\d$"  # q/s: 3 significant figures
)


@pytest.mark.slow
def test_batch_job_log_has_one_plain_line_per_log_step(tmp_path):
    """stderr is a pipe (tee, SLURM, nohup): every log step is a full line; the preset names the run directory."""
    (tmp_path / "small.yaml").write_text(SMALL_YAML)
    result = acct("train", "--preset", "tiny", "--config", "small.yaml", "--max-steps", "40", "--eval-every-n-steps", "20",
                  "--device", "cpu", cwd=tmp_path)
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
def test_terminal_shows_a_bar_and_one_line_validation_titles(tmp_path, monkeypatch):
    """stdout and stderr are a terminal (a pseudo-terminal, read as a user's screen would be); acct runs in this process."""
    import pty
    import threading

    from acct.cli import app

    master, slave = pty.openpty()
    screen = os.fdopen(slave, "w", encoding="utf-8", buffering=1)
    chunks: list[bytes] = []

    def read_screen() -> None:  # the pty's buffer is small: read while acct writes
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal was closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read_screen, daemon=True)
    reader.start()
    for name, value in (("COLUMNS", "160"), ("LINES", "50"), ("TERM", "xterm")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ACCT_DEBUG", raising=False)
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(sys, "stderr", screen)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.yaml").write_text(SMALL_YAML)
    try:
        with pytest.raises(SystemExit) as done:
            app(["train", "--preset", "tiny", "--config", "small.yaml", "--max-steps", "20", "--eval-every-n-steps", "20",
                 "--device", "cpu", "--output-dir", str(tmp_path / "run")])
    finally:
        screen.close()
        reader.join(timeout=60)
        os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))
    assert done.value.code == 0, text
    assert "━" in text  # the live bar
    assert re.search(r"validation at step 20 \(epoch \d+\.\d\d\) — new best\s*\r?\n", text), text
