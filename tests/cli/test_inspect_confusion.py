"""`acct inspect-confusion` through Typer's CliRunner on the session's tiny run."""

from __future__ import annotations

import json
import sys

from typer.testing import CliRunner

from acct.cli import app
from acct.data.synthetic import SYNTHETIC_TASKS

runner = CliRunner()


def test_json_schema(tiny_run):
    result = runner.invoke(app, ["inspect-confusion", str(tiny_run), "--top", "4", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert len(out["pairs"]) == 4
    assert all(set(p) == {"task_a", "task_b", "score"} for p in out["pairs"])
    assert [p["score"] for p in out["pairs"]] == sorted((p["score"] for p in out["pairs"]), reverse=True)
    assert set(out["tasks"]) == set(SYNTHETIC_TASKS)
    assert all(set(t) == {"confusion", "weight", "accuracy"} for t in out["tasks"].values())
    assert sum(t["weight"] for t in out["tasks"].values()) == 1.0 or abs(sum(t["weight"] for t in out["tasks"].values()) - 1) < 1e-6


def test_tables(tiny_run):
    result = runner.invoke(app, ["inspect-confusion", str(tiny_run), "--top", "3"])
    assert result.exit_code == 0, result.output
    for word in ("most-confused task pairs", "task A", "task B", "confusion", "weight", "val acc", "step 240"):
        assert word in result.stdout


def test_recompute_json(tiny_run):
    result = runner.invoke(app, ["inspect-confusion", str(tiny_run), "--recompute", "--split", "test", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["source"] == "recomputed" and out["split"] == "test" and len(out["pairs"]) == 10
    assert "recomputing" in result.stderr


def test_errors(tiny_run, tmp_path, monkeypatch):
    result = runner.invoke(app, ["inspect-confusion", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "run directory not found" in result.stderr
    result = runner.invoke(app, ["inspect-confusion", str(tiny_run), "--split", "test"])
    assert result.exit_code == 2 and "--split: only used with --recompute" in result.stderr
    result = runner.invoke(app, ["inspect-confusion", str(tiny_run), "--top", "0"])
    assert result.exit_code == 2 and "top" in result.stderr

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were not installed
    result = runner.invoke(app, ["inspect-confusion", str(tiny_run), "--plot", str(tmp_path / "c.png")])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --plot needs matplotlib, an optional extra: pip install 'acct[plot]'"
    assert result.stdout == "" and not (tmp_path / "c.png").exists()
