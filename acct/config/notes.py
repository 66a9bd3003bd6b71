"""Notices derived from settings: what a split protocol's accuracies cannot be compared with, and a
batch shape that leaves InfoNCE without positives.
"""

from __future__ import annotations

from typing import Any

from acct import registry
from acct.config.train import TrainSettings


def split_comparability_note(data: Any) -> str | None:
    """What a subject-split run's accuracies cannot be compared with (None for other protocols and
    the synthetic suite). MMLU (the csv release or cais/mmlu on the hub) names its leaderboard."""
    cls = registry.data_sources.get(data.source) if data.source in registry.data_sources else None
    if not getattr(cls, "real_data", True) or data.protocol != "subject-split":
        return None
    text = "subject-split protocol: the source's splits pooled and re-split per task; these accuracies are not comparable to "
    if getattr(cls, "is_mmlu", lambda data: False)(data):
        return text + "the standard MMLU leaderboard"
    return text + "results on the dataset's own test split"


def contrastive_notice(settings: TrainSettings, world_size: int = 1, num_tasks: int = 2) -> str | None:
    """A notice when the batch shape leaves InfoNCE without positives (same-task pairs) while lambda_con > 0.

    Positives are questions of one task slot in the batch InfoNCE sees: the whole batch in a single
    process or with gather_negatives, else each process's strided share (rows rank::world_size).
    """
    lam = settings.loss.lambda_contrastive
    if lam <= 0:
        return None
    per_slot, slots = settings.batch.examples_per_task, settings.batch.tasks_per_batch
    share = 1 if world_size == 1 or settings.loss.gather_negatives else world_size
    seen = settings.batch.questions_per_batch // share  # questions in the batch one InfoNCE call sees
    shape = f"tasks_per_batch {slots} x examples_per_task {per_slot}" + (f" over {world_size} processes" if share > 1 else "")
    if seen <= 1:
        what = "always 0"
    elif per_slot <= share and num_tasks > 1:
        what = "0 except when two task slots happen to draw the same task"
    else:
        return None
    return (
        f"loss: lambda_contrastive {lam:g} but a batch of {shape} has no same-task pairs (positives), "
        f"so InfoNCE is {what}; use --examples-per-task {share + 1} or more, or --lambda-contrastive 0"
    )
