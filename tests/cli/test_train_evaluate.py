"""`acct train` and `acct evaluate` end to end through Typer's CliRunner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from acct.cli import app

runner = CliRunner()


def test_train_then_evaluate_json(tmp_path):
    run_dir = tmp_path / "run"
    result = runner.invoke(
        app, ["train", "--preset", "tiny", "--max-steps", "40", "--eval-every-n-steps", "20", "--output-dir", str(run_dir),
              "--device", "cpu", "--seed", "3", "--no-group-by-length"]
    )
    assert result.exit_code == 0, result.output
    assert "RANDOM weights" in result.output and "done" in result.output
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["seed"] == 3 and saved["optim"]["max_steps"] == 40 and saved["model"]["name_or_path"] == "tiny"
    assert saved["batch"]["group_by_length"] is False

    result = runner.invoke(app, ["evaluate", str(run_dir), "--split", "val", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stdout holds the JSON object and nothing else
    assert set(report) == {"split", "n", "accuracy", "macro_accuracy", "chance", "majority_baseline", "categories", "tasks"}
    assert report["split"] == "val" and report["n"] == sum(t["n"] for t in report["tasks"].values())
    assert all(set(t) == {"n", "accuracy"} for t in report["tasks"].values())
    assert (run_dir / "eval-val.json").is_file()


def test_evaluate_renders_tables(tiny_run):
    result = runner.invoke(app, ["evaluate", str(tiny_run)])
    assert result.exit_code == 0, result.output
    for word in ("accuracy", "macro accuracy", "chance", "majority answer baseline", "numbers", "even_number"):
        assert word in result.stdout


def test_default_preset_offline_fails_with_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    result = runner.invoke(app, ["train", "--preset", "default", "--output-dir", str(tmp_path / "r")])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "--preset tiny" in result.output and "Hugging Face" in result.output and "HF_HUB_OFFLINE is set" in result.output


def test_help_lists_every_contract_flag():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in ("--config", "--preset", "--strategy", "--model", "--tokenizer", "--data-source", "--data-dir", "--protocol",
                 "--output-dir", "--max-steps", "--epochs", "--batch-size", "--lambda-contrastive", "--seed", "--device",
                 "--precision", "--overwrite", "--no-group-by-length"):
        assert flag in result.output, flag
    assert "Weight of the uncertainty-weighted InfoNCE loss" in result.output
