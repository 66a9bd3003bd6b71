"""The `csv` data source: the original MMLU CSV release in a local directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acct.data.mmlu_csv import load_csv_source
from acct.data.records import Example
from acct.data.sources import field_of, mmlu_phase_groups
from acct.registry import register_data_source


@register_data_source("csv")
class CsvSource:
    """The original MMLU CSV release under data.data_dir: {dev,val,test,auxiliary_train}/NAME_split.csv."""

    needs_data_dir = True
    reads_files = False

    @staticmethod
    def is_mmlu(data: Any) -> bool:
        return True

    @staticmethod
    def card_where(data: Any) -> str:
        return f"a local copy of the MMLU CSV release ({field_of(data, 'data_dir')})"

    @staticmethod
    def phase_groups(data: Any) -> list[tuple[list[str], list[str]]]:
        return mmlu_phase_groups()

    def load(self, data: Any, seed: int) -> dict[str, list[Example]]:
        return load_csv_source(Path(data.data_dir))
