"""Settings keep their promises: trust never comes from a file, every number is finite, a key
given twice in a YAML file is refused, an error names what the user typed, and --batch-size
alone sets the batch."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from acct import engine
from acct.cli import app
from acct.config.layers import read_yaml
from acct.config.resolve import resolve_train
from acct.config.environment import unknown_env_warnings
from acct.errors import UsageError
from acct.study.study_file import read_study
from tests.conftest import run_to_end, tiny_settings

runner = CliRunner()


def one_error(result) -> str:
    """The single `error:` line of a failed command (and no traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


# -- trust comes only from the person running the command ----------------------------------------


def test_a_config_file_cannot_grant_trust(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCT_MODEL__TRUST_REMOTE_CODE", raising=False)
    config = tmp_path / "settings.yaml"
    config.write_text("model:\n  trust_remote_code: true\n")
    result = runner.invoke(app, ["train", "--preset", "tiny", "--config", str(config), "--output-dir",
                                 str(tmp_path / "run"), "--max-steps", "2"])
    line = one_error(result)
    assert "--trust-remote-code" in line and str(config) in line
    assert not (tmp_path / "run").exists()
    # false says nothing a file cannot say; the user's own flag or variable grants trust.
    config.write_text("model:\n  trust_remote_code: false\n")
    assert resolve_train({}, preset="tiny", config_file=config).model.trust_remote_code is False
    config.write_text("model:\n  trust_remote_code: true\n")
    flagged = resolve_train({"model": {"trust_remote_code": True}}, preset="tiny", config_file=config)
    assert flagged.model.trust_remote_code is True
    monkeypatch.setenv("ACCT_MODEL__TRUST_REMOTE_CODE", "1")
    assert resolve_train({}, preset="tiny", config_file=config).model.trust_remote_code is True


def test_a_study_arm_cannot_grant_trust(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text("arms:\n  a: {}\n  b: {model: {trust_remote_code: true}}\n")
    with pytest.raises(UsageError, match="arm b sets model.trust_remote_code.*--trust-remote-code"):
        read_study(study)
    result = runner.invoke(app, ["ablate", "--preset", "tiny", "--study", str(study), "--output-dir",
                                 str(tmp_path / "study"), "--max-steps", "2"])
    assert "--trust-remote-code" in one_error(result)
    assert not (tmp_path / "study" / "b-seed0").exists()


# -- every setting is a finite number -------------------------------------------------------------


@pytest.mark.parametrize(("yaml_text", "setting"), [
    ("loss:\n  tau: .inf\n", "loss.tau"),
    ("curriculum:\n  temperature: .inf\n", "curriculum.temperature"),
    ("optim:\n  lr: .nan\n", "optim.lr"),
    ("data:\n  split_fractions: [0.8, 0.1, .nan]\n", "data.split_fractions"),
    ("curriculum:\n  options: {temperature: .inf}\n", "curriculum.options"),
    ("loss:\n  task_weighting_options: {scale: [1.0, -.inf]}\n", "loss.task_weighting_options"),
])
def test_non_finite_settings_are_refused_naming_the_setting(tmp_path, yaml_text, setting):
    config = tmp_path / "settings.yaml"
    config.write_text(yaml_text)
    result = runner.invoke(app, ["train", "--preset", "tiny", "--config", str(config), "--output-dir",
                                 str(tmp_path / "run"), "--max-steps", "2"])
    line = one_error(result)
    assert setting in line and "finite" in line, line
    assert not (tmp_path / "run").exists()


def test_non_finite_values_from_the_environment_and_other_commands_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCT_CURRICULUM__FLOOR", "nan")
    with pytest.raises(UsageError, match=r"curriculum.floor .*finite"):
        resolve_train({}, preset="tiny")
    monkeypatch.delenv("ACCT_CURRICULUM__FLOOR")
    result = runner.invoke(app, ["train", "--preset", "tiny", "--lr", "inf", "--output-dir", str(tmp_path / "r")])
    assert "optim.lr (--lr)" in one_error(result)


# -- a key given twice in a YAML file -------------------------------------------------------------


def test_a_study_arm_defined_twice_is_refused_with_both_lines(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text("arms:\n  a: {loss: {tau: 0.1}}\n  b: {}\n  a:\n    loss: {tau: 0.2}\nreference: b\n")
    with pytest.raises(UsageError, match=r"key 'a' is given twice \(lines 2 and 4\)"):
        read_study(study)
    result = runner.invoke(app, ["ablate", "--preset", "tiny", "--study", str(study), "--output-dir",
                                 str(tmp_path / "study"), "--max-steps", "2"])
    assert "'a' is given twice (lines 2 and 4)" in one_error(result)


def test_a_setting_given_twice_in_a_config_file_is_refused(tmp_path):
    config = tmp_path / "settings.yaml"
    config.write_text("optim:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n")
    result = runner.invoke(app, ["train", "--preset", "tiny", "--config", str(config), "--output-dir",
                                 str(tmp_path / "run")])
    line = one_error(result)
    assert str(config) in line and "'lr' is given twice (lines 2 and 4)" in line
    # The same key in two different mappings, and YAML merge keys, are not duplicates.
    config.write_text("base: &b {lr: 0.1}\noptim:\n  <<: *b\n  lr: 0.2\nloss:\n  lr_like: 1\n")
    assert read_yaml(config)["optim"] == {"lr": 0.2}


# -- errors name what the user typed --------------------------------------------------------------


def test_a_bad_flag_is_named_as_the_flag_a_variable_as_the_variable(tmp_path, monkeypatch):
    tiny_run = tmp_path / "run"  # settings are checked before the run is read
    result = runner.invoke(app, ["evaluate", str(tiny_run), "--split", "train"])
    line = one_error(result)
    assert "(--split)" in line and "ACCT_SPLIT" not in line
    monkeypatch.setenv("ACCT_SPLIT", "train")
    line = one_error(runner.invoke(app, ["evaluate", str(tiny_run)]))
    assert "(ACCT_SPLIT)" in line and "--split" not in line
    monkeypatch.delenv("ACCT_SPLIT")
    line = one_error(runner.invoke(app, ["evaluate", str(tiny_run), "--eval-batch-size", "0"]))
    assert "(--eval-batch-size)" in line


def test_acct_code_is_not_warned_about(tmp_path, monkeypatch):
    plugin = tmp_path / "plugin.py"
    plugin.write_text("X = 1\n")
    assert unknown_env_warnings({"ACCT_CODE": str(plugin)}) == []
    assert unknown_env_warnings({"ACCT_CODEX": "1"})  # a real typo still is
    monkeypatch.setenv("ACCT_CODE", str(plugin))
    result = runner.invoke(app, ["evaluate", str(tmp_path / "missing"), "--split", "val"])
    assert "ACCT_CODE" not in result.output and "warning" not in result.output, result.output


# -- --batch-size alone sets the batch ------------------------------------------------------------


def test_batch_size_alone_sets_the_batch_and_trains_batches_of_that_size(tmp_path):
    run_dir = tmp_path / "run"
    settings = tiny_settings(run_dir, **{"batch.batch_size": 32, "optim.max_steps": 20, "eval_every_n_steps": 20,
                                         "curriculum.update_every_n_steps": 20})
    assert (settings.batch.tasks_per_batch, settings.batch.examples_per_task) == (4, 8)
    events = run_to_end(settings)
    update = next(e for e in events if isinstance(e, engine.CurriculumUpdated))
    assert sum(update.sampled.values()) == 20 * 32  # 20 steps of 32 questions
    saved = json.loads((run_dir / "config.json").read_text())["batch"]
    assert (saved["batch_size"], saved["tasks_per_batch"], saved["examples_per_task"]) == (32, 4, 8)
    assert engine.load_run_settings(run_dir).batch.questions_per_batch == 32


@pytest.mark.parametrize(("flags", "expected"), [
    (["--batch-size", "32", "--examples-per-task", "2"], (16, 2)),
    (["--batch-size", "32", "--tasks-per-batch", "8"], (8, 4)),
    (["--batch-size", "16", "--tasks-per-batch", "4", "--examples-per-task", "4"], (4, 4)),
])
def test_batch_size_with_one_factor_sets_the_other(tmp_path, flags, expected):
    from acct.cli.flags import SETTINGS_FLAGS

    paths = {f: e.path for f, e in SETTINGS_FLAGS.items()}
    given = {paths[flags[i]]: int(flags[i + 1]) for i in range(0, len(flags), 2)}
    from acct.config.layers import nest

    batch = resolve_train(nest(given), preset="tiny").batch
    assert (batch.tasks_per_batch, batch.examples_per_task) == expected


@pytest.mark.parametrize(("flags", "message"), [
    (["--batch-size", "30"], "batch_size 30 does not divide into tasks_per_batch 4"),
    (["--batch-size", "30", "--examples-per-task", "4"], "does not divide into examples_per_task 4"),
    (["--batch-size", "32", "--tasks-per-batch", "4", "--examples-per-task", "4"], "must equal"),
])
def test_a_batch_size_that_does_not_divide_is_one_line(tmp_path, flags, message):
    result = runner.invoke(app, ["train", "--preset", "tiny", "--output-dir", str(tmp_path / "run"), *flags])
    assert message in one_error(result)
    assert not (tmp_path / "run").exists()
