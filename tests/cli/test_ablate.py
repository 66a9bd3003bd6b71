"""`acct ablate` end to end on a tiny budget: three arms over two seeds, reports, kept predictions, reuse, resume."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from acct.cli import app
from tests.conftest import SMALL_MODEL_YAML

runner = CliRunner()

# A study small enough for a test: 24 questions per synthetic task (16 test questions), a
# one-layer encoder, 30 steps per run.
STUDY_YAML = SMALL_MODEL_YAML + """\
data: {synthetic_examples_per_task: 24}
optim: {max_steps: 30}
eval_every_n_steps: 30
"""


def ablate(study, config, *extra):
    """One study run through the CLI; one seed unless `extra` says --seeds."""
    seeds = [] if "--seeds" in extra else ["--seeds", "1"]
    return runner.invoke(
        app, ["ablate", "--preset", "tiny", "--config", str(config), "--output-dir", str(study), "--device", "cpu",
              "--seed", "1", *seeds, *extra],
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation")
    config = root / "study.yaml"
    config.write_text(STUDY_YAML)
    result = ablate(root / "study", config, "--seeds", "2", "--json")
    assert result.exit_code == 0, result.output
    return root / "study", config, result


def test_json_schema_and_consistency(study):
    directory, _, result = study
    report = json.loads(result.stdout)  # stdout holds one JSON object; progress went to stderr
    assert {"split", "configs", "deltas"} <= set(report)
    assert report["split"] == "test" and report["replicate"] == "seed" and report["seeds"] == [1, 2]
    assert list(report["configs"]) == ["baseline", "contrastive", "full"]
    for c in report["configs"].values():
        assert {"accuracy", "macro_accuracy", "categories", "tasks", "seeds", "ci_low", "ci_high"} <= set(c)
        assert set(c["categories"]) == {"numbers", "words"} and len(c["tasks"]) == 8
        assert [s["seed"] for s in c["seeds"]] == [1, 2]
        assert c["accuracy"] == pytest.approx(sum(s["accuracy"] for s in c["seeds"]) / 2)
    assert list(report["deltas"]) == ["contrastive", "full"]
    base = report["configs"]["baseline"]["accuracy"]
    for name, d in report["deltas"].items():
        assert {"accuracy", "p", "test", "ci_low", "ci_high", "holm_p", "heterogeneity", "per_seed", "power",
                "delta_m"} <= set(d)
        assert d["test"] == "paired t-test over seeds (1 df)"
        assert d["accuracy"] == pytest.approx(report["configs"][name]["accuracy"] - base)
        assert d["ci_low"] <= d["accuracy"] <= d["ci_high"]
        seed_deltas = [s["accuracy"] for s in d["per_seed"]]
        if len(set(seed_deltas)) == 1 and seed_deltas[0] != 0:
            assert d["p"] is None and d["holm_p"] is None  # no between-seed variance to test against
        else:
            assert 0.0 <= d["p"] <= 1.0 and d["p"] <= d["holm_p"] <= 1.0
        assert "mcnemar_p" not in d and [s["seed"] for s in d["per_seed"]] == [1, 2]
    assert json.loads((directory / "ablation.json").read_text())["deltas"] == report["deltas"]
    assert "| baseline (" in (directory / "ablation.md").read_text()
    for name in ("baseline", "contrastive", "full"):
        for seed in (1, 2):
            assert f"{name} seed {seed} — training" in result.stderr


def test_per_seed_deltas_are_recomputed_exactly_from_the_kept_predictions(study):
    """Every scored run keeps predictions-test.jsonl; the report's per-seed Δ follow from those files alone."""
    directory, _, result = study
    report = json.loads(result.stdout)

    def flags(name, seed):
        lines = (directory / f"{name}-seed{seed}" / "predictions-test.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        for r in records:
            assert set(r) >= {"uid", "task", "answer", "prediction", "correct", "probabilities"}
            assert r["correct"] == (r["prediction"] == r["answer"])
            assert sum(r["probabilities"]) == pytest.approx(1.0, abs=1e-5)
            assert max(range(len(r["probabilities"])), key=r["probabilities"].__getitem__) == r["prediction"]
        return [r["uid"] for r in records], [r["correct"] for r in records]

    for name, d in report["deltas"].items():
        for entry in d["per_seed"]:
            seed = entry["seed"]
            uids, mine = flags(name, seed)
            ref_uids, ref = flags("baseline", seed)
            assert uids == ref_uids and len(uids) == report["examples_per_seed"][str(seed)]
            assert entry["accuracy"] == sum(mine) / len(mine) - sum(ref) / len(ref)  # exact, not approximate
    evaluated = json.loads((directory / "full-seed1" / "eval-test.json").read_text())
    assert evaluated["checkpoint"] == "best" and evaluated["predictions"]["file"] == "predictions-test.jsonl"
    assert evaluated["predictions"]["checkpoint_dir"].startswith("step-")


def test_report_states_the_level_of_its_tests_and_what_each_arm_did(study):
    from acct import __version__
    from acct.study.stats import holm

    directory, _, result = study
    report = json.loads(result.stdout)
    assert report["acct_version"] == __version__ and report["reference"] == "baseline"
    assert report["command"].startswith("acct ablate --config ") and "--max-steps" not in report["command"]
    assert "--output-dir" in report["command"] and "--json" in report["command"]
    deltas = report["deltas"]
    tested = [d for d in deltas.values() if d["p"] is not None]
    assert [d["holm_p"] for d in tested] == pytest.approx(holm([d["p"] for d in tested]))
    assert report["holm_p"] == {n: d["holm_p"] for n, d in deltas.items()}
    for name, d in deltas.items():
        assert report["mde"][name] == d["power"]["mde"]
        assert len(d["per_task"]) == 8
        assert all(v["test"].startswith("McNemar on seed 1 only") for v in d["per_task"].values())
    runs = {(r["config"], r["seed"]): r for r in report["runs"]}
    for name, c in report["configs"].items():
        assert c["ci_low"] <= c["accuracy"] <= c["ci_high"]
        assert c["settings_sha256"]["1"] == runs[name, 1]["settings_sha256"]
        e = c["effective"]
        assert e["steps_trained"] == [30, 30] and e["identical_to"] == [] and e["planned_identical_to"] == []
        assert e["loss"]["lambda_contrastive"] == (0.0 if name == "baseline" else 0.3)
    assert report["configs"]["contrastive"]["effective"]["first_weight_change_step"] is None
    full = report["configs"]["full"]["effective"]
    # 10 steps per epoch: warm-up ends at step 10, the first update is at step 20.
    assert full["curriculum_first_update"] == 20 and full["first_weight_change_step"] == [20, 20]
    assert full["min_task_weight"] < 1 / 8 < full["max_task_weight"]
    text = (directory / "ablation.md").read_text()
    assert "**The seed is the replicate.**" in text and "Holm p adjusts it across the 2 comparisons" in text
    assert "## What each arm did" in text and "q (BH)" in text and "per seed: Δ (McNemar p)" in text
    assert f"acct {__version__}; command: `acct ablate " in text
    for r in report["runs"]:
        assert r["settings_sha256"] in text
    notes = " ".join(report["notes"])
    assert "the seed is the replicate" in notes and "only 2 seeds" in notes
    assert any(n.startswith("power (full vs baseline)") for n in report["notes"])


def test_runs_share_the_split_and_differ_only_in_the_study_settings(study):
    directory, _, _ = study
    saved = {n: json.loads((directory / f"{n}-seed1" / "config.json").read_text()) for n in ("baseline", "contrastive", "full")}
    assert [(s["loss"]["lambda_contrastive"], s["curriculum"]["strategy"]) for s in saved.values()] == [
        (0.0, "fixed"), (0.3, "fixed"), (0.3, "uncertainty_gradient")]
    assert all(s["optim"]["max_steps"] == 30 and s["seed"] == 1 for s in saved.values())
    manifests = [(directory / f"{n}-seed1" / "split.json").read_text() for n in saved]
    assert manifests[0] == manifests[1] == manifests[2]
    for n in saved:
        marker = json.loads((directory / f"{n}-seed1" / "ablation-done.json").read_text())
        assert marker["status"] == "finished" and marker["step"] == 30


def test_report_is_recomputed_from_the_predictions_without_scoring(study, tmp_path):
    directory, config, first = study
    copy = tmp_path / "study"
    shutil.copytree(directory, copy, symlinks=True)
    result = ablate(copy, config, "--seeds", "2", "--from-predictions", "--json")
    assert result.exit_code == 0, result.output
    assert "re-analysing the saved test predictions of 6 runs" in result.stderr and "scored " not in result.stderr
    assert json.loads(result.stdout)["deltas"] == json.loads(first.stdout)["deltas"]
    # A predictions file edited after scoring no longer matches the digest in eval-test.json.
    path = copy / "full-seed2" / "predictions-test.jsonl"
    path.write_text(path.read_text().replace('"correct": false', '"correct": true', 1))
    result = ablate(copy, config, "--seeds", "2", "--from-predictions")
    assert result.exit_code != 0 and "changed after scoring" in result.stderr
    # A run without saved predictions is named, with what to do.
    (copy / "full-seed2" / "eval-test.json").unlink()
    result = ablate(copy, config, "--seeds", "2", "--from-predictions")
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.exit_code != 0 and "has no saved test predictions" in lines[-1] and "drop --from-predictions" in lines[-1]
    # Unfinished runs are not trained by a re-analysis.
    result = ablate(tmp_path / "empty", config, "--from-predictions")
    assert result.exit_code == 2 and "trains nothing" in result.stderr


def test_rerun_reuses_finished_runs(study):
    directory, config, first = study
    before = {n: (directory / f"{n}-seed1" / "checkpoints" / "last").resolve() for n in ("baseline", "full")}
    result = ablate(directory, config, "--seeds", "2", "--plot", str(directory / "figures"))
    assert result.exit_code == 0, result.output
    assert result.stderr.count("finished run reused") == 6
    assert "train ━" not in result.stderr  # nothing was trained again
    for word in ("baseline", "contrastive", "full", "McNemar", "95% CI", "largest per-task changes", "Holm p",
                 "MDE", "what each arm did", "paired t-test over seeds"):
        assert word in result.stdout
    assert {n: (directory / f"{n}-seed1" / "checkpoints" / "last").resolve() for n in before} == before
    again = json.loads((directory / "ablation.json").read_text())
    assert again["deltas"] == json.loads(first.stdout)["deltas"]  # same runs, same questions, same predictions


def test_plots_are_written_and_embedded(study):
    """Runs after test_rerun_reuses_finished_runs, which drew the figures with --plot."""
    import matplotlib.image

    directory, _, _ = study
    names = ["accuracy.png", "validation.png", "weights-full.png", "categories.png"]
    report = json.loads((directory / "ablation.json").read_text())
    assert [p.rsplit("/", 1)[-1] for p in report["figures"]] == names
    text = (directory / "ablation.md").read_text()
    for name in names:
        pixels = matplotlib.image.imread(directory / "figures" / name)
        assert pixels.shape[0] >= 200 and pixels.shape[1] >= 300, name
        assert pixels.std() > 0.01, name  # not a blank canvas
        assert f"(figures/{name})" in text


def test_a_finished_run_that_lost_its_marker_is_reused_by_the_engine(study, tmp_path):
    """The plain engine entry point (no Typer): a run killed after its last checkpoint (step 30 of 30) but before
    its done marker was written is finished; it is reused, trains nothing, and gets its marker back."""
    from acct.study.compare import run_ablation
    from acct.config.commands import AblateSettings
    from acct.config.resolve import resolve_train

    directory, config, first = study
    copy = tmp_path / "study"
    shutil.copytree(directory, copy, symlinks=True)
    (copy / "full-seed1" / "ablation-done.json").unlink()
    base = resolve_train({"device": "cpu", "seed": 1}, preset="tiny", config_file=config)
    events = []
    report = run_ablation(AblateSettings(output_dir=copy, seeds=2), base,
                          on_event=lambda run, ev: events.append((run.config, ev)))
    assert {r["action"] for r in report.runs} == {"reuse"} and len(report.runs) == 6
    assert events == []
    marker = json.loads((copy / "full-seed1" / "ablation-done.json").read_text())
    assert (marker["step"], marker["reason"]) == (30, "completed")
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
    result = ablate(directory, config, "--seeds", "2", "--max-steps", "31")
    assert result.exit_code == 2
    assert "trained with other settings (optim.max_steps)" in result.stderr and "--overwrite" in result.stderr
    result = ablate(directory, config, "--seeds", "2", "--no-group-by-length")
    assert result.exit_code == 2 and "(batch.group_by_length)" in result.stderr


def test_arms_that_would_train_identically_are_refused_before_training(tmp_path):
    # The case: the tiny preset's warm-up (one epoch, 100 steps) outlasts 60 steps.
    result = runner.invoke(app, ["ablate", "--preset", "tiny", "--max-steps", "60", "--output-dir", str(tmp_path / "s"),
                                 "--device", "cpu"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: arms contrastive and full would train identically"), result.stderr
    assert "ends at step 60" in lines[0] and "smallest --max-steps that separates them is 101" in lines[0]
    assert "--allow-identical" in lines[0]
    assert "is 101, with --checkpoint last: a best checkpoint can be one validated at step 100" in lines[0]
    assert not (tmp_path / "s").exists()  # nothing trained, nothing written


@pytest.mark.slow
def test_the_suggested_budget_gives_arms_whose_compared_checkpoints_differ(tmp_path):
    """Run with exactly what the refusal suggests, the compared checkpoints are not the same model."""
    import re

    config = tmp_path / "study.yaml"
    config.write_text(STUDY_YAML.replace("eval_every_n_steps: 30", "eval_every_n_steps: 10"))
    refused = ablate(tmp_path / "s", config, "--arms", "contrastive,full", "--max-steps", "20")
    assert refused.exit_code == 2
    suggested = re.search(r"separates them is (\d+), with (--checkpoint last)", refused.stderr)
    assert suggested, refused.stderr
    result = ablate(tmp_path / "s", config, "--arms", "contrastive,full", "--max-steps", suggested.group(1),
                    *suggested.group(2).split(), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["configs"]["full"]["effective"]["identical_to"] == []
    assert not any("byte-identical" in n for n in report["notes"])
    weights = [(tmp_path / "s" / f"{arm}-seed1" / "checkpoints" / "last" / "model.safetensors").read_bytes()
               for arm in ("contrastive", "full")]
    assert weights[0] != weights[1]


@pytest.mark.slow
def test_an_aa_study_over_three_seeds_is_not_significant(tmp_path):
    """Two arms whose settings differ only in a numerically equivalent attention path: the seed-level test
    must not call the difference significant, whatever each seed's question-level McNemar says."""
    config = tmp_path / "study.yaml"
    config.write_text(STUDY_YAML)
    (tmp_path / "aa.yaml").write_text("arms:\n  a: {}\n  b: {model: {attention: hf}}\n")
    result = ablate(tmp_path / "s", config, "--study", str(tmp_path / "aa.yaml"), "--seeds", "3", "--max-steps", "10",
                    "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)["deltas"]["b"]
    assert d["test"] == "paired t-test over seeds (2 df)" and len(d["per_seed"]) == 3
    assert d["p"] > 0.05 and d["holm_p"] > 0.05
    assert d["ci_low"] <= 0.0 <= d["ci_high"]


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """Two arms x one seed trained by executing the commands --print-commands printed."""
    import shlex

    root = tmp_path_factory.mktemp("printed")
    config = root / "study.yaml"
    config.write_text(STUDY_YAML)
    result = ablate(root / "study", config, "--arms", "baseline,full", "--max-steps", "21", "--print-commands")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and not result.stderr.strip()
    for line, name in zip(lines, ("baseline", "full")):
        words = shlex.split(line)
        assert words[:2] == ["acct", "train"]
        assert words[-3:] == ["--output-dir", str(root / "study" / f"{name}-seed1"), "--overwrite"]
        trained = runner.invoke(app, words[1:])
        assert trained.exit_code == 0, trained.output
    return root / "study", config


def test_printed_commands_train_the_runs_a_later_ablate_reuses(printed):
    directory, config = printed
    assert not (directory / "full-seed1" / "ablation-done.json").exists()  # acct train knows nothing of the study
    result = ablate(directory, config, "--arms", "baseline,full", "--max-steps", "21", "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("finished run reused") == 2 and "training" not in result.stderr
    report = json.loads(result.stdout)
    assert [r["action"] for r in report["runs"]] == ["reuse", "reuse"]
    assert report["configs"]["full"]["effective"]["steps_trained"] == [21]
    assert report["configs"]["full"]["effective"]["first_weight_change_step"] == [20]
    assert json.loads((directory / "full-seed1" / "ablation-done.json").read_text())["step"] == 21


def test_printed_commands_skip_finished_runs_and_pass_the_plugins_again(printed, tmp_path):
    import shlex
    from pathlib import Path

    directory, config = printed
    again = ablate(directory, config, "--arms", "baseline,full", "--max-steps", "21", "--print-commands")
    assert again.exit_code == 0 and again.stdout == "", again.output
    assert "2 of 2 runs are finished and reused: no command for them" in again.stderr
    # A study with a plugin: the settings file records it, and the command imports it again. (The
    # example itself: a copy elsewhere would register its strategy from another file in this process.)
    plugin = Path(__file__).resolve().parents[2] / "docs" / "examples" / "favour_first.py"
    result = ablate(tmp_path / "s", config, "--arms", "baseline,full", "--max-steps", "21", "--code", str(plugin),
                    "--print-commands")
    assert result.exit_code == 0, result.output
    words = shlex.split(result.stdout.splitlines()[0])
    assert words[-3:] == ["--overwrite", "--code", str(plugin)]
    trained = runner.invoke(app, words[1:])
    assert trained.exit_code == 0, trained.output
    saved = json.loads((tmp_path / "s" / "baseline-seed1" / "config.json").read_text())
    assert [Path(ref["path"]).name for ref in saved["plugins"]] == ["favour_first.py"]
    assert list((tmp_path / "s" / "baseline-seed1" / "code").iterdir())


def test_print_commands_with_torchrun(printed, tmp_path):
    directory, config = printed
    result = ablate(tmp_path / "s", config, "--arms", "baseline,full", "--max-steps", "21", "--print-commands",
                    "--launcher", "torchrun", "--nproc-per-node", "4")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split(" train ")[0] for line in lines] == ["torchrun --nproc_per_node 4 -m acct"] * 2
    assert lines[1].endswith(f"--output-dir {tmp_path / 's' / 'full-seed1'} --overwrite")
    for bad, words in (("torchrun", ["--launcher", "torchrun"]), ("slurm", ["--print-commands", "--launcher", "slurm"]),
                       ("nproc", ["--print-commands", "--nproc-per-node", "2"])):
        result = ablate(tmp_path / "s", config, *words)
        assert result.exit_code == 2, bad
        assert len([x for x in result.stderr.splitlines() if x.strip()]) == 1, result.stderr


def test_allowed_identical_arms_are_noted_and_marked(printed, tmp_path):
    """contrastive and full stop at step 20, before full's curriculum acts: allowed, they train alike."""
    directory, config = printed
    result = ablate(tmp_path / "s", config, "--max-steps", "20")
    assert result.exit_code == 2 and "smallest --max-steps that separates them is 21" in result.stderr
    copy = tmp_path / "study"
    shutil.copytree(directory, copy, symlinks=True)
    result = ablate(copy, config, "--max-steps", "20", "--allow-identical", "--overwrite", "--arms", "baseline,contrastive,full",
                    "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    notes = " ".join(report["notes"])
    assert "--allow-identical: arms contrastive and full were planned to train identically" in notes
    assert "arms contrastive and full (seed 1): trained identically (byte-identical model weights" in notes
    assert report["configs"]["full"]["effective"]["identical_to"] == ["contrastive"]
    assert report["configs"]["contrastive"]["effective"]["identical_to"] == ["full"]
    assert report["configs"]["baseline"]["effective"]["identical_to"] == []
    assert report["configs"]["full"]["effective"]["first_weight_change_step"] == [None]
    assert report["deltas"]["full"]["accuracy"] == report["deltas"]["contrastive"]["accuracy"]
    assert "full (lambda_con = 0.3, uncertainty_gradient sampling over the proportional prior) ⚠ identical to contrastive" in (copy / "ablation.md").read_text()


def test_usage_errors(tmp_path):
    result = runner.invoke(app, ["ablate", "--preset", "tiny", "--output-dir", str(tmp_path), "--split", "train"])
    assert result.exit_code == 2 and "split" in result.stderr
    result = runner.invoke(app, ["ablate", "--preset", "tiny", "--output-dir", str(tmp_path), "--arms", "full,best"])
    assert result.exit_code == 2 and "unknown ablation arm 'best'" in result.stderr
    (tmp_path / "file.png").write_text("")
    result = runner.invoke(app, ["ablate", "--preset", "tiny", "--output-dir", str(tmp_path), "--plot", str(tmp_path / "file.png")])
    assert result.exit_code == 2 and "--plot" in result.stderr and "is a file" in result.stderr
    result = runner.invoke(app, ["ablate", "--preset", "nope", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2 and "unknown preset" in result.stderr
