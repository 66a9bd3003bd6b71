"""The training flags are declared once (acct.cli.flags) and train and ablate are both built from that table."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest
import typer
from typer.testing import CliRunner

from acct.cli import app
from acct.cli.ablate import NOT_TRAINING_FLAGS
from acct.cli.flags import SETTINGS_FLAGS, Flag, field_help, settings_flags

runner = CliRunner()
WIDE = {"COLUMNS": "400", "TERMINAL_WIDTH": "400"}
REPO = Path(__file__).resolve().parents[2]


def help_lines(command: str) -> dict[str, str]:
    """Each option of `acct COMMAND --help`, by its first name, with the rest of its line."""
    result = runner.invoke(app, [command, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    lines = {}
    for line in result.output.splitlines():
        m = re.match(r"│\s+(--[a-z0-9-]+)(.*)", line)
        if m:
            lines[m.group(1)] = m.group(2)
    return lines


def described(line: str, flag: Flag) -> bool:
    text = re.sub(r"\\(.)", r"\1", field_help(flag.path))  # help is rich markup: escaped brackets print bare
    return " ".join(text.split())[:60] in " ".join(line.split())


@pytest.mark.parametrize("command", ["train", "ablate"])
def test_every_table_flag_is_in_help_with_the_settings_description(command):
    lines = help_lines(command)
    expected = {f: e for f, e in SETTINGS_FLAGS.items() if command == "train" or f not in NOT_TRAINING_FLAGS}
    assert set(expected) <= set(lines), set(expected) - set(lines)
    for flag, entry in expected.items():
        assert described(lines[flag], entry), (flag, lines[flag])
        if entry.off:
            assert entry.off in lines[flag], (flag, lines[flag])


def test_ablate_leaves_out_only_what_the_study_sets_itself():
    lines = help_lines("ablate")
    assert "--strategy" not in lines
    # --output-dir is the study's directory there, not a run's
    assert not described(lines["--output-dir"], SETTINGS_FLAGS["--output-dir"])
    assert "Directory of the study" in lines["--output-dir"]
    assert set(NOT_TRAINING_FLAGS) <= set(SETTINGS_FLAGS)


# One non-default value per flag of the table, and where it lands in the settings.
SAMPLES: dict[str, tuple[list[str], Any]] = {
    "--strategy": (["--strategy", "difficulty"], "difficulty"),
    "--model": (["--model", "tiny"], "tiny"),
    "--tokenizer": (["--tokenizer", "tiny"], "tiny"),
    "--data-source": (["--data-source", "files"], "files"),
    "--data-dir": (["--data-dir", "/srv/mmlu"], Path("/srv/mmlu")),
    "--data-files": (["--data-files", "train=/srv/a.jsonl,validation=/srv/b.jsonl", "--data-files", "test=/srv/c.jsonl"],
                     {"train": ["/srv/a.jsonl"], "validation": ["/srv/b.jsonl"], "test": ["/srv/c.jsonl"]}),
    "--data-format": (["--data-format", "json"], "json"),
    "--hub-dataset": (["--hub-dataset", "org/quiz"], "org/quiz"),
    "--hub-config": (["--hub-config", "main"], "main"),
    "--question-column": (["--question-column", "prompt"], "prompt"),
    "--choices-column": (["--choices-column", "options"], "options"),
    "--choice-columns": (["--choice-columns", "A,B", "--choice-columns", "C"], ["A", "B", "C"]),
    "--answer-column": (["--answer-column", "label"], "label"),
    "--task-column": (["--task-column", "topic"], "topic"),
    "--category-column": (["--category-column", "area"], "area"),
    "--protocol": (["--protocol", "standard"], "standard"),
    "--allow-overlap": (["--allow-overlap"], True),
    "--output-dir": (["--output-dir", "elsewhere"], Path("elsewhere")),
    "--init-from": (["--init-from", "runs/earlier"], "runs/earlier"),
    "--max-steps": (["--max-steps", "7"], 7),
    "--epochs": (["--epochs", "3.5"], 3.5),
    "--lr": (["--lr", "0.003"], 0.003),
    "--batch-size": (["--batch-size", "16"], 16),
    "--grad-accum-steps": (["--grad-accum-steps", "2"], 2),
    "--tasks-per-batch": (["--tasks-per-batch", "2"], 2),
    "--examples-per-task": (["--examples-per-task", "8"], 8),
    "--group-by-length": (["--no-group-by-length"], False),
    "--max-length": (["--max-length", "48"], 48),
    "--lambda-contrastive": (["--lambda-contrastive", "0.5"], 0.5),
    "--gather-negatives": (["--gather-negatives"], True),
    "--seed": (["--seed", "5"], 5),
    "--device": (["--device", "cpu"], "cpu"),
    "--precision": (["--precision", "fp32"], "fp32"),
    "--eval-every-n-steps": (["--eval-every-n-steps", "9"], 9),
    "--patience": (["--patience", "2"], 2),
    "--save-every-n-steps": (["--save-every-n-steps", "11"], 11),
    "--report-to": (["--report-to", "tensorboard,trackio", "--report-to", "mlflow"], ["tensorboard", "trackio", "mlflow"]),
    "--deterministic": (["--deterministic"], True),
    "--tf32": (["--no-tf32"], False),
}


def setting(settings: Any, path: str) -> Any:
    for part in path.split("."):
        settings = getattr(settings, part)
    return settings


# Flags that cannot be given with another flag of the table (--choice-columns): checked in a run of their own.
EXCLUSIVE = ("--choices-column",)


def test_samples_cover_the_table():
    assert set(SAMPLES) == set(SETTINGS_FLAGS)


@pytest.mark.parametrize("command", ["train", "ablate"])
def test_every_flag_reaches_the_training_settings(command, monkeypatch):
    import acct.cli.ablate
    import acct.cli.train

    seen = {}
    if command == "train":
        monkeypatch.setattr(acct.cli.train, "run", lambda settings: seen.setdefault("s", settings))
    else:
        monkeypatch.setattr(acct.cli.ablate, "run", lambda settings, base, command=None: seen.setdefault("s", base) and None)
    flags = [f for f in SETTINGS_FLAGS if (command == "train" or f not in NOT_TRAINING_FLAGS) and f not in EXCLUSIVE]
    for group in (flags, [*EXCLUSIVE, "--data-source", "--data-files"]):
        args = [a for f in group for a in SAMPLES[f][0]]
        result = runner.invoke(app, [command, "--preset", "tiny", *args])
        assert result.exit_code == 0, result.output
        settings = seen.pop("s")
        got = {f: setting(settings, SETTINGS_FLAGS[f].path) for f in group}
        assert got == {f: SAMPLES[f][1] for f in group}


def test_unset_flags_leave_the_preset_alone(monkeypatch):
    import acct.cli.train
    from acct.config import resolve_train

    seen = {}
    monkeypatch.setattr(acct.cli.train, "run", lambda settings: seen.setdefault("s", settings))
    result = runner.invoke(app, ["train", "--preset", "tiny"])
    assert result.exit_code == 0, result.output
    assert seen["s"] == resolve_train({}, preset="tiny")


def test_a_flag_added_to_the_table_reaches_both_commands(tmp_path):
    # A copy of the package whose table has two more entries and nothing else changed.
    shutil.copytree(REPO / "acct", tmp_path / "acct", ignore=shutil.ignore_patterns("__pycache__"))
    flags_py = tmp_path / "acct" / "cli" / "flags.py"
    source = flags_py.read_text()
    anchor = '    "--tf32": Flag("tf32", off="--no-tf32"),\n'
    assert anchor in source
    flags_py.write_text(source.replace(anchor, anchor + '    "--warmup-ratio": Flag("optim.warmup_ratio"),\n'
                                       '    "--compile": Flag("model.compile", off="--no-compile"),\n'))
    probe = """
