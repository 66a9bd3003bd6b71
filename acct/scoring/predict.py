"""Prediction with a trained run: single questions, files of questions, and scored splits.

Owns what `acct predict` does (no Typer, no printing): finding a task by name, the
task-agnostic embedding used when no task is given, reading questions (JSONL, from a file or
standard input; the original MMLU CSV layout; or the files a `files` or `hub` run was trained on,
through its saved column mapping), and streaming predictions in batches. Also `score_split`, which
scores a run's held-out split and keeps the per-example predictions that `acct ablate` and
`acct inspect-confusion` need.

Task-agnostic prediction: task id -1, which `MultipleChoiceModel.task_vectors` maps to the mean
of the run's task embeddings, so a question of unknown subject is scored from an "average
subject" rather than from an arbitrary one.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from acct import registry
from acct.data.columns import ColumnMapping, answer_index, row_choices
from acct.data.mmlu_csv import csv_records
from acct.data.records import ANSWER_LETTERS, Example
from acct.errors import AcctError, DataError, UsageError

AGNOSTIC = -1  # task id meaning "no task given": the mean task embedding
_AGNOSTIC_KEY = "\x00task-agnostic"  # a task-index key no real task name can equal
_CSV_SUFFIXES = ("_auxiliary_train", "_dev", "_val", "_test")
STDIN = "-"  # --input -: JSON lines on standard input


# -- tasks and questions --------------------------------------------------------------------------


def _normalize(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def closest_tasks(name: str, tasks: Sequence[str], n: int = 5) -> list[str]:
    """The run's task names most like `name`, best first: names containing it, then difflib's close matches."""
    key = _normalize(name)
    lowered = {t.lower(): t for t in tasks}
    contains = [t for low, t in lowered.items() if key and key in low]
    close = [lowered[h] for h in difflib.get_close_matches(key, list(lowered), n=n, cutoff=0.6)]
    return list(dict.fromkeys(contains + close))[:n]


def canonical_task(name: str | None, tasks: Sequence[str]) -> str | None:
    """The run's own spelling of task `name` (None stays None: task-agnostic)."""
    index = resolve_task(name, tasks)
    return None if index == AGNOSTIC else list(tasks)[index]


def resolve_task(name: str | None, tasks: Sequence[str]) -> int:
    """Task id of `name` in the run's task list; None means task-agnostic (-1)."""
    if name is None:
        return AGNOSTIC
    if name in tasks:
        return list(tasks).index(name)
    # "High School Biology" and "high-school-biology" name high_school_biology too.
    normalized = [i for i, t in enumerate(tasks) if t.lower() == _normalize(name)]
    if len(normalized) == 1:
        return normalized[0]
    close = closest_tasks(name, tasks)
    hint = f"closest: {', '.join(close)}" if close else f"the run's {len(tasks)} tasks include {', '.join(list(tasks)[:5])}"
    raise UsageError(f"unknown task {name!r}; {hint}")


@dataclass(frozen=True)
class Question:
    """One question to score; `answer` (0-based) is optional and only used for accuracy."""

    question: str
    choices: tuple[str, ...]
    task: str | None = None
    answer: int | None = None


def check_question(question: str, choices: Sequence[str], *, where: str = "") -> None:
    """A question must have text and at least two choices (any number of choices works)."""
    prefix = f"{where}: " if where else ""
    if not question or not question.strip():
        raise UsageError(f"{prefix}the question is empty")
    if len(choices) < 2:
        raise UsageError(f"{prefix}a question needs at least 2 choices, got {len(choices)}")


@dataclass
class Prediction:
    prediction: int
    choice: str
    probabilities: list[float]
    task: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"prediction": self.prediction, "choice": self.choice, "probabilities": self.probabilities, "task": self.task}


# -- the predictor --------------------------------------------------------------------------------


