"""The `hub` data source: a Hugging Face hub dataset (MMLU by default) read through the column mapping."""

from __future__ import annotations

from typing import Any

from acct.data.columns import ColumnMapping
from acct.data.hub import load_hub_source
from acct.data.records import Example
from acct.data.sources import field_of, mmlu_phase_groups
from acct.registry import register_data_source


@register_data_source("hub")
class HubSource:
    """A Hugging Face hub dataset (data.hub_dataset, default cais/mmlu) read through the column mapping; needs the network once."""

    offline = False
    reads_files = False
    reads_columns = True

    @staticmethod
    def hub_dataset(data: Any) -> tuple[str, str | None] | None:
        return field_of(data, "hub_dataset"), field_of(data, "hub_config")

    @staticmethod
    def is_mmlu(data: Any) -> bool:
        return field_of(data, "hub_dataset") == "cais/mmlu"

    @staticmethod
    def card_where(data: Any) -> str:
        config = field_of(data, "hub_config")
        return str(field_of(data, "hub_dataset")) + (f" (config {config})" if config else "")

    @staticmethod
    def phase_groups(data: Any) -> list[tuple[list[str], list[str]]]:
        return mmlu_phase_groups()

    def __init__(self) -> None:
        self.categories: dict[str, str] = {}  # filled from data.category_column, when one is mapped

    def load(self, data: Any, seed: int) -> dict[str, list[Example]]:
        self.categories = {}
        return load_hub_source(data.hub_dataset, data.hub_config, ColumnMapping.from_settings(data), self.categories)
