"""User code imported with `--code FILE.py` (or ACCT_CODE): how it is imported, recorded with a
run, copied into RUN_DIR/code/, and re-imported on `--resume` only after its sha256 matches.

A plugin is a plain Python file whose import registers components (strategies, loss and
anchor weightings, data sources, ablation arms: see docs/extending.md). acct imports code only
when a user names it; `evaluate` and `predict` never import a run directory's copy on their own.
Free of torch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from acct.errors import CheckpointError, UsageError

CODE_DIR = "code"
ENV = "ACCT_CODE"

# sha256 -> (absolute path, the bytes that were executed)
_imported: dict[str, tuple[str, bytes]] = {}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def code_paths(flags: Sequence[Path] | None) -> list[Path]:
    """The files to import: the --code flags, else ACCT_CODE (several separated by os.pathsep)."""
    if flags:
        return [Path(p) for p in flags]
    env = os.environ.get(ENV, "")
    return [Path(p) for p in env.split(os.pathsep) if p.strip()]


def import_code(path: Path, expected_sha256: str | None = None) -> dict[str, str]:
    """Import one plugin file (once per content); return its record {path, sha256}."""
    path = Path(os.path.abspath(Path(path).expanduser()))
    if path.suffix != ".py":
        raise UsageError(f"--code {path}: a plugin is a Python file ending in .py")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"--code {path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"--code {path}: cannot read it: {exc.strerror}") from None
    digest = sha256_bytes(data)
    if expected_sha256 is not None and digest != expected_sha256:
        raise CheckpointError(
            f"{path} has sha256 {digest[:12]}…, not the {expected_sha256[:12]}… the run recorded; refusing to import it"
        )
    if digest not in _imported:
        name = f"acct_plugin_{path.stem}_{digest[:12]}"
        spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
        module = importlib.util.module_from_spec(spec)
        module.__file__ = str(path)
        sys.modules[name] = module
        try:
            exec(compile(data, str(path), "exec"), module.__dict__)
        except UsageError as exc:
            sys.modules.pop(name, None)
            raise UsageError(f"--code {path}: {exc}") from None
        except SystemExit as exc:
            # sys.exit() in a plugin would end acct (with status 0, as if it had done its work).
            sys.modules.pop(name, None)
            line = _line_in(exc, str(path))
            raise UsageError(f"--code {path}{line}: the plugin called sys.exit({exc.code!r}) while it was imported; "
                             "a plugin only registers components, it never ends acct") from None
        except Exception as exc:
            sys.modules.pop(name, None)
            raise UsageError(f"--code {path}{_line_in(exc, str(path))}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        _imported[digest] = (str(path), data)
    return {"path": str(path), "sha256": digest}


def _line_in(exc: BaseException, filename: str) -> str:
    """' (line N)': the last line of `filename` in the traceback of `exc`, or '' if it has none."""
    where = ""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            where = f" (line {tb.tb_lineno})"
        tb = tb.tb_next
    return where


def raised_by_plugin(exc: BaseException) -> str | None:
    """One line blaming the plugin in whose code `exc` was raised (its deepest plugin frame), or None.

    A plugin's component (a strategy's weights or state_dict, a data source's load, ...) runs
    inside acct's loop; what escapes it is the plugin's error, and the user needs to know which
    file and line to look at, not acct's traceback.
    """
    files = {path for path, _ in _imported.values()}
    found = None
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename in files:
            found = (code.co_filename, tb.tb_lineno, code.co_name)
        tb = tb.tb_next
    if found is None:
        return None
    path, line, function = found
    if isinstance(exc, SystemExit):
        what = f"called sys.exit({exc.code!r})"
    else:
        what = f"raised {type(exc).__name__}" + (f": {str(exc).splitlines()[0]}" if str(exc) else "")
    return f"plugin {path} (line {line}, in {function}) {what}"


def import_all(flags: Sequence[Path] | None) -> list[dict[str, str]]:
    """Import the --code files (or ACCT_CODE's), in order; return their records."""
    return [import_code(p) for p in code_paths(flags)]


def _field(ref: Any, key: str) -> Any:
    return ref.get(key) if isinstance(ref, dict) else getattr(ref, key)


def copy_into_run(run_dir: Path, refs: Iterable[Any]) -> list[dict[str, Any]]:
    """Write each plugin's imported bytes to RUN_DIR/code/; return the records with `copy_path`."""
    out = []
    target_dir = Path(run_dir) / CODE_DIR
    used: set[str] = set()
    for ref in refs:
        path, digest = _field(ref, "path"), _field(ref, "sha256")
        if digest in _imported:
            data = _imported[digest][1]
        else:
            try:
                data = Path(path).read_bytes()
            except OSError:
                raise UsageError(f"plugin {path} cannot be read to copy it into the run") from None
            if sha256_bytes(data) != digest:
                raise UsageError(f"plugin {path} changed since it was imported (sha256 differs)")
        name = Path(path).name
        if name in used:
            name = f"{Path(path).stem}-{digest[:12]}.py"
        used.add(name)
        target_dir.mkdir(parents=True, exist_ok=True)
        (target_dir / name).write_bytes(data)
        out.append({"path": path, "sha256": digest, "copy_path": f"{CODE_DIR}/{name}"})
    return out


def import_run_code(run_dir: Path, refs: Iterable[Any]) -> None:
    """Re-import a run's own copies of its plugins (for --resume), each after a sha256 check."""
    for ref in refs:
        copy = _field(ref, "copy_path")
        if not copy:
            raise CheckpointError(f"{run_dir}/config.json records plugin {_field(ref, 'path')} without a copy in {CODE_DIR}/")
        file = Path(run_dir) / copy
        if not file.is_file():
            raise CheckpointError(f"{file} is missing: the run's copy of its plugin {_field(ref, 'path')}")
        import_code(file, expected_sha256=_field(ref, "sha256"))


def needs_code(run_dir: Path, refs: Sequence[Any], what: str) -> str:
    """The one line that says a run needs its plugin and asks for --code."""
    if not refs:
        return f"{run_dir} was trained with {what}, which is not registered; pass --code FILE.py with the plugin that registers it"
    files = ", ".join(f"{_field(r, 'path')} (sha256 {_field(r, 'sha256')[:12]}…)" for r in refs)
    copies = ", ".join(str(Path(run_dir) / c) for c in (_field(r, "copy_path") for r in refs) if c)
    return (
        f"{run_dir} needs its plugin for {what}: it was trained with --code {files}; acct never runs code from a "
        f"run directory on its own, so pass --code FILE.py" + (f" (the run keeps a copy: {copies})" if copies else "")
    )
