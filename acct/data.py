"""Multiple-choice records, the sources that produce them, and the protocols that split them.

This module owns the `Example` record every other part of acct consumes, the MMLU
subject -> category map, the loader of the original MMLU CSV release layout, the Hugging Face
hub loader (MMLU by default, any multiple-choice dataset through a column mapping), the two
evaluation protocols (`subject-split` and `standard`) and the split manifest a run writes so
that later commands score exactly the run's held-out examples.

A *source* is a `dict[str, list[Example]]` keyed by source split name ("dev", "val",
"test", and, when present, "train" (a dataset's own training split) and "auxiliary_train"
(MMLU's)); every loader returns one, and every protocol takes one.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import itertools
import json
import math
import random
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acct.columns import ColumnMapping, TableReader, check_columns, check_task_name
from acct.errors import DataError, UsageError
from acct.registry import register_data_source

EVAL_SPLITS: tuple[str, ...] = ("dev", "val", "test")
AUX_SPLIT = "auxiliary_train"
TRAIN_SPLIT = "train"  # a dataset's own training split (files and hub sources; MMLU has none)
ANSWER_LETTERS = "ABCD"
_CSV_FIELDS = 1 + len(ANSWER_LETTERS) + 1
_MANIFEST_SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class Example:
    """One multiple-choice question.

    Construction does not validate (it runs once per row of large files); loaders
    check K >= 2 and 0 <= answer < K before building one.
    """

    question: str
    choices: tuple[str, ...]
    answer: int
    task: str
    uid: str


# The original release (hendrycks/test, categories.py) maps each subject to a
# subcategory and each subcategory to one of four categories; this is that composition,
# written out so a reader can check a subject without following two tables.
MMLU_CATEGORIES: dict[str, str] = {
    # STEM: physics, chemistry, biology, computer science, math, engineering
    "abstract_algebra": "STEM",
    "astronomy": "STEM",
    "college_biology": "STEM",
    "college_chemistry": "STEM",
    "college_computer_science": "STEM",
    "college_mathematics": "STEM",
    "college_physics": "STEM",
    "computer_security": "STEM",
    "conceptual_physics": "STEM",
    "electrical_engineering": "STEM",
    "elementary_mathematics": "STEM",
    "high_school_biology": "STEM",
    "high_school_chemistry": "STEM",
    "high_school_computer_science": "STEM",
    "high_school_mathematics": "STEM",
    "high_school_physics": "STEM",
    "high_school_statistics": "STEM",
    "machine_learning": "STEM",
    # humanities: history, philosophy, law
    "formal_logic": "humanities",
    "high_school_european_history": "humanities",
    "high_school_us_history": "humanities",
    "high_school_world_history": "humanities",
    "international_law": "humanities",
    "jurisprudence": "humanities",
    "logical_fallacies": "humanities",
    "moral_disputes": "humanities",
    "moral_scenarios": "humanities",
    "philosophy": "humanities",
    "prehistory": "humanities",
    "professional_law": "humanities",
    "world_religions": "humanities",
    # social sciences: politics, culture, economics, geography, psychology
    "econometrics": "social sciences",
    "high_school_geography": "social sciences",
    "high_school_government_and_politics": "social sciences",
    "high_school_macroeconomics": "social sciences",
    "high_school_microeconomics": "social sciences",
    "high_school_psychology": "social sciences",
    "human_sexuality": "social sciences",
    "professional_psychology": "social sciences",
    "public_relations": "social sciences",
    "security_studies": "social sciences",
    "sociology": "social sciences",
    "us_foreign_policy": "social sciences",
    # other: business, health, misc.
    "anatomy": "other",
    "business_ethics": "other",
    "clinical_knowledge": "other",
    "college_medicine": "other",
    "global_facts": "other",
    "human_aging": "other",
    "management": "other",
    "marketing": "other",
    "medical_genetics": "other",
    "miscellaneous": "other",
    "nutrition": "other",
    "professional_accounting": "other",
    "professional_medicine": "other",
    "virology": "other",
}


def category_of(task: str, extra: Mapping[str, str] | None = None) -> str:
    """The category of `task`: `extra` first (e.g. the synthetic suite's), then MMLU, else "other"."""
    if extra is not None and task in extra:
        return extra[task]
    return MMLU_CATEGORIES.get(task, "other")


# --------------------------------------------------------------------------- CSV source


def load_csv_source(data_dir: Path) -> dict[str, list[Example]]:
    """Load the original MMLU release layout `DIR/{dev,val,test,auxiliary_train}/*.csv`."""
    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise DataError(f"{data_dir}: data directory does not exist")
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: not a directory")

    present = [split for split in EVAL_SPLITS if (data_dir / split).is_dir()]
    if not present:
        raise DataError(
            f"{data_dir}: none of dev/, val/, test/ found; expected the original MMLU layout "
            "DIR/{dev,val,test}/NAME_{split}.csv"
        )

    files = {split: _subject_files(data_dir / split, split) for split in present}
    _check_same_subjects(data_dir, files)

    source: dict[str, list[Example]] = {}
    for split in present:
        source[split] = [
            example
            for subject, path in sorted(files[split].items())
            for example in _read_csv_file(path, task=subject, split=split)
        ]

    aux_dir = data_dir / AUX_SPLIT
    if aux_dir.is_dir():
        aux_files = _subject_files(aux_dir, AUX_SPLIT)
        if not aux_files:
            raise DataError(f"{aux_dir}: no .csv files")
        # Auxiliary data has no MMLU subject; each of its files (arc_easy, race, ...) is
        # a task of its own so the curriculum can still tell its sources apart.
        source[AUX_SPLIT] = [
            example
            for task, path in sorted(aux_files.items())
            for example in _read_csv_file(path, task=task, split=AUX_SPLIT)
        ]
    return source


def _subject_files(split_dir: Path, split: str) -> dict[str, Path]:
    """Map subject name -> CSV file in one split directory (`NAME_{split}.csv` -> NAME)."""
    suffix = f"_{split}"
    files: dict[str, Path] = {}
    for path in sorted(split_dir.glob("*.csv")):
        stem = path.stem
        subject = stem[: -len(suffix)] if stem.endswith(suffix) and stem != suffix else stem
        try:
            check_task_name(subject)
        except ValueError as exc:
            raise DataError(f"{path}: {exc}") from None
        if subject in files:
            raise DataError(f"{path}: subject {subject!r} already read from {files[subject]}")
        files[subject] = path
    return files


def _check_same_subjects(data_dir: Path, files: Mapping[str, Mapping[str, Path]]) -> None:
    """Every subject must appear in every present split, or the protocols would mix tasks."""
    every = set().union(*(set(found) for found in files.values()))
    if not every:
        raise DataError(f"{data_dir}: no .csv files in {', '.join(f'{s}/' for s in files)}")
    gaps = [
        f"{split}/ lacks {_shorten(sorted(every - set(found)))}"
        for split, found in files.items()
        if every - set(found)
    ]
    if gaps:
        raise DataError(f"{data_dir}: subjects missing from some splits: {'; '.join(gaps)}")


def _shorten(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _read_csv_file(path: Path, task: str, split: str) -> list[Example]:
    """Read header-less `question,A,B,C,D,letter` rows; errors name the record's first line."""
    examples: list[Example] = []
    try:
        # utf-8-sig: a file re-saved by a spreadsheet gains a BOM that would otherwise end
        # up inside the first question.
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for line, row in csv_records(path, handle):
                uid = f"{task}/{split}/{len(examples)}"
                examples.append(_example_from_row(path, line, row, task, uid))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not examples:
        raise DataError(f"{path}: no rows")
    return examples


def csv_records(path: Path, handle: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """Yield (physical line where the record starts, fields), skipping blank lines."""
    reader = csv.reader(handle)
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"{path} line {line}: malformed CSV ({exc})") from exc
        if row:
            yield line, row


def _example_from_row(path: Path, line: int, row: list[str], task: str, uid: str) -> Example:
    if len(row) != _CSV_FIELDS:
        raise DataError(
            f"{path} line {line}: expected {_CSV_FIELDS} fields "
            f"(question, {', '.join(ANSWER_LETTERS)}, answer letter), got {len(row)}"
        )
    question, *choices, letter = row
    if not question.strip():
        raise DataError(f"{path} line {line}: empty question")
    key = letter.strip().upper()
    if len(key) != 1 or key not in ANSWER_LETTERS:
        raise DataError(
            f"{path} line {line}: answer must be one of {', '.join(ANSWER_LETTERS)}, got {letter!r}"
        )
    for letter_of, choice in zip(ANSWER_LETTERS, choices):
        if not choice.strip():
            raise DataError(f"{path} line {line}: choice {letter_of} is empty")
    answer = ANSWER_LETTERS.index(key)
    # Choices are otherwise kept verbatim: numeric text stays text ("007" is not 7).
    return Example(question=question, choices=tuple(choices), answer=answer, task=task, uid=uid)


# --------------------------------------------------------------------------- hub source

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


# --------------------------------------------------------------------------- protocols


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
DEDUP_RULE = ("same question and choices after NFKC (superscripts and subscripts kept), straight quotes and dashes, "
              "whitespace collapsing, no space before punctuation and no final period")

_PLAIN = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",  # ‘ ’ ‚ ‛
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',  # “ ” „ ‟
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",  # ‐ ‑ ‒ – — ―
    "\u2212": "-",  # − (minus sign)
})
_SPACE_BEFORE_PUNCTUATION = re.compile(r" ([.,;:!?)\]}])")


