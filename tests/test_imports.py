"""`acct --help` must stay fast: the CLI package may not import torch or transformers, nor any tracker's library,
and `acct --help` does not even build the settings models (acct.config, pydantic)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "datasets", "tokenizers", "safetensors")
TRACKER_LIBRARIES = ("tensorboard", "trackio", "wandb", "mlflow")


def _loaded_after(statement: str) -> dict[str, bool]:
    probe = (
        "import json, sys\n"
        f"{statement}\n"
        f"print(json.dumps({{name: name in sys.modules for name in {list(HEAVY + TRACKER_LIBRARIES)!r}}}))\n"
    )
    # A fresh interpreter: this test process has long since imported torch.
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", ["import acct.cli", "import acct", "import acct.config.resolve", "import acct.registry, acct.plugins, acct.config.resolve"])
def test_cli_imports_no_heavy_library(statement):
    loaded = _loaded_after(statement)
    assert not loaded["torch"], f"`{statement}` imports torch"
    assert not loaded["transformers"], f"`{statement}` imports transformers"
    assert not any(loaded[name] for name in TRACKER_LIBRARIES), loaded


def test_building_the_app_imports_no_heavy_library():
    # Typer builds the command tree (every command's signature and help) only when asked;
    # do that too, as `acct --help` does, without running a command.
    loaded = _loaded_after(
        "import typer.main, acct.cli\n"
        "group = typer.main.get_command(acct.cli.app)\n"
        "[group.get_command(None, name) for name in group.list_commands(None)]"
    )
    assert not loaded["torch"]
    assert not loaded["transformers"]
    assert not any(loaded[name] for name in TRACKER_LIBRARIES), loaded


SETTINGS_MODULES = ("acct.config.train", "pydantic", "pydantic_settings", "yaml")
COMMAND_MODULES = tuple(f"acct.cli.{module}" for module, _, _ in __import__("acct.cli").cli.COMMANDS.values())


def _loaded_by_command(*args: str) -> dict[str, bool]:
    """What `acct ARGS` has imported once it has run (as the console script runs it, in a fresh interpreter)."""
    names = list(HEAVY + SETTINGS_MODULES + COMMAND_MODULES + ("typer.rich_utils",))
    probe = (
        "import json, sys\n"
        "from acct.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        f"sys.stderr.write('\\n' + json.dumps({{name: name in sys.modules for name in {names!r}}}) + '\\n')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stderr.strip().splitlines()[-1])


def test_acct_help_builds_no_settings_model_and_imports_no_command():
    loaded = _loaded_by_command("--help")
    assert not any(loaded[name] for name in SETTINGS_MODULES), loaded
    assert not any(loaded[name] for name in HEAVY), loaded
    assert not any(loaded[name] for name in COMMAND_MODULES), loaded  # the listing reads acct.cli.COMMANDS
    assert not loaded["typer.rich_utils"], "acct --help is drawn by acct.cli.root_help, not Typer's renderer"


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_commands_help_builds_its_options_from_the_settings_but_imports_no_engine(command):
    # Its options are described by the settings models, so those are built now; the engine still is not.
    loaded = _loaded_by_command(command, "--help")
    assert loaded["acct.config.train"] and loaded["pydantic"], loaded
    assert loaded[f"acct.cli.{command}"], loaded
    assert not loaded["torch"] and not loaded["transformers"] and not loaded["datasets"], loaded


def test_listing_the_trackers_and_resolving_report_to_import_no_tracker_library():
    # `acct list` describes each tracker (importing its acct module), and report_to `all` asks
    # which libraries are installed: neither may import one.
    loaded = _loaded_after(
        "from acct import registry\n"
        "from acct.config.resolve import resolve_train\n"
        "[registry.trackers.describe(name) for name in registry.trackers.names()]\n"
        "resolve_train({'report_to': ['all']})"
    )
    assert not any(loaded[name] for name in TRACKER_LIBRARIES), loaded
    assert not loaded["torch"]


def test_the_console_script_raises_the_first_garbage_collector_threshold(monkeypatch):
    """acct.cli.main sets it before any command imports torch (benchmarks/cli_startup.py measures what it saves)."""
    import gc

    from acct.cli import GC_FIRST_THRESHOLD, main

    before = gc.get_threshold()
    gc.set_threshold(700, *before[1:])  # Python's default: this process may have raised it already
    monkeypatch.setattr(sys, "argv", ["acct", "--version"])
    try:
        with pytest.raises(SystemExit) as done:
            main()
        assert done.value.code in (0, None)
        assert gc.get_threshold() == (GC_FIRST_THRESHOLD, *before[1:])
    finally:
        gc.set_threshold(*before)
    assert GC_FIRST_THRESHOLD > 700
