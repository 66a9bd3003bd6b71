"""What every command shares: consoles, the one-line error contract, and small renderers."""

from __future__ import annotations

import errno
import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console

from acct import plugins, registry
from acct.errors import AcctError, UsageError
from acct.plugins import raised_by_plugin

if TYPE_CHECKING:
    from rich.table import Table


def _results_width() -> int | None:
    """Width for result tables: the terminal's on a terminal, else COLUMNS or 200.

    rich draws for 80 columns when stdout is a file or a pipe, and cuts words in narrow table
    cells ("baselin|e"); a file has no width to fit, so tables get room to keep words whole.
    """
    if sys.stdout.isatty() or os.environ.get("COLUMNS", "").strip().isdigit():
        return None  # rich reads the terminal's width, or COLUMNS
    return 200


out = Console(soft_wrap=True, width=_results_width())  # results: tables and JSON
err = Console(stderr=True)  # progress, notices, errors

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def handles_errors(fn: F) -> F:
    """Turn expected failures into one red line and an exit code; keep tracebacks for ACCT_DEBUG=1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Imported only when a command runs: the settings models are not needed for `acct --help`.
        from acct.config.environment import debug_enabled, unknown_env_warnings

        if not debug_enabled():
            # The hub client logs every failed retry; our own error line says what matters. The
            # variables are read when the clients are imported, which has not happened yet.
            os.environ.setdefault("HF_HUB_VERBOSITY", "error")
            os.environ.setdefault("DATASETS_VERBOSITY", "error")
            logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
        for warning in unknown_env_warnings():
            err.print(f"[yellow]warning:[/] {_escape(warning)}", highlight=False, soft_wrap=True)
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except AcctError as exc:
            if debug_enabled():
                traceback.print_exc()
            raise fail(_escape(str(exc)), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except OSError as exc:  # the file system said no: a path too long, read-only, full, not allowed
            if debug_enabled() or exc.errno not in USER_ERRNOS:
                if debug_enabled():
                    raise
                raise fail(unexpected(exc), 1) from None
            where = f": {exc.filename}" if exc.filename else ""
            raise fail(escape(f"{exc.strerror or exc}{where}"), 2) from None
        except UnicodeDecodeError as exc:
            if debug_enabled():
                raise
            raise fail(escape(f"input is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start}); "
                              "save it as UTF-8"), 2) from None
        except SystemExit as exc:  # sys.exit() in a plugin's code is the plugin's error, whatever its status
            blame = _plugin_blame(exc)
            if blame is None or debug_enabled():
                raise
            raise fail(escape(blame), 1) from None
        except Exception as exc:  # a bug: say so in one line unless debugging
            if debug_enabled():
                raise
            blame = _plugin_blame(exc)
            raise fail(escape(blame) if blame else unexpected(exc), 1) from None

    return wrapper  # type: ignore[return-value]


def _plugin_blame(exc: BaseException) -> str | None:
    if "acct.plugins" not in sys.modules:
        return None  # no plugin was imported

    return raised_by_plugin(exc)


USER_ERRNOS = {errno.ENAMETOOLONG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.ENOENT,
               errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOTEMPTY, errno.ELOOP}


def unexpected(exc: BaseException) -> str:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {escape(first)} (unexpected; rerun with ACCT_DEBUG=1 for the traceback)"


def escape(text: Any) -> str:
    """`text` shown literally by rich: square brackets are never read as markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(str(text))


_escape = escape


def eval_batch_alias(eval_batch_size: int | None, batch_size: int | None) -> int | None:
    """--eval-batch-size, or its deprecated spelling --batch-size (with a notice) for one release."""
    if batch_size is None:
        return eval_batch_size
    if eval_batch_size is not None and eval_batch_size != batch_size:
        raise UsageError("--batch-size is the old spelling of --eval-batch-size; give only --eval-batch-size")
    err.print("[yellow]--batch-size is deprecated here: use --eval-batch-size[/]", highlight=False, soft_wrap=True)
    return batch_size


CODE_HELP = (
    "A Python file whose import registers plugins (strategies, loss or anchor weightings, data sources, "
    "ablation arms), imported before the settings are read; repeatable. Environment: ACCT_CODE."
)


def code_option() -> Any:
    return typer.Option(None, "--code", help=CODE_HELP, show_default=False)


def import_code(paths: Any) -> list[dict[str, str]]:
    """Import the --code files (else ACCT_CODE's); return their records for the run's config.json."""
    return plugins.import_all(paths)


def print_json(obj: Any) -> None:
    import json

    sys.stdout.write(json.dumps(obj, indent=2) + "\n")
    sys.stdout.flush()


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def eval_tables(result: Any, *, title: str | None, limit: int | None = None) -> list[Table]:
    """Summary and per-task tables of an EvalResult (best and worst tasks first)."""
    from rich.table import Table

    summary = Table(title=title, show_header=True, header_style="bold")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    summary.add_row("questions", str(result.n))
    summary.add_row("accuracy", pct(result.accuracy))
    summary.add_row("macro accuracy (over tasks)", pct(result.macro_accuracy))
    for name, acc in result.categories.items():
        summary.add_row(f"  {name}", pct(acc))
    summary.add_row("chance", pct(result.chance))
    summary.add_row("majority answer baseline", pct(result.majority_baseline))

    tasks = sorted(result.tasks.items(), key=lambda kv: (-kv[1]["accuracy"], kv[0]))
    shown = tasks
    if limit is not None and len(tasks) > 2 * limit:
        shown = tasks[:limit] + [("…", None)] + tasks[-limit:]
    per_task = Table(show_header=True, header_style="bold")
    per_task.add_column("task")
    per_task.add_column("n", justify="right")
    per_task.add_column("accuracy", justify="right")
    for name, row in shown:
        if row is None:
            per_task.add_row("…", "", "")
        else:
            per_task.add_row(escape(name), str(row["n"]), pct(row["accuracy"]))
    return [summary, per_task]


def _offline_env() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def needs_hub(settings: Any) -> bool:
    """Whether training would reach the Hugging Face hub (data, model or tokenizer not local)."""
    from pathlib import Path

    from acct.config.fields import TINY

    # A source that is not `offline` re-reads its data from the network (the hub's).
    if not getattr(registry.data_sources.get(settings.data.source), "offline", True):
        return True
    names = [settings.model.name_or_path, settings.model.tokenizer or settings.model.name_or_path]
    return any(n != TINY and not Path(n).expanduser().exists() for n in names)


def hub_endpoint() -> tuple[str, int]:
    from urllib.parse import urlsplit

    url = urlsplit(os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def offline_unless_hub_reachable(timeout: float = 2.0) -> bool:
    """Check once, with a short timeout, that the hub answers; if not, switch the clients to offline mode.

    Offline, the hub and datasets clients use their local caches and fail at once on what is not
    there, instead of retrying for half a minute. Returns True when offline mode was switched on.
    """
    if _offline_env():
        return False
    import socket

    host, port = hub_endpoint()
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return False
    except OSError:
        pass
    from acct import offline

    offline.mark_switched()  # so that an error names the cause: the hub did not answer
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    for module, attr in (("huggingface_hub.constants", "HF_HUB_OFFLINE"), ("datasets.config", "HF_HUB_OFFLINE"),
                         ("datasets.config", "HF_DATASETS_OFFLINE")):
        loaded = sys.modules.get(module)
        if loaded is not None and hasattr(loaded, attr):
            setattr(loaded, attr, True)
    return True
