"""acct's own data sources: a Hugging Face hub dataset (`hub`, MMLU by default), the original
MMLU CSV release (`csv`) and the procedural synthetic suite (`synthetic`); local JSONL, CSV and
Parquet files (`files`) live in acct/data/files.py.

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

from pathlib import Path
from typing import Any

from acct.data.columns import ColumnMapping
from acct.data.hub import load_hub_source
from acct.data.mmlu_csv import load_csv_source
from acct.data.records import Example
from acct.registry import register_data_source


def field_of(data: Any, name: str) -> Any:
    """A data setting, from the settings object or the mapping a run saved."""
    return data.get(name) if isinstance(data, dict) else getattr(data, name, None)


# MMLU's categories in the phased arm's order: STEM first, then the other three together.
_MMLU_PHASES = (("STEM",), ("humanities", "social sciences", "other"))


def mmlu_phase_groups() -> list[tuple[list[str], list[str]]]:
    from acct.data.records import MMLU_CATEGORIES

    return [(list(cats), [t for t, c in MMLU_CATEGORIES.items() if c in cats]) for cats in _MMLU_PHASES]


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


@register_data_source("synthetic")
class SyntheticSource:
    """A procedural suite of confusable tasks (even/odd numbers, animal/fruit words ...), offline."""

    reads_files = False
    real_data = False  # a check that training works, not a benchmark

    @staticmethod
    def card_data(settings: dict[str, Any]) -> str:
        data = settings.get("data", {})
        return ("Data: acct's synthetic suite (generated, seed {seed}), split per task by the fractions "
                "{fractions}. It is a check that training works, not a benchmark: these numbers say nothing "
                "about any real task.").format(seed=settings.get("seed"), fractions=data.get("split_fractions"))

    @staticmethod
    def phase_groups(data: Any) -> list[tuple[list[str], list[str]]]:
        """numbers first, then words (and the noise task, when there is one)."""
        from acct.data.synthetic import NOISE_CATEGORY, NOISE_TASK, SYNTHETIC_CATEGORIES

        categories = dict(SYNTHETIC_CATEGORIES)
        if (field_of(data, "options") or {}).get("noise_task"):
            categories[NOISE_TASK] = NOISE_CATEGORY
        first = sorted({c for c in categories.values() if c == "numbers"})
        rest = sorted(set(categories.values()) - set(first))
        return [(cats, [t for t, c in categories.items() if c in cats]) for cats in (first, rest)]

    def __init__(self, task_sizes: dict[str, int] | None = None, noise_task: bool = False) -> None:
        # data.options: task_sizes (task -> questions, for imbalanced tasks) and noise_task
        # (add `random_answer`, whose answers are random); both off by default.
        from acct.data.synthetic import NOISE_CATEGORY, NOISE_TASK, SYNTHETIC_CATEGORIES

        self.task_sizes = task_sizes
        self.noise_task = noise_task
        self.categories = dict(SYNTHETIC_CATEGORIES)
        if noise_task:
            self.categories[NOISE_TASK] = NOISE_CATEGORY

    def load(self, data: Any, seed: int) -> dict[str, list[Example]]:
        from acct.data.synthetic import generate_suite

        return generate_suite(
            examples_per_task=data.synthetic_examples_per_task,
            seed=seed,
            task_sizes=self.task_sizes,
            noise_task=self.noise_task,
        )
