"""Per-question predictions of a scored run: RUN_DIR/predictions-<split>.jsonl and the record beside it.

Every scored run keeps what it predicted, one JSON line per question (`uid`, `task`, `category`,
`answer`, `prediction`, `correct`, `probabilities`), so a study can be audited and re-analysed
without scoring again. The run's eval-<split>.json names the file, the checkpoint that produced
it and that checkpoint's weight digest; `read_scored` refuses a file whose checkpoint has since
been replaced (a retrained or resumed run), since its predictions no longer describe the run.

No torch here: reading and re-analysing predictions needs none.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acct.data.records import category_of
from acct.errors import AcctError, CheckpointError

FORMAT = "acct.scoring.predictions"
VERSION = 1


def predictions_path(run_dir: Path, split: str) -> Path:
    return Path(run_dir) / f"predictions-{split}.jsonl"


def eval_path(run_dir: Path, split: str) -> Path:
    return Path(run_dir) / f"eval-{split}.json"


@dataclass(frozen=True)
class Scored:
    """One run's predictions on one split, in the order they were scored."""

    rows: list[dict[str, Any]]
    checkpoint: str
    weights_sha256: str | None

    @property
    def uids(self) -> list[str]:
        return [r["uid"] for r in self.rows]

    @property
    def correct(self) -> list[bool]:
        return [bool(r["correct"]) for r in self.rows]

    @property
    def tasks(self) -> list[str]:
        return [r["task"] for r in self.rows]


def rows_of(examples: Sequence[Any], predictions: Sequence[int], probabilities: Sequence[Sequence[float]],
            categories: dict[str, str]) -> list[dict[str, Any]]:
    """One record per question: what was asked of it, what the model answered and with which probabilities."""
    rows = []
    for ex, pred, probs in zip(examples, predictions, probabilities, strict=True):
        k = len(ex.choices)
        rows.append({
            "uid": ex.uid,
            "task": ex.task,
            "category": category_of(ex.task, categories),
            "answer": int(ex.answer),
            "prediction": int(pred),
            "correct": int(pred) == int(ex.answer),
            "probabilities": [round(float(p), 7) for p in list(probs)[:k]],
        })
    return rows


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> str:
    """Write rows as JSON lines through a unique temporary file and an atomic rename; returns the sha256."""
    path = Path(path)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    data = text.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CheckpointError(f"no space left on device while writing {path}; nothing was changed") from None
        raise
    return hashlib.sha256(data).hexdigest()


def record(split: str, checkpoint: str, checkpoint_dir: Path, weights_sha256: str | None,
           predictions_sha256: str) -> dict[str, Any]:
    """What eval-<split>.json says about the predictions file beside it."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "file": f"predictions-{split}.jsonl",
        "sha256": predictions_sha256,
        "checkpoint": checkpoint,
        "checkpoint_dir": Path(checkpoint_dir).name,
        "weights_sha256": weights_sha256,
    }


def weights_sha256(checkpoint_dir: Path) -> str | None:
    """sha256 of a checkpoint's model.safetensors (None when it cannot be read)."""
    digest = hashlib.sha256()
    try:
        with open(Path(checkpoint_dir) / "model.safetensors", "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def read_scored(run_dir: Path, split: str, checkpoint: str, current_weights: str | None) -> Scored:
    """The predictions a run's eval-<split>.json names, checked against the checkpoint they must come from.

    Refused (AcctError, one line) when the record is missing, names another checkpoint, was made from
    other weights than `current_weights` (the run trained on since), or the file does not match its digest.
    """
    run_dir = Path(run_dir)
    where = eval_path(run_dir, split)
    try:
        info = json.loads(where.read_text(encoding="utf-8")).get("predictions")
    except FileNotFoundError:
        raise AcctError(f"{run_dir} has no saved {split} predictions ({where.name} is missing); "
                        "score it again (drop --from-predictions)") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise AcctError(f"{where} is unreadable: {exc}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise AcctError(f"{where} names no predictions file (written by an older acct); score it again "
                        "(drop --from-predictions)")
    if info.get("checkpoint") != checkpoint:
        raise AcctError(f"{run_dir}'s saved {split} predictions come from its {info.get('checkpoint')} checkpoint, "
                        f"not {checkpoint}; score it again (drop --from-predictions)")
    if current_weights is not None and info.get("weights_sha256") != current_weights:
        raise AcctError(f"{run_dir}'s saved {split} predictions were made from other weights than its current "
                        f"{checkpoint} checkpoint (the run trained on since); score it again (drop --from-predictions)")
    path = run_dir / str(info.get("file"))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AcctError(f"cannot read {path}: {exc.strerror or exc}") from None
    if hashlib.sha256(data).hexdigest() != info.get("sha256"):
        raise AcctError(f"{path} does not match the digest in {where.name}: it was changed after scoring")
    rows = []
    for n, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        try:
            rows.append(json.loads(line))
        except ValueError:
            raise AcctError(f"{path}, line {n}: not JSON") from None
    return Scored(rows, checkpoint, info.get("weights_sha256"))
