"""A study's runs as submitit jobs (`acct ablate --submit local|slurm`): one job per run that is not
finished, their record in DIR/jobs/jobs.json, and the wait for them.

Owns the submission settings, the command each job runs (the `acct train` line that
`ablation.train_commands` writes, started with this Python), the job function itself, the record
of submitted jobs, and the events of waiting. No Typer, no printing: the CLI renders. submitit
(the `cluster` extra) is imported inside the functions that use it.

Whether a job succeeded is read from its run directory (the run reached the end of its schedule,
as `ablation.plan` reuses it), never from the result pickles submitit leaves in DIR/jobs/: acct
does not unpickle anything a study directory holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from acct.errors import AcctError, UsageError

JOBS_DIR = "jobs"
JOBS_FILE = "jobs.json"
INSTALL_HINT = 'pip install "acct[cluster]"'
# A local job has no scheduler's limit; submitit's own default (2 minutes) would kill real runs.
LOCAL_TIMEOUT_MIN = 60 * 24 * 30
DEFAULT_SLURM_TIME_MIN = 60 * 24
# ACCT_* variables a job keeps: those that are not settings. Settings variables are dropped, because
# in `acct train` they would override the run's settings file (defaults < YAML < environment).
KEEP_ENV = ("ACCT_DEBUG", "ACCT_CACHE_DIR", "ACCT_DEBUG_RANK_DIR", "ACCT_DIST_TIMEOUT_S")

# The flag behind each submission setting, for one-line errors.
FLAGS = {
    "executor": "--submit",
    "wait": "--no-wait",
    "partition": "--slurm-partition",
    "time_min": "--slurm-time",
    "gpus_per_node": "--slurm-gpus-per-node",
    "cpus_per_task": "--slurm-cpus-per-task",
    "array_parallelism": "--slurm-array-parallelism",
    "nproc_per_node": "--nproc-per-node",
}
SLURM_ONLY = ("partition", "time_min", "gpus_per_node", "cpus_per_task", "array_parallelism")


class SubmitSettings(BaseModel):
    """How a study's runs are submitted: the executor, its resources, and whether acct waits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    executor: Literal["local", "slurm"] = Field(
        description="local: every job starts at once on this machine (submitit's LocalExecutor); slurm: a job array "
        "through sbatch (submitit's SlurmExecutor)."
    )
    wait: bool = Field(True, description="Wait for the jobs, then compare; False submits, records the jobs and returns.")
    partition: str | None = Field(None, min_length=1, description="SLURM partition of the jobs (sbatch --partition).")
    time_min: int | None = Field(None, ge=1, description="Wall-clock limit of each SLURM job in minutes (sbatch --time); default 24 h.")
    gpus_per_node: int | None = Field(
        None, ge=0, description="GPUs of each SLURM job (sbatch --gpus-per-node); default: --nproc-per-node, else none requested."
    )
    cpus_per_task: int | None = Field(None, ge=1, description="CPU cores of each SLURM job (sbatch --cpus-per-task).")
    array_parallelism: int | None = Field(
        None, ge=1, description="Jobs of the array SLURM runs at once (sbatch --array=...%N); default: all."
    )
    nproc_per_node: int | None = Field(
        None, ge=1, description="Processes per job: each job starts `torchrun --standalone --nproc_per_node N -m acct train`."
    )

    @model_validator(mode="after")
    def _slurm_options_need_slurm(self) -> SubmitSettings:
        given = [FLAGS[name] for name in SLURM_ONLY if getattr(self, name) is not None]
        if given and self.executor != "slurm":
            raise ValueError(f"{', '.join(given)} go{'es' if len(given) == 1 else ''} with --submit slurm")
        return self


