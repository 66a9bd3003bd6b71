"""`acct ablate --submit local|slurm`: a study's runs as submitit jobs, end to end on a tiny budget.

The local executor runs real jobs on this machine; SLURM is exercised through stand-in `sbatch` and
`srun` programs that record what they were given, since no cluster is at hand.
"""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest
from typer.testing import CliRunner

from acct.cli import app
from tests.conftest import SMALL_MODEL_YAML

runner = CliRunner()

# Two arms x one seed, four steps each: enough to differ, cheap to train.
STUDY_YAML = SMALL_MODEL_YAML + """\
data: {synthetic_examples_per_task: 24}
optim: {max_steps: 4}
eval_every_n_steps: 4
"""
ARMS = ("baseline", "contrastive")


def ablate(study, config, *extra):
    return runner.invoke(
        app, ["ablate", "--preset", "tiny", "--config", str(config), "--output-dir", str(study), "--device", "cpu",
              "--seed", "1", "--seeds", "1", "--arms", ",".join(ARMS), *extra],
    )


def accuracies(report: dict) -> dict:
    return {name: [(s["seed"], s["accuracy"], s["macro_accuracy"]) for s in c["seeds"]] for name, c in report["configs"].items()}


def submitted_jobs(directory) -> list[str]:
    """The ids of every job submitit was ever given in this study (one submission pickle each)."""
    return sorted(p.name.removesuffix("_submitted.pkl") for p in (directory / "jobs").glob("*_submitted.pkl"))


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("submit") / "study.yaml"
    path.write_text(STUDY_YAML)
    return path


@pytest.fixture(scope="module")
def in_process(config, tmp_path_factory):
    directory = tmp_path_factory.mktemp("in-process") / "study"
    result = ablate(directory, config, "--json")
    assert result.exit_code == 0, result.output
    return directory, json.loads(result.stdout)


@pytest.fixture(scope="module")
def through_jobs(config, tmp_path_factory):
    """The study through local jobs, in three commands as a user would run them.

    1. Both runs are submitted and run at once; contrastive's job fails (its run directory is a
       file, which `acct train` refuses in the job), baseline's trains.
    2. Fixed, the same command with --no-wait submits the failed run again, alone, and returns.
    3. The same command without --no-wait collects that job and compares.
    """
    directory = tmp_path_factory.mktemp("jobs") / "study"
    directory.mkdir()
    (directory / "contrastive-seed1").write_text("not a run directory\n")
    failed = ablate(directory, config, "--submit", "local")
    after_failure = {"jobs": submitted_jobs(directory), "record": json.loads((directory / "jobs" / "jobs.json").read_text()),
                     "reports": [p.name for p in directory.glob("ablation.*")]}
    (directory / "contrastive-seed1").unlink()
    submitted = ablate(directory, config, "--submit", "local", "--no-wait", "--json")
    record = json.loads((directory / "jobs" / "jobs.json").read_text())
    collected = ablate(directory, config, "--submit", "local", "--json")
    return {"directory": directory, "failed": failed, "after_failure": after_failure, "submitted": submitted,
            "record": record, "collected": collected}


def log_of(directory, job_id: str):
    return directory.resolve() / "jobs" / f"{job_id}_0_log.err"


