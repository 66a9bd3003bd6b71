"""acct's own data sources: a Hugging Face hub dataset (`hub`, MMLU by default), the original
MMLU CSV release (`csv`) and the procedural synthetic suite (`synthetic`); local JSONL, CSV and
Parquet files (`files`) live in acct/sources_files.py.

Contract of a data source (docs/extending.md): a class registered with
`acct.data.register_data_source`, built as `cls(**data.options)`, whose `load(data, seed)`
returns a *source*: `dict[str, list[Example]]` keyed by source split ("dev", "val", "test" and
optionally "train" and "auxiliary_train"), which the run's protocol then splits. Optional class attributes:
`offline` (False when re-reading needs the network; default True) and `categories`
(task -> category name, for the per-category accuracies).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acct.columns import ColumnMapping
from acct.data import Example, load_csv_source, load_hub_source, register_data_source


@register_data_source("hub")
class HubSource:
    """A Hugging Face hub dataset (data.hub_dataset, default cais/mmlu) read through the column mapping; needs the network once."""

    offline = False

    def __init__(self) -> None:
        self.categories: dict[str, str] = {}  # filled from data.category_column, when one is mapped

    def load(self, data: Any, seed: int) -> dict[str, list[Example]]:
        self.categories = {}
        return load_hub_source(data.hub_dataset, data.hub_config, ColumnMapping.from_settings(data), self.categories)


@register_data_source("csv")
class CsvSource:
    """The original MMLU CSV release under data.data_dir: {dev,val,test,auxiliary_train}/NAME_split.csv."""

    def load(self, data: Any, seed: int) -> dict[str, list[Example]]:
        return load_csv_source(Path(data.data_dir))


@register_data_source("synthetic")
class SyntheticSource:
    """A procedural suite of confusable tasks (even/odd numbers, animal/fruit words ...), offline."""

    def __init__(self, task_sizes: dict[str, int] | None = None, noise_task: bool = False) -> None:
        # data.options: task_sizes (task -> questions, for imbalanced tasks) and noise_task
        # (add `random_answer`, whose answers are random); both off by default.
        from acct.synthetic import NOISE_CATEGORY, NOISE_TASK, SYNTHETIC_CATEGORIES

        self.task_sizes = task_sizes
        self.noise_task = noise_task
        self.categories = dict(SYNTHETIC_CATEGORIES)
        if noise_task:
            self.categories[NOISE_TASK] = NOISE_CATEGORY

    def load(self, data: Any, seed: int) -> dict[str, list[Example]]:
        from acct.synthetic import generate_suite

        return generate_suite(
            examples_per_task=data.synthetic_examples_per_task,
            seed=seed,
            task_sizes=self.task_sizes,
            noise_task=self.noise_task,
        )