def submit_settings(**values: Any) -> SubmitSettings:
    """Validated submission settings; one UsageError line naming the flag when a value is wrong."""
    try:
        return SubmitSettings(**values)
    except ValidationError as exc:
        parts = []
        for e in exc.errors():
            field = str(e["loc"][0]) if e["loc"] else ""
            msg = e["msg"].removeprefix("Value error, ")
            if field == "executor" and e["type"] == "literal_error":
                msg = f"--submit {values.get('executor')}: choose local or slurm"
                parts.append(msg)
            else:
                parts.append(f"{FLAGS[field]}: {msg}" if field in FLAGS else msg)
        raise UsageError("; ".join(parts)) from None


def require_submitit() -> Any:
    """The submitit module, or one line saying how to install it."""
    try:
        import submitit
    except ImportError:
        raise UsageError(f"--submit needs the submitit library: {INSTALL_HINT}") from None
    return submitit


# -- the record of submitted jobs ------------------------------------------------------------------


@dataclass(frozen=True)
class StudyJob:
    """One submitted job: the run it trains and where submitit keeps its files."""

    run: str  # the run directory's name, <arm>-seed<k>
    run_dir: str
    job_id: str
    executor: str  # local or slurm
    folder: str  # submitit's folder: the job's logs and pickles

    @property
    def stdout(self) -> Path:
        return Path(self.folder) / f"{self.job_id}_0_log.out"

    @property
    def stderr(self) -> Path:
        return Path(self.folder) / f"{self.job_id}_0_log.err"

    @property
    def result_file(self) -> Path:
        return Path(self.folder) / f"{self.job_id}_0_result.pkl"


def jobs_folder(study_dir: Path) -> Path:
    return Path(study_dir) / JOBS_DIR


def jobs_file(study_dir: Path) -> Path:
    return jobs_folder(study_dir) / JOBS_FILE


def read_jobs(study_dir: Path) -> list[StudyJob]:
    """The jobs recorded by an earlier submission of this study (none when there is no record)."""
    path = jobs_file(study_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    try:
        data = json.loads(text)
        jobs = [StudyJob(**{k: str(j[k]) for k in StudyJob.__dataclass_fields__}) for j in data["jobs"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path} is not a record of submitted jobs ({type(exc).__name__}); if none of its jobs is "
                         "still running, delete it and run the command again") from None
    return jobs


def write_jobs(study_dir: Path, jobs: Sequence[StudyJob]) -> Path:
    """Record the study's jobs in DIR/jobs/jobs.json, atomically (a reader sees the old or the new record)."""
    path = jobs_file(study_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"format": 1, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "jobs": [asdict(j) for j in jobs]}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def forget_jobs(study_dir: Path) -> None:
    """Drop the record once the study's report is written: its jobs are done (their logs stay)."""
    jobs_file(study_dir).unlink(missing_ok=True)


# -- what a job runs -------------------------------------------------------------------------------


def job_command(run: Any, line: str, nproc_per_node: int | None = None) -> list[str]:
    """The argv of the job that trains planned run `run`, from its `acct train` line (train_commands),
    started with this Python."""
    words = shlex.split(line)
    if words[:2] != ["acct", "train"]:
        raise AcctError(f"unexpected training command for {run.run_dir}: {line}")
    if nproc_per_node:
        # torchrun's own module, so that nothing depends on PATH inside the job; --standalone picks a
        # free rendezvous port, so two jobs on one node do not collide.
        prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc_per_node),
                  "-m", "acct"]
    else:
        prefix = [sys.executable, "-m", "acct"]
    return prefix + words[1:]