@functools.lru_cache(maxsize=4096)
def _script_form(ch: str) -> bool:
    """A superscript or subscript character, which NFKC would make an ordinary digit or letter."""
    return unicodedata.decomposition(ch).startswith(("<super>", "<sub>"))


def _nfkc(text: str) -> str:
    if text.isascii():
        return text
    text = unicodedata.normalize("NFC", text)
    if not any(_script_form(ch) for ch in text):
        return unicodedata.normalize("NFKC", text)
    runs = itertools.groupby(text, key=_script_form)
    return "".join("".join(chars) if kept else unicodedata.normalize("NFKC", "".join(chars)) for kept, chars in runs)


_FINAL_PERIOD = re.compile(r"(?<!\.)\.$")  # one final period, not an ellipsis


def _normalise(text: str) -> str:
    text = " ".join(_nfkc(text).translate(_PLAIN).split())
    return _FINAL_PERIOD.sub("", _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text))


def question_key(ex: Example) -> tuple[str, tuple[str, ...]]:
    """What makes two examples copies of one question (the answer and task do not count)."""
    return _normalise(ex.question), tuple(_normalise(c) for c in ex.choices)


def collapse_duplicates(examples: Iterable[Example]) -> tuple[list[Example], dict[str, str]]:
    """Keep one example per (task, question_key): the one with the smallest uid.

    Returns the kept examples in their input order and {removed uid: kept uid}. The choice
    depends only on the uids, so the result does not change with the input order.
    """
    examples = list(examples)
    keeper: dict[tuple[str, tuple[str, tuple[str, ...]]], Example] = {}
    for ex in examples:
        key = (ex.task, question_key(ex))
        if key not in keeper or ex.uid < keeper[key].uid:
            keeper[key] = ex
    removed: dict[str, str] = {}
    kept: list[Example] = []
    for ex in examples:
        chosen = keeper[(ex.task, question_key(ex))]
        if chosen is ex:
            kept.append(ex)
        else:
            removed[ex.uid] = chosen.uid
    return kept, dict(sorted(removed.items()))


