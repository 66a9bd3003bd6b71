"""A run's data: its source, split and the categories of its tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from acct import registry
from acct.config.train import DataSettings, TrainSettings
from acct.data.protocols import DataSplit, standard_split, subject_split
from acct.data.records import MMLU_CATEGORIES, Example
from acct.data.synthetic import SYNTHETIC_CATEGORIES
from acct.errors import UsageError


def data_source(data: DataSettings) -> Any:
    """The registered data source `data.source`, built with `data.options`."""
    cls = registry.data_sources.get(data.source)
    try:
        return cls(**data.options)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"data.options do not fit data source {data.source!r}: {exc}") from None


def load_source(data: DataSettings, seed: int) -> dict[str, list[Example]]:
    return data_source(data).load(data, seed)


def make_split(source: dict[str, list[Example]], data: DataSettings, seed: int) -> DataSplit:
    if data.protocol == "standard":
        return standard_split(source, allow_overlap=data.allow_overlap)
    return subject_split(source, fractions=data.split_fractions, seed=seed)


def check_batch_fits(settings: TrainSettings, train: Sequence[Example]) -> None:
    """Refuse a batch the training split cannot fill, before anything is built or written."""
    sizes: dict[str, int] = {}
    for ex in train:
        sizes[ex.task] = sizes.get(ex.task, 0) + 1
    largest = max(sizes.values())
    shape = settings.batch
    if shape.examples_per_task > largest:
        raise UsageError(
            f"examples_per_task {shape.examples_per_task} is more than the largest task has ({largest} training "
            f"questions): a task slot can never hold more; use --examples-per-task {largest} or less"
        )
    if shape.questions_per_batch > len(train):
        raise UsageError(
            f"a batch of {shape.questions_per_batch} questions (tasks_per_batch {shape.tasks_per_batch} x examples_per_task "
            f"{shape.examples_per_task}) is larger than the whole training split ({len(train)} questions); "
            "lower --tasks-per-batch or --examples-per-task"
        )


def task_categories(tasks: Sequence[str], extra: dict[str, str] | None = None) -> dict[str, str]:
    """Category of every task: a data source's own (`extra`), MMLU's four, the synthetic suite's, else 'other'."""
    known = {**MMLU_CATEGORIES, **SYNTHETIC_CATEGORIES, **(extra or {})}
    return {t: known.get(t, "other") for t in tasks}
