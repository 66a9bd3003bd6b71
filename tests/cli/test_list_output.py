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


def acct(*args: str) -> subprocess.CompletedProcess:
    """acct in a child process whose stdout is a pipe (not a terminal), with no COLUMNS to go by."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run([sys.executable, "-m", "acct", *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300)


@pytest.fixture(scope="module")
def listed(tmp_path_factory):
    # A plugin in a deep directory: its path, one word with no space to break at, is the "from" cell.
    deep = tmp_path_factory.mktemp("plugins") / "a_directory_with_a_rather_long_name" / "and_another_one_below_it"
    deep.mkdir(parents=True)
    plugin = deep / PLUGIN.name
    shutil.copy(PLUGIN, plugin)
    table, as_json = acct("list", "--code", str(plugin)), acct("list", "--json", "--code", str(plugin))
    assert table.returncode == 0, table.stderr
    assert as_json.returncode == 0, as_json.stderr
    return table.stdout, json.loads(as_json.stdout), plugin


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
