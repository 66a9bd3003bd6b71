"""What `acct list` prints when its output goes to a file: literal text, and no word cut by the table."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "docs" / "examples" / "favour_first.py"


# `acct list --code PLUGIN` and `acct list --json --code PLUGIN` as the console script runs them, one
# after the other in one child process, each writing its stdout to a file.
LIST_TWICE = """
import sys
from acct.cli import main
plugin, table, as_json = sys.argv[1:]
for args, path in ((["list", "--code", plugin], table), (["list", "--json", "--code", plugin], as_json)):
    sys.argv = ["acct", *args]
    with open(path, "w", encoding="utf-8") as sys.stdout:
        try:
            main()
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
"""


@pytest.fixture(scope="module")
def listed(tmp_path_factory):
    # A plugin in a deep directory: its path, one word with no space to break at, is the "from" cell.
    root = tmp_path_factory.mktemp("plugins")
    deep = root / "a_directory_with_a_rather_long_name" / "and_another_one_below_it"
    deep.mkdir(parents=True)
    plugin = deep / PLUGIN.name
    shutil.copy(PLUGIN, plugin)
    table, as_json = root / "table.txt", root / "list.json"
    # A child process whose stdout is a file (not a terminal), with no COLUMNS to go by.
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run([sys.executable, "-c", LIST_TWICE, str(plugin), str(table), str(as_json)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    return table.read_text(encoding="utf-8"), json.loads(as_json.read_text(encoding="utf-8")), plugin


def test_descriptions_are_shown_literally(listed):
    text, data, _ = listed
    arms = {row["name"]: row["description"] for row in data["ablation_arms"]}
    assert "acct[mtl]" in arms["pcgrad"] and "acct[mtl]" in arms["upgrad"]
    expected = sum(row["description"].count("acct[mtl]") for rows in data.values() for row in rows)
    assert expected >= 2 and text.count("needs acct[mtl])") == expected
    assert not re.search(r"needs acct(?!\[mtl\])", text)


def test_tables_written_to_a_file_keep_every_word_whole(listed):
    text, data, plugin = listed
    # Every cell's words are whole words of the output: a cut word ("baselin" / "e") would be two tokens.
    tokens = set(re.split(r"[\s│┃]+", text))
    for rows in data.values():
        for row in rows:
            for word in f"{row['name']} {row['description']} {row['origin']}".split():
                assert word in tokens, f"{word!r} is cut in the table"
    assert any(str(plugin) in line for line in text.splitlines())
