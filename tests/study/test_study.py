"""The study file of `acct ablate --study`: arms as settings layers, in file order."""

from __future__ import annotations

from pathlib import Path

import pytest

from acct.study.plan import plan
from acct.config.commands import AblateSettings
from acct.errors import UsageError
from acct.study.study_file import read_study
from tests.conftest import tiny_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "study.yaml"


def test_the_documented_example_plans_on_the_tiny_preset(tmp_path):
    arms, reference = read_study(EXAMPLE)
    assert [name for name, _ in arms] == ["plain", "lp_t1", "full_dwa"] and reference == "plain"
    base = tiny_settings(tmp_path / "x", **{"optim.max_steps": 300})
    runs = plan(AblateSettings(study=EXAMPLE, output_dir=tmp_path / "s", seeds=1), base)
    by_name = {r.config: r.settings for r in runs}
    assert list(by_name) == ["plain", "lp_t1", "full_dwa"]
    assert by_name["plain"].loss.lambda_contrastive == 0.0 and by_name["plain"].curriculum.strategy == "uniform"
    assert by_name["lp_t1"].curriculum.options == {"temperature": 1.0}
    assert by_name["full_dwa"].loss.task_weighting == "dwa"
    # Everything an arm does not set comes from the base settings.
    assert all(s.optim.max_steps == 300 and s.model.name_or_path == "tiny" for s in by_name.values())


def test_an_empty_arm_is_the_base_settings_and_a_null_arm_too(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text("arms:\n  as_is: {}\n  also_as_is:\n  other: {loss: {lambda_contrastive: 0.1}}\n")
    arms, reference = read_study(study)
    assert arms == [("as_is", {}), ("also_as_is", {}), ("other", {"loss": {"lambda_contrastive": 0.1}})]
    assert reference is None


def test_an_arm_name_must_name_a_directory(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text("arms:\n  'a/b': {}\n  c: {}\n")
    with pytest.raises(UsageError, match="arm name 'a/b' must be a word"):
        read_study(study)
