"""Experiment trackers (--report-to), offline: what each one received, read back with its own reader.

One tiny run reports to tensorboard, trackio, wandb (offline) and mlflow (a local file store)
at once; it crashes after step 3 with its last checkpoint at step 2 and is resumed to step 6, so
the same run also shows how each tracker continues its run. The scalars read back are compared
with metrics.jsonl, which the engine writes independently of the trackers.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acct import engine, registry
from acct.cli import app
from acct.config.train import TrainSettings
from acct.config.resolve import resolve_train
from acct.errors import UsageError
from tests.conftest import SMALL_MODEL, SMALL_MODEL_YAML, tiny_settings

runner = CliRunner()
TRACKERS = ["tensorboard", "trackio", "wandb", "mlflow"]
CRASH_AFTER = 3  # steps; 'last' is saved every 2 steps, so the resume starts after step 2


# A small synthetic suite and a one-layer encoder: what is tested is what the trackers receive.
SMALL = {"data.synthetic_examples_per_task": 24, "model.tiny": SMALL_MODEL}


class Crash(RuntimeError):
    pass


def _lines(run_dir: Path, event: str) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [e for e in lines if e["event"] == event]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A run reporting to every tracker: crashed after step 3, resumed from its step-2 checkpoint to step 6."""
    for library in TRACKERS:  # .ci/run installs every tracker's extra, so these run in CI
        pytest.importorskip(library)
    root = tmp_path_factory.mktemp("trackers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.delenv("WANDB_DIR", raising=False)
        # MLflow's file store: what is tested is what acct sends through mlflow's client, which is
        # the same for every store, and a new SQLite store takes seconds of schema migrations.
        mp.setenv("MLFLOW_TRACKING_URI", (root / "mlruns").as_uri())
        mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        mp.setenv("TRACKIO_PROJECT", "acct-tests")
        run_dir = root / "run"
        settings = tiny_settings(run_dir, **SMALL, **{
            "optim.max_steps": 6, "eval_every_n_steps": 3, "log_every_n_steps": 1, "save_every_n_steps": 2,
            "curriculum.update_every_n_steps": 2, "report_to": ["tensorboard,trackio", "wandb", "mlflow"],
        })
        calls = {"n": 0}

        def crash_after_step_3() -> bool:  # asked once per step, after the step is logged
            calls["n"] += 1
            if calls["n"] == CRASH_AFTER:
                raise Crash("simulated crash")
            return False

        with pytest.raises(Crash):
            for _ in engine.train(settings, should_stop=crash_after_step_3):
                pass
        first_state = json.loads((run_dir / "trackers" / "state.json").read_text())
        from mlflow import MlflowClient

        first_status = MlflowClient().get_run(first_state["mlflow"]["id"]).info.status
        events = list(engine.train(settings.model_copy(update={"resume": True})))
        import trackio.utils

        yield {
            "run_dir": run_dir, "settings": settings, "events": events, "first_state": first_state,
            "first_mlflow_status": first_status, "mlflow_uri": (root / "mlruns").as_uri(),
            "trackio_dir": trackio.utils.TRACKIO_DIR,
        }


@pytest.mark.slow
def test_the_run_resumed_from_step_2_and_reported_where_each_tracker_logs(tracked):
    run_dir, events = tracked["run_dir"], tracked["events"]
    started = events[0]
    assert isinstance(started, engine.RunStarted) and started.start_step == 2
    notices = "\n".join(started.notices)
    for name in TRACKERS:
        assert f"{name}: " in notices, notices
    assert str(run_dir / "trackers" / "tensorboard") in notices
    assert events[-1].reason == "completed"
    # metrics.jsonl, truncated back to the checkpoint on resume, holds each step once.
    assert [e["step"] for e in _lines(run_dir, "train")] == [1, 2, 3, 4, 5, 6]
    # The trackers continued the runs they opened: same ids before and after the resume.
    state = json.loads((run_dir / "trackers" / "state.json").read_text())
    for name in ("trackio", "wandb", "mlflow"):
        assert state[name]["id"] == tracked["first_state"][name]["id"], name


def _tensorboard(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "trackers" / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.mark.slow
def test_tensorboard_holds_every_scalar_once_and_the_hyperparameters(tracked):
    from tensorboard.plugins.hparams import plugin_data_pb2

    run_dir, settings = tracked["run_dir"], tracked["settings"]
    acc = _tensorboard(run_dir)
    train, val = _lines(run_dir, "train"), _lines(run_dir, "validation")
    # The crashed process's step 3 is purged by the resumed one: each step once, as in metrics.jsonl.
    for name in ("loss", "cls_loss", "contrastive_loss", "accuracy", "lr", "questions_per_s"):
        got = [(e.step, e.value) for e in acc.Scalars(f"train/{name}")]
        assert got == [(e["step"], pytest.approx(e[name], rel=1e-6)) for e in train], name
    assert [(e.step, e.value) for e in acc.Scalars("val/accuracy")] == [(e["step"], pytest.approx(e["accuracy"])) for e in val]
    assert [e.value for e in acc.Scalars("val/macro_accuracy")] == [pytest.approx(e["macro_accuracy"]) for e in val]
    for task in ("even_number", "color_word"):
        assert [e.value for e in acc.Scalars(f"val/task/{task}")] == [pytest.approx(e["tasks"][task]["accuracy"]) for e in val]
    assert [e.value for e in acc.Scalars("val/category/numbers")] == [pytest.approx(e["categories"]["numbers"]) for e in val]
    updates = _lines(run_dir, "curriculum")
    assert [e.step for e in acc.Scalars("curriculum/weight/even_number")] == [e["step"] for e in updates] == [2, 4, 6]
    assert [e.value for e in acc.Scalars("curriculum/weight/even_number")] == [
        pytest.approx(e["weights"]["even_number"]) for e in updates]
    # The settings as hyperparameters (HParams dashboard), once, and the run directory.
    content = acc.PluginTagToContent("hparams")
    starts = [plugin_data_pb2.HParamsPluginData.FromString(c).session_start_info for c in content.values()]
    starts = [s for s in starts if s.hparams]
    assert len(starts) == 1
    hp = starts[0].hparams
    assert hp["optim.lr"].number_value == pytest.approx(settings.optim.lr)
    assert hp["curriculum.strategy"].string_value == settings.curriculum.strategy
    assert hp["model.name_or_path"].string_value == "tiny"
    assert hp["run_dir"].string_value == str(run_dir)
    assert json.loads(hp["report_to"].string_value) == TRACKERS


@pytest.mark.slow
def test_trackio_reads_back_the_scalars_and_the_config(tracked):
    from trackio.sqlite_storage import SQLiteStorage

    run_dir, settings = tracked["run_dir"], tracked["settings"]
    assert Path(tracked["trackio_dir"]).is_relative_to(Path(__import__("os").environ["TRACKIO_DIR"]))  # not ~/.cache
    assert SQLiteStorage.get_runs("acct-tests") == ["run"]  # one run, named after the run directory, resumed
    logs = SQLiteStorage.get_logs("acct-tests", "run")
    train = {e["step"]: e for e in _lines(run_dir, "train")}
    losses = {}
    for row in logs:
        if "train/loss" in row:
            losses[row["step"]] = row["train/loss"]  # a step re-logged after the resume: its last value
    assert losses == {s: pytest.approx(e["loss"]) for s, e in train.items()}
    val = _lines(run_dir, "validation")
    got = {row["step"]: row["val/task/even_number"] for row in logs if "val/task/even_number" in row}
    assert got == {e["step"]: pytest.approx(e["tasks"]["even_number"]["accuracy"]) for e in val}
    assert any("curriculum/weight/color_word" in row for row in logs)
    config = SQLiteStorage.get_run_config("acct-tests", "run")
    assert config["optim.lr"] == settings.optim.lr and config["run_dir"] == str(run_dir)


def _wandb_records(path: Path) -> list:
    """The records of a wandb transaction log (.wandb): a LevelDB-style log of protobuf Records."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


@pytest.mark.slow
def test_wandb_offline_run_has_the_scalars_the_config_and_continues_on_resume(tracked):
    run_dir, settings = tracked["run_dir"], tracked["settings"]
    run_id = tracked["first_state"]["wandb"]["id"]
    files = sorted((run_dir / "trackers" / "wandb").rglob("*.wandb"))
    assert [f.name for f in files] == [f"run-{run_id}.wandb"] * 2  # two processes, one wandb run
    history: dict[int, dict] = {}
    configs = []
    for f in files:
        for record in _wandb_records(f):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                assert record.run.run_id == run_id and record.run.display_name == "run"
                configs.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.run.config.update})
            elif kind == "history":
                row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                history.setdefault(record.history.step.num, {}).update(row)
    train = _lines(run_dir, "train")
    assert {s: row["train/loss"] for s, row in history.items() if "train/loss" in row} == {
        e["step"]: pytest.approx(e["loss"]) for e in train}
    assert {s: row["train/lr"] for s, row in history.items() if "train/lr" in row} == {
        e["step"]: pytest.approx(e["lr"]) for e in train}
    val = _lines(run_dir, "validation")
    assert {s: row["val/macro_accuracy"] for s, row in history.items() if "val/macro_accuracy" in row} == {
        e["step"]: pytest.approx(e["macro_accuracy"]) for e in val}
    assert configs and all(c["optim.lr"] == settings.optim.lr for c in configs)
    assert configs[0]["run_dir"] == str(run_dir)


@pytest.mark.slow
def test_mlflow_run_has_the_scalars_params_and_status(tracked):
    from mlflow import MlflowClient

    run_dir, settings = tracked["run_dir"], tracked["settings"]
    client = MlflowClient(tracking_uri=tracked["mlflow_uri"])
    run_id = tracked["first_state"]["mlflow"]["id"]
    assert tracked["first_mlflow_status"] == "FAILED"  # the crashed process closed its run as failed
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["optim.lr"] == str(settings.optim.lr) and run.data.params["run_dir"] == str(run_dir)
    assert run.data.tags["acct.run_dir"] == str(run_dir)
    history = client.get_metric_history(run_id, "train/loss")
    # MLflow keeps every value it was sent: step 3 twice (the crashed process's and the resumed one's).
    last = {m.step: m.value for m in sorted(history, key=lambda m: m.timestamp)}
    assert last == {e["step"]: pytest.approx(e["loss"]) for e in _lines(run_dir, "train")}
    assert sorted(m.step for m in history) == [1, 2, 3, 3, 4, 5, 6]
    val = _lines(run_dir, "validation")
    got = {m.step: m.value for m in client.get_metric_history(run_id, "val/category/words")}
    assert got == {e["step"]: pytest.approx(e["categories"]["words"]) for e in val}
    assert [m.step for m in client.get_metric_history(run_id, "curriculum/sampled/even_number")] == [2, 4, 6]


# -- settings, flags and errors ------------------------------------------------------------------


def test_report_to_takes_hugging_face_names_comma_lists_and_repeats(monkeypatch):
    assert resolve_train({}).report_to == []
    assert resolve_train({"report_to": ["none"]}).report_to == []
    assert resolve_train({"report_to": ["tensorboard, wandb", "mlflow", "wandb"]}).report_to == ["tensorboard", "wandb", "mlflow"]
    monkeypatch.setenv("ACCT_REPORT_TO", "trackio,tensorboard")
    assert resolve_train({}).report_to == ["trackio", "tensorboard"]
    monkeypatch.setenv("ACCT_REPORT_TO", '["mlflow"]')
    assert resolve_train({}).report_to == ["mlflow"]
    monkeypatch.delenv("ACCT_REPORT_TO")
    # all: every registered tracker whose library is installed (looked up, not imported: mlflow and
    # trackio take seconds to import, and this process need not pay for them).
    missing = [name for name in ("trackio", "mlflow") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    assert resolve_train({"report_to": ["all"]}).report_to == ["mlflow", "trackio"]
    with pytest.raises(UsageError, match=r"report_to \(--report-to\): unknown tracker 'tensorbord'"):
        resolve_train({"report_to": ["tensorbord"]})
    with pytest.raises(UsageError, match="'none' cannot be combined"):
        resolve_train({"report_to": ["none,wandb"]})


def test_cli_flags_reach_the_settings_and_a_bad_name_is_one_line(tmp_path, monkeypatch):
    import acct.cli.train

    seen = {}
    monkeypatch.setattr(acct.cli.train, "run", lambda settings: seen.setdefault("s", settings))
    result = runner.invoke(app, ["train", "--preset", "tiny", "--report-to", "tensorboard,trackio", "--report-to", "wandb"])
    assert result.exit_code == 0, result.output
    assert seen["s"].report_to == ["tensorboard", "trackio", "wandb"]
    result = runner.invoke(app, ["train", "--preset", "tiny", "--report-to", "comet"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "unknown tracker 'comet'; registered: mlflow, tensorboard, trackio, wandb" in result.stderr


def test_a_missing_library_is_one_line_naming_the_pip_command_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` fails, find_spec finds nothing
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "--preset", "tiny", "--device", "cpu", "--max-steps", "2",
                                 "--output-dir", str(run_dir), "--report-to", "wandb"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: --report-to wandb needs the wandb library: pip install 'acct[wandb]'"], result.stderr
    assert not run_dir.exists()  # refused before the run directory was made
    # The tracker's own import says the same if the library disappears after the check.
    with pytest.raises(UsageError, match=r"needs the wandb library \(.*\): pip install 'acct\[wandb\]'"):
        registry.trackers.get("wandb").import_library()


def test_acct_list_shows_the_trackers():
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["trackers"]
    assert [r["name"] for r in rows] == sorted(TRACKERS) and all(r["origin"] == "acct" for r in rows)
    assert "extra: wandb" in {r["name"]: r for r in rows}["wandb"]["description"]


@pytest.mark.slow
def test_a_plugin_tracker_receives_the_run(tmp_path):
    from acct.trackers import Tracker, register_tracker

    received: dict = {"logged": []}

    @register_tracker("memory_for_test")
    class Memory(Tracker):
        """Keeps what it receives."""

        def start(self):
            received["run"] = self.run
            return None

        def log(self, metrics, step):
            received["logged"].append((step, dict(metrics)))

        def finish(self, status):
            received["status"] = status

    try:
        settings = tiny_settings(tmp_path / "run", **SMALL, **{"optim.max_steps": 2, "eval_every_n_steps": 2,
                                                      "log_every_n_steps": 1, "report_to": ["memory_for_test"]})
        list(engine.train(settings))
    finally:
        registry.trackers._items.pop("memory_for_test", None)
    run = received["run"]
    assert run.name == "run" and run.run_dir == (tmp_path / "run").absolute() and not run.resumed
    assert run.hyperparameters["seed"] == settings.seed and run.hyperparameters["report_to"] == '["memory_for_test"]'
    steps = [(s, sorted(k.split("/")[0] for k in m)) for s, m in received["logged"]]
    assert steps[0] == (1, ["train"] * 9) and received["status"] == "completed"
    assert any("val/accuracy" in m for _, m in received["logged"])


@pytest.mark.slow
def test_ablate_reports_each_run_as_its_own_tracker_run_and_keeps_json_clean(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("trackio")
    monkeypatch.setenv("TRACKIO_PROJECT", "acct-ablate-test")
    config = tmp_path / "study.yaml"
    config.write_text("data: {synthetic_examples_per_task: 24}\n" + SMALL_MODEL_YAML)
    study = tmp_path / "study"
    result = runner.invoke(app, ["ablate", "--preset", "tiny", "--config", str(config), "--output-dir", str(study),
                                 "--device", "cpu", "--arms", "baseline,contrastive", "--seeds", "1", "--max-steps", "4",
                                 "--eval-every-n-steps", "4", "--report-to", "tensorboard,trackio", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # trackio's own messages went to stderr
    assert "--report-to tensorboard,trackio" in report["command"]
    from trackio.sqlite_storage import SQLiteStorage

    assert sorted(SQLiteStorage.get_runs("acct-ablate-test")) == ["baseline-seed0", "contrastive-seed0"]
    for name in ("baseline-seed0", "contrastive-seed0"):
        acc = _tensorboard(study / name)
        assert [e.step for e in acc.Scalars("val/accuracy")] == [4]
        assert acc.Scalars("val/accuracy")[0].value == pytest.approx(_lines(study / name, "validation")[0]["accuracy"])
        config_rows = SQLiteStorage.get_run_config("acct-ablate-test", name)
        assert config_rows["run_dir"] == str((study / name).absolute())
    # The same study without trackers reuses the finished runs: reporting is not what a run trained.
    logs = {name: (study / name / "metrics.jsonl").read_text() for name in ("baseline-seed0", "contrastive-seed0")}
    result = runner.invoke(app, ["ablate", "--preset", "tiny", "--config", str(config), "--output-dir", str(study),
                                 "--device", "cpu", "--arms", "baseline,contrastive", "--seeds", "1", "--max-steps", "4",
                                 "--eval-every-n-steps", "4", "--json"])
    assert result.exit_code == 0, result.output
    assert {name: (study / name / "metrics.jsonl").read_text() for name in logs} == logs
    assert len(SQLiteStorage.get_runs("acct-ablate-test")) == 2


@pytest.mark.slow
def test_overwriting_a_run_starts_its_tracker_files_afresh(tmp_path):
    pytest.importorskip("tensorboard")
    settings = tiny_settings(tmp_path / "run", **SMALL, **{"optim.max_steps": 2, "eval_every_n_steps": 2,
                                                          "log_every_n_steps": 1, "report_to": ["tensorboard"]})
    list(engine.train(settings))
    list(engine.train(settings.model_copy(update={"overwrite": True, "seed": 1})))
    # The previous run's event file went aside with the rest of it (and was deleted at the first checkpoint).
    assert len(list((tmp_path / "run" / "trackers" / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert [(e.step, e.value) for e in _tensorboard(tmp_path / "run").Scalars("train/loss")] == [
        (e["step"], pytest.approx(e["loss"])) for e in _lines(tmp_path / "run", "train")]


@pytest.mark.slow
def test_report_to_is_not_part_of_what_a_checkpoint_vouches_for(tmp_path):
    # A run saved before report_to existed, or one whose trackers change, still resumes.
    from acct.run.rundir import fingerprint, settings_record

    plain = tiny_settings(tmp_path / "r")
    tracked = plain.model_copy(update={"report_to": ["tensorboard"]})
    assert fingerprint(settings_record(plain)) == fingerprint(settings_record(tracked))


def test_settings_of_a_saved_run_load_without_report_to():
    # Runs saved before report_to existed: their config.json has no such key.
    assert TrainSettings.model_validate({}).report_to == []