class Predictor:
    """A run's checkpoint loaded once, scoring batches of questions."""

    def __init__(self, run: Any, device: Any, precision: str, batch_size: int = 64):
        self.run = run
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.task_index = {t: i for i, t in enumerate(run.tasks)}

    @classmethod
    def open(cls, run_dir: Path, checkpoint: str = "best", *, device: str = "auto", precision: str = "auto",
             batch_size: int = 64, trust_remote_code: bool = False) -> Predictor:
        from acct.run.rundir import load_run
        from acct.train.device import resolve_device

        dev, prec = resolve_device(device, precision)
        return cls(load_run(Path(run_dir), checkpoint, dev, trust_remote_code=trust_remote_code), dev, prec, batch_size)

    @property
    def tasks(self) -> list[str]:
        return self.run.tasks

    def predict(self, questions: Sequence[Question]) -> list[Prediction]:
        """Probabilities over each question's own choices; tasks must be known (or None)."""
        from acct.data.tokenize import encode_examples
        from acct.scoring.score import predict_encoded

        if not questions:
            return []
        for q in questions:
            check_question(q.question, q.choices)
        questions = [replace(q, task=canonical_task(q.task, self.tasks)) for q in questions]
        index = {**self.task_index, _AGNOSTIC_KEY: AGNOSTIC}
        examples = [
            Example(q.question, tuple(q.choices), 0, q.task if q.task is not None else _AGNOSTIC_KEY, f"q{i}")
            for i, q in enumerate(questions)
        ]
        encoded = encode_examples(self.run.tokenizer, examples, index, self.run.settings.model.max_length)
        preds, probs = predict_encoded(
            self.run.model, encoded, device=self.device, precision=self.precision,
            batch_size=self.batch_size, pad_id=self.run.pad_id,
        )
        out = []
        for q, pred, row in zip(questions, preds, probs.tolist()):
            p = [round(x, 6) for x in row[: len(q.choices)]]
            out.append(Prediction(int(pred), q.choices[int(pred)], p, q.task))
        return out


# -- reading question files -----------------------------------------------------------------------