def identical_choices_notice(examples: Iterable[Example]) -> str | None:
    """A notice counting the questions that offer one choice twice (the same text after the copy rule's
    normalisation); None when there are none. They are kept: the data says so, acct does not guess."""
    found = [ex for ex in examples if len({_normalise(c) for c in ex.choices}) < len(ex.choices)]
    if not found:
        return None
    right = sum(1 for ex in found if sum(_normalise(c) == _normalise(ex.choices[ex.answer]) for c in ex.choices) > 1)
    line = (f"data: {len(found)} question(s) offer the same choice twice (first: {found[0].uid}); they are kept as "
            "they are")
    if right:
        line += f", and in {right} of them the right answer is one of the twins, so only its position tells them apart"
    return line


def _conflicting_answers(examples: Sequence[Example], removed: Mapping[str, str]) -> int:
    by_uid = {ex.uid: ex for ex in examples}
    return sum(1 for gone, kept in removed.items() if by_uid[gone].answer != by_uid[kept].answer)


def _dedup_notice(removed: int, conflicts: int, cross_rows: int) -> str:
    line = f"split: {removed} duplicate question(s) removed within tasks ({DEDUP_RULE})"
    if conflicts:
        line += f", {conflicts} of them with a different answer than the copy kept"
    if cross_rows:
        line += f"; {cross_rows} question(s) with copies in other tasks kept on one side of the split with them"
    return line


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
    split.notices.append(_dedup_notice(len(removed), _conflicting_answers(raw, removed), len(pinned)))
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
    raw = {"train": [ex for name in trained_on for ex in source[name]], "val": list(source["val"]),
           "test": list(source["test"])}
    _check_unique_uids(ex for part in raw.values() for ex in part)
    parts: dict[str, list[Example]] = {}
    removed: dict[str, str] = {}
    conflicts = 0
    for name, examples in raw.items():
        parts[name], gone = collapse_duplicates(examples)
        removed.update(gone)
        conflicts += _conflicting_answers(examples, gone)

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
    split = DataSplit(train=parts["train"], val=parts["val"], test=parts["test"])
    split.report = {
        "rule": DEDUP_RULE,
        "removed": len(removed),
        "removed_uids": dict(sorted(removed.items())),
        "overlap": {"allowed": allow_overlap, **overlap},
    }
    split.notices.append(_dedup_notice(len(removed), conflicts, 0))
    untrained = sorted({ex.task for ex in parts["val"] + parts["test"]} - {ex.task for ex in parts["train"]})
    if untrained:
        split.notices.append(
            f"split: {len(untrained)} task(s) have no training questions (scored in val/test, never trained on): "
            f"{_shorten(untrained)}"
        )
    if counts:
        split.notices.append(
            f"split: {' and '.join(counts)} questions have an exact copy in training, kept because of "
            "--allow-overlap: their scores are not held-out scores"
        )
    return split


