"""Run directories and checkpoints: what is saved, where, and how it is written safely.

A run directory holds::

    config.json          resolved settings of the run
    split.json           the data split manifest (uids per split + fingerprints)
    metrics.jsonl        one JSON object per logged event
    checkpoints/
        step-00000120/   one self-describing checkpoint
            acct.json            format, step, task list, task categories, head config, metrics
            model.safetensors    all model weights
            encoder/config.json  encoder architecture
            tokenizer/           tokenizer files
            state.safetensors + state.json   curriculum, sampler, RNG and trainer state
            optimizer.pt         optimizer state (tensors only, loaded with weights_only=True)
        best -> step-...  last -> step-...   symbolic links, swapped atomically

A checkpoint is written to a temporary directory, fsynced and renamed into place before the
links move, so a process killed mid-save leaves the previous checkpoint intact; a save that
fails (a full disk) removes its temporary files. Step directories no link points to are
deleted, so disk use stays bounded, except one a reader holds a shared `flock` on (see
`reading`): it goes at the next save after the reader is done.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from acct.errors import CheckpointError, UsageError

FORMAT = "acct-checkpoint"
FORMAT_VERSION = 1
LINKS = ("best", "last")


def is_disk_full(exc: BaseException, where: Path | None = None) -> bool:
    """Whether a failed write ran out of space.

    torch's zip writer reports only "file write failed" or "unexpected pos ...": then the free
    space left on `where` decides (call it before freeing anything).
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(seen) or "Disk quota exceeded" in str(seen):
            return True
        if where is not None and any(k in str(seen) for k in ("write failed", "inline_container", "PytorchStreamWriter")):
            with contextlib.suppress(OSError):
                return shutil.disk_usage(where).free < 64 * 2**20
        seen = seen.__cause__ or seen.__context__
    return False


