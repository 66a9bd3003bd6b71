"""Duplicate questions: the normal form two questions are compared in, and their collapse to one copy."""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

from acct.data.records import Example

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


# Every run of a study splits the same questions again, and a split compares each text more than once.
@functools.lru_cache(maxsize=1 << 17)
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


def conflicting_answers(examples: Sequence[Example], removed: Mapping[str, str]) -> int:
    by_uid = {ex.uid: ex for ex in examples}
    return sum(1 for gone, kept in removed.items() if by_uid[gone].answer != by_uid[kept].answer)


def dedup_notice(removed: int, conflicts: int, cross_rows: int) -> str:
    line = f"split: {removed} duplicate question(s) removed within tasks ({DEDUP_RULE})"
    if conflicts:
        line += f", {conflicts} of them with a different answer than the copy kept"
    if cross_rows:
        line += f"; {cross_rows} question(s) with copies in other tasks kept on one side of the split with them"
    return line
