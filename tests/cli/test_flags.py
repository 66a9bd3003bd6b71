"""Options built from the settings models (acct.cli.flags): the training flags train and ablate take from one
table, and the scoring options evaluate, predict and inspect-confusion share, each helped by its setting's
description and default."""

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
from acct.cli.flags import SETTINGS_FLAGS, Flag, OptionsCommand, TrainingFlags, field_help, param_name

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
    assert [f for f in lines if f in expected] == list(expected)  # in the table's order
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


# Flags that cannot be given with another flag of the table, each checked in a run of its own with the flags it needs:
# --choices-column not with --choice-columns, --init-from (which takes the encoder from its source) not with --model.
EXCLUSIVE = {"--choices-column": ["--data-source", "--data-files"], "--init-from": []}


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
        def run(settings, base, command=None):
            seen.update(s=base, command=command)

        monkeypatch.setattr(acct.cli.ablate, "run", run)
    taken = [f for f in SETTINGS_FLAGS if command == "train" or f not in NOT_TRAINING_FLAGS]
    groups = [[f for f in taken if f not in EXCLUSIVE]] + [[f, *needs] for f, needs in EXCLUSIVE.items() if f in taken]
    for group in groups:
        args = [a for f in group for a in SAMPLES[f][0]]
        result = runner.invoke(app, [command, "--preset", "tiny", *args])
        assert result.exit_code == 0, result.output
        settings = seen.pop("s")
        got = {f: setting(settings, SETTINGS_FLAGS[f].path) for f in group}
        assert got == {f: SAMPLES[f][1] for f in group}
        if command == "ablate":  # the study records the command as typed, training flags included
            typed = seen.pop("command")
            assert all(SAMPLES[f][0][0] in typed.split() for f in group), typed


def test_unset_flags_leave_the_preset_alone(monkeypatch):
    import acct.cli.train
    from acct.config.resolve import resolve_train

    seen = {}
    monkeypatch.setattr(acct.cli.train, "run", lambda settings: seen.setdefault("s", settings))
    result = runner.invoke(app, ["train", "--preset", "tiny"])
    assert result.exit_code == 0, result.output
    assert seen["s"] == resolve_train({}, preset="tiny")


def test_a_flag_added_to_the_table_reaches_both_commands(tmp_path):
    # A copy of the package whose table has two more entries and nothing else changed.
    shutil.copytree(REPO / "acct", tmp_path / "acct", ignore=shutil.ignore_patterns("__pycache__"))
    flags_py = tmp_path / "acct" / "config" / "flags.py"
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


def test_a_clash_and_an_unknown_exclusion_are_refused():
    with pytest.raises(ValueError, match="--nope"):
        TrainingFlags(exclude=["--nope"])

    class Clashing(OptionsCommand):
        option_sets = (TrainingFlags(),)

    clash = typer.Typer()

    @clash.command(cls=Clashing)
    def run(ctx: typer.Context, seed: Optional[int] = typer.Option(None, "--seed")) -> None:
        pass

    result = runner.invoke(clash, ["--help"])
    assert isinstance(result.exception, TypeError) and "seed" in str(result.exception), result.output


def test_command_functions_keep_their_own_signatures():
    # The flags are options of the command class, not parameters forged onto the function.
    import inspect
    import typing

    from acct.cli.ablate import ablate_command
    from acct.cli.train import train_command

    for fn in (train_command, ablate_command):
        real = inspect.unwrap(fn)
        assert "__signature__" not in vars(fn) and "__signature__" not in vars(real)
        declared = set(inspect.signature(fn).parameters) | set(typing.get_type_hints(real))
        table = {param_name(f) for f in SETTINGS_FLAGS if fn is train_command or f not in NOT_TRAINING_FLAGS}
        assert not declared & (table | {"overrides"}), declared & table


# The options evaluate, predict and inspect-confusion share, and the settings model each takes them from.
SCORING = {"evaluate": "EvaluateSettings", "predict": "PredictSettings", "inspect-confusion": "InspectSettings"}
SCORING_SETTINGS = {"--checkpoint": "checkpoint", "--eval-batch-size": "batch_size", "--device": "device",
                    "--precision": "precision", "--data-dir": "data_dir"}


