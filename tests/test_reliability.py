"""A run directory can be trusted: no code from artifacts, nothing lost to --overwrite, a full
disk, a lost log tail or an edited config.json (in-process; the process-boundary cases are in
tests/run/test_run_lock.py)."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acct.run import checkpoint as ckpt_io
from acct import engine
from acct.train import loop
from acct.study.plan import PlannedRun, train_run
from acct.cli import app
from acct.errors import CheckpointError, UsageError
from acct.run.lock import RunLock
from tests.conftest import run_to_end, tiny_settings

runner = CliRunner()
SHORT = {"optim.max_steps": 4, "eval_every_n_steps": 2}


def short_run(run_dir: Path, **flags):
    return run_to_end(tiny_settings(run_dir, **{**SHORT, **flags}))


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run (links as their targets), to compare before and after."""
    out = {}
    for path in sorted(run_dir.rglob("*")):
        rel = str(path.relative_to(run_dir))
        if rel == ".acct.lock":
            continue
        if path.is_symlink():
            out[rel] = os.readlink(path).encode()
        elif path.is_file():
            out[rel] = path.read_bytes()
    return out


# -- security: nothing in a run directory executes code ---------------------------------------------


PAYLOAD = """
from pathlib import Path
Path({marker!r}).write_text("ran")
from transformers import PretrainedConfig
class EvilConfig(PretrainedConfig):
    model_type = "evil"
"""