def write_json(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file and an atomic rename; a failed write leaves no temporary file."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write text through a temporary file and an atomic rename; a failed write leaves no temporary file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, Exception) and is_disk_full(exc):
            raise CheckpointError(f"no space left on device while writing {path}; nothing was changed") from None
        raise


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{what} is missing: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{what} is unreadable or corrupted ({path}): {exc}") from None


# -- nested state: tensors go to safetensors, everything else to JSON -----------------------------


def _split_state(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(f"state keys must be strings at {prefix or 'root'}")
        return {k: _split_state(v, f"{prefix}.{k}" if prefix else k, tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot save {type(obj).__name__} at {prefix}")


def _join_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        return {k: _join_state(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join_state(v, tensors) for v in obj]
    return obj


def save_state(directory: Path, name: str, state: dict[str, Any]) -> None:
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split_state(state, "", tensors)
    save_file(tensors, str(directory / f"{name}.safetensors"))
    with open(directory / f"{name}.json", "w", encoding="utf-8") as f:
        json.dump(skeleton, f)


def load_state(directory: Path, name: str) -> dict[str, Any]:
    skeleton = read_json(directory / f"{name}.json", f"{name} state")
    tensors = read_tensors(directory / f"{name}.safetensors")
    try:
        return _join_state(skeleton, tensors)
    except KeyError as exc:
        raise CheckpointError(f"{name} state in {directory} is inconsistent (missing tensor {exc})") from None


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; a missing or damaged file is a clear error."""
    if not path.is_file():
        raise CheckpointError(f"missing {path.name} in {path.parent}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupted ({exc})") from None


# -- checkpoints ----------------------------------------------------------------------------------


@dataclass
class CheckpointContents:
    """What the trainer hands over to be saved; everything beyond the model is optional."""

    model: torch.nn.Module
    meta: dict[str, Any]  # step, tasks, task_categories, head, metrics ...
    tokenizer: Any
    state: dict[str, Any] | None = None  # curriculum, sampler, rng, trainer counters (tensors or JSON types)
    optimizer: dict[str, Any] | None = None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with open(Path(dirpath) / name, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(dirpath))


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(run_dir: Path, contents: CheckpointContents, tags: list[str]) -> Path:
    """Write a checkpoint atomically and point the given links ('best', 'last') at it."""
    step = int(contents.meta["step"])
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    final = root / name
    tmp = root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        _write_checkpoint(root, tmp, final, name, contents, tags)
    except BaseException as exc:
        full = isinstance(exc, Exception) and is_disk_full(exc, root)
        shutil.rmtree(tmp, ignore_errors=True)
        for leftover in (root / f".{tag}.link" for tag in tags):
            if leftover.is_symlink():
                leftover.unlink()
        if full:
            previous = "the previous checkpoint is intact" if (root / "last").exists() else "no checkpoint was saved yet"
            raise CheckpointError(f"no space left on device while saving step {step}; {previous}") from None
        raise
    _collect_garbage(root)
    return final


def _write_checkpoint(root: Path, tmp: Path, final: Path, name: str, contents: CheckpointContents, tags: list[str]) -> None:
    tmp.mkdir()
    save_file(model_state(contents.model), str(tmp / "model.safetensors"))
    encoder = getattr(contents.model, "encoder", None)
    if encoder is not None:
        encoder.config.save_pretrained(str(tmp / "encoder"))
    contents.tokenizer.save_pretrained(str(tmp / "tokenizer"))
    if contents.state is not None:
        save_state(tmp, "state", contents.state)
    if contents.optimizer is not None:
        torch.save(contents.optimizer, tmp / "optimizer.pt")
    meta = {"format": FORMAT, "version": FORMAT_VERSION, **contents.meta}
    with open(tmp / "acct.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    _fsync_tree(tmp)
    if final.exists():
        # Saving the same step again (e.g. after resume): move the old one aside first so a
        # link never points at a half-removed directory.
        stale = root / f".stale-{name}-{os.getpid()}"
        os.replace(final, stale)
        os.replace(tmp, final)
        _remove_unless_read(stale)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    for tag in tags:
        link_tmp = root / f".{tag}.link"
        if link_tmp.is_symlink() or link_tmp.exists():
            link_tmp.unlink()
        os.symlink(name, link_tmp)
        os.replace(link_tmp, root / tag)
    _fsync_dir(root)


def _collect_garbage(root: Path) -> None:
    keep = {os.readlink(root / tag) for tag in LINKS if (root / tag).is_symlink()}
    for entry in root.iterdir():
        if entry.name in LINKS:
            continue
        if entry.name.startswith("step-") and entry.name not in keep:
            _remove_unless_read(entry)
        elif entry.name.startswith((".tmp-", ".stale-")):
            _remove_unless_read(entry)


def _remove_unless_read(directory: Path) -> None:
    """Delete a checkpoint directory unless a reader holds it (then a later save deletes it)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        shutil.rmtree(directory, ignore_errors=True)
    finally:
        os.close(fd)


@contextlib.contextmanager
def reading(ckpt: Path) -> Iterator[bool]:
    """Hold a shared lock on a checkpoint directory while it is read, so the trainer does not delete it.

    Yields False when the directory is gone (or going) already: the caller resolves the link again.
    """
    try:
        fd = os.open(ckpt, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield (Path(ckpt) / "acct.json").is_file()
    finally:
        os.close(fd)


def is_run_dir(path: Path) -> bool:
    return (Path(path) / "config.json").is_file()


def checkpoint_dir(run_dir: Path, which: str = "best") -> Path:
    """The directory of checkpoint `which` in a run, with one clear error for each way it can be missing."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UsageError(f"run directory not found: {run_dir}")
    if not run_dir.is_dir() or not is_run_dir(run_dir):
        raise UsageError(f"{run_dir} is not an acct run directory (no config.json); train one with `acct train`")
    if which not in LINKS:
        raise UsageError(f"unknown checkpoint {which!r}; choose best or last")
    link = run_dir / "checkpoints" / which
    if not link.exists():
        raise CheckpointError(f"{run_dir} has no '{which}' checkpoint yet (training saved none)")
    return link.resolve()


def read_described(directory: Path, name: str, what: str, *, fmt: str, version: int, kind: str,
                   required: tuple[str, ...]) -> dict[str, Any]:
    """The JSON file `name` that describes `directory` (a checkpoint, an export), checked for its format
    tag, its format version and the keys a reader needs; one CheckpointError line otherwise."""
    data = read_json(Path(directory) / name, what)
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise CheckpointError(f"{directory} is not an acct {kind}" if name == "acct.json"
                              else f"{directory}/{name} does not describe an acct {kind}")
    if data.get("version") != version:
        raise CheckpointError(f"{directory} has {kind} format {data.get('version')}; this acct reads {version}")
    for key in required:
        if key not in data:
            raise CheckpointError(f"{directory}/{name} lacks {key!r}")
    return data


def read_meta(ckpt: Path) -> dict[str, Any]:
    return read_described(ckpt, "acct.json", "checkpoint description (acct.json)", fmt=FORMAT,
                          version=FORMAT_VERSION, kind="checkpoint", required=("step", "tasks", "head"))


def load_model_weights(model: torch.nn.Module, ckpt: Path) -> None:
    """Fill a freshly built model from model.safetensors; a mismatch is a clear error, not a partial load."""
    load_state_strict(model, read_tensors(ckpt / "model.safetensors"), ckpt)


def load_state_strict(model: torch.nn.Module, tensors: dict[str, Any], where: Path) -> None:
    """Fill `model` from `tensors`; any missing, unexpected or misshapen weight is a clear error."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    bad_shape = [k for k in expected.keys() & tensors.keys() if expected[k].shape != tensors[k].shape]
    if missing or unexpected or bad_shape:
        detail = (missing or unexpected or bad_shape)[:3]
        raise CheckpointError(
            f"weights in {where} do not match the model architecture "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(bad_shape)} wrong shape; e.g. {detail})"
        )
    model.load_state_dict(tensors, strict=True)


def load_optimizer_state(ckpt: Path) -> dict[str, Any]:
    path = ckpt / "optimizer.pt"
    if not path.is_file():
        raise CheckpointError(f"missing optimizer.pt in {ckpt}: cannot resume from it")
    try:
        # weights_only refuses any pickled object other than tensors and plain containers.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"refusing to load {path}: not a plain tensor state ({str(exc).splitlines()[0]})") from None
