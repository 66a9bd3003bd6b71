"""The `files` data source: local JSONL, CSV or Parquet files, read with the `datasets` library.

`data.files` is either a list of paths and globs (one pool, which the subject-split protocol
splits per task) or files per split, {train: ..., validation: ..., test: ...}, which become the
source splits "train", "val" and "test" that the standard protocol uses as given. Each file is
loaded with `datasets.load_dataset("json" | "csv" | "parquet", data_files=FILE)` (so `datasets`'
own cache keeps its Arrow copy) and its rows are read through the column mapping
(acct/data/columns.py). A bad row is one error line naming the file and its line (JSON Lines, CSV)
or row (Parquet, JSON arrays), counted from 1.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from acct.data.columns import ColumnMapping, TableReader, check_columns
from acct.data.mmlu_csv import csv_records
from acct.data.records import TRAIN_SPLIT, Example
from acct.errors import DataError
from acct.registry import register_data_source

# Extension -> the `datasets` loader that reads it.
FORMATS: dict[str, str] = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet",
                           ".pq": "parquet"}
# Compressed text files are handed to `datasets` as they are; their lines cannot be counted here.
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip")
# data.files keys -> source splits; a plain list of files is the one pool "all".
SPLITS: dict[str, str] = {"train": TRAIN_SPLIT, "validation": "val", "test": "test"}
POOL = "all"


@register_data_source("files")
class FilesSource:
    """Local JSONL, CSV or Parquet files (data.files, --data-files) read through the column mapping; offline."""

    offline = True
    reads_files = True
    reads_columns = True

    @staticmethod
    def card_where(data: Any) -> str:
        files = data.get("files") if isinstance(data, dict) else getattr(data, "files", None)
        files = files or []
        names = sorted({Path(p).name for p in (files if isinstance(files, list) else sum(files.values(), []))})
        return f"local files ({', '.join(names)})"

    def __init__(self) -> None:
        self.categories: dict[str, str] = {}  # filled from data.category_column, when one is mapped

    def load(self, data: Any, seed: int) -> dict[str, list[Example]]:
        self.categories = {}
        return load_files_source(data.files, ColumnMapping.from_settings(data), data.files_format, self.categories)


def load_files_source(
    files: Sequence[str] | Mapping[str, Sequence[str]],
    columns: ColumnMapping | None = None,
    file_format: str = "auto",
    categories: dict[str, str] | None = None,
) -> dict[str, list[Example]]:
    """The source of `files` (a list of paths and globs, or {train|validation|test: [...]})."""
    columns = ColumnMapping() if columns is None else columns
    if isinstance(files, Mapping):
        unknown = sorted(set(files) - set(SPLITS))
        if unknown:
            raise DataError(f"data files: unknown split {unknown[0]!r}; name them {', '.join(SPLITS)}")
        groups = {SPLITS[name]: list(files[name]) for name in SPLITS if name in files}
    else:
        groups = {POOL: list(files)}
    paths = {split: expand(globs) for split, globs in groups.items()}
    _check_disjoint(paths)
    try:
        import datasets  # noqa: F401  heavy: imported only when files are read
    except ImportError as exc:
        raise DataError("the files data source needs the `datasets` package (pip install datasets)") from exc

    source: dict[str, list[Example]] = {}
    for split, split_paths in paths.items():
        reader = TableReader(columns, split, categories)
        examples: list[Example] = []
        for path in split_paths:
            fmt = format_of(path, file_format)
            table = read_table(path, fmt)
            check_columns(table.column_names, columns, str(path))
            if table.num_rows == 0:
                raise DataError(f"{path}: no rows")
            data = table.select_columns(sorted({c for c, _ in columns.required()})).to_dict()
            names = list(data)
            rows = (dict(zip(names, values)) for values in zip(*(data[n] for n in names)))
            examples.extend(reader.read(rows, row_locator(path, fmt)))
        source[split] = examples
    return source


def expand(globs: Sequence[str]) -> list[Path]:
    """The files of `globs`, each glob's matches sorted, in the order given, without repeats."""
    found: list[Path] = []
    for pattern in globs:
        if glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True) if Path(p).is_file())
            if not matches:
                raise DataError(f"data files: no file matches {pattern}")
        else:
            path = Path(pattern).expanduser()
            if not path.exists():
                raise DataError(f"data file not found: {path}")
            if path.is_dir():
                raise DataError(f"{path} is a directory; give its files, e.g. {path / '*.jsonl'}")
            matches = [path]
        found.extend(p for p in matches if p not in found)
    return found


def _check_disjoint(paths: Mapping[str, list[Path]]) -> None:
    owner: dict[Path, str] = {}
    for split, files in paths.items():
        for path in files:
            resolved = path.resolve()
            if resolved in owner:
                raise DataError(f"{path} is given for both the {owner[resolved]} and the {split} split")
            owner[resolved] = split