def plant_payload(tiny_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of a run whose config.json trusts remote code and whose encoder config names evil.py."""
    run_dir = tmp_path / "handed-over"
    shutil.copytree(tiny_run, run_dir, symlinks=True)
    marker = tmp_path / "payload-ran"
    settings = json.loads((run_dir / "config.json").read_text())
    settings["model"]["trust_remote_code"] = True
    (run_dir / "config.json").write_text(json.dumps(settings))
    for ckpt in (run_dir / "checkpoints").glob("step-*"):
        cfg_path = ckpt / "encoder" / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
        cfg_path.write_text(json.dumps(cfg))
        (ckpt / "encoder" / "evil.py").write_text(PAYLOAD.format(marker=str(marker)))
    return run_dir, marker


@pytest.mark.parametrize("command", ["evaluate", "predict", "inspect-confusion", "resume"])
def test_a_planted_payload_never_runs(tiny_run, tmp_path, monkeypatch, command):
    run_dir, marker = plant_payload(tiny_run, tmp_path)
    monkeypatch.delenv("ACCT_MODEL__TRUST_REMOTE_CODE", raising=False)
    monkeypatch.delenv("ACCT_DEBUG", raising=False)
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    argv = {
        "evaluate": ["evaluate", str(run_dir), "--device", "cpu"],
        "predict": ["predict", str(run_dir), "-q", "Is 4 even?", "--choices", "yes", "no", "--device", "cpu"],
        "inspect-confusion": ["inspect-confusion", str(run_dir), "--recompute", "--device", "cpu"],
        "resume": ["train", "--resume", str(run_dir)],
    }[command]
    result = runner.invoke(app, argv)
    assert not marker.exists(), f"{command} ran code from the run directory"
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "auto_map" in errors[0] and "--trust-remote-code" in errors[0] and "ACCT_MODEL__TRUST_REMOTE_CODE" in errors[0]


def test_trust_comes_only_from_the_user(tiny_run, tmp_path, monkeypatch):
    run_dir, _ = plant_payload(tiny_run, tmp_path)
    monkeypatch.delenv("ACCT_MODEL__TRUST_REMOTE_CODE", raising=False)
    assert not engine.user_trusts_remote_code()
    assert engine.user_trusts_remote_code(True)
    monkeypatch.setenv("ACCT_MODEL__TRUST_REMOTE_CODE", "1")
    assert engine.user_trusts_remote_code()
    ckpt = ckpt_io.checkpoint_dir(run_dir, "best")
    engine.check_no_remote_code(ckpt, True)  # the user's opt-in lifts the refusal
    with pytest.raises(CheckpointError, match="auto_map"):
        engine.check_no_remote_code(ckpt, False)


TOKENIZER_PAYLOAD = """
from pathlib import Path
Path({marker!r}).write_text("ran")
from transformers import PreTrainedTokenizerFast
class EvilTokenizer(PreTrainedTokenizerFast):
    pass
"""


def plant_tokenizer_payload(tiny_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of a run whose encoder config is clean but whose tokenizer config names evil_tokenizer.py."""
    run_dir = tmp_path / "handed-over-tokenizer"
    shutil.copytree(tiny_run, run_dir, symlinks=True)
    marker = tmp_path / "tokenizer-payload-ran"
    for ckpt in (run_dir / "checkpoints").glob("step-*"):
        assert "auto_map" not in json.loads((ckpt / "encoder" / "config.json").read_text())
        cfg_path = ckpt / "tokenizer" / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["auto_map"] = {"AutoTokenizer": [None, "evil_tokenizer.EvilTokenizer"]}
        cfg_path.write_text(json.dumps(cfg))
        (ckpt / "tokenizer" / "evil_tokenizer.py").write_text(TOKENIZER_PAYLOAD.format(marker=str(marker)))
    return run_dir, marker


def test_code_named_by_the_tokenizer_alone_is_refused_too(tiny_run, tmp_path, monkeypatch):
    run_dir, marker = plant_tokenizer_payload(tiny_run, tmp_path)
    monkeypatch.delenv("ACCT_MODEL__TRUST_REMOTE_CODE", raising=False)
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    ckpt = ckpt_io.checkpoint_dir(run_dir, "best")
    with pytest.raises(CheckpointError, match=r"tokenizer_config\.json names code to run \(auto_map\)"):
        engine.check_no_remote_code(ckpt, False)
    result = runner.invoke(app, ["evaluate", str(run_dir), "--device", "cpu"])
    assert not marker.exists(), "evaluate ran code named by the tokenizer"
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "tokenizer_config.json names code to run (auto_map)" in errors[0], result.output


@pytest.mark.parametrize("value", ["0", "false", "False", "no", "off", ""])
def test_an_environment_variable_that_says_no_is_no_trust(tiny_run, tmp_path, monkeypatch, value):
    run_dir, marker = plant_payload(tiny_run, tmp_path)
    monkeypatch.setenv("ACCT_MODEL__TRUST_REMOTE_CODE", value)
    monkeypatch.delenv("ACCT_DEBUG", raising=False)
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    assert not engine.user_trusts_remote_code()
    for argv in (["evaluate", str(run_dir), "--device", "cpu"], ["train", "--resume", str(run_dir)]):
        result = runner.invoke(app, argv)
        assert not marker.exists(), f"{argv[0]} with ACCT_MODEL__TRUST_REMOTE_CODE={value!r} ran code from the run directory"
        assert result.exit_code == 1 and "names code to run (auto_map)" in result.output, result.output


@pytest.mark.slow
def test_a_resume_under_an_empty_trust_variable_compares_against_the_field_defaults(tmp_path, monkeypatch):
    # The defaults a resumed run's new settings are compared with are the fields' own: no ACCT_*
    # variable is read for them, so one that does not parse cannot stop the resume.
    run_to_end(tiny_settings(tmp_path / "r", **{"optim.max_steps": 2, "eval_every_n_steps": 2}))
    monkeypatch.setenv("ACCT_MODEL__TRUST_REMOTE_CODE", "")
    monkeypatch.delenv("ACCT_DEBUG", raising=False)
    result = runner.invoke(app, ["train", "--resume", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "done (completed) at step 2" in result.output


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on"])
def test_an_environment_variable_that_says_yes_is_trust(monkeypatch, value):
    monkeypatch.setenv("ACCT_MODEL__TRUST_REMOTE_CODE", value)
    assert engine.user_trusts_remote_code()


def test_a_loaded_run_does_not_inherit_trust_from_its_config(tiny_run, monkeypatch):
    monkeypatch.delenv("ACCT_MODEL__TRUST_REMOTE_CODE", raising=False)
    run = engine.load_run(tiny_run)
    assert run.settings.model.trust_remote_code is False


# -- --overwrite validates first and moves the old run aside ----------------------------------------


@pytest.mark.slow
def test_overwrite_with_bad_data_leaves_the_old_run_untouched(tmp_path):
    run_dir = tmp_path / "run"
    short_run(run_dir)
    before = snapshot(run_dir)
    bad = tiny_settings(run_dir, **SHORT, overwrite=True, **{"data.source": "csv", "data.data_dir": tmp_path / "nowhere"})
    with pytest.raises(UsageError):
        run_to_end(bad)
    assert snapshot(run_dir) == before
    huge = tiny_settings(run_dir, **SHORT, overwrite=True, **{"batch.examples_per_task": 100000})
    with pytest.raises(UsageError, match="largest task"):
        run_to_end(huge)
    assert snapshot(run_dir) == before


@pytest.mark.slow
def test_overwrite_deletes_the_old_run_only_after_the_first_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    short_run(run_dir)
    old_config = (run_dir / "config.json").read_text()
    seen_aside = []
    events = engine.train(tiny_settings(run_dir, **SHORT, overwrite=True, seed=3))
    for ev in events:
        if isinstance(ev, engine.RunStarted):
            aside = [p for p in run_dir.iterdir() if p.name.startswith(".old-")]
            assert len(aside) == 1 and (aside[0] / "config.json").read_text() == old_config
            assert any(str(aside[0]) in note for note in ev.notices)
            seen_aside = aside
        if isinstance(ev, engine.CheckpointSaved):
            assert not seen_aside[0].exists()
    assert seen_aside
    assert json.loads((run_dir / "config.json").read_text())["seed"] == 3


@pytest.mark.slow
def test_a_failure_before_the_first_checkpoint_puts_the_old_run_back(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    short_run(run_dir)
    before = snapshot(run_dir)

    def broken_step(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(loop, "train_step", broken_step)
    with pytest.raises(RuntimeError, match="boom"):
        run_to_end(tiny_settings(run_dir, **SHORT, overwrite=True, seed=3))
    assert snapshot(run_dir) == before
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".old-")]


# -- failed starts and impossible batches --------------------------------------------------------


@pytest.mark.parametrize(("flags", "message"), [
    ({"batch.examples_per_task": 100000}, "largest task"),
    ({"batch.tasks_per_batch": 100000, "batch.examples_per_task": 100000}, "largest task"),
    ({"batch.tasks_per_batch": 100000}, "larger than the whole training split"),
])
def test_an_impossible_batch_is_refused_before_anything_is_written(tmp_path, flags, message):
    run_dir = tmp_path / "run"
    with pytest.raises(UsageError, match=message):
        run_to_end(tiny_settings(run_dir, **SHORT, **flags))
    assert not run_dir.exists()


@pytest.mark.slow
def test_a_failed_start_leaves_no_run_directory_that_blocks_the_rerun(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"

    def broken_step(*args, **kwargs):
        raise RuntimeError("boom")

    with monkeypatch.context() as m:
        m.setattr(loop, "train_step", broken_step)
        with pytest.raises(RuntimeError):
            run_to_end(tiny_settings(run_dir, **SHORT))
    assert not run_dir.exists()
    events = short_run(run_dir)  # no --overwrite needed
    assert isinstance(events[-1], engine.Finished)


# -- one writer per run directory (in-process half; see test_run_lock.py) ------------------------


@pytest.mark.slow
def test_ablate_locks_each_run_it_trains(tmp_path):
    run_dir = tmp_path / "baseline-seed0"
    run_dir.mkdir()
    held = RunLock.acquire(run_dir)
    try:
        planned = PlannedRun("baseline", 0, run_dir, tiny_settings(run_dir, **SHORT), "train")
        with pytest.raises(UsageError, match=f"in use by another acct process \\(pid {os.getpid()} on host"):
            list(train_run(planned))
    finally:
        held.release()
    assert not (run_dir / "config.json").exists()


# -- metrics.jsonl ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_log_that_lost_its_tail_is_never_padded(tmp_path):
    run_dir = tmp_path / "run"
    short_run(run_dir, **{"optim.max_steps": 6, "log_every_n_steps": 1})
    log = run_dir / "metrics.jsonl"
    data = log.read_bytes()
    log.write_bytes(data[:-100])
    events = run_to_end(tiny_settings(run_dir, **SHORT, resume=True))
    started = events[0]
    assert any("shorter than the checkpoint recorded" in n for n in started.notices)
    text = log.read_bytes()
    assert b"\0" not in text
    records = [json.loads(line) for line in text.decode().splitlines()]
    # The new segment starts at the checkpoint's step; the resume's own record follows it.
    assert [r["event"] for r in records[-2:]] == ["segment", "resumed"] and records[-2]["step"] == 6


@pytest.mark.slow
def test_a_deleted_log_on_resume_is_a_notice(tmp_path):
    run_dir = tmp_path / "run"
    short_run(run_dir)
    (run_dir / "metrics.jsonl").unlink()
    events = run_to_end(tiny_settings(run_dir, **SHORT, resume=True))
    assert any("metrics.jsonl was missing" in n for n in events[0].notices)
    assert json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])["event"] == "segment"


@pytest.mark.slow
def test_the_log_is_fsynced_before_each_checkpoint_records_its_length(tmp_path, monkeypatch):
    order = []
    real_sync, real_save = engine.MetricsLog.sync, ckpt_io.save_checkpoint

    def sync(self):
        order.append(("sync", self.size()))
        real_sync(self)

    def save(run_dir, contents, tags):
        order.append(("save", contents.state["trainer"]["metrics_bytes"]))
        return real_save(run_dir, contents, tags)

    monkeypatch.setattr(engine.MetricsLog, "sync", sync)
    monkeypatch.setattr(ckpt_io, "save_checkpoint", save)
    short_run(tmp_path / "run")
    saves = [i for i, (kind, _) in enumerate(order) if kind == "save"]
    assert len(saves) == 2
    for i in saves:
        assert order[i - 1] == ("sync", order[i][1])


# -- a full disk ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_full_disk_while_saving_says_so_and_cleans_up(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    real_save_file = ckpt_io.save_file
    calls = {"n": 0}

    def save_file(tensors, path, *a, **kw):
        calls["n"] += str(path).endswith("model.safetensors")
        if calls["n"] == 2 and str(path).endswith("model.safetensors"):  # the second checkpoint's weights
            with open(path, "wb") as f:
                f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save_file(tensors, path, *a, **kw)

    monkeypatch.setattr(ckpt_io, "save_file", save_file)
    with pytest.raises(CheckpointError) as info:
        run_to_end(tiny_settings(run_dir, **SHORT))
    assert str(info.value) == "no space left on device while saving step 4; the previous checkpoint is intact"
    root = run_dir / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["best", "last", "step-00000002"]
    monkeypatch.undo()
    assert engine.load_run(run_dir, "last").meta["step"] == 2


def test_zip_writer_failure_on_a_full_disk_is_recognised(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100, 100, 0))
    # What torch's zip writer raised when a real tmpfs filled up, and its other wording.
    for text in ("[enforce fail at inline_container.cc:672] . unexpected pos 315520 vs 315412",
                 "[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file data/0: file write failed"):
        assert ckpt_io.is_disk_full(RuntimeError(text), tmp_path)
    monkeypatch.undo()
    assert not ckpt_io.is_disk_full(RuntimeError("something else"), tmp_path)


def test_evaluate_on_a_full_disk_leaves_no_temporary_file(tiny_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir, symlinks=True)
    for earlier in [*run_dir.glob("eval-*.json"), *run_dir.glob("predictions-*.jsonl")]:
        earlier.unlink()  # the session's run may hold other tests' evaluations

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    from acct.config.commands import EvaluateSettings

    settings = EvaluateSettings(run_dir=run_dir, split="val", device="cpu")
    monkeypatch.setattr(ckpt_io.os, "fsync", fsync)
    with pytest.raises(CheckpointError, match="no space left on device while writing"):
        engine.evaluate(settings)
    assert [p.name for p in run_dir.iterdir() if "eval" in p.name or "predictions" in p.name] == []


# -- settings that are silently wrong ------------------------------------------------------------


@pytest.mark.slow
def test_an_edited_config_is_refused_on_resume_naming_the_fields(tmp_path):
    run_dir = tmp_path / "run"
    short_run(run_dir, **{"optim.max_steps": 8})
    events = run_to_end(tiny_settings(run_dir, resume=True))  # unedited: resumes (nothing left to do)
    assert isinstance(events[-1], engine.Finished)
    path = run_dir / "config.json"
    cfg = json.loads(path.read_text())
    cfg["batch"]["examples_per_task"] = 2
    cfg["optim"]["lr"] = 0.01
    path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as info:
        run_to_end(tiny_settings(run_dir, resume=True))
    assert "config.json was edited" in str(info.value)
    assert "batch.examples_per_task (4 -> 2)" in str(info.value) and "optim.lr" in str(info.value)