def run_job(argv: list[str], cwd: str, plugins: list[tuple[str, str]], cuda_visible_devices: str | None = None,
            restore_cuda: bool = False) -> None:
    """The function each job runs: check the plugins' sha256, then run the `acct train` command.

    The command's output goes to the job's own log files. A non-zero exit raises, so that the
    scheduler and submitit record the job as failed.
    """
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ACCT_") or k.upper() in KEEP_ENV}
    if restore_cuda:
        # submitit's LocalExecutor hides every GPU from a job that asked for none; a local job sees
        # the GPUs the submitting process saw.
        env.pop("CUDA_VISIBLE_DEVICES", None)
        if cuda_visible_devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices
    for path, digest in plugins:
        try:
            actual = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError as exc:
            actual = f"unreadable ({exc.strerror})"
        if actual != digest:
            message = f"plugin {path} changed since the study was submitted (sha256 {actual[:12]}…, expected {digest[:12]}…)"
            print(f"error: {message}", file=sys.stderr, flush=True)
            raise JobFailed(message)
    print(f"acct job: {shlex.join(argv)}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    code = subprocess.run(argv, cwd=cwd, env=env, check=False).returncode
    if code != 0:
        raise JobFailed(f"acct train exited with status {code}")


class JobFailed(AcctError):
    """A job's training command failed (raised inside the job)."""


# -- submitting ------------------------------------------------------------------------------------


@dataclass
class Submission:
    """What one `acct ablate --submit` did: jobs it submitted, and earlier jobs it waits for instead."""

    submitted: list[StudyJob]
    earlier: list[StudyJob]  # recorded jobs still pending or running: not submitted again
    record: Path | None  # DIR/jobs/jobs.json, when there are jobs
    live: dict[str, Any]  # job id -> submitit job object of this process

    @property
    def jobs(self) -> list[StudyJob]:
        return [*self.earlier, *self.submitted]


def make_executor(options: SubmitSettings, folder: Path, name: str) -> Any:
    """submitit's executor for these settings, writing its files into `folder`."""
    submitit = require_submitit()
    if options.executor == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
        return executor
    try:
        executor = submitit.SlurmExecutor(folder=folder)
    except RuntimeError:
        raise UsageError("--submit slurm: there is no srun on PATH; run acct ablate on a SLURM login node") from None
    params: dict[str, Any] = {"job_name": name, "time": options.time_min or DEFAULT_SLURM_TIME_MIN, "ntasks_per_node": 1}
    gpus = options.gpus_per_node if options.gpus_per_node is not None else options.nproc_per_node
    for key, value in (("partition", options.partition), ("gpus_per_node", gpus), ("cpus_per_task", options.cpus_per_task),
                       ("array_parallelism", options.array_parallelism)):
        if value is not None:
            params[key] = value
    executor.update_parameters(**params)
    return executor


def job_state(job: StudyJob, live: dict[str, Any]) -> str:
    """'running' while a job is pending or running, else 'ended' (whatever its outcome)."""
    submitit = require_submitit()
    obj = live.get(job.job_id)
    if job.executor == "local":
        if obj is not None:
            return "ended" if obj.done() else "running"  # polls the process this acct started
        if job.result_file.exists():
            return "ended"
        return "running" if _local_job_alive(job.job_id) else "ended"
    if obj is None:
        obj = live[job.job_id] = submitit.SlurmJob(folder=job.folder, job_id=job.job_id)
    return "ended" if obj.done() else "running"


def _local_job_alive(job_id: str) -> bool:
    """Whether the controller process of a local job started by an earlier acct is still running."""
    try:
        pid = int(job_id)
    except ValueError:
        return False
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").exists():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            return False
        # A zombie has ended; a process with another command line reused the id.
        return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X") and b"submitit.local._local" in cmdline
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_finished(run: Any) -> bool:
    """Whether a planned run's directory holds a run that reached its end (as `ablation.plan` reuses it)."""
    from acct.study import plan as study_plan

    if run.schedule is None:
        return False
    return study_plan.finished_state(Path(run.run_dir), run.schedule, run.settings.patience) is not None


def submit(settings: Any, runs: Sequence[Any], options: SubmitSettings) -> Submission:
    """Submit one job per planned run that is not finished and has no job still pending or running.

    `runs` is `ablation.plan`'s answer. Runs it reuses are never submitted; a run whose recorded
    job is still pending or running is waited for instead; a run whose recorded job ended with
    the run finished (the same study submitted with --overwrite) is not trained again.
    """
    from acct.study import plan as study_plan

    study_dir = Path(settings.output_dir)
    folder = jobs_folder(study_dir).resolve()
    recorded = {j.run: j for j in read_jobs(study_dir)}
    live: dict[str, Any] = {}
    earlier: list[StudyJob] = []
    todo = []
    for r in runs:
        if r.action == "reuse":
            continue
        job = recorded.get(r.run_dir.name)
        if job is not None and job_state(job, live) == "running":
            earlier.append(job)
        elif job is not None and run_finished(r):
            continue
        else:
            todo.append(r)
    submitted: list[StudyJob] = []
    if todo:
        executor = make_executor(options, folder, f"acct-{study_dir.resolve().name}")  # no cluster: nothing written
        lines = study_plan.train_commands(todo, study_dir)
        local = options.executor == "local"
        calls = [
            (job_command(r, line, options.nproc_per_node), os.getcwd(),
             [(str(p.path), p.sha256) for p in r.settings.plugins] if r.action != "resume" else [],
             os.environ.get("CUDA_VISIBLE_DEVICES"), local)
            for r, line in zip(todo, lines)
        ]
        try:
            with executor.batch():
                handles = [executor.submit(run_job, *call) for call in calls]
        except AcctError:
            raise
        except Exception as exc:  # sbatch said no (a wrong partition, a time over the limit, ...)
            text = str(exc).strip().splitlines()
            raise AcctError(f"submitting the study's jobs failed: {text[-1] if text else type(exc).__name__}") from None
        for r, handle in zip(todo, handles):
            job = StudyJob(r.run_dir.name, str(r.run_dir), str(handle.job_id), options.executor, str(folder))
            live[job.job_id] = handle
            submitted.append(job)
    jobs = [*earlier, *submitted]
    record = write_jobs(study_dir, jobs) if jobs else None
    if not jobs:
        forget_jobs(study_dir)
    return Submission(submitted, earlier, record, live)


# -- waiting ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobEnded:
    """A job ended: the index-th of `total` to end; `ok` when its run reached its end."""

    index: int
    total: int
    job: StudyJob
    ok: bool
    reason: str | None  # why it failed, one line

    @property
    def log(self) -> Path:
        return self.job.stderr


def wait(submission: Submission, runs: Sequence[Any], *, poll_s: float | None = None,
         sleep: Callable[[float], None] = time.sleep) -> Iterator[JobEnded]:
    """Yield a `JobEnded` as each of the submission's jobs ends, until all have."""
    by_name = {r.run_dir.name: r for r in runs}
    pending = list(submission.jobs)
    total = len(pending)
    if poll_s is None:
        poll_s = 1.0 if all(j.executor == "local" for j in pending) else 15.0
    ended = 0
    while pending:
        still = []
        for job in pending:
            if job_state(job, submission.live) == "running":
                still.append(job)
                continue
            ended += 1
            run = by_name.get(job.run)
            ok = run is not None and run_finished(run)
            yield JobEnded(ended, total, job, ok, None if ok else failure_reason(job, submission.live))
        pending = still
        if pending:
            sleep(poll_s)


def failure_reason(job: StudyJob, live: dict[str, Any]) -> str:
    """Why a job's run did not finish, in one line: the error line acct printed in the job, else the job's state."""
    try:
        text = job.stderr.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    errors = [line.strip() for line in text.splitlines() if line.startswith("error:")]
    if errors:
        line = errors[-1].removeprefix("error:").strip()
        return line if len(line) <= 300 else line[:299] + "…"
    state = ""
    obj = live.get(job.job_id)
    if obj is not None and job.executor == "slurm":
        try:
            state = f" ({obj.state})"
        except Exception:  # the scheduler's accounting may be unavailable; the log path still says where to look
            state = ""
    return f"the job ended{state} before its run finished"


def failure_line(event: JobEnded) -> str:
    """The one line that names a failed job's run and its log."""
    return f"job of {event.job.run} failed: {event.reason}; log: {event.log}"