@pytest.mark.slow  # trains through real local jobs
def test_a_failed_job_is_named_with_its_log_and_the_other_job_still_trains(through_jobs):
    directory, result = through_jobs["directory"], through_jobs["failed"]
    assert result.exit_code == 1, result.output
    # The record keeps the jobs, for a later command to name the failure again.
    record = {j["run"]: j["job_id"] for j in through_jobs["after_failure"]["record"]["jobs"]}
    assert sorted(record) == ["baseline-seed1", "contrastive-seed1"]
    assert sorted(record.values()) == through_jobs["after_failure"]["jobs"]
    contrastive_job = record["contrastive-seed1"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "job of contrastive-seed1 failed: output path" in errors[0] and "is a file" in errors[0]
    assert f"log: {log_of(directory, contrastive_job)}" in errors[0] and "baseline" not in errors[0]
    # The two jobs ran at once; either may end first.
    lines = sorted(line.split(": ")[1] + " " + line.split(": ")[0].split()[-1]
                   for line in result.stderr.splitlines() if line.startswith("job "))
    assert lines == ["baseline-seed1 finished", "contrastive-seed1 failed"], result.stderr
    assert sorted(line.split(": ")[0].rsplit(" ", 1)[0] for line in result.stderr.splitlines()
                  if line.startswith("job ")) == ["job 1/2", "job 2/2"]
    assert through_jobs["after_failure"]["reports"] == []  # no report while a run is missing


@pytest.mark.slow  # trains through real local jobs
def test_the_failed_run_alone_is_submitted_again_and_collected_later(through_jobs):
    directory, submitted, record = through_jobs["directory"], through_jobs["submitted"], through_jobs["record"]
    assert submitted.exit_code == 0, submitted.output
    # The finished baseline run is not submitted again; --no-wait records the job and returns.
    [job] = record["jobs"]
    assert job["run"] == "contrastive-seed1" and job["executor"] == "local"
    assert job["run_dir"] == str(directory / "contrastive-seed1")
    assert job["folder"] == str((directory / "jobs").resolve())
    assert job["job_id"] not in through_jobs["after_failure"]["jobs"]
    answer = json.loads(submitted.stdout)
    assert answer["jobs"] == record["jobs"]
    assert "--no-wait" not in answer["collect"] and "--submit local" in answer["collect"]
    # The later command submits nothing and waits for the job.
    collected = through_jobs["collected"]
    assert collected.exit_code == 0, collected.output
    assert submitted_jobs(directory) == sorted([*through_jobs["after_failure"]["jobs"], job["job_id"]])
    assert "1 submitted earlier still pending or running" in collected.stderr
    assert "job 1/1 finished: contrastive-seed1" in collected.stderr
    assert not (directory / "jobs" / "jobs.json").exists()  # the record goes once the report is written


@pytest.mark.slow  # trains through real local jobs
def test_local_jobs_train_the_runs_and_the_report_equals_the_in_process_one(in_process, through_jobs):
    directory, result = through_jobs["directory"], through_jobs["collected"]
    report = json.loads(result.stdout)
    assert accuracies(report) == accuracies(in_process[1])
    assert accuracies(report) == accuracies(json.loads((directory / "ablation.json").read_text()))
    assert report["deltas"] == in_process[1]["deltas"]
    for run in ARMS:  # the same seed gives the same weights, bit for bit
        ours = (directory / f"{run}-seed1" / "checkpoints" / "last" / "model.safetensors").read_bytes()
        theirs = (in_process[0] / f"{run}-seed1" / "checkpoints" / "last" / "model.safetensors").read_bytes()
        assert ours == theirs, run
    # Each job ran `python -m acct train` with the run's settings file; its logs stay in DIR/jobs/.
    logs = "".join(log_of(directory, j).read_text() for j in submitted_jobs(directory))
    for run in ARMS:
        assert (f"{sys.executable} -m acct train --config {directory / 'commands' / f'{run}-seed1.yaml'} "
                f"--output-dir {directory / f'{run}-seed1'} --overwrite") in logs
    assert logs.count("done (completed) at step 4") == 2


@pytest.mark.slow  # trains through real local jobs
def test_a_second_submission_submits_nothing_and_compares_again(through_jobs, config):
    directory, first = through_jobs["directory"], through_jobs["collected"]
    before = submitted_jobs(directory)
    result = ablate(directory, config, "--submit", "local", "--json")
    assert result.exit_code == 0, result.output
    assert submitted_jobs(directory) == before
    assert "job " not in result.stderr and result.stderr.count("finished run reused") == 2
    assert accuracies(json.loads(result.stdout)) == accuracies(json.loads(first.stdout))


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """`sbatch` and `srun` stand-ins on PATH: sbatch keeps the script it was given and answers a job id."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = tmp_path / "sbatch-scripts"
    scripts.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" "{scripts}/$(ls {scripts} | wc -l).sh"\necho "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return scripts


def test_slurm_submits_one_job_array_with_the_resources_asked_for(config, fake_slurm, tmp_path):
    import submitit

    directory = tmp_path / "study"
    result = ablate(directory, config, "--submit", "slurm", "--no-wait", "--slurm-partition", "gpu", "--slurm-time", "90",
                    "--slurm-cpus-per-task", "6", "--slurm-array-parallelism", "1", "--nproc-per-node", "2")
    assert result.exit_code == 0, result.output
    [script] = [p.read_text() for p in fake_slurm.iterdir()]
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --cpus-per-task=6", "#SBATCH --array=0-1%1",
                 "#SBATCH --gpus-per-node=2", "#SBATCH --ntasks-per-node=1", f"#SBATCH --output={directory.resolve()}/jobs/"):
        assert line in script, line
    record = json.loads((directory / "jobs" / "jobs.json").read_text())
    assert [(j["run"], j["job_id"], j["executor"]) for j in record["jobs"]] == [
        ("baseline-seed1", "4242_0", "slurm"), ("contrastive-seed1", "4242_1", "slurm")]
    assert "collect the results with: acct ablate" in result.stderr and "--no-wait" not in result.stderr.split("with: ")[1]
    # Each array task runs the run's training command under torchrun, started by this Python.
    job = submitit.SlurmJob(folder=record["jobs"][1]["folder"], job_id="4242_1")
    argv = job.submission().args[0]
    assert argv[:7] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
    assert argv[7:] == ["acct", "train", "--config", str(directory / "commands" / "contrastive-seed1.yaml"),
                        "--output-dir", str(directory / "contrastive-seed1"), "--overwrite"]
    assert (directory / "commands" / "contrastive-seed1.yaml").is_file()


@pytest.mark.parametrize(("words", "message"), [
    (["--slurm-partition", "gpu"], "go with --submit slurm|local"),
    (["--no-wait"], "go with --submit slurm|local"),
    (["--submit", "local", "--slurm-time", "10"], "--slurm-time goes with --submit slurm"),
    (["--submit", "local", "--slurm-partition", "a", "--slurm-cpus-per-task", "2"],
     "--slurm-partition, --slurm-cpus-per-task go with --submit slurm"),
    (["--submit", "pbs"], "--submit pbs: choose local or slurm"),
    (["--submit", "slurm", "--slurm-time", "0"], "--slurm-time: Input should be greater than or equal to 1"),
    (["--submit", "local", "--nproc-per-node", "0"], "--nproc-per-node: Input should be greater than or equal to 1"),
    (["--submit", "local", "--print-commands"], "drop --print-commands"),
    (["--nproc-per-node", "2"], "--nproc-per-node also with --submit"),
])
def test_submission_flags_out_of_place_are_one_line(words, message, config, tmp_path):
    result = ablate(tmp_path / "s", config, *words)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "s").exists()


def test_slurm_without_a_cluster_is_one_line(config, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun anywhere
    result = ablate(tmp_path / "s", config, "--submit", "slurm")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == "error: --submit slurm: there is no srun on PATH; run acct ablate on a SLURM login node"


def test_missing_submitit_names_the_extra(config, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` raises ImportError
    result = ablate(tmp_path / "s", config, "--submit", "local")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == 'error: --submit needs the submitit library: pip install "acct[cluster]"'
    assert not (tmp_path / "s").exists()


def test_submitting_under_torchrun_is_refused(config, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setitem(sys.modules, "submitit", None)  # refused before anything else is looked at
    result = ablate(tmp_path / "s", config, "--submit", "local", "--nproc-per-node", "2")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --submit starts the study's jobs itself"), result.stderr
    assert not (tmp_path / "s").exists()