def _answer_index(value: Any, k: int, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise DataError(f"{where}: answer must be a 0-based index or a letter, got {value!r}")
    if isinstance(value, int):
        index = value
    elif isinstance(value, str) and len(value.strip()) == 1 and value.strip().isalpha():
        index = ord(value.strip().upper()) - ord("A")
    else:
        raise DataError(f"{where}: answer must be a 0-based index or a letter, got {value!r}")
    if not 0 <= index < k:
        raise DataError(f"{where}: answer {value!r} does not index {k} choices")
    return index


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file, or of standard input when `path` is '-'."""
    if str(path) == STDIN:
        import sys

        raw = getattr(sys.stdin, "buffer", None)
        if raw is None:  # a text stream without bytes underneath (an embedding program's own stdin)
            yield from enumerate(sys.stdin, start=1)
            return
        for line_no, data in enumerate(raw, start=1):
            try:
                text = data.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"stdin line {line_no}: not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                                f"column {exc.start + 1})") from None
            yield line_no, text
        return
    with path.open(encoding="utf-8-sig") as handle:
        yield from enumerate(handle, start=1)


def _jsonl_questions(path: Path, default_task: str | None, columns: ColumnMapping | None = None) -> Iterator[Question]:
    label = "stdin" if str(path) == STDIN else str(path)
    for line_no, line in _lines(path):
        if not line.strip():
            continue
        where = f"{label} line {line_no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object with question and choices")
        yield row_question(row, where, default_task, columns)


def row_question(row: dict[str, Any], where: str, default_task: str | None,
                 columns: ColumnMapping | None = None) -> Question:
    """One row of a question file as a `Question`: acct predict's own layout, or the run's column mapping.

    The run's mapping (`columns`, from the data settings of a `files` or `hub` run) is used when
    the row has its question and choices columns, so the very file a run trained on can be
    scored; otherwise the row must hold question and choices (and optionally task and answer).
    """
    if columns is not None and _has_columns(row, columns):
        return _mapped_question(row, where, default_task, columns)
    if "question" not in row or "choices" not in row:
        raise DataError(_missing_columns(row, where, columns))
    question, choices = row["question"], row["choices"]
    if not isinstance(question, str):
        raise DataError(f"{where}: 'question' must be a string")
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise DataError(f"{where}: 'choices' must be a list of strings")
    task = row.get("task", None)
    if task is not None and not isinstance(task, str):
        raise DataError(f"{where}: 'task' must be a string or null")
    check_question(question, choices, where=where)
    return Question(question, tuple(choices), task if task is not None else default_task,
                    _answer_index(row.get("answer"), len(choices), where))


def _choice_names(columns: ColumnMapping) -> list[str]:
    return list(columns.choice_columns) if columns.choice_columns else [columns.choices or "choices"]


def _has_columns(row: dict[str, Any], columns: ColumnMapping) -> bool:
    # Trailing choice columns may be absent from a row (fewer choices); the first one may not.
    return columns.question in row and _choice_names(columns)[0] in row


def _missing_columns(row: dict[str, Any], where: str, columns: ColumnMapping | None) -> str:
    """The one line for a row that lacks the question or choices: what is missing, and what was looked for."""
    own = ["question", "choices"]
    layouts = [(own, own, "acct predict's layout")]
    if columns is not None and [columns.question, *_choice_names(columns)] != own:
        names = [columns.question, *_choice_names(columns)]
        layouts.insert(0, (names[:2], names, "the run's columns"))  # trailing choice columns may be absent
    # Name what is missing from the layout the row is closest to (the run's on a tie).
    closest = min((needed for needed, _, _ in layouts), key=lambda needed: sum(n not in row for n in needed))
    absent = [repr(n) for n in closest if n not in row]
    missing = f"column{'s' if len(absent) > 1 else ''} {', '.join(absent)}"
    looked = " or ".join(f"{', '.join(names)} ({what})" for _, names, what in layouts)
    present = ", ".join(repr(k) for k in list(row)[:12]) + (" ..." if len(row) > 12 else "")
    return f"{where}: missing {missing}; looked for {looked}; the row has {present or 'no fields'}"


def _mapped_question(row: dict[str, Any], where: str, default_task: str | None, columns: ColumnMapping) -> Question:
    question = row.get(columns.question)
    if not isinstance(question, str):
        raise DataError(f"{where}: column {columns.question!r} must be a string")
    try:
        choices = row_choices(row, columns)
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None
    check_question(question, choices, where=where)
    answer = row.get(columns.answer)
    if answer is not None and not (isinstance(answer, str) and not answer.strip()):
        try:
            answer = answer_index(answer, choices)
        except ValueError as exc:
            raise DataError(f"{where}: {exc}") from None
    else:
        answer = None
    task = row.get(columns.task)
    if task is None or (isinstance(task, str) and not task.strip()):
        task = row.get("task")  # acct predict's own task field, when the run's task column is absent
    if task is not None and not isinstance(task, str):
        raise DataError(f"{where}: column {columns.task!r} must be a string")
    task = task.strip() if task and task.strip() else None
    return Question(question, choices, task if task is not None else default_task, answer)


def _csv_header_questions(path: Path, default_task: str | None, columns: ColumnMapping) -> Iterator[Question]:
    """A CSV file with a header row naming the run's columns (the layout the `files` source reads)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        records = csv_records(path, handle)
        _, header = next(records)
        for line_no, values in records:
            where = f"{path} line {line_no}"
            if len(values) != len(header):
                raise DataError(f"{where}: {len(values)} fields, but the header has {len(header)}")
            yield row_question(dict(zip(header, values)), where, default_task, columns)


def _parquet_questions(path: Path, default_task: str | None, columns: ColumnMapping | None) -> Iterator[Question]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=1024)
        row_no = 0
        for batch in batches:
            for row in batch.to_pylist():
                row_no += 1
                yield row_question(row, f"{path} row {row_no}", default_task, columns)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError; our DataError is neither
        raise DataError(f"{path}: cannot be read as Parquet ({str(exc).splitlines()[0][:200]})") from None


def _csv_has_header(path: Path, columns: ColumnMapping) -> bool:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for _, first in csv_records(path, handle):
            return columns.question in first and _choice_names(columns)[0] in first
    return False


def _csv_subject(path: Path) -> str:
    stem = path.stem
    for suffix in _CSV_SUFFIXES:
        if stem.endswith(suffix) and stem != suffix:
            return stem[: -len(suffix)]
    return stem


def _csv_questions(path: Path, task: str | None) -> Iterator[Question]:
    n_letters = len(ANSWER_LETTERS)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for line_no, row in csv_records(path, handle):
            where = f"{path} line {line_no}"
            if len(row) == 2 + n_letters:  # question, A-D, answer letter
                question, *choices, letter = row
                answer = _answer_index(letter.strip(), n_letters, where)
            elif len(row) == 1 + n_letters:  # question, A-D without an answer
                question, *choices = row
                answer = None
            else:
                raise DataError(
                    f"{where}: expected the MMLU layout question,{','.join(ANSWER_LETTERS)}[,answer letter] "
                    f"({1 + n_letters} or {2 + n_letters} fields), got {len(row)}"
                )
            check_question(question, choices, where=where)
            yield Question(question, tuple(choices), task, answer)