def _suffix(path: Path) -> str:
    """The format extension of `path`, behind a compression extension if there is one (data.jsonl.gz -> .jsonl)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _compressed(path: Path) -> bool:
    return path.suffix.lower() in _COMPRESSED


def format_of(path: Path, file_format: str = "auto") -> str:
    """The `datasets` loader of `path`: `file_format` unless it is 'auto', else from the extension."""
    if file_format != "auto":
        return file_format
    fmt = FORMATS.get(_suffix(path))
    if fmt is None:
        raise DataError(
            f"{path}: cannot tell the format from the extension; use {', '.join(FORMATS)}, or set --data-format"
        )
    return fmt


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """No progress bars or logged tracebacks from `datasets` while it converts a local file (our error says it)."""
    import datasets
    from datasets.utils import logging as ds_logging

    from acct.config.environment import debug_enabled

    if debug_enabled():
        yield
        return
    bars, level = datasets.is_progress_bar_enabled(), ds_logging.get_verbosity()
    datasets.disable_progress_bars()
    ds_logging.set_verbosity(logging.CRITICAL)
    try:
        yield
    finally:
        ds_logging.set_verbosity(level)
        if bars:
            datasets.enable_progress_bars()


def read_table(path: Path, fmt: str) -> Any:
    """`datasets.load_dataset(fmt, data_files=path)` as one Dataset; every failure is one line naming the file."""
    import datasets

    text = fmt in ("json", "csv") and not _compressed(path)
    try:
        empty = path.stat().st_size == 0
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if empty:
        raise DataError(f"{path}: empty file")
    if text:
        check_utf8(path)
    kwargs: dict[str, Any] = {}
    if fmt == "csv":
        delimiter = "\t" if _suffix(path) == ".tsv" else ","
        # Every cell is read as text, and an empty cell stays "": pandas would otherwise turn
        # "007" into 7, "1.50" into 1.5 and the answer "None" into a missing value.
        kwargs = {"sep": delimiter, "na_filter": False}
        if text:
            header = _csv_header(path, delimiter)
            kwargs["features"] = datasets.Features({name: datasets.Value("string") for name in header})
    with quiet_datasets():
        try:
            return datasets.load_dataset(fmt, data_files=str(path), split="train", **kwargs)
        except Exception as exc:  # the loaders raise many kinds; each means this file cannot be read
            if text:
                _locate_unreadable(path, fmt, kwargs.get("sep", ","))
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            cause = exc.__cause__ or exc.__context__
            if "error occurred while generating" in reason and cause is not None:
                reason = (str(cause).strip().splitlines() or [""])[0][:200]
            raise DataError(f"{path}: cannot be read as {fmt.upper()} ({reason})") from None


def check_utf8(path: Path) -> None:
    """Refuse a text file that is not UTF-8, naming the line of the first bad byte."""
    lines_before, pending = 0, b""
    with path.open("rb") as handle:
        while True:
            block = handle.read(1 << 22)
            data = pending + block
            if not data:
                return
            try:
                data.decode("utf-8")
                pending = b""
            except UnicodeDecodeError as exc:
                if block and exc.reason == "unexpected end of data":
                    pending = data[exc.start:]  # a character cut at the block's end: finish it with the next block
                    data = data[: exc.start]
                else:
                    line = lines_before + data.count(b"\n", 0, exc.start) + 1
                    raise DataError(
                        f"{path} line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
                    ) from None
            lines_before += data.count(b"\n")
            if not block:
                return


def _csv_header(path: Path, delimiter: str) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for _, row in _records(path, handle, delimiter):
            break
        else:
            raise DataError(f"{path}: no header row")
    if len(set(row)) != len(row):
        twice = sorted({name for name in row if row.count(name) > 1})
        raise DataError(f"{path} line 1: the header names column {twice[0]!r} twice")
    return row


def _locate_unreadable(path: Path, fmt: str, delimiter: str) -> None:
    """Find the line that made the loader fail, and raise its one-line error; return if none is found."""
    if fmt == "json":
        blank = None
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    blank = blank or number
                    continue
                if number == 1 and line.lstrip().startswith("["):
                    return  # one JSON array, not JSON Lines: no line to blame
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path} line {number}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path} line {number}: expected a JSON object (one question per line)")
        if blank is not None:
            # `datasets` reads blank lines in some files and not in others (e.g. when a column mixes numbers
            # and text); here they are all that is wrong.
            raise DataError(f"{path} line {blank}: a blank line, which the JSON reader of `datasets` refused in this "
                            "file; remove the blank lines")
    elif fmt == "csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            width = None
            for number, row in _records(path, handle, delimiter):
                if width is None:
                    width = len(row)
                elif len(row) != width:
                    raise DataError(f"{path} line {number}: {len(row)} fields, but the header has {width}")


def _records(path: Path, handle: Any, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    if delimiter == ",":
        yield from csv_records(path, handle)
        return
    reader = csv.reader(handle, delimiter=delimiter)
    for row in reader:
        if row:
            yield reader.line_num, row


def row_locator(path: Path, fmt: str) -> Callable[[int], str]:
    """i (0-based row of the loaded table) -> 'FILE line N' (JSON Lines, CSV) or 'FILE row N'; computed on first use."""
    lines: list[int] | None = None

    def where(i: int) -> str:
        nonlocal lines
        if fmt in ("json", "csv") and not _compressed(path):
            if lines is None:
                lines = _row_lines(path, fmt)
            if i < len(lines):
                return f"{path} line {lines[i]}"
        return f"{path} row {i + 1}"

    return where


def _row_lines(path: Path, fmt: str) -> list[int]:
    """The line each row starts on: non-blank lines of JSON Lines (none for a JSON array); CSV records after the header."""
    try:
        if fmt == "json":
            with path.open(encoding="utf-8-sig") as handle:
                numbers = [n for n, line in enumerate(handle, start=1) if line.strip()]
            with path.open(encoding="utf-8-sig") as handle:
                first = handle.read(64).lstrip()
            return [] if first.startswith("[") else numbers
        delimiter = "\t" if _suffix(path) == ".tsv" else ","
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return [n for n, _ in _records(path, handle, delimiter)][1:]
    except (OSError, UnicodeDecodeError, DataError):
        return []
