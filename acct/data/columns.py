"""Rows of a table -> multiple-choice `Example`s, through a column mapping.

The `files` and `hub` data sources read tables whose columns a user names: the question, the
choices (one list column, or one column per choice), the answer (a 0-based index, a letter, or
the text of a choice), the task and, optionally, a category. This module turns such rows into
`Example`s, and says which row is wrong, and why, in one line.

Nothing heavy is imported here.
"""

from __future__ import annotations

import math
import string
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from acct.data.records import Example
from acct.errors import DataError

# The source split whose rows may lack a task: MMLU's auxiliary_train has no subject.
_TASKLESS_SPLIT = "auxiliary_train"

# The flag that names each column, for the hints of error messages.
_FLAGS = {"question": "--question-column", "choices": "--choices-column", "answer": "--answer-column",
          "task": "--task-column", "category": "--category-column"}


@dataclass(frozen=True)
class ColumnMapping:
    """Which column holds what. The defaults are MMLU's hub layout (question, choices, answer, subject)."""

    question: str = "question"
    choices: str | None = "choices"  # a list column; None when `choice_columns` are used
    choice_columns: tuple[str, ...] = ()  # one column per choice, in order
    answer: str = "answer"
    task: str = "subject"
    category: str | None = None

    @classmethod
    def from_settings(cls, data: Any) -> ColumnMapping:
        """The mapping of a run's `DataSettings` (an unset choices column means 'choices' unless choice columns are set)."""
        choice_columns = tuple(data.choice_columns or ())
        return cls(
            question=data.question_column,
            choices=None if choice_columns else (data.choices_column or "choices"),
            choice_columns=choice_columns,
            answer=data.answer_column,
            task=data.task_column,
            category=data.category_column,
        )

    def required(self) -> list[tuple[str, str]]:
        """(column, flag that names it) for every column a row must have."""
        needed = [(self.question, _FLAGS["question"])]
        if self.choice_columns:
            needed += [(c, "--choice-columns") for c in self.choice_columns]
        else:
            needed.append((self.choices or "choices", _FLAGS["choices"]))
        needed += [(self.answer, _FLAGS["answer"]), (self.task, _FLAGS["task"])]
        if self.category is not None:
            needed.append((self.category, _FLAGS["category"]))
        return needed


def check_columns(names: Iterable[str], mapping: ColumnMapping, where: str) -> None:
    """Refuse a table that lacks a mapped column, naming the table, the column and the flag that sets it."""
    present = list(names)
    for column, flag in mapping.required():
        if column not in present:
            shown = ", ".join(repr(n) for n in present[:12]) + (" ..." if len(present) > 12 else "")
            raise DataError(f"{where}: no column {column!r} (columns: {shown or 'none'}); name the right one with {flag}")


def answer_index(value: Any, choices: Sequence[str]) -> int:
    """The 0-based index of the right choice; ValueError with the reason when `value` names none.

    An integer (or a string of digits) is a 0-based index; one letter is A, B, C, ... in order;
    any other string, or a digit or letter that names no choice, is the text of one of the
    choices. A digit or a letter that names one choice while another choice reads exactly
    that is ambiguous and refused.
    """
    k = len(choices)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("no answer")
    if isinstance(value, bool):
        raise ValueError(f"answer {value!r} is not an index, a letter or the text of a choice")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        if not 0 <= value < k:
            raise ValueError(f"answer {value} does not index {k} choices (0 to {k - 1})")
        return value
    if not isinstance(value, str):
        raise ValueError(f"answer {value!r} is not an index, a letter or the text of a choice")
    text = value.strip()
    same_text = [i for i, choice in enumerate(choices) if choice.strip() == text]
    if text.isascii() and text.isdigit():
        index, kind = int(text), "index"
    elif len(text) == 1 and text.upper() in string.ascii_uppercase:
        index, kind = string.ascii_uppercase.index(text.upper()), "letter"
    else:
        if len(same_text) == 1:
            return same_text[0]
        if same_text:
            raise ValueError(f"answer {text!r} is the text of {len(same_text)} choices; use its index or letter")
        raise ValueError(f"answer {text!r} is not an index, a letter or the text of one of the {k} choices")
    if not 0 <= index < k:
        if len(same_text) == 1:  # "z" among the choices x, y, z: no letter z, so the text
            return same_text[0]
        last = string.ascii_uppercase[min(k, 26) - 1]
        raise ValueError(f"answer {text!r} does not name one of {k} choices (0 to {k - 1}, or A to {last})")
    if same_text and index not in same_text:
        raise ValueError(
            f"answer {text!r} is ambiguous: as an {kind} it is choice {index}, but choice {same_text[0]} reads "
            f"{text!r}; use the index or the full text of the right choice"
        )
    return index