def read_questions(path: Path, tasks: Sequence[str], default_task: str | None = None, *,
                   columns: ColumnMapping | None = None) -> tuple[Iterator[Question], list[str]]:
    """Questions of a question file, read lazily, and notices about their tasks.

    JSONL rows (also from standard input, `path` '-'): {"question", "choices", "task"?, "answer"?}
    (answer: 0-based index or letter); a row's own task wins over `default_task`. With `columns`
    (the run's column mapping, see `run_columns`), rows holding the run's columns are read through
    it, as the run's data source read them: JSONL, Parquet, and CSV files whose header names
    them. Other CSV files are the original MMLU layout (header-less `question,A,B,C,D[,letter]`):
    `default_task` if given, else the subject in the file name (NAME_test.csv) when the run
    knows it, else task-agnostic.
    """
    path = Path(path)
    default_task = canonical_task(default_task, tasks)
    notices: list[str] = []
    if str(path) == STDIN:
        return _checked_tasks(_jsonl_questions(path, default_task, columns), tasks, "stdin"), notices
    if not path.is_file():
        raise UsageError(f"input file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return _checked_tasks(_parquet_questions(path, default_task, columns), tasks, path), notices
    check_utf8(path)
    if suffix in (".jsonl", ".json"):
        questions = _jsonl_questions(path, default_task, columns)
    elif suffix == ".csv" and columns is not None and _csv_has_header(path, columns):
        questions = _csv_header_questions(path, default_task, columns)
    elif suffix == ".csv":
        task = default_task
        if task is None:
            subject = _csv_subject(path)
            if subject in tasks:
                task = subject
                notices.append(f"task: {subject} (from the file name)")
            else:
                notices.append(
                    f"task: {subject!r} (from the file name) is not one of the run's tasks; "
                    "scoring with the task-agnostic embedding (mean of the task embeddings); pass --task to choose one"
                )
        questions = _csv_questions(path, task)
    else:
        raise UsageError(f"{path}: input must be .jsonl or .csv (the original MMLU layout, or a header naming the run's "
                         "columns), or .parquet")
    return _checked_tasks(questions, tasks, path), notices


def run_columns(run: Any) -> ColumnMapping | None:
    """The column mapping a run's data source read its tables with (a source that `reads_columns`), else None."""
    data = getattr(getattr(run, "settings", None), "data", None)
    if data is None or not getattr(registry.data_sources.find(data.source), "reads_columns", False):
        return None
    return ColumnMapping.from_settings(data)


def check_utf8(path: Path) -> None:
    """Refuse a file that is not UTF-8 text, naming the first line that is not."""
    try:
        with path.open("rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"{path} line {line_no}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                                    f"column {exc.start + 1}); save the file as UTF-8") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _checked_tasks(questions: Iterable[Question], tasks: Sequence[str], path: Path | str) -> Iterator[Question]:
    known = set(tasks)
    for i, q in enumerate(questions, start=1):
        if q.task is not None and q.task not in known:
            try:
                q = replace(q, task=canonical_task(q.task, tasks))
            except UsageError as exc:
                raise UsageError(f"{path} question {i}: {exc}") from None
        yield q


# -- file mode ------------------------------------------------------------------------------------


@dataclass
class FileSummary:
    """What a file of questions came to: counts, and accuracy where answers were given.

    `in_training` counts questions that are also in the run's training split (None when that
    split could not be re-read offline); `held_out_accuracy` leaves them out.
    """

    n: int = 0
    answered: int = 0
    correct: int = 0
    agnostic: int = 0
    in_training: int | None = None
    held_out_answered: int = 0
    held_out_correct: int = 0
    tasks: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.answered if self.answered else None

    @property
    def held_out_accuracy(self) -> float | None:
        if self.in_training is None:
            return None
        return self.held_out_correct / self.held_out_answered if self.held_out_answered else None

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "answered": self.answered, "correct": self.correct, "accuracy": self.accuracy,
                "task_agnostic": self.agnostic, "in_training": self.in_training,
                "held_out_accuracy": self.held_out_accuracy, "tasks": self.tasks}


