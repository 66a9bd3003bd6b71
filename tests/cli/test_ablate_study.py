"""`acct ablate --arms / --study / --reference`: any arms, in the order given, against the reference chosen."""

from __future__ import annotations

import json
import shlex

import pytest
from typer.testing import CliRunner

from acct.cli import app
from tests.cli.test_ablate import STUDY_YAML

runner = CliRunner()


def run_dir(line: str) -> str:
    """The run directory a printed `acct train` command writes."""
    words = shlex.split(line)
    return words[words.index("--output-dir") + 1]

# The same tiny study as tests/cli/test_ablate.py: 24 questions per synthetic task, a one-layer
# encoder, 30 steps per run (10 per epoch: warm-up ends at step 10, the first update is at 20).
BASE_YAML = STUDY_YAML

STUDY = """\
arms:
  plain: {loss: {lambda_contrastive: 0.0}, curriculum: {strategy: uniform}}
  lp_t1: {loss: {lambda_contrastive: 0.0}, curriculum: {strategy: learning_progress, update_every_n_steps: 10,
                                                    options: {temperature: 1.0}}}
  full_dwa: {curriculum: {strategy: uncertainty_gradient}, loss: {task_weighting: dwa}}
"""

# Imbalanced synthetic tasks, so that proportional and temperature sampling differ.
SIZES_YAML = BASE_YAML.replace(
    "data: {synthetic_examples_per_task: 24}",
    "data: {synthetic_examples_per_task: 24, options: {task_sizes: {even_number: 60, odd_number: 12, animal_word: 40}}}",
)


def ablate(tmp_path, *extra, config_text=BASE_YAML):
    config = tmp_path / "base.yaml"
    config.write_text(config_text)
    seeds = [] if "--seeds" in extra else ["--seeds", "1"]
    return runner.invoke(app, ["ablate", "--preset", "tiny", "--config", str(config), "--device", "cpu", "--seed", "1",
                               *seeds, *extra])


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    (root / "study.yaml").write_text(STUDY)
    result = ablate(root, "--study", str(root / "study.yaml"), "--output-dir", str(root / "out"), "--json")
    assert result.exit_code == 0, result.output
    return root / "out", json.loads(result.stdout)


def test_a_study_file_with_three_arms_runs_and_compares_against_its_first_arm(study_run):
    out, report = study_run
    assert report["reference"] == "plain"
    assert list(report["configs"]) == ["plain", "lp_t1", "full_dwa"] and list(report["deltas"]) == ["lp_t1", "full_dwa"]
    saved = {n: json.loads((out / f"{n}-seed1" / "config.json").read_text()) for n in report["configs"]}
    assert saved["lp_t1"]["curriculum"]["strategy"] == "learning_progress"
    assert saved["lp_t1"]["curriculum"]["options"] == {"temperature": 1.0}
    assert saved["full_dwa"]["loss"]["task_weighting"] == "dwa" and saved["full_dwa"]["loss"]["lambda_contrastive"] == 0.3
    assert saved["plain"]["loss"]["lambda_contrastive"] == 0.0
    # What each arm differs in, exactly, and what it did.
    assert report["configs"]["lp_t1"]["differs_from_reference"] == {
        "curriculum.options.temperature": [None, 1.0], "curriculum.strategy": ["uniform", "learning_progress"],
        "curriculum.update_every_n_steps": [20, 10]}
    assert report["configs"]["full_dwa"]["differs_from_reference"] == {
        "curriculum.strategy": ["uniform", "uncertainty_gradient"], "loss.lambda_contrastive": [0.0, 0.3],
        "loss.task_weighting": ["equal", "dwa"]}
    assert report["configs"]["plain"]["differs_from_reference"] == {}
    full = report["configs"]["full_dwa"]["effective"]
    assert full["loss"]["task_weighting"] == "dwa" and full["loss"]["contrastive_anchor_weighting"] == "prediction entropy"
    assert full["first_weight_change_step"] == [20]
    assert report["configs"]["lp_t1"]["effective"]["first_weight_change_step"] == [20]
    text = (out / "ablation.md").read_text()
    assert "## What differs from plain" in text
    assert ("- **lp_t1**: `curriculum.options.temperature`: null → 1.0; `curriculum.strategy`: uniform → "
            "learning_progress; `curriculum.update_every_n_steps`: 20 → 10") in text
    # The reference is plain multi-task fine-tuning here (equal task sizes: uniform = proportional): no warning.
    assert not any("not plain multi-task" in n for n in report["notes"])