@pytest.mark.parametrize("command", list(SCORING))
def test_scoring_options_are_shared_and_described_by_the_settings(command):
    import acct.config.commands

    model = getattr(acct.config.commands, SCORING[command])
    lines = help_lines(command)
    expected = {f: s for f, s in SCORING_SETTINGS.items() if command != "predict" or f != "--data-dir"}
    for flag, name in expected.items():
        assert flag in lines, flag
        text = re.sub(r"\\(.)", r"\1", field_help(name, model))
        assert " ".join(text.split()) in " ".join(lines[flag].split()), (flag, lines[flag])
    for flag in ("--json", "--code", "--trust-remote-code"):
        assert flag in lines, flag
    assert ("--data-dir" in lines) == (command != "predict")  # predict reads no run data
    # The defaults come from the model: evaluate's split is test, every checkpoint is best, batches of 64.
    assert "default: best" in lines["--checkpoint"] and "default: 64" in lines["--eval-batch-size"]
    assert "--batch-size" not in lines  # the deprecated spelling stays hidden


@pytest.mark.parametrize("command", list(SCORING))
def test_scoring_options_reach_the_settings(command, monkeypatch, tmp_path):
    import acct.cli.predict
    import acct.scoring.confusion
    import acct.scoring.score

    seen: dict[str, Any] = {}

    def keep(settings: Any, trust: bool) -> None:
        seen.update(settings=settings, trust=trust)
        raise typer.Exit(0)

    monkeypatch.setattr(acct.scoring.score, "evaluate", lambda settings, trust_remote_code=False: keep(settings, trust_remote_code))
    monkeypatch.setattr(acct.cli.predict, "_single", lambda settings, as_json, trust=False: keep(settings, trust))
    monkeypatch.setattr(acct.scoring.confusion, "recompute_confusion",
                        lambda run_dir, checkpoint, **kw: keep(kw | {"checkpoint": checkpoint}, kw["trust_remote_code"]))
    args = {"evaluate": [], "predict": ["--question", "q", "--choices", "a", "b"], "inspect-confusion": ["--recompute"]}[command]
    given = ["--checkpoint", "last", "--eval-batch-size", "7", "--device", "cpu", "--precision", "fp32",
             "--trust-remote-code", "--json"]
    if command != "predict":
        given += ["--data-dir", str(tmp_path)]
    result = runner.invoke(app, [command, str(tmp_path / "run"), *args, *given])
    assert result.exit_code == 0, result.output
    settings = seen["settings"]
    get = (lambda k: settings[k]) if isinstance(settings, dict) else (lambda k: getattr(settings, k))
    assert (get("checkpoint"), get("batch_size"), get("device"), get("precision")) == ("last", 7, "cpu", "fp32")
    assert seen["trust"] is True
    if command != "predict":
        assert get("data_dir") == tmp_path

    # Not given, a setting comes from its ACCT_ variable, then from the model's default.
    seen.clear()
    result = runner.invoke(app, [command, str(tmp_path / "run"), *args], env={"ACCT_CHECKPOINT": "last"})
    assert result.exit_code == 0, result.output
    settings = seen["settings"]
    assert (get("checkpoint"), get("batch_size"), get("device"), seen["trust"]) == ("last", 64, "auto", False)


@pytest.mark.parametrize("command", list(SCORING))
def test_a_bad_scoring_value_names_its_flag(command, tmp_path):
    args = {"evaluate": [], "predict": ["--question", "q", "--choices", "a", "b"], "inspect-confusion": []}[command]
    result = runner.invoke(app, [command, str(tmp_path / "run"), *args, "--checkpoint", "worst"])
    assert result.exit_code == 2, result.output
    assert "checkpoint (--checkpoint): Input should be 'best' or 'last'" in result.stderr
    assert "Traceback" not in result.output