def question_key(question: str, choices: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """What makes two questions the same question, whatever their task or source file."""
    return question.strip(), tuple(c.strip() for c in choices)


def training_questions(run: Any) -> set[tuple[str, tuple[str, ...]]] | None:
    """Keys of the run's training questions, or None when its data cannot be re-read offline.

    The subject-split protocol trains on part of MMLU's dev+val+test, so a file of MMLU
    questions usually holds some of them; their accuracy is not a held-out number.
    """
    from acct.run.rundir import load_run_split

    source = run.settings.data.source
    if source not in registry.data_sources or not getattr(registry.data_sources.get(source), "offline", True):
        return None  # re-reading it would need the network, or a plugin the user did not pass
    try:
        split = load_run_split(run)
    except AcctError:
        return None
    return {question_key(ex.question, ex.choices) for ex in split.train}


def _batches(items: Iterable[Question], size: int) -> Iterator[list[Question]]:
    chunk: list[Question] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict_stream(
    predictor: Predictor,
    questions: Iterable[Question],
    sink: TextIO,
    *,
    on_batch: Callable[[int], None] | None = None,
    training: set[tuple[str, tuple[str, ...]]] | None = None,
) -> FileSummary:
    """Score questions in batches, writing one JSON line per question to `sink` as it goes.

    With `training` (see `training_questions`) every line says whether its question was
    trained on, and the summary counts them and gives the accuracy without them.
    """
    summary = FileSummary(in_training=None if training is None else 0)
    per_task: dict[str, list[int]] = {}
    for chunk in _batches(questions, predictor.batch_size):
        for q, p in zip(chunk, predictor.predict(chunk)):
            record: dict[str, Any] = {"index": summary.n, "question": q.question, **p.to_dict()}
            summary.n += 1
            summary.agnostic += q.task is None
            seen = training is not None and question_key(q.question, q.choices) in training
            if training is not None:
                record["in_training"] = seen
                summary.in_training += seen
            if q.answer is not None:
                ok = p.prediction == q.answer
                record.update(answer=q.answer, correct=ok)
                summary.answered += 1
                summary.correct += ok
                if training is not None and not seen:
                    summary.held_out_answered += 1
                    summary.held_out_correct += ok
                hits = per_task.setdefault(q.task or "(task-agnostic)", [0, 0])
                hits[0] += 1
                hits[1] += ok
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
        sink.flush()
        if on_batch is not None:
            on_batch(summary.n)
    if summary.n == 0:
        raise DataError("the input file holds no questions")
    summary.tasks = {t: {"n": n, "accuracy": c / n} for t, (n, c) in sorted(per_task.items())}
    return summary


# -- scoring a run's split ------------------------------------------------------------------------


@dataclass
class ScoredSplit:
    """A held-out split of a run with every example's prediction, and its summary."""

    examples: list[Example]
    predictions: list[int]
    result: Any  # EvalResult

    @property
    def correct(self) -> list[bool]:
        return [int(p) == ex.answer for ex, p in zip(self.examples, self.predictions)]


def score_examples(run: Any, examples: Sequence[Example], train: Sequence[Example], split: str, *, device: Any,
                   precision: str, batch_size: int) -> ScoredSplit:
    """Score `run` on the given examples of its own split; `train` sets the majority baseline."""
    from acct.scoring import score as evaluation

    preds, result = evaluation.score_examples(
        run, examples, train, split, device=device, precision=precision, batch_size=batch_size
    )
    return ScoredSplit(list(examples), preds, result)


def score_split(run: Any, split: str, *, device: Any, precision: str, batch_size: int,
                data_dir: Path | None = None) -> ScoredSplit:
    """Score `run` on its own `split` (val or test) through the saved manifest, keeping predictions."""
    from acct.run.rundir import load_run_split

    parts = load_run_split(run, data_dir)
    examples = list(parts.val if split == "val" else parts.test)
    if not examples:
        raise UsageError(f"{run.run_dir} has no {split} examples in its split")
    return score_examples(run, examples, parts.train, split, device=device, precision=precision, batch_size=batch_size)