def _missing(value: Any) -> bool:
    """No value: None, or a float NaN (what pandas, JSON readers and Parquet use for a missing cell)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _empty(value: Any) -> bool:
    return _missing(value) or (isinstance(value, str) and not value.strip())


def row_choices(row: Mapping[str, Any], mapping: ColumnMapping) -> tuple[str, ...]:
    # An empty, blank or missing (NaN) choice is refused in every source: as text it would become
    # the choice "" or "nan", which a model could learn to pick or to avoid.
    if mapping.choice_columns:
        values = [row.get(c) for c in mapping.choice_columns]
        # Rows may have fewer choices than there are columns: empty trailing cells are no choice.
        while values and _empty(values[-1]):
            values.pop()
        for column, value in zip(mapping.choice_columns, values):
            if _missing(value):
                raise ValueError(f"no value in choice column {column!r} (only trailing choice columns may be empty)")
            if _empty(value):
                raise ValueError(f"empty choice in column {column!r} (only trailing choice columns may be empty)")
        return tuple(str(v) for v in values)
    column = mapping.choices or "choices"
    value = row.get(column)
    if value is None:
        raise ValueError(f"no value in column {column!r}")
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(
            f"column {column!r} must hold a list of choices, got {type(value).__name__}; "
            "for one column per choice use --choice-columns A,B,C,D"
        )
    values = list(value)
    for i, choice in enumerate(values):
        if _missing(choice):
            raise ValueError(f"choice {i} in column {column!r} has no value")
        if _empty(choice):
            raise ValueError(f"choice {i} in column {column!r} is empty")
    return tuple(str(v) for v in values)


def _label(row: Mapping[str, Any], column: str) -> str:
    value = row.get(column)
    return "" if _missing(value) else str(value).strip()


def check_task_name(task: str) -> None:
    """Refuse a task name with a line break or another control character: it names a table row of
    reports and model cards, a curriculum line and a metrics key, each of which it would break."""
    bad = next((ch for ch in task if unicodedata.category(ch) in ("Cc", "Zl", "Zp")), None)
    if bad is not None:
        raise ValueError(f"task name {task!r} holds a control character ({bad!r}); task names are one line of text")


class TableReader:
    """Turns the rows of one source split, table after table, into `Example`s.

    uids are `TASK/SPLIT/N`, N counting the task's rows in this split from 0 in reading order,
    so they are stable as long as the files (and their order) are. `categories` collects the
    category column (task -> category) when one is mapped.
    """

    def __init__(self, mapping: ColumnMapping, split: str, categories: dict[str, str] | None = None) -> None:
        self.mapping = mapping
        self.split = split
        self.categories = {} if categories is None else categories
        self._counters: dict[str, int] = {}
        self._category_seen: dict[str, tuple[Callable[[int], str], int]] = {}  # task -> its first category row

    def read(self, rows: Iterable[Mapping[str, Any]], where: Callable[[int], str]) -> list[Example]:
        """The examples of `rows`; `where(i)` names the 0-based row i (file and line) for an error."""

        m = self.mapping
        examples: list[Example] = []
        for i, row in enumerate(rows):
            try:
                question = row.get(m.question)
                if _missing(question):
                    raise ValueError(f"no value in column {m.question!r}")
                question = str(question)
                if not question.strip():
                    raise ValueError("empty question")
                choices = row_choices(row, m)
                if len(choices) < 2:
                    raise ValueError(f"needs at least 2 choices, got {len(choices)}")
                answer = answer_index(row.get(m.answer), choices)
                task = _label(row, m.task)
                if not task:
                    if self.split != _TASKLESS_SPLIT:
                        raise ValueError(f"no task in column {m.task!r}")
                    task = _TASKLESS_SPLIT
                check_task_name(task)
                if m.category is not None:
                    self._category(task, _label(row, m.category), where, i)
            except ValueError as exc:
                raise DataError(f"{where(i)}: {exc}") from None
            index = self._counters.get(task, 0)
            self._counters[task] = index + 1
            examples.append(Example(question, choices, answer, task, f"{task}/{self.split}/{index}"))
        return examples

    def _category(self, task: str, category: str, where: Callable[[int], str], row: int) -> None:
        if not category:
            return
        known = self.categories.get(task)
        if known is None:
            self.categories[task] = category
            self._category_seen[task] = (where, row)  # named only if another row disagrees
        elif known != category:
            seen = self._category_seen.get(task)
            first = seen[0](seen[1]) if seen is not None else "an earlier row"
            raise ValueError(f"task {task!r} has category {category!r} here but {known!r} at {first}")
