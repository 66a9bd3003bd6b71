"""acct's own data sources, one file each (the file's name is the registered name): a Hugging Face
hub dataset (`hub`, MMLU by default), the original MMLU CSV release (`csv`), local JSONL, CSV and
Parquet files (`files`) and the procedural synthetic suite (`synthetic`).

Contract of a data source (docs/extending.md): a class registered with
`acct.data.register_data_source`, built as `cls(**data.options)`, whose `load(data, seed)`
returns a *source*: `dict[str, list[Example]]` keyed by source split ("dev", "val", "test" and
optionally "train" and "auxiliary_train"), which the run's protocol then splits. Optional class attributes:
`offline` (False when re-reading needs the network; default True) and `categories`
(task -> category name, for the per-category accuracies). What the rest of acct asks of a source is
asked of its class, never of its name (each optional; `data` is the data settings or their saved mapping):
`needs_data_dir` (True: refused without data.data_dir), `reads_files` (True: refused without
data.files; False: refused with them), `real_data` (False: its accuracies say nothing about a real
task), `is_mmlu(data)` (its subject-split accuracies are MMLU's, not comparable to the leaderboard),
`reads_columns` (True: its tables are read through the column mapping, which `acct predict` then
applies to a file of questions too), `hub_dataset(data)` (the hub dataset and config it reads, which
offline start-up looks for in the cache and the model card names), `card_where(data)` (the model
card's phrase for where the data came from), `card_data(settings)`
(the model card's whole data paragraph, for a source that needs its own) and `phase_groups(data)`
(the phased arm's category groups, in training order, each with its tasks).
"""

from __future__ import annotations

from typing import Any

from acct.data.records import MMLU_CATEGORIES
from acct.registry import data_sources


def field_of(data: Any, name: str) -> Any:
    """A data setting, from the settings object or the mapping a run saved."""
    return data.get(name) if isinstance(data, dict) else getattr(data, name, None)


def hub_dataset(data: Any) -> tuple[str, str | None] | None:
    """The hub dataset and config the run's data source reads (its `hub_dataset(data)`), or None."""
    source = data_sources.find(field_of(data, "source"))
    read = getattr(source, "hub_dataset", None)
    return read(data) if read is not None else None


# MMLU's categories in the phased arm's order: STEM first, then the other three together.
_MMLU_PHASES = (("STEM",), ("humanities", "social sciences", "other"))


def mmlu_phase_groups() -> list[tuple[list[str], list[str]]]:
    return [(list(cats), [t for t, c in MMLU_CATEGORIES.items() if c in cats]) for cats in _MMLU_PHASES]
