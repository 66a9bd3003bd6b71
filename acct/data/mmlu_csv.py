"""The loader of the original MMLU CSV release layout, `DIR/{dev,val,test,auxiliary_train}/*.csv`."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from acct.data.columns import check_task_name
from acct.data.records import ANSWER_LETTERS, AUX_SPLIT, EVAL_SPLITS, Example
from acct.errors import DataError

_CSV_FIELDS = 1 + len(ANSWER_LETTERS) + 1


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
        f"{split}/ lacks {shorten(sorted(every - set(found)))}"
        for split, found in files.items()
        if every - set(found)
    ]
    if gaps:
        raise DataError(f"{data_dir}: subjects missing from some splits: {'; '.join(gaps)}")


def shorten(names: Sequence[str], limit: int = 5) -> str:
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
