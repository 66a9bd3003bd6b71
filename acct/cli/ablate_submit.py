"""`acct ablate --submit local|slurm`: submit the study's runs through submitit, show the jobs as
they end, then compare as `acct ablate` does when every run is finished.

Rendering only; what is submitted, recorded and waited for lives in acct/study/cluster.py.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

import typer

from acct.cli._common import err, escape, print_json
from acct.errors import AcctError, UsageError


def submit_study(settings: Any, base: Any, options: Any, compare: Callable[[Any], Any], *, command: str,
                 as_json: bool) -> Any:
    """Submit what is missing, wait (unless --no-wait) and return `compare(settings)`'s report, or None."""
    from acct.study import cluster
    from acct.study import plan as study_plan
    from acct.train import distributed

    if distributed.launched()[1] > 1:  # every rank would submit the whole study
        raise UsageError("--submit starts the study's jobs itself: run acct ablate without torchrun "
                         "(--nproc-per-node N starts torchrun inside each job)")
    cluster.require_submitit()  # before planning, which may take a while on a large dataset
    runs = study_plan.plan(settings, base)
    submission = cluster.submit(settings, runs, options)
    reused = sum(r.action == "reuse" for r in runs)
    done_before = len(runs) - reused - len(submission.jobs)
    parts = [f"{len(submission.submitted)} job{'s' * (len(submission.submitted) != 1)} submitted ({options.executor})"]
    if submission.earlier:
        parts.append(f"{len(submission.earlier)} submitted earlier still pending or running")
    if reused or done_before:
        parts.append(f"{reused + done_before} run{'s' * (reused + done_before != 1)} already finished")
    if submission.jobs:
        err.print(f"{'; '.join(parts)}; logs in {escape(cluster.jobs_folder(settings.output_dir))}/",
                  highlight=False, soft_wrap=True)
    if submission.jobs and not options.wait:
        collect = shlex.join(w for w in shlex.split(command) if w != "--no-wait")
        if as_json:
            print_json({"jobs": [vars(j) for j in submission.jobs], "record": str(submission.record),
                        "collect": collect})
        else:
            err.print(f"recorded in {escape(submission.record)}; collect the results with: {escape(collect)}",
                      highlight=False, soft_wrap=True)
        return None
    failed = []
    try:
        for event in cluster.wait(submission, runs):
            if event.ok:
                typer.echo(f"job {event.index}/{event.total} finished: {event.job.run}", err=True)
            else:
                typer.echo(f"job {event.index}/{event.total} failed: {event.job.run}", err=True)
                failed.append(event)
    except KeyboardInterrupt:
        err.print(f"stopped waiting; the jobs go on (recorded in {escape(submission.record)}). Run the same command "
                  "again to wait for them and compare.", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if failed:
        lines = "; ".join(cluster.failure_line(e) for e in failed)
        raise AcctError(f"{lines}. The report is not written; fix the cause and run the same command again "
                        "(finished runs are kept)")
    # Every run is finished now; the comparison is the in-process one, with nothing left to train
    # (--overwrite asked for the runs these jobs just trained).
    report = compare(settings.model_copy(update={"overwrite": False}))
    if report is not None:
        cluster.forget_jobs(settings.output_dir)
    return report
