"""acct.study.cluster without a scheduler: what a job runs, with which environment, and how it fails."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from acct.study import cluster

# A stand-in for `acct train` that prints the ACCT_* variables and CUDA_VISIBLE_DEVICES it was given.
SHOW_ENV = ("import json, os; print(json.dumps({k: v for k, v in os.environ.items() "
            "if k.startswith('ACCT_') or k == 'CUDA_VISIBLE_DEVICES'}))")


def child_env(capfd) -> dict:
    return json.loads(capfd.readouterr().out.strip().splitlines()[-1])


def test_a_job_drops_settings_variables_that_would_override_its_settings_file(monkeypatch, capfd, tmp_path):
    monkeypatch.setenv("ACCT_SEED", "7")  # would beat the seed in DIR/commands/<run>.yaml
    monkeypatch.setenv("ACCT_OPTIM__LR", "0.1")
    monkeypatch.setenv("ACCT_CACHE_DIR", str(tmp_path))  # not a setting: kept
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # as submitit's LocalExecutor leaves it
    cluster.run_job([sys.executable, "-c", SHOW_ENV], str(tmp_path), [], "0,1", True)
    assert child_env(capfd) == {"ACCT_CACHE_DIR": str(tmp_path), "CUDA_VISIBLE_DEVICES": "0,1"}
    cluster.run_job([sys.executable, "-c", SHOW_ENV], str(tmp_path), [], None, True)
    assert "CUDA_VISIBLE_DEVICES" not in child_env(capfd)  # the submitting process saw every GPU
    cluster.run_job([sys.executable, "-c", SHOW_ENV], str(tmp_path), [], None, False)
    assert child_env(capfd)["CUDA_VISIBLE_DEVICES"] == ""  # a SLURM job keeps what the scheduler gave it


def test_a_failing_command_or_a_changed_plugin_fails_the_job(tmp_path, capfd):
    with pytest.raises(cluster.JobFailed, match="exited with status 3"):
        cluster.run_job([sys.executable, "-c", "raise SystemExit(3)"], str(tmp_path), [])
    plugin = tmp_path / "plugin.py"
    plugin.write_text("X = 1\n")
    digest = hashlib.sha256(plugin.read_bytes()).hexdigest()
    cluster.run_job([sys.executable, "-c", "print('ran')"], str(tmp_path), [(str(plugin), digest)])
    assert "ran" in capfd.readouterr().out
    plugin.write_text("X = 2\n")
    with pytest.raises(cluster.JobFailed, match="changed since the study was submitted"):
        cluster.run_job([sys.executable, "-c", "print('ran')"], str(tmp_path), [(str(plugin), digest)])
    captured = capfd.readouterr()
    assert "ran" not in captured.out and captured.err.startswith(f"error: plugin {plugin} changed")


def planned(action: str, plugins=(), trust=False):
    settings = SimpleNamespace(plugins=[SimpleNamespace(path=p, sha256="0" * 64) for p in plugins],
                               model=SimpleNamespace(trust_remote_code=trust))
    return SimpleNamespace(action=action, run_dir=Path("s/full-seed1"), settings=settings)


def test_the_job_command_trains_afresh_or_resumes():
    import shlex

    from acct.study.plan import train_argv

    def line(run):  # what train_commands prints for the run
        return shlex.join(["acct", *train_argv(run, Path("s/commands/full-seed1.yaml"))])

    fresh = planned("train", ["/p/a.py"])
    assert cluster.job_command(fresh, line(fresh)) == [
        sys.executable, "-m", "acct", "train", "--config", "s/commands/full-seed1.yaml", "--output-dir", "s/full-seed1",
        "--overwrite", "--code", "/p/a.py"]
    # An interrupted run continues with its saved settings and its own sha256-checked plugin copies.
    interrupted = planned("resume", ["/p/a.py"], trust=True)
    assert cluster.job_command(interrupted, line(interrupted), 4) == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4", "-m", "acct",
        "train", "--resume", "s/full-seed1", "--trust-remote-code"]


def test_a_broken_record_is_one_line(tmp_path):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "jobs.json").write_text('{"jobs": [{"run": "x"}]}')
    with pytest.raises(cluster.UsageError, match=r"jobs\.json is not a record of submitted jobs \(KeyError\)"):
        cluster.read_jobs(tmp_path)
    assert cluster.read_jobs(tmp_path / "nothing") == []
