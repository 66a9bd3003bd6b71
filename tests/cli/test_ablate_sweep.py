"""`acct ablate --sweep`: every arm tuned over the same grid, selected on validation, compared on test."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_ablate import STUDY_YAML, ablate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    config = root / "study.yaml"
    config.write_text(STUDY_YAML.replace("optim: {max_steps: 30}", "optim: {max_steps: 20}").replace(
        "eval_every_n_steps: 30", "eval_every_n_steps: 10"))
    result = ablate(root / "study", config, "--arms", "baseline,full", "--seeds", "2", "--max-steps", "21",
                    "--sweep", "optim.lr=1e-4,1e-3", "--json")
    assert result.exit_code == 0, result.output
    return root / "study", config, result


def test_two_arms_two_points_two_seeds_train_eight_runs(swept):
    directory, _, result = swept
    report = json.loads(result.stdout)
    runs = sorted(p.name for p in directory.iterdir() if p.is_dir() and (p / "config.json").exists())
    assert len(runs) == 8 and "baseline-optim.lr=0.001-seed2" in runs
    assert report["sweep"] == {"baseline": {"optim.lr": [0.0001, 0.001]}, "full": {"optim.lr": [0.0001, 0.001]}}
    assert set(report["selected"]) == {"baseline", "full"}
    for arm, point in report["selected"].items():
        assert report["configs"][arm]["selected"] == point
    assert "delta_m" in report["deltas"]["full"]
    text = (directory / "ablation.md").read_text()
    assert "## Tuning on validation" in text and "Δm %" in text


def test_the_selected_point_has_the_best_mean_validation_accuracy(swept):
    directory, _, result = swept
    report = json.loads(result.stdout)
    for arm in ("baseline", "full"):
        means = {}
        for lr in (0.0001, 0.001):
            accs = [json.loads((directory / f"{arm}-optim.lr={lr}-seed{s}" / "ablation-done.json").read_text())["best_accuracy"]
                    for s in (1, 2)]
            means[lr] = sum(accs) / 2
        best = max(means, key=lambda lr: (means[lr], -lr))  # ties go to the first point of the grid
        assert report["selected"][arm] == {"optim.lr": best}
        rows = {r["point"]["optim.lr"]: r for r in report["validation"][arm]}
        assert rows[best]["selected"] and rows[best]["mean"] == pytest.approx(means[best])
        # The test split is scored for the selected point only: it can choose nothing.
        for lr in (0.0001, 0.001):
            for s in (1, 2):
                scored = (directory / f"{arm}-optim.lr={lr}-seed{s}" / "predictions-test.jsonl").exists()
                assert scored == (lr == best), (arm, lr, s)
    assert [(r["config"], r["seed"]) for r in report["runs"]] == [("baseline", 1), ("full", 1), ("baseline", 2), ("full", 2)]
    assert any("each arm was tuned on the validation split" in n for n in report["notes"])


def test_a_second_run_reuses_every_point(swept):
    directory, config, first = swept
    result = ablate(directory, config, "--arms", "baseline,full", "--seeds", "2", "--max-steps", "21",
                    "--sweep", "optim.lr=1e-4,1e-3", "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("finished run reused") == 8
    assert json.loads(result.stdout)["selected"] == json.loads(first.stdout)["selected"]


def test_print_commands_name_each_point(swept, tmp_path):
    _, config, _ = swept
    result = ablate(tmp_path / "s", config, "--arms", "baseline,full", "--seeds", "2", "--max-steps", "21",
                    "--sweep", "optim.lr=1e-4,1e-3", "--print-commands")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 8 and lines[1].endswith("--output-dir " + str(tmp_path / "s" / "baseline-optim.lr=0.001-seed1") + " --overwrite")
