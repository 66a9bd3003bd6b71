"""`acct ablate` end to end on a tiny budget: three configurations, reports, reuse, resume."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from typer.testing import CliRunner

from acct.cli import app

runner = CliRunner()

# A study small enough for a test: 24 questions per synthetic task (16 test questions), a
# one-layer encoder, 30 steps per run.
STUDY_YAML = """\
data: {synthetic_examples_per_task: 24}
model: {tiny: {hidden_size: 32, num_hidden_layers: 1, intermediate_size: 64, vocab_size: 300}}
optim: {max_steps: 30}
eval_every_n_steps: 30
"""


def ablate(study, config, *extra):
    return runner.invoke(
        app, ["ablate", "--preset", "tiny", "--config", str(config), "--output-dir", str(study), "--device", "cpu",
              "--seed", "1", *extra],
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation")
    config = root / "study.yaml"
    config.write_text(STUDY_YAML)
    result = ablate(root / "study", config, "--json")
    assert result.exit_code == 0, result.output
    return root / "study", config, result


def test_json_schema_and_consistency(study):
    directory, _, result = study
    report = json.loads(result.stdout)  # stdout holds one JSON object; progress went to stderr
    assert {"split", "configs", "deltas"} <= set(report)
    assert report["split"] == "test"
    assert list(report["configs"]) == ["baseline", "contrastive", "full"]
    for c in report["configs"].values():
        assert {"accuracy", "macro_accuracy", "categories", "tasks", "seeds"} <= set(c)
        assert set(c["categories"]) == {"numbers", "words"} and len(c["tasks"]) == 8
        assert [s["seed"] for s in c["seeds"]] == [1]
    assert list(report["deltas"]) == ["contrastive", "full"]
    base = report["configs"]["baseline"]["accuracy"]
    for name, d in report["deltas"].items():
        assert {"accuracy", "ci_low", "ci_high", "mcnemar_p"} <= set(d)
        assert d["accuracy"] == pytest.approx(report["configs"][name]["accuracy"] - base)
        assert d["ci_low"] <= d["accuracy"] <= d["ci_high"]
        assert 0.0 < d["mcnemar_p"] <= 1.0
    assert json.loads((directory / "ablation.json").read_text())["deltas"] == report["deltas"]
    assert "| baseline (" in (directory / "ablation.md").read_text()
    for name in ("baseline", "contrastive", "full"):
        assert f"{name} seed 1 — training" in result.stderr


def test_runs_share_the_split_and_differ_only_in_the_study_settings(study):
    directory, _, _ = study
    saved = {n: json.loads((directory / f"{n}-seed1" / "config.json").read_text()) for n in ("baseline", "contrastive", "full")}
    assert [(s["loss"]["lambda_contrastive"], s["curriculum"]["strategy"]) for s in saved.values()] == [
        (0.0, "uniform"), (0.3, "uniform"), (0.3, "uncertainty_gradient")]
    assert all(s["optim"]["max_steps"] == 30 and s["seed"] == 1 for s in saved.values())
    manifests = [(directory / f"{n}-seed1" / "split.json").read_text() for n in saved]
    assert manifests[0] == manifests[1] == manifests[2]
    for n in saved:
        marker = json.loads((directory / f"{n}-seed1" / "ablation-done.json").read_text())
        assert marker["status"] == "finished" and marker["step"] == 30


def test_rerun_reuses_finished_runs(study):
    directory, config, first = study
    before = {n: (directory / f"{n}-seed1" / "checkpoints" / "last").resolve() for n in ("baseline", "full")}
    start = time.perf_counter()
    result = ablate(directory, config)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("finished run reused") == 3
    assert "train ━" not in result.stderr  # nothing was trained again
    assert time.perf_counter() - start < 30
    for word in ("baseline", "contrastive", "full", "McNemar", "95% CI", "largest per-task changes"):
        assert word in result.stdout
    assert {n: (directory / f"{n}-seed1" / "checkpoints" / "last").resolve() for n in before} == before
    again = json.loads((directory / "ablation.json").read_text())
    assert again["deltas"] == json.loads(first.stdout)["deltas"]  # same runs, same examples, same seeded bootstrap


def test_an_unfinished_run_is_resumed_by_the_engine(study, tmp_path):
    """The plain engine entry point (no Typer) resumes a run that lost its done marker."""
    from acct.ablation import run_ablation
    from acct.config import AblateSettings
    from acct.config import resolve_train

    directory, config, first = study
    copy = tmp_path / "study"
    shutil.copytree(directory, copy, symlinks=True)
    (copy / "full-seed1" / "ablation-done.json").unlink()  # as if killed after its last checkpoint
    base = resolve_train({"device": "cpu", "seed": 1}, preset="tiny", config_file=config)
    events = []
    report = run_ablation(AblateSettings(output_dir=copy), base, on_event=lambda run, ev: events.append((run.config, ev)))
    assert {r["config"]: r["action"] for r in report.runs} == {"baseline": "reuse", "contrastive": "reuse", "full": "resume"}
    assert {name for name, _ in events} == {"full"}
    assert type(events[-1][1]).__name__ == "Finished" and events[-1][1].step == 30
    assert json.loads((copy / "full-seed1" / "ablation-done.json").read_text())["step"] == 30
    assert report.to_dict()["deltas"] == json.loads(first.stdout)["deltas"]


def test_runs_on_different_splits_are_refused(study, tmp_path):
    directory, config, _ = study
    copy = tmp_path / "study"
    shutil.copytree(directory, copy, symlinks=True)
    manifest = json.loads((copy / "contrastive-seed1" / "split.json").read_text())
    manifest["test"] = manifest["test"][::-1]
    (copy / "contrastive-seed1" / "split.json").write_text(json.dumps(manifest))
    result = ablate(copy, config)
    assert result.exit_code == 1
    assert "split.json differ" in result.stderr and "not trained on the same split" in result.stderr


def test_changed_settings_are_refused_not_silently_reused(study):
    directory, config, _ = study
    result = ablate(directory, config, "--max-steps", "31")
    assert result.exit_code == 2
    assert "trained with other settings (optim.max_steps)" in result.stderr and "--overwrite" in result.stderr
    result = ablate(directory, config, "--no-group-by-length")
    assert result.exit_code == 2 and "(batch.group_by_length)" in result.stderr


def test_usage_errors(tmp_path):
    result = runner.invoke(app, ["ablate", "--preset", "tiny", "--output-dir", str(tmp_path), "--split", "train"])
    assert result.exit_code == 2 and "split" in result.stderr
    result = runner.invoke(app, ["ablate", "--preset", "tiny", "--output-dir", str(tmp_path), "--configs", "full,best"])
    assert result.exit_code == 2 and "configs" in result.stderr
    result = runner.invoke(app, ["ablate", "--preset", "nope", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2 and "unknown preset" in result.stderr
