"""What acct asks of a data source is asked of its class: a plugin declaring the same attributes is treated alike."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from acct.study.arms.phased import default_phases
from acct.config.train import DataSettings
from acct.config.notes import split_comparability_note
from acct.run.model_card import _protocol_text
from acct.registry import register_data_source
from tests.conftest import tiny_settings


@register_data_source("test_leaderboard")
class LeaderboardSource:
    """A test source that needs a data directory, the network, and is MMLU."""

    needs_data_dir = True
    reads_files = False
    offline = False

    @staticmethod
    def is_mmlu(data):
        return True

    @staticmethod
    def card_where(data):
        return "the test leaderboard copy"

    @staticmethod
    def phase_groups(data):
        return [(["a"], ["t1"]), (["b", "c"], ["t2", "t3", "t4"])]

    def load(self, data, seed):
        return {}


def test_a_source_that_needs_a_data_directory_is_refused_without_one(tmp_path):
    for source in ("csv", "test_leaderboard"):
        with pytest.raises(ValidationError, match=f"data source '{source}' needs a data directory"):
            DataSettings(source=source)
        assert DataSettings(source=source, data_dir=tmp_path).data_dir == tmp_path
    with pytest.raises(ValidationError, match="data source 'files' needs data files"):
        DataSettings(source="files")
    with pytest.raises(ValidationError, match="not 'test_leaderboard': add --data-source files"):
        DataSettings(source="test_leaderboard", data_dir=tmp_path, files=[str(tmp_path / "a.jsonl")])


def test_comparability_hub_and_card_come_from_the_source_class(tmp_path):
    from acct.cli._common import needs_hub

    data = DataSettings(source="test_leaderboard", data_dir=tmp_path)
    assert "standard MMLU leaderboard" in split_comparability_note(data)
    assert split_comparability_note(DataSettings(source="synthetic")) is None
    settings = tiny_settings(tmp_path / "r")
    assert not needs_hub(settings)
    assert needs_hub(settings.model_copy(update={"data": data}))
    card = _protocol_text({"seed": 1, "data": {"source": "test_leaderboard", "protocol": "subject-split",
                                               "split_fractions": [0.8, 0.1, 0.1]}})
    assert card.startswith("Data: the test leaderboard copy, subject-split") and "MMLU leaderboard" in card
    assert "a check that training works" in _protocol_text({"seed": 1, "data": {"source": "synthetic"}})
    csv = _protocol_text({"seed": 1, "data": {"source": "csv", "data_dir": "/d", "protocol": "standard"}})
    assert csv.startswith("Data: a local copy of the MMLU CSV release (/d), standard protocol") and "MMLU's own test" in csv


def test_the_phased_arm_asks_the_source_for_its_phases(tmp_path):
    base = tiny_settings(tmp_path / "base")
    own = base.model_copy(update={"data": DataSettings(source="test_leaderboard", data_dir=tmp_path)})
    assert default_phases(own) == [{"categories": ["a"], "fraction": pytest.approx(0.25)},
                                   {"categories": ["b", "c"], "fraction": pytest.approx(0.75)}]
