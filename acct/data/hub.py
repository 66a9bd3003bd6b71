"""The Hugging Face hub loader: MMLU by default, any multiple-choice dataset through a column mapping."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from acct.data.columns import ColumnMapping, TableReader, check_columns
from acct.data.records import AUX_SPLIT, TRAIN_SPLIT, Example
from acct.errors import DataError

# Hub split name -> source split. MMLU has dev / validation / test / auxiliary_train; most other
# datasets have train / validation / test.
_HUB_SPLITS: dict[str, str] = {
    "train": TRAIN_SPLIT,
    "dev": "dev",
    "validation": "val",
    "test": "test",
    "auxiliary_train": AUX_SPLIT,
}


def load_hub_source(
    dataset: str = "cais/mmlu", config: str | None = "all", columns: ColumnMapping | None = None,
    categories: dict[str, str] | None = None,
) -> dict[str, list[Example]]:
    """Load a multiple-choice dataset from the Hugging Face hub, read through `columns`.

    The defaults are MMLU (cais/mmlu, config "all", MMLU's columns). Hub splits are renamed
    to source splits (`_HUB_SPLITS`: validation -> val, ...); others are ignored. A mapped
    category column fills `categories` (task -> category).
    """
    columns = ColumnMapping() if columns is None else columns
    try:
        import datasets  # heavy: imported only when the hub source is actually used
    except ImportError as exc:
        raise DataError("the hub data source needs the `datasets` package (pip install datasets)") from exc
    named = repr(dataset) + ("" if config is None else f" (config {config!r})")
    try:
        loaded = datasets.load_dataset(dataset, config)
    except Exception as exc:  # any hub, network or cache failure means the same to a user
        # The library's own words, without its exception names ("(OfflineModeIsEnabled)"): they mean nothing to a user.
        reason = re.sub(r"\s*\([A-Z]\w+\)$", "", (str(exc).strip().splitlines() or [""])[0][:200])
        raise DataError(
            f"could not load dataset {named} from the Hugging Face hub (no network?): "
            f"{reason}; use --data-source csv --data-dir DIR with a local "
            "copy of the MMLU release, --data-source files --data-files PATH for your own files, "
            "or --preset tiny to run offline"
        ) from exc

    source: dict[str, list[Example]] = {}
    found = {}
    for hub_split, split in _HUB_SPLITS.items():
        if hub_split in loaded:
            found[hub_split] = split
    if not found:
        raise DataError(
            f"dataset {named} has none of the splits {', '.join(_HUB_SPLITS)} "
            f"(found: {', '.join(sorted(loaded)) or 'none'})"
        )
    categories = {} if categories is None else categories
    for hub_split, split in found.items():
        reader = TableReader(columns, split, categories)
        names, rows = _hub_rows(loaded[hub_split], columns)
        check_columns(names, columns, f"dataset {named}, split {hub_split}")
        source[split] = reader.read(rows, lambda i, s=hub_split: f"{named} {s} row {i + 1}")
    return source


def _hub_rows(table: Any, columns: ColumnMapping) -> tuple[list[str], Iterator[Mapping[str, Any]]]:
    """The column names and the rows as dicts, read column-wise because row iteration of a Dataset is slow."""
    data = table.to_dict()
    if columns.question not in data and "train" in data:
        # Some revisions of cais/mmlu nest auxiliary_train rows under a "train" struct.
        nested = data["train"]
        return (list(nested[0]) if nested else []), iter(nested)
    names = list(data)
    return names, (dict(zip(names, values)) for values in zip(*(data[name] for name in names)))
