"""What a user sees of the leak-free split and of settings that would otherwise be silently wrong."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acct.cli import app
from acct.data.manifests import apply_manifest
from acct.data.mmlu_csv import load_csv_source
from acct.data.dedup import question_key

runner = CliRunner()
TRAIN = ["train", "--preset", "tiny", "--max-steps", "1", "--device", "cpu"]


def _write(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)


def _row(text: str, i: int = 0) -> list[str]:
    return [text, "w", "x", "y", "z", "ABCD"[i % 4]]


def _flat(output: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(output.split())


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def leaky_data(tmp_path_factory) -> Path:
    """Three subjects with 3 copies within a subject and 2 across subjects, and a subject of 2 questions."""
    root = tmp_path_factory.mktemp("leaky")
    counts = {"dev": 3, "val": 4, "test": 10}
    for split, n in counts.items():
        for subject in ("alpha", "beta", "gamma"):
            rows = [_row(f"{subject} {split} question {i}?", i) for i in range(n)]
            if subject == "alpha" and split == "test":
                rows += [_row(f"alpha dev question {i}?", i) for i in range(3)]  # the dev rows again
            if subject == "beta" and split == "test":
                rows += [_row("gamma  val question 0?"), _row("gamma val question 1?", 1)]  # copies across
            _write(root / split / f"{subject}_{split}.csv", rows)
        # delta: one question asked twice, and one more
        _write(root / split / f"delta_{split}.csv", [_row("delta twice?" if split != "test" else "delta once?")])
    return root


@pytest.fixture(scope="module")
def leaky_run(leaky_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "leaky"
    result = runner.invoke(app, [*TRAIN, "--data-source", "csv", "--data-dir", str(leaky_data), "--output-dir", str(run_dir),
                                 "--tasks-per-batch", "1", "--examples-per-task", "1"])
    assert result.exit_code == 0, result.output
    return run_dir, result.output


@pytest.mark.slow
def test_removed_duplicates_are_recorded_and_shown_first(leaky_run):
    run_dir, output = leaky_run
    first = output.splitlines()[0]
    assert first.startswith("split: 4 duplicate question(s) removed within tasks"), output  # 3 in alpha, 1 in delta
    assert "4 question(s) with copies in other tasks kept on one side" in _flat(output)
    dedup = json.loads((run_dir / "split.json").read_text())["dedup"]
    assert dedup["removed"] == 4
    assert sorted(dedup["removed_uids"]) == ["alpha/test/10", "alpha/test/11", "alpha/test/12", "delta/val/0"]


def test_no_held_out_question_of_the_run_has_a_copy_in_training(leaky_run, leaky_data):
    run_dir, _ = leaky_run
    split = apply_manifest(load_csv_source(leaky_data), json.loads((run_dir / "split.json").read_text()))
    trained = {question_key(ex) for ex in split.train}
    assert split.val and split.test
    assert [ex.uid for ex in split.val + split.test if question_key(ex) in trained] == []


@pytest.mark.slow
def test_a_subject_too_small_for_val_or_test_is_named(leaky_run):
    _, output = leaky_run
    assert "too few questions to appear in val or test (trained on, not scored there): delta (2 questions)" in _flat(output)


@pytest.mark.slow
def test_a_batch_without_positives_is_noticed_before_training(leaky_run):
    _, output = leaky_run
    flat = _flat(output)
    notice = "has no same-task pairs (positives), so InfoNCE is always 0"
    assert notice in flat and flat.index(notice) < flat.index("run ")


@pytest.mark.slow
def test_an_edited_manifest_is_named_as_what_changed(leaky_run, tmp_path):
    import shutil

    run_dir, _ = leaky_run
    copy = tmp_path / "edited"
    shutil.copytree(run_dir, copy, symlinks=True)
    manifest = json.loads((copy / "split.json").read_text())
    manifest["test"].append(manifest["train"].pop())
    (copy / "split.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["evaluate", str(copy), "--checkpoint", "last"])
    assert result.exit_code == 2, result.output
    errors = _errors(result.output)
    assert len(errors) == 1 and "split manifest (split.json) was edited" in _flat(result.output), result.output
    assert "the manifest changed, not the data" in _flat(result.output)


@pytest.fixture()
def overlapping_standard_data(tmp_path) -> Path:
    """The standard layout whose test files repeat the dev rows (5 of 12 test questions per subject)."""
    root = tmp_path / "standard"
    for subject in ("alpha", "beta"):
        dev = [_row(f"{subject} dev question {i}?", i) for i in range(5)]
        _write(root / "dev" / f"{subject}_dev.csv", dev)
        _write(root / "val" / f"{subject}_val.csv", [_row(f"{subject} val question {i}?", i) for i in range(4)])
        _write(root / "test" / f"{subject}_test.csv", [_row(f"{subject} test question {i}?", i) for i in range(7)] + dev)
    _write(root / "auxiliary_train" / "race.csv", [_row(f"race question {i}?", i) for i in range(20)])
    return root


@pytest.mark.slow
def test_standard_protocol_refuses_test_questions_seen_in_training(overlapping_standard_data, tmp_path):
    argv = [*TRAIN, "--data-source", "csv", "--data-dir", str(overlapping_standard_data), "--protocol", "standard"]
    refused = runner.invoke(app, [*argv, "--output-dir", str(tmp_path / "refused")])
    assert refused.exit_code == 2, refused.output
    errors = _errors(refused.output)
    assert len(errors) == 1, refused.output
    assert "10 of 24 test questions have an exact copy in training" in _flat(refused.output)
    assert "--allow-overlap" in _flat(refused.output)

    allowed = runner.invoke(app, [*argv, "--allow-overlap", "--output-dir", str(tmp_path / "allowed")])
    assert allowed.exit_code == 0, allowed.output
    assert "10 of 24 test questions have an exact copy in training, kept because of --allow-overlap" in _flat(allowed.output)
    overlap = json.loads((tmp_path / "allowed" / "split.json").read_text())["dedup"]["overlap"]
    assert overlap["allowed"] is True and len(overlap["test"]) == 10 and overlap["val"] == []


@pytest.mark.slow
def test_ablate_takes_allow_overlap(overlapping_standard_data, tmp_path):
    result = runner.invoke(app, ["ablate", "--preset", "tiny", "--arms", "baseline,contrastive", "--max-steps", "1", "--device", "cpu",
                                 "--data-source", "csv", "--data-dir", str(overlapping_standard_data), "--protocol", "standard",
                                 "--allow-overlap", "--output-dir", str(tmp_path / "study"), "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "study" / "baseline-seed0" / "split.json").read_text())
    assert manifest["dedup"]["overlap"]["allowed"] is True


def test_a_yaml_section_of_the_wrong_type_is_an_error_even_with_a_flag(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("optim: [1, 2]\n")
    result = runner.invoke(app, [*TRAIN, "--config", str(cfg), "--lr", "0.1", "--output-dir", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    errors = _errors(result.output)
    assert len(errors) == 1 and "optim (in" in errors[0] and "got a list" in _flat(result.output), result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_unknown_environment_variables_are_warned_about_with_the_closest_name(leaky_run):
    run_dir, _ = leaky_run
    result = runner.invoke(app, ["evaluate", str(run_dir), "--checkpoint", "last", "--split", "val"],
                           env={"ACCT_OPTIM_LR": "0.1", "ACCT_SPLIT": "val"})
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.output
    assert "ACCT_OPTIM_LR matches no setting and is ignored; did you mean ACCT_OPTIM__LR?" in _flat(result.output)
