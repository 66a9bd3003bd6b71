"""Runs keep their promises: a failed start removes only what it wrote (and refuses a directory
acct did not write), a plugin's sys.exit or exception is one line naming the plugin, a token
budget above the encoder's position limit is refused, an interrupted export leaves no temporary
folder, and --init-from does not silently drop --model."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acct.cli import app
from acct.config.resolve import resolve_train
from acct.errors import UsageError
from acct.train.setup import position_limit
from tests.conftest import run_to_end, tiny_settings

runner = CliRunner()
SHORT = ["--preset", "tiny", "--max-steps", "4", "--eval-every-n-steps", "4", "--device", "cpu"]


def one_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def strategy_plugin(path: Path, name: str, body: str) -> Path:
    """A --code file registering strategy `name` whose class has `body` (indented methods)."""
    path.write_text(
        "from acct.curriculum import register_strategy\n\n"
        f"@register_strategy({name!r})\n"
        "class Plugin:\n"
        "    def __init__(self, tasks):\n"
        "        self.tasks = tasks\n\n"
        f"{body}\n",
        encoding="utf-8",
    )
    return path


NAN_WEIGHTS = "    def weights(self, stats):\n        return [float('nan')] * len(stats.tasks)\n"
@pytest.fixture
def early_update(monkeypatch):
    """The curriculum asks its strategy at step 2 (before the first checkpoint, at step 4)."""
    monkeypatch.setenv("ACCT_CURRICULUM__WARMUP_EPOCHS", "0")
    monkeypatch.setenv("ACCT_CURRICULUM__UPDATE_EVERY_N_STEPS", "2")


# -- a failed start ---------------------------------------------------------------------------------


def test_a_directory_acct_did_not_write_is_refused_and_left_alone(tmp_path, early_update):
    out = tmp_path / "mine"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "x.bin").write_bytes(b"the user's weights")
    (out / "metrics.jsonl").write_text("the user's log\n")
    plugin = strategy_plugin(tmp_path / "nan_a.py", "promise_nan_a", NAN_WEIGHTS)
    for extra in ([], ["--overwrite"]):
        result = runner.invoke(app, ["train", *SHORT, "--strategy", "promise_nan_a", "--code", str(plugin),
                                     "--output-dir", str(out), *extra])
        line = one_error(result, 2)
        assert "is not empty and holds no acct run" in line and "checkpoints" in line
        assert sorted(p.name for p in out.rglob("*")) == ["checkpoints", "metrics.jsonl", "x.bin"]
        assert (out / "checkpoints" / "x.bin").read_bytes() == b"the user's weights"
    # What the lock of an earlier acct process leaves does not count.
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".acct.lock").write_text("")
    run_to_end(tiny_settings(tmp_path / "empty", **{"optim.max_steps": 2, "eval_every_n_steps": 2}))
    assert (tmp_path / "empty" / "checkpoints" / "best").exists()


def test_a_failed_start_leaves_no_copy_of_its_plugin(tmp_path, early_update):
    out = tmp_path / "runs" / "nan"
    plugin = strategy_plugin(tmp_path / "nan_b.py", "promise_nan_b", NAN_WEIGHTS)
    result = runner.invoke(app, ["train", *SHORT, "--strategy", "promise_nan_b", "--code", str(plugin),
                                 "--output-dir", str(out)])
    assert "promise_nan_b" in one_error(result, 2)
    assert not (tmp_path / "runs").exists(), sorted(str(p) for p in tmp_path.rglob("*"))


def test_a_failed_overwrite_puts_the_old_runs_plugin_copy_back(tmp_path, early_update):
    out = tmp_path / "run"
    good = strategy_plugin(tmp_path / "p.py", "promise_good", "    def weights(self, stats):\n        return [1.0] * len(stats.tasks)\n")
    result = runner.invoke(app, ["train", *SHORT, "--strategy", "promise_good", "--code", str(good), "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    copy = (out / "code" / "p.py").read_bytes()
    bad_dir = tmp_path / "other"
    bad_dir.mkdir()
    bad = strategy_plugin(bad_dir / "p.py", "promise_nan_c", NAN_WEIGHTS)  # same file name, other content
    result = runner.invoke(app, ["train", *SHORT, "--strategy", "promise_nan_c", "--code", str(bad),
                                 "--output-dir", str(out), "--overwrite"])
    one_error(result, 2)
    assert (out / "code" / "p.py").read_bytes() == copy
    assert not [p for p in out.iterdir() if p.name.startswith(".old-")]
    saved = json.loads((out / "config.json").read_text())
    assert saved["curriculum"]["strategy"] == "promise_good"


# -- a plugin's exit or exception -------------------------------------------------------------------


def test_a_plugin_that_exits_at_import_is_an_error_of_the_plugin(tmp_path):
    for code in (0, 3):
        plugin = tmp_path / f"exits{code}.py"
        plugin.write_text(f"import sys\nsys.exit({code})\n")
        result = runner.invoke(app, ["train", *SHORT, "--code", str(plugin), "--output-dir", str(tmp_path / "run")])
        line = one_error(result, 2)
        assert str(plugin) in line and "(line 2)" in line and f"sys.exit({code})" in line
        assert not (tmp_path / "run").exists()


def test_a_plugins_state_dict_error_is_one_line_naming_the_plugin(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCT_DEBUG", raising=False)
    plugin = strategy_plugin(tmp_path / "badstate.py", "promise_bad_state",
                             "    def weights(self, stats):\n        return [1.0] * len(stats.tasks)\n\n"
                             "    def state_dict(self):\n        return len(None)\n")
    result = runner.invoke(app, ["train", *SHORT, "--strategy", "promise_bad_state", "--code", str(plugin),
                                 "--output-dir", str(tmp_path / "run")])
    line = one_error(result, 1)
    assert f"plugin {plugin} (line 12, in state_dict) raised TypeError" in line, line


def test_a_plugin_that_exits_while_training_is_not_a_success(tmp_path, monkeypatch, early_update):
    monkeypatch.delenv("ACCT_DEBUG", raising=False)
    plugin = strategy_plugin(tmp_path / "quits.py", "promise_quits",
                             "    def weights(self, stats):\n        raise SystemExit(0)\n")
    result = runner.invoke(app, ["train", *SHORT, "--strategy", "promise_quits", "--code", str(plugin),
                                 "--output-dir", str(tmp_path / "run")])
    line = one_error(result, 1)
    assert f"plugin {plugin} (line 9, in weights) called sys.exit(0)" in line, line


# -- the token budget and the encoder's positions ---------------------------------------------------


def test_a_max_length_above_the_position_limit_is_refused_before_anything_is_written(tmp_path):
    result = runner.invoke(app, ["train", *SHORT, "--max-length", "4096", "--output-dir", str(tmp_path / "run")])
    line = one_error(result, 2)
    assert "model.max_length 4096" in line and "max_position_embeddings 512" in line and "--max-length 512" in line
    assert not (tmp_path / "run").exists()
    run_to_end(tiny_settings(tmp_path / "ok", **{"model.max_length": 512, "optim.max_steps": 1, "eval_every_n_steps": 1}))


def test_the_position_limit_of_encoder_configs():
    from transformers import BertConfig, DebertaV2Config, RobertaConfig

    assert position_limit(DebertaV2Config(max_position_embeddings=512)) == 512
    assert position_limit(BertConfig(max_position_embeddings=512)) == 512
    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512  # positions start at 2


# -- an interrupted export ----------------------------------------------------------------------------


def test_a_terminated_export_leaves_no_temporary_folder(tmp_path, monkeypatch):
    """SIGTERM halfway through writing the folder, sent to this process as `kill` would send it."""
    from acct.run import export

    run_dir = tmp_path / "run"
    run_to_end(tiny_settings(run_dir, **{"optim.max_steps": 2, "eval_every_n_steps": 2}))
    out = tmp_path / "exports" / "model"

    def card(config):
        # Without acct's handler the signal's default action would end this test process: refuse instead.
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None), "no SIGTERM handler"
        os.kill(os.getpid(), signal.SIGTERM)
        return "never written"

    monkeypatch.setattr(export, "model_card", card)
    monkeypatch.delenv("ACCT_DEBUG", raising=False)
    before = signal.getsignal(signal.SIGTERM)
    result = runner.invoke(app, ["export", str(run_dir), str(out)])
    assert result.exit_code == 143, result.output
    assert "terminated (SIGTERM)" in result.stderr and "Traceback" not in result.output, result.output
    assert list((tmp_path / "exports").iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is before  # the export's handler is gone again


# -- --init-from and --model --------------------------------------------------------------------------


def test_init_from_with_a_named_encoder_is_refused(tmp_path, monkeypatch):
    source = tmp_path / "source"
    result = runner.invoke(app, ["train", *SHORT, "--init-from", str(source), "--model", "tiny",
                                 "--output-dir", str(tmp_path / "run")])
    line = one_error(result, 2)
    assert "--init-from" in line and "--model would be ignored" in line
    config = tmp_path / "settings.yaml"
    config.write_text("model:\n  name_or_path: microsoft/deberta-v3-base\n")
    with pytest.raises(UsageError, match="model.name_or_path in .*settings.yaml would be ignored"):
        resolve_train({"init_from": str(source)}, preset="tiny", config_file=config)
    monkeypatch.setenv("ACCT_MODEL__NAME_OR_PATH", "tiny")
    with pytest.raises(UsageError, match="ACCT_MODEL__NAME_OR_PATH would be ignored"):
        resolve_train({"init_from": str(source)}, preset="tiny")
    monkeypatch.delenv("ACCT_MODEL__NAME_OR_PATH")
    # The preset's own model is not the user's choice: --init-from alone is fine.
    assert resolve_train({"init_from": str(source)}, preset="tiny").init_from == str(source)


def test_an_overwrite_that_fails_while_moving_the_old_run_aside_keeps_all_of_it(tmp_path, monkeypatch):
    from acct.run import rundir

    run_dir = tmp_path / "run"
    short = {"optim.max_steps": 2, "eval_every_n_steps": 2}
    run_to_end(tiny_settings(run_dir, **short))
    before = {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".acct.lock"}
    real_replace = os.replace

    def replace(src, dst):  # the disk says no halfway through moving the old run aside
        if ".old-" in str(dst) and Path(dst).name == "split.json":
            raise OSError(28, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(rundir.os, "replace", replace)
    with pytest.raises(OSError, match="No space left"):
        run_to_end(tiny_settings(run_dir, **short, overwrite=True, seed=5))
    monkeypatch.setattr(rundir.os, "replace", real_replace)
    after = {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".acct.lock"}
    assert after == before