def test_reference_reorders_the_arms_and_the_printed_commands(tmp_path):
    result = ablate(tmp_path, "--arms", "contrastive,full,baseline", "--reference", "baseline", "--output-dir",
                    str(tmp_path / "s"), "--print-commands")
    assert result.exit_code == 0, result.output
    dirs = [run_dir(line) for line in result.stdout.splitlines()]
    assert [d.rsplit("/", 1)[-1] for d in dirs] == ["baseline-seed1", "contrastive-seed1", "full-seed1"]
    # Without --reference the first arm given is the reference.
    result = ablate(tmp_path, "--arms", "contrastive,baseline", "--output-dir", str(tmp_path / "s"), "--print-commands")
    assert [run_dir(line).rsplit("/", 1)[-1] for line in result.stdout.splitlines()] == [
        "contrastive-seed1", "baseline-seed1"]


def test_sampling_that_equals_the_baseline_on_equal_sized_tasks_is_refused(tmp_path):
    line = one_error_line(ablate(tmp_path, "--arms", "baseline,temperature", "--output-dir", str(tmp_path / "s")))
    assert line.startswith("error: arms baseline and temperature would train identically (seed 1)")
    assert "with task sizes all equal (20 training questions each), baseline's proportional sampling and " \
           "temperature's temperature (alpha 0.5) sampling draw every task with the same probability" in line
    assert "no --max-steps separates them" in line
    assert not (tmp_path / "s").exists()


def test_field_arms_on_tasks_of_different_sizes(tmp_path):
    """The issue's study: baseline (proportional) vs temperature vs learning_progress where the sizes differ."""
    result = ablate(tmp_path, "--arms", "baseline,temperature,learning_progress", "--output-dir", str(tmp_path / "s"),
                    "--json", config_text=SIZES_YAML + "curriculum: {update_every_n_steps: 5}\n")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report["deltas"]) == ["temperature", "learning_progress"]
    temp = report["configs"]["temperature"]["effective"]
    # Temperature sampling moves weight from the large tasks to the small ones from the first batch.
    assert temp["first_weight_change_step"] == [0]
    weights = [json.loads(line) for line in (tmp_path / "s" / "temperature-seed1" / "metrics.jsonl").read_text().splitlines()]
    logged = next(w["weights"] for w in weights if w["event"] == "curriculum")
    train = json.loads((tmp_path / "s" / "temperature-seed1" / "split.json").read_text())["train"]
    sizes = {t: sum(uid.split("/")[0] == t for uid in train) for t in logged}
    assert sizes["even_number"] > sizes["animal_word"] > sizes["fruit_word"] > sizes["odd_number"]
    root = {t: n ** 0.5 for t, n in sizes.items()}
    assert logged == pytest.approx({t: r / sum(root.values()) for t, r in root.items()})
    assert not any("not plain multi-task" in n for n in report["notes"])


@pytest.mark.parametrize("study, extra, expected", [
    ("arms: {a: {}, b: {curriculum: {strategy: nope}}}\n", [], "arm b: invalid settings: curriculum.strategy"),
    ("arms: {a: {}, b: {seed: 3}}\n", [], "arm b sets seed, which the study decides"),
    ("arms: {a: {}, b: {optim: {lrr: 1}}}\n", [], "unknown setting optim.lrr; did you mean optim.lr?"),
    ("arms: {a: {}}\n", [], "a study compares at least two arms"),
    ("arms: {a: {}, b: {}}\nbase: {}\n", [], "unknown key 'base' in a study file"),
    ("arms: {a: {}, b: {loss: {lambda_contrastive: 0.1}}}\nreference: c\n", [], "reference 'c' is not one of its arms"),
    ("arms: {a: {}, b: {loss: {lambda_contrastive: 0.1}}}\n", ["--reference", "z"], "--reference z: not one of"),
    ("arms: {a: {}, b: {loss: {lambda_contrastive: 0.1}}}\n", ["--arms", "baseline,full"], "--study declares the arms"),
])
def test_bad_study_files_are_one_line(tmp_path, study, extra, expected):
    (tmp_path / "study.yaml").write_text(study)
    line = one_error_line(ablate(tmp_path, "--study", str(tmp_path / "study.yaml"), "--output-dir", str(tmp_path / "s"),
                                 "--print-commands", *extra))
    assert expected in line, line
    assert not (tmp_path / "s").exists()


def test_arms_flag_errors_are_one_line(tmp_path):
    assert "at least two arms" in one_error_line(ablate(tmp_path, "--arms", "baseline"))
    assert "not one of the arms" in one_error_line(ablate(tmp_path, "--arms", "baseline,full", "--reference", "dwa"))
    assert "unknown ablation arm 'nope'" in one_error_line(ablate(tmp_path, "--arms", "baseline,nope"))


def test_older_configs_flag_still_means_baseline_plus_those(tmp_path):
    result = ablate(tmp_path, "--configs", "full", "--output-dir", str(tmp_path / "s"), "--print-commands")
    assert result.exit_code == 0, result.output
    assert [run_dir(line).rsplit("/", 1)[-1] for line in result.stdout.splitlines()] == [
        "baseline-seed1", "full-seed1"]