# --------------------------------------------------------------------------- manifests


def build_manifest(split: DataSplit) -> dict[str, Any]:
    """A JSON-ready record of which uids a run used, with fingerprints of their content.

    `uid_digests` fingerprint the uid lists themselves, so that an edited manifest is told apart
    from changed data; `dedup` records what the protocol collapsed or kept together.
    """
    manifest: dict[str, Any] = {name: [ex.uid for ex in getattr(split, name)] for name in _MANIFEST_SPLITS}
    manifest["fingerprints"] = {name: fingerprint(getattr(split, name)) for name in _MANIFEST_SPLITS}
    manifest["uid_digests"] = {name: _uid_digest(manifest[name]) for name in _MANIFEST_SPLITS}
    manifest["dedup"] = split.report
    return manifest


def _uid_digest(uids: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(uids), ensure_ascii=False).encode("utf-8")).hexdigest()


def fingerprint(examples: Iterable[Example]) -> str:
    """sha256 over the examples' content, in order."""
    digest = hashlib.sha256()
    for ex in examples:
        # JSON keeps field boundaries unambiguous even when text contains separators.
        record = [ex.question, list(ex.choices), ex.answer, ex.task, ex.uid]
        digest.update(json.dumps(record, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def apply_manifest(source: Mapping[str, list[Example]], manifest: Mapping[str, Any]) -> DataSplit:
    """Rebuild a run's split from freshly loaded data, refusing data that has changed since.

    A uid list that no longer matches its own recorded digest means the manifest was edited,
    and the message says so rather than blaming the data.
    """
    _check_manifest_shape(manifest)
    digests = manifest.get("uid_digests")
    if isinstance(digests, Mapping):
        for name in _MANIFEST_SPLITS:
            if digests.get(name) != _uid_digest(manifest[name]):
                raise DataError(
                    f"the run's split manifest (split.json) was edited: its {name} list no longer matches the "
                    "digest recorded when the run was made; the manifest changed, not the data. Restore the "
                    "original split.json"
                )
    by_uid: dict[str, Example] = {}
    for part in source.values():
        for ex in part:
            by_uid[ex.uid] = ex

    parts: dict[str, list[Example]] = {}
    for name in _MANIFEST_SPLITS:
        uids: list[str] = manifest[name]
        missing = [uid for uid in uids if uid not in by_uid]
        if missing:
            raise DataError(
                "the data no longer matches the run's split manifest: "
                f"{len(missing)} {name} example(s) are missing from the source (first: {missing[0]!r})"
            )
        parts[name] = [by_uid[uid] for uid in uids]
        if fingerprint(parts[name]) != manifest["fingerprints"][name]:
            if isinstance(digests, Mapping):  # the uid lists are intact: the data changed
                raise DataError(
                    "the data no longer matches the run's split manifest: "
                    f"the content of the {name} examples changed since the run was made"
                )
            raise DataError(
                f"the {name} examples no longer match the fingerprint in the run's split manifest (split.json): "
                "the data changed since the run was made, or the manifest was edited"
            )
    return DataSplit(train=parts["train"], val=parts["val"], test=parts["test"], report=dict(manifest.get("dedup") or {}))


def _check_manifest_shape(manifest: Mapping[str, Any]) -> None:
    if not isinstance(manifest, Mapping):
        raise DataError("the split manifest is malformed: expected a JSON object")
    for name in _MANIFEST_SPLITS:
        uids = manifest.get(name)
        if not isinstance(uids, list) or not all(isinstance(uid, str) for uid in uids):
            raise DataError(f"the split manifest is malformed: {name!r} must be a list of uids")
    prints = manifest.get("fingerprints")
    if not isinstance(prints, Mapping) or not all(isinstance(prints.get(n), str) for n in _MANIFEST_SPLITS):
        raise DataError("the split manifest is malformed: 'fingerprints' must map train/val/test to hashes")