import json
from typer.testing import CliRunner
import acct.cli, acct.cli.train, acct.cli.ablate
seen = {}
acct.cli.train.run = lambda settings: seen.setdefault("train", settings)
acct.cli.ablate.run = lambda settings, base, command=None: seen.setdefault("ablate", base) and None
runner = CliRunner()
out = {}
for command in ("train", "ablate"):
    out[command + "_help"] = runner.invoke(acct.cli.app, [command, "--help"], env={"COLUMNS": "400"}).output
    r = runner.invoke(acct.cli.app, [command, "--preset", "tiny", "--warmup-ratio", "0.25", "--compile"])
    out[command + "_output"] = r.output
    out[command] = [seen[command].optim.warmup_ratio, seen[command].model.compile] if command in seen else None
out["invalid"] = runner.invoke(acct.cli.app, ["train", "--preset", "tiny", "--warmup-ratio", "2"]).output
print(json.dumps(out))
"""
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for command in ("train", "ablate"):
        assert out[command] == [0.25, True], out[command + "_output"]
        text = out[command + "_help"]
        assert "--warmup-ratio" in text and "Fraction of steps of linear warm-up" in text
        assert "--no-compile" in text
    assert "--warmup-ratio" in out["invalid"]  # a settings error names the flag


def test_the_decorator_refuses_a_clash_and_an_unknown_exclusion():
    with pytest.raises(ValueError, match="--nope"):
        settings_flags(exclude=["--nope"])

    with pytest.raises(TypeError, match="seed"):
        @settings_flags()
        def clash(*, seed: Optional[int] = typer.Option(None, "--seed"), overrides: dict[str, Any]) -> None:
            pass

    with pytest.raises(TypeError, match="overrides"):
        @settings_flags()
        def missing(*, seed: Optional[int] = None) -> None:
            pass
