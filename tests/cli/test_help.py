"""Help and flags that answer: allowed values and defaults, one name per meaning, the same training flags."""

from __future__ import annotations

import importlib.util
import inspect
import json
import re

import pytest
import typer
from typer.testing import CliRunner

from acct.cli import app
from acct.cli.train import FLAGS

runner = CliRunner()
WIDE = {"COLUMNS": "400", "TERMINAL_WIDTH": "400"}


def help_text(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


def options(name: str) -> set[str]:
    """Every option the command parses, the ones built from the settings models included."""
    command = typer.main.get_command(app).get_command(None, name)
    params = command.get_params(typer.Context(command))
    return {opt for p in params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("--")}


def test_the_listed_summaries_are_the_commands_own():
    """`acct --help` lists each command's summary from acct.cli.COMMANDS, without importing it."""
    from acct.cli import COMMANDS

    group = typer.main.get_command(app)
    assert group.list_commands(None) == list(COMMANDS)
    listing = " ".join(help_text().replace("│", " ").split())
    for name, (_, _, summary) in COMMANDS.items():
        command = group.get_command(None, name)
        assert command.name == name
        assert summary == inspect.cleandoc(command.help).split("\n\n")[0].replace("\n", " "), name
        assert f"{name} {summary}" in listing, name
    assert listing.startswith("Usage: acct [OPTIONS] COMMAND [ARGS]... Multi-task fine-tuning with a confusion-driven")
    assert "╭─ Options ─" in listing and "--version Print the version and exit." in listing
    assert "--help Show this message and exit." in listing and "╭─ Commands ─" in listing


def test_train_help_shows_allowed_values_and_defaults():
    # The help's table wraps long cells whatever the width: read it as one line of words.
    text = " ".join(help_text("train").replace("│", " ").split())
    # Plugins that other tests of the session registered may follow the built-in sources in the list.
    assert re.search(r"one of: csv, files, hub, synthetic[\w, ]*; default: hub", text)
    for fragment in ("one of: auto, cpu, cuda; default: auto",
                     "one of: auto, bf16, fp16, fp32; default: auto",
                     "one of: difficulty, fixed, learning_progress,", "default: uncertainty_gradient",
                     "default: 2e-05", "--patience", "--max-length", "--grad-accum-steps", "Precedence: defaults < preset"):
        assert fragment in text, fragment
    assert "see below" not in text


def test_inspect_help_keeps_the_extra_name():
    assert "pip install 'acct[plot]'" in help_text("inspect-confusion")


@pytest.mark.parametrize("command", ["evaluate", "predict", "inspect-confusion"])
def test_eval_batch_size_and_precision(command):
    text = help_text(command)
    assert "--eval-batch-size" in text and "--precision" in text
    assert "--batch-size " not in text.replace("--eval-batch-size", "")  # the old spelling is hidden
    assert {"--eval-batch-size", "--batch-size", "--precision"} <= options(command)


def test_ablate_takes_every_training_flag():
    # The study varies the strategy, names its own directory, and starts every arm from the base model.
    missing = {flag for flag in FLAGS if flag not in ("--strategy", "--output-dir", "--init-from")} - options("ablate")
    assert not missing
    assert {"--lambda-contrastive", "--save-every-n-steps", "--trust-remote-code", "--patience"} <= options("ablate")
    assert {"--trust-remote-code", "--patience", "--max-length", "--grad-accum-steps"} <= options("train")


def test_new_training_flags_reach_the_settings(tmp_path, monkeypatch):
    import acct.cli.train as train

    seen = {}
    monkeypatch.setattr(train, "run", lambda settings: seen.setdefault("s", settings))
    result = runner.invoke(app, ["train", "--preset", "tiny", "--patience", "7", "--max-length", "48",
                                 "--grad-accum-steps", "2"])
    assert result.exit_code == 0, result.output
    s = seen["s"]
    assert (s.patience, s.model.max_length, s.batch.grad_accum_steps) == (7, 48, 2)
    assert str(s.output_dir) == "runs/tiny-seed0"


def test_deprecated_batch_size_still_works(tiny_run):
    result = runner.invoke(app, ["evaluate", str(tiny_run), "--batch-size", "32", "--precision", "fp32", "--device", "cpu",
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert "--batch-size is deprecated here: use --eval-batch-size" in result.stderr
    assert json.loads(result.stdout)["n"] > 0


def test_negative_numbers_are_choices(tiny_run):
    result = runner.invoke(app, ["predict", str(tiny_run), "--question", "Which is even?", "--choices", "-3", "8", "-11",
                                 "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["probabilities"]) == 3
    result = runner.invoke(app, ["predict", str(tiny_run), "--question", "q", "--choices", "3", "8", "--tsk", "x"])
    assert result.exit_code == 2
    assert "No such option: --tsk (Possible options: --task)" in result.stderr


# A mark rather than importorskip in the body: the skip comes before the tiny run is trained.
@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib (the plot extra)")
def test_plot_into_a_directory(tiny_run, tmp_path):
    result = runner.invoke(app, ["inspect-confusion", str(tiny_run), "--plot", str(tmp_path)])
    assert result.exit_code == 0, result.output
    png = tmp_path / "confusion.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"heatmap written to {png}" in result.stderr
    assert not (tmp_path.parent / f"{tmp_path.name}.png").exists()


def test_evaluate_notes_subject_split_comparability(tmp_path):
    from acct.cli.evaluate import comparability_note
    from acct.config.train import TrainSettings

    for source, protocol, noted in (("csv", "subject-split", True), ("csv", "standard", False),
                                    ("synthetic", "subject-split", False)):
        run = tmp_path / f"{source}-{protocol}"
        run.mkdir()
        data = {"source": source, "protocol": protocol, "data_dir": str(tmp_path) if source == "csv" else None}
        (run / "config.json").write_text(TrainSettings(data=data).model_dump_json())
        note = comparability_note(run)
        assert (note is not None and "not comparable to the standard MMLU leaderboard" in note) == noted


def test_a_files_run_under_subject_split_is_not_compared_with_mmlu():
    from acct.config.train import DataSettings
    from acct.config.notes import split_comparability_note

    files = split_comparability_note(DataSettings(source="files", files=["/tmp/quiz.jsonl"]))
    assert files is not None and "dataset's own test split" in files and "MMLU" not in files
    hub = split_comparability_note(DataSettings(source="hub", hub_dataset="TIGER-Lab/MMLU-Pro"))
    assert hub is not None and "MMLU leaderboard" not in hub
    assert "standard MMLU leaderboard" in split_comparability_note(DataSettings(source="hub"))
