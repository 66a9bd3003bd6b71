"""The two evaluation protocols, `subject-split` and `standard`, that turn a source into the train /
val / test examples of a run (`DataSplit`).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from acct.data.dedup import (
    DEDUP_RULE,
    collapse_duplicates,
    conflicting_answers,
    dedup_notice,
    question_key,
)
from acct.data.mmlu_csv import shorten
from acct.data.records import AUX_SPLIT, TRAIN_SPLIT, Example
from acct.errors import DataError, UsageError


@dataclass
class DataSplit:
    """The train / val / test examples a run uses.

    `report` (what the protocol removed or kept together; recorded in the manifest) and
    `notices` (lines for the user) describe how the split was made and take no part in equality.
    """

    train: list[Example]
    val: list[Example]
    test: list[Example]
    report: dict[str, Any] = field(default_factory=dict, compare=False)
    notices: list[str] = field(default_factory=list, compare=False)

    def tasks(self) -> list[str]:
        """Sorted task names over all three parts (the task-id order of a new run)."""
        return sorted({ex.task for part in (self.train, self.val, self.test) for ex in part})


# Two rows are copies when their question and choices match after this normalisation: Unicode
# compatibility composition (NFKC: full-width letters, ligatures, "…" -> "..."), curly quotes and
# dashes made straight ("’" -> "'", "—" -> "-"), runs of whitespace collapsed to one space and no
# space before closing punctuation ("Paris ." is "Paris.") and a final period dropped ("the data."
# is "the data"). These are how one question's copies differ in the real MMLU release. Case, symbols and superscripts and subscripts (x² is not x2,
# H₂O is not H2O) are kept: they can change what a question asks.
def subject_split(
    source: Mapping[str, list[Example]],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> DataSplit:
    """Pool every split but auxiliary_train and cut each task into train/val/test by `fractions`.

    Exact copies (`question_key`) within a task are collapsed first; copies in different tasks
    are then kept together on one side (train, val or test), drawn once per group with the
    split's fractions, so that no held-out question has a copy in training.
    """
    fractions = _check_fractions(fractions)
    raw = [ex for name, part in source.items() if name != AUX_SPLIT for ex in part]
    if not raw:
        raise DataError("no examples to split: the source has no dev, val or test examples")
    _check_unique_uids(raw)
    pool, removed = collapse_duplicates(raw)

    copies: dict[tuple[str, tuple[str, ...]], list[Example]] = {}
    for ex in pool:
        copies.setdefault(question_key(ex), []).append(ex)
    pinned: dict[str, int] = {}  # uid -> side (0 train, 1 val, 2 test)
    cross_groups = 0
    for key, members in copies.items():
        if len(members) > 1:  # after the collapse, copies sit in different tasks
            cross_groups += 1
            side = _group_side(key, fractions, seed)
            pinned.update((ex.uid, side) for ex in members)

    groups: dict[str, list[Example]] = {}
    for ex in pool:
        groups.setdefault(ex.task, []).append(ex)

    split = DataSplit(train=[], val=[], test=[])
    parts = (split.train, split.val, split.test)
    for task in sorted(groups):
        # Sorting first makes the result independent of file and dict order; seeding per
        # task keeps one subject's split unchanged when another subject is added.
        group = sorted(groups[task], key=lambda ex: ex.uid)
        random.Random(f"{seed}/{task}").shuffle(group)
        sides = _assign_sides(group, split_counts(len(group), fractions), pinned)
        for ex in group:
            parts[sides[ex.uid]].append(ex)

    small = _too_small_for_held_out(groups, split, fractions)
    split.report = {
        "rule": DEDUP_RULE,
        "removed": len(removed),
        "removed_uids": removed,
        "cross_task_groups": cross_groups,
        "cross_task_examples": len(pinned),
        "too_small_for_held_out": small,
    }
    split.notices.append(dedup_notice(len(removed), conflicting_answers(raw, removed), len(pinned)))
    if small:
        named = ", ".join(f"{task} ({len(groups[task])} question{'s' if len(groups[task]) != 1 else ''})" for task in small)
        split.notices.append(
            f"split: too few questions to appear in val or test (trained on, not scored there): {named}"
        )
    return split


def _group_side(key: tuple[str, tuple[str, ...]], fractions: Sequence[float], seed: int) -> int:
    """The side of a group of cross-task copies: a draw by the fractions, seeded by the content."""
    digest = hashlib.sha256(json.dumps([seed, key[0], list(key[1])], ensure_ascii=False).encode("utf-8")).hexdigest()
    draw = random.Random(digest).random()
    if draw < fractions[0]:
        return 0
    return 1 if draw < fractions[0] + fractions[1] else 2


def _assign_sides(group: Sequence[Example], targets: Sequence[int], pinned: Mapping[str, int]) -> dict[str, int]:
    """Sides of one task's shuffled examples: pinned ones where their group goes, the rest in order.

    Free examples fill what each side still lacks of its target count (train first, then val,
    then test). Pinned examples beyond a side's target are taken from the side with the most
    room, so the task keeps its size; without pinned examples this is the plain cut.
    """
    pinned_count = [0, 0, 0]
    for ex in group:
        if ex.uid in pinned:
            pinned_count[pinned[ex.uid]] += 1
    need = [max(0, t - p) for t, p in zip(targets, pinned_count)]
    free = [ex for ex in group if ex.uid not in pinned]
    while sum(need) > len(free):
        need[need.index(max(need))] -= 1
    sides: dict[str, int] = {}
    cursor = 0
    for side, count in enumerate(need):
        for ex in free[cursor : cursor + count]:
            sides[ex.uid] = side
        cursor += count
    for ex in group:
        if ex.uid in pinned:
            sides[ex.uid] = pinned[ex.uid]
    return sides


def _too_small_for_held_out(groups: Mapping[str, list[Example]], split: DataSplit, fractions: Sequence[float]) -> list[str]:
    """Tasks that get no val or no test example although that fraction is non-zero."""
    wanted = [{ex.task for ex in part} for part, f in ((split.val, fractions[1]), (split.test, fractions[2])) if f > 0]
    return [task for task in sorted(groups) if any(task not in present for present in wanted)]


def split_counts(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """How many of `n` examples go to train, val and test.

    Rounds half up, gives val and test at least one example each when n >= 3 and their
    fraction is non-zero (a subject with no held-out example would vanish from the
    per-task report), and never leaves train empty.
    """
    _, f_val, f_test = fractions
    n_val = math.floor(n * f_val + 0.5)
    n_test = math.floor(n * f_test + 0.5)
    if n >= 3:
        n_val = max(n_val, 1 if f_val > 0 else 0)
        n_test = max(n_test, 1 if f_test > 0 else 0)
    while n > 0 and n_val + n_test > n - 1:
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3:
        raise UsageError(f"split fractions need three values (train, val, test), got {len(values)}")
    if any(not math.isfinite(f) or f < 0 for f in values):
        raise UsageError(f"split fractions must be non-negative numbers, got {values}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise UsageError(f"split fractions must sum to 1, got {values} (sum {sum(values):g})")
    if values[0] <= 0:
        raise UsageError(f"the train fraction must be positive, got {values[0]:g}")
    return values[0], values[1], values[2]


def _check_unique_uids(examples: Iterable[Example]) -> None:
    seen: set[str] = set()
    for ex in examples:
        if ex.uid in seen:
            raise DataError(f"two examples share the uid {ex.uid!r}; uids must be unique")
        seen.add(ex.uid)


def standard_split(source: Mapping[str, list[Example]], allow_overlap: bool = False) -> DataSplit:
    """The given splits as they are: train on train (or MMLU's auxiliary_train + dev), validate on val, test on test.

    Exact copies within a task are collapsed in each part. A val or test question with a copy
    in training (any task) is refused unless `allow_overlap`, which keeps it and reports it.
    """
    trained_on = _standard_training_splits(source)
    raw = {"train": [ex for name in trained_on for ex in source[name]], "val": list(source["val"]),
           "test": list(source["test"])}
    _check_unique_uids(ex for part in raw.values() for ex in part)
    parts: dict[str, list[Example]] = {}
    removed: dict[str, str] = {}
    conflicts = 0
    for name, examples in raw.items():
        parts[name], gone = collapse_duplicates(examples)
        removed.update(gone)
        conflicts += conflicting_answers(examples, gone)

    overlap, counts = _held_out_overlap(parts, trained_on, allow_overlap)
    split = DataSplit(train=parts["train"], val=parts["val"], test=parts["test"])
    split.report = {
        "rule": DEDUP_RULE,
        "removed": len(removed),
        "removed_uids": dict(sorted(removed.items())),
        "overlap": {"allowed": allow_overlap, **overlap},
    }
    split.notices.append(dedup_notice(len(removed), conflicts, 0))
    split.notices += _standard_notices(parts, counts)
    return split


def _standard_training_splits(source: Mapping[str, list[Example]]) -> list[str]:
    """The source splits the standard protocol trains on, after checking that val and test are there too."""
    trained_on = [name for name in (TRAIN_SPLIT, AUX_SPLIT) if name in source]
    if not trained_on:
        raise DataError(
            "the standard protocol needs a training split (train, or MMLU's auxiliary_train), which this source "
            "lacks; use --protocol subject-split, or give your files per split: --data-files train=GLOB "
            "validation=GLOB test=GLOB"
        )
    missing = [name for name in ("val", "test") if name not in source]
    if missing:
        raise DataError(
            f"the standard protocol needs the {' and '.join(missing)} split(s), which this source lacks"
            " (files and hub datasets name it 'validation' and 'test')"
        )
    trained_on += ["dev"] if "dev" in source else []
    return trained_on


def _held_out_overlap(
    parts: Mapping[str, list[Example]], trained_on: Sequence[str], allow_overlap: bool
) -> tuple[dict[str, list[str]], list[str]]:
    """Per held-out part, the uids with an exact copy in training, and their counts as text.

    Refused unless `allow_overlap`: a held-out question the model trained on is not held out.
    """
    trained = {question_key(ex) for ex in parts["train"]}
    overlap = {name: [ex.uid for ex in parts[name] if question_key(ex) in trained] for name in ("val", "test")}
    counts = [f"{len(overlap[n])} of {len(parts[n])} {n}" for n in ("val", "test") if overlap[n]]
    if counts and not allow_overlap:
        first = (overlap["test"] or overlap["val"])[0]
        raise DataError(
            f"the given splits overlap: {' and '.join(counts)} questions have an exact copy in training "
            f"({' + '.join(trained_on)}; first: {first!r}); remove the copies from the data, or pass --allow-overlap "
            "to train anyway and have them reported"
        )
    return overlap, counts


def _standard_notices(parts: Mapping[str, list[Example]], counts: Sequence[str]) -> list[str]:
    """The lines for the user beyond the dedup notice: tasks never trained on, and allowed overlap."""
    notices: list[str] = []
    untrained = sorted({ex.task for ex in parts["val"] + parts["test"]} - {ex.task for ex in parts["train"]})
    if untrained:
        notices.append(
            f"split: {len(untrained)} task(s) have no training questions (scored in val/test, never trained on): "
            f"{shorten(untrained)}"
        )
    if counts:
        notices.append(
            f"split: {' and '.join(counts)} questions have an exact copy in training, kept because of "
            "--allow-overlap: their scores are not held-out scores"
        )
    return notices
