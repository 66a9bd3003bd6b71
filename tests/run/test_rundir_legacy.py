"""A run written before a setting existed still resumes, with the behaviour it was trained with."""

from __future__ import annotations

import json

import pytest

from acct.config.train import TrainSettings
from acct.errors import CheckpointError
from acct.run.rundir import check_settings_unchanged, fingerprint, load_run_settings, settings_record


def old_run(tmp_path, drop: tuple[str, ...]):
    """A run directory whose config.json and checkpoint record lack the settings in `drop` (dotted)."""
    settings = TrainSettings.model_validate({"output_dir": str(tmp_path), "curriculum": {"prior": "uniform"}})
    saved = json.loads(settings.model_dump_json())
    for dotted in drop:
        *sections, key = dotted.split(".")
        node = saved
        for s in sections:
            node = node[s]
        del node[key]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    record = {k: v for k, v in settings_record(settings).items() if k not in drop}
    return {"settings": record, "settings_digest": fingerprint(record)}


def test_a_config_without_the_prior_trained_with_the_uniform_prior(tmp_path):
    meta = old_run(tmp_path, ("curriculum.prior",))
    loaded = load_run_settings(tmp_path)
    assert loaded.curriculum.prior == "uniform"  # not today's default, proportional
    check_settings_unchanged(tmp_path, loaded, meta)  # resumes


def test_settings_added_later_count_as_unchanged_at_their_default(tmp_path):
    meta = old_run(tmp_path, ("curriculum.prior", "curriculum.alpha"))
    loaded = load_run_settings(tmp_path)
    check_settings_unchanged(tmp_path, loaded, meta)
    # ... but not when they are set to something else: that is an edit.
    edited = loaded.model_copy(update={"curriculum": loaded.curriculum.model_copy(update={"alpha": 0.3})})
    with pytest.raises(CheckpointError, match="curriculum.alpha"):
        check_settings_unchanged(tmp_path, edited, meta)
    proportional = loaded.model_copy(update={"curriculum": loaded.curriculum.model_copy(update={"prior": "proportional"})})
    with pytest.raises(CheckpointError, match="curriculum.prior"):
        check_settings_unchanged(tmp_path, proportional, meta)
