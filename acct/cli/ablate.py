"""`acct ablate`: train baseline, contrastive-only and full on one split and compare them."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from acct.cli import flags
from acct.cli._common import (
    code_option,
    err,
    escape,
    handles_errors,
    import_code,
    out,
    pct,
    print_json,
)
from acct.cli.train import drain, render
from acct.errors import UsageError

if TYPE_CHECKING:
    from acct.config.commands import AblateSettings

# Ablate takes every training flag (same meaning as for `acct train`) but these: the strategy is
# what the study varies, --output-dir names the study's directory, and every arm starts from the
# base model (--init-from is for one run).
NOT_TRAINING_FLAGS = ("--strategy", "--output-dir", "--init-from")


class AblateCommand(flags.OptionsCommand):
    """`acct ablate`: the training flags but NOT_TRAINING_FLAGS, after the study's own options."""

    option_sets = (flags.TrainingFlags(exclude=NOT_TRAINING_FLAGS),)
    after = "plot"

EPILOG = (
    "Default arms: baseline (lambda_con = 0, curriculum.prior sampling: proportional to task size by default, "
    "i.e. plain multi-task fine-tuning), contrastive (lambda_con from the settings, 0.3 by default), full (same "
    "lambda_con, uncertainty_gradient curriculum). `acct list` shows every registered arm. Each run lives in "
    "DIR/<arm>-seed<k>/; starting the command again reuses finished runs and resumes interrupted ones. "
    "Training settings come from --preset, --config FILE.yaml (the same file as for acct train), ACCT_* variables "
    "and the flags; ablation settings from ACCT_* variables (ACCT_SEEDS, ACCT_SPLIT ...) and the flags."
)


# How acct.cli registers the command (typer.Typer.command's arguments).
REGISTER = {"epilog": EPILOG, "cls": AblateCommand}


@handles_errors
def ablate_command(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of training settings (as for acct train).", show_default=False),
    preset: Optional[str] = typer.Option(None, "--preset", help="tiny: offline CPU study on the synthetic suite; default: DeBERTa-v3-base on cais/mmlu."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="Directory of the study (default runs/ablation).", show_default=False),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Seeds per arm: --seed, --seed+1, ... (default 3). The seed is the replicate of the test across runs."),
    sweep: Optional[list[str]] = typer.Option(None, "--sweep", help="KEY=V1,V2,...: tune every arm over these values of a dotted training setting (repeatable; the grid is the product). Each arm trains at every point and seed, and its point with the best mean validation accuracy is compared on the test split.", show_default=False),
    from_predictions: bool = typer.Option(False, "--from-predictions", help="Recompute the report from the runs' saved predictions-<split>.jsonl without scoring again (trains nothing; every run must be finished and scored)."),
    split: Optional[str] = typer.Option(None, "--split", help="val or test (default test): held-out split to compare on."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="best or last (default best) checkpoint of each run."),
    arms: Optional[str] = typer.Option(None, "--arms", help="Comma-separated registered arms, run in this order (`acct list` names them; default baseline,contrastive,full). The first is the reference.", show_default=False),
    study: Optional[Path] = typer.Option(None, "--study", help="YAML study file: named arms as settings overrides on the base settings (see docs/examples/study.yaml); replaces --arms.", show_default=False),
    reference: Optional[str] = typer.Option(None, "--reference", help="The arm every other arm is compared with (default: the first arm).", show_default=False),
    configs: Optional[str] = typer.Option(None, "--configs", hidden=True, help="Older spelling: --configs X means --arms baseline,X."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Retrain every run even if a finished one is there."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout and nothing else (progress goes to stderr)."),
    allow_identical: bool = typer.Option(False, "--allow-identical", help="Run the study even if two arms would train identically (the report's notes say so)."),
    print_commands: bool = typer.Option(False, "--print-commands", help="Print one `acct train` command per (arm, seed) left to train or resume, with its run directory, for a job array, and exit (finished runs are reused)."),
    launcher: Optional[str] = typer.Option(None, "--launcher", help="With --print-commands: torchrun prefixes every command with torchrun.", show_default=False),
    nproc_per_node: Optional[int] = typer.Option(None, "--nproc-per-node", help="With --launcher torchrun, or --submit: processes per node (each job starts torchrun).", show_default=False),
    submit: Optional[str] = typer.Option(None, "--submit", help="slurm or local: one submitit job per run that is not finished (logs in DIR/jobs/), wait for them, then compare; needs the cluster extra.", show_default=False),
    no_wait: bool = typer.Option(False, "--no-wait", help="With --submit: submit, record the jobs in DIR/jobs/jobs.json and exit; the same command without --no-wait waits for them and compares."),
    slurm_partition: Optional[str] = typer.Option(None, "--slurm-partition", help="With --submit slurm: the partition.", show_default=False),
    slurm_time: Optional[int] = typer.Option(None, "--slurm-time", help="With --submit slurm: wall-clock limit of each job in minutes (default 1440).", show_default=False),
    slurm_gpus_per_node: Optional[int] = typer.Option(None, "--slurm-gpus-per-node", help="With --submit slurm: GPUs per job (default: --nproc-per-node).", show_default=False),
    slurm_cpus_per_task: Optional[int] = typer.Option(None, "--slurm-cpus-per-task", help="With --submit slurm: CPU cores per job.", show_default=False),
    slurm_array_parallelism: Optional[int] = typer.Option(None, "--slurm-array-parallelism", help="With --submit slurm: jobs of the array running at once (default: all).", show_default=False),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the study's figures (PNG) into this directory; needs the plot extra.", show_default=False),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow a hub model or tokenizer to run its own code (off by default)."
    ),
    code: Optional[list[Path]] = code_option(),
) -> None:
    """Train the arms of a study on one split and compare them on the same held-out questions.

    By default the method's three arms: baseline (plain multi-task fine-tuning), contrastive (the
    entropy-weighted InfoNCE added) and full (InfoNCE plus the confusion curriculum). --arms picks
    other registered arms; --study FILE.yaml declares your own as settings overrides.
    """
    command = command_line(ctx)
    base = _base_settings(ctx, preset, config, code, trust_remote_code)
    settings = _study_settings(
        arms=arms, configs=configs, study=study, output_dir=output_dir, seeds=seeds, split=split, checkpoint=checkpoint,
        reference=reference, from_predictions=from_predictions, sweep=sweep, overwrite=overwrite,
        allow_identical=allow_identical, plot=plot)
    submit_options = _launch_options(
        print_commands, launcher, nproc_per_node, submit=submit, no_wait=no_wait, partition=slurm_partition,
        time_min=slurm_time, gpus_per_node=slurm_gpus_per_node, cpus_per_task=slurm_cpus_per_task,
        array_parallelism=slurm_array_parallelism)
    if plot is not None and not print_commands:
        _check_plot_dir(plot)
    if print_commands:
        _print_commands(settings, base, launcher, nproc_per_node)
        return
    report = (run(settings, base, command) if submit_options is None
              else _submit(settings, base, submit_options, command, as_json))
    if report is not None:  # None: a torchrun rank other than 0 (rank 0 reports), or jobs submitted with --no-wait
        _render(report, settings, as_json)


def _base_settings(ctx: typer.Context, preset: str | None, config: Path | None, code: list[Path] | None,
                   trust_remote_code: bool) -> Any:
    """The training settings every arm starts from: preset, config file, ACCT_* variables and the training flags."""
    from acct.config.layers import nest
    from acct.config.resolve import resolve_train

    flat = flags.overrides(ctx)
    refs = import_code(code)
    if refs:
        flat["plugins"] = refs
    if trust_remote_code:
        flat["model.trust_remote_code"] = True
    return resolve_train(nest(flat), preset=preset, config_file=config)


def _study_settings(
    *, arms: str | None, configs: str | None, study: Path | None, output_dir: Path | None, seeds: int | None,
    split: str | None, checkpoint: str | None, reference: str | None, from_predictions: bool,
    sweep: list[str] | None, overwrite: bool, allow_identical: bool, plot: Path | None,
) -> AblateSettings:
    """The study's own settings: its flags over ACCT_* variables. --arms, --configs and --study exclude each other."""
    from acct.config.commands import AblateSettings
    from acct.config.resolve import resolve_flags

    chosen = None if arms is None else [a.strip() for a in arms.split(",") if a.strip()]
    if configs is not None:
        if arms is not None or study is not None:
            raise UsageError("--configs is the older spelling of --arms; give one of --arms, --study")
        chosen = list(dict.fromkeys(["baseline", *(c.strip() for c in configs.split(",") if c.strip())]))
    if study is not None and arms is not None:
        raise UsageError("--study declares the arms; drop --arms (or name the arms in the study file)")
    settings: AblateSettings = resolve_flags(AblateSettings, {
        "output_dir": output_dir, "seeds": seeds, "split": split, "checkpoint": checkpoint, "arms": chosen,
        "study": study, "reference": reference, "from_predictions": True if from_predictions else None,
        "sweep": sweeps(sweep),
        "overwrite": True if overwrite else None, "allow_identical": True if allow_identical else None,
        "plot_dir": plot,
    })
    return settings


def _launch_options(
    print_commands: bool, launcher: str | None, nproc_per_node: int | None, *, submit: str | None, no_wait: bool,
    partition: str | None, time_min: int | None, gpus_per_node: int | None, cpus_per_task: int | None,
    array_parallelism: int | None,
) -> Any:
    """Check the launch flags (--print-commands with --launcher, or --submit with its --slurm-* options).

    Returns the submitit options of --submit, or None when the runs are trained here or printed.
    """
    if launcher is not None and launcher != "torchrun":
        raise UsageError(f"--launcher {launcher}: the one launcher acct knows is torchrun")
    submit_options = None
    if submit is not None or no_wait or any(v is not None for v in (partition, time_min, gpus_per_node,
                                                                    cpus_per_task, array_parallelism)):
        from acct.study.cluster import submit_settings

        if submit is None:
            raise UsageError("--no-wait and the --slurm-* options go with --submit slurm|local")
        if print_commands or launcher is not None:
            raise UsageError("--submit runs the jobs itself; drop --print-commands and --launcher")
        submit_options = submit_settings(
            executor=submit, wait=not no_wait, partition=partition, time_min=time_min,
            gpus_per_node=gpus_per_node, cpus_per_task=cpus_per_task,
            array_parallelism=array_parallelism, nproc_per_node=nproc_per_node)
    if (launcher or nproc_per_node is not None) and not print_commands and submit_options is None:
        raise UsageError("--launcher and --nproc-per-node go with --print-commands (--nproc-per-node also with --submit)")
    if nproc_per_node is not None and submit_options is None and (launcher is None or nproc_per_node < 1):
        raise UsageError("--nproc-per-node needs --launcher torchrun and a count of at least 1")
    return submit_options


def _check_plot_dir(plot: Path) -> None:
    """--plot needs matplotlib and a directory: said before hours of training, not after."""
    from acct.study.plots import require_pyplot

    require_pyplot()
    if plot.exists() and not plot.is_dir():
        raise UsageError(f"--plot {plot} is a file; give a directory for the figures")


def _print_commands(settings: AblateSettings, base: Any, launcher: str | None, nproc_per_node: int | None) -> None:
    """One `acct train` command per run to train or resume, for a job array; finished runs are reused."""
    from acct.study import plan as study_plan

    runs = study_plan.plan(settings, base)
    todo = [r for r in runs if r.action != "reuse"]
    for line in study_plan.train_commands(todo, settings.output_dir, launcher=launcher,
                                          nproc_per_node=nproc_per_node or 1):
        typer.echo(line)
    if len(todo) < len(runs):
        err.print(f"{len(runs) - len(todo)} of {len(runs)} runs are finished and reused: no command for them",
                  highlight=False)


def _submit(settings: AblateSettings, base: Any, options: Any, command: str, as_json: bool) -> Any:
    """Train the unfinished runs as submitit jobs, then compare them here (None with --no-wait)."""
    from acct.cli.ablate_submit import submit_study

    return submit_study(settings, base, options, lambda s: run(s, base, command), command=command, as_json=as_json)


def _render(report: Any, settings: AblateSettings, as_json: bool) -> None:
    """The report on stdout: one JSON object, or the tables, the notes and where the reports were written."""
    if as_json:
        print_json(report.to_dict())
    else:
        for table in tables(report, settings.top_tasks):
            out.print(table)
        for note in report.notes:
            out.print(f"[dim]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
        out.print(f"[dim]written to {escape(settings.output_dir / 'ablation.json')} and "
                  f"{escape(settings.output_dir / 'ablation.md')}[/]", highlight=False, soft_wrap=True)


def sweeps(flags: list[str] | None) -> dict[str, list[Any]] | None:
    """--sweep KEY=V1,V2 flags as one sweep; a key given twice is refused."""
    if not flags:
        return None
    from acct.study import sweep as sweep_grid

    out: dict[str, list[Any]] = {}
    for text in flags:
        key, values = sweep_grid.parse_flag(text)
        if key in out:
            raise UsageError(f"--sweep {key} is given twice; list all its values in one flag")
        out[key] = values
    return sweep_grid.check(out, "--sweep")


def command_line(ctx: typer.Context) -> str:
    """The command as the user could type it again: `acct ablate` with every flag that was given."""
    import shlex

    words = ["acct", "ablate"]
    for param in ctx.command.get_params(ctx):
        value = ctx.params.get(param.name)
        if param.param_type_name != "option" or value is None or value is False and not param.secondary_opts:
            continue
        source = ctx.get_parameter_source(param.name)
        if source is not None and source.name == "DEFAULT":
            continue
        if isinstance(value, bool):
            words.append(param.opts[0] if value else param.secondary_opts[0])
        elif isinstance(value, (list, tuple)):  # a repeatable flag (--report-to)
            for item in value:
                words += [param.opts[0], str(item)]
        else:
            words += [param.opts[0], str(value)]
    return shlex.join(words)


def run(settings: AblateSettings, base: Any, command: str | None = None) -> Any:
    """Train what is missing with the inner progress display, then compare; exit 130 when interrupted.

    Under torchrun every rank trains each run together; rank 0 draws the progress and, once the
    process group is gone, compares the runs alone. The other ranks return None.
    """
    from acct.study import plan as study_plan
    from acct.train import distributed

    runs = study_plan.plan(settings, base)
    unfinished = [r for r in runs if r.action != "reuse"]
    if settings.from_predictions and unfinished:
        raise UsageError(f"--from-predictions trains nothing, but {len(unfinished)} run(s) are not finished "
                         f"({', '.join(r.run_dir.name for r in unfinished[:4])}); run without it first")
    rank = distributed.launched()[0]
    stop = {"requested": False}

    def request_stop(signum: int, frame: Any) -> None:
        stop["requested"] = True

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with distributed.session():
            for i, r in enumerate(runs, start=1):
                title = f"ablate {i}/{len(runs)}: [bold]{r.config}[/] seed {r.seed} — "
                if r.action == "reuse":
                    list(study_plan.train_run(r))  # writes the done marker of a run a printed command trained
                    step = (r.finished or {}).get("step")
                    if rank == 0:
                        err.rule(title + f"finished run reused (step {step})", style="dim")
                    continue
                if rank == 0:
                    err.rule(title + ("resuming" if r.action == "resume" else "training"))
                events = study_plan.train_run(r, should_stop=lambda: stop["requested"])
                finished = render(events, next_hint=False) if rank == 0 else drain(events)
                if finished is None or finished.reason == "interrupted" or stop["requested"]:
                    if rank == 0:
                        err.print(f"[yellow]interrupted during {r.config} seed {r.seed}; finished runs are kept.[/] "
                                  "Run the same acct ablate command again to continue.")
                    raise typer.Exit(130)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if rank != 0:
        return None

    from acct.study import compare as ablation_compare

    if settings.from_predictions:
        err.rule(f"re-analysing the saved {settings.split} predictions of {len(runs)} runs")
    else:
        err.rule(f"evaluating {len(runs)} runs on the {settings.split} split")
    report = ablation_compare.compare(
        settings, runs, device=base.device, precision=base.precision, command=command,
        on_scored=lambda r: err.print(f"[dim]scored {escape(r.run_dir)}[/]", highlight=False, soft_wrap=True))
    ablation_compare.finish_report(report, settings)
    return report


def tables(report: Any, top: int) -> list[Any]:
    """The study as rich tables: accuracy per arm, each arm against the reference, what each arm did,
    the tuning grid (with --sweep) and each arm's largest per-task changes."""
    out_tables = [_accuracy_table(report), _tests_table(report), _effective_table(report)]
    if getattr(report, "tuning", None) is not None:
        out_tables.append(_tuning_table(report))
    for name, d in report.deltas.items():
        out_tables.append(_per_task_table(report, name, d, top))
    return out_tables


def _arm_label(name: str, c: dict[str, Any]) -> str:
    """An arm's name, with its selected sweep point and a warning when it trained like another arm."""
    label = name
    if c.get("selected"):
        label += f" at {escape(', '.join(f'{k}={v}' for k, v in c['selected'].items()))}"
    label += (f" [yellow]⚠ identical to {', '.join(c['effective']['identical_to'])}[/]"
              if c["effective"]["identical_to"] else "")
    return label


def _accuracy_table(report: Any) -> Any:
    """Accuracy per arm: mean ± sd over seeds, the seed-level interval, macro accuracy and each category."""
    from rich.table import Table

    from acct.study.report import seed_cells

    n_seeds = len(report.seeds)
    cats = sorted(set().union(*(c["categories"] for c in report.configs.values())))
    n = ", ".join(f"{v}" for v in report.n_per_seed.values())
    main = Table(
        title=f"accuracy on the {report.split} split ({n} questions{' per seed' if n_seeds > 1 else ''}, "
              f"{report.checkpoint} checkpoints): mean ± sd over seeds {report.seeds}, 95% t interval over seeds",
        show_header=True, header_style="bold",
    )
    for col in ["arm", "accuracy", "95% CI", "macro", *cats]:
        main.add_column(col, justify="left" if col == "arm" else "right")
    cells = seed_cells(report)
    for name, c in report.configs.items():
        main.add_row(_arm_label(name, c), cells[name]["accuracy"], cells[name]["ci"], cells[name]["macro"],
                     *(pct(c["categories"].get(x)) for x in cats))
    return main


def _tests_table(report: Any) -> Any:
    """Each arm against the reference: the seed-level test, Holm p, heterogeneity, per-seed McNemar and power."""
    from rich.table import Table

    from acct.study.report import delta_cells

    ref = report.reference
    test = next((d["test"] for d in report.deltas.values()), "")
    tests = Table(
        title=f"each arm vs {ref}: mean of the per-seed paired Δ, 95% CI and p from a {test}; Holm p across "
              f"{len(report.deltas)} comparisons; per seed: Δ (McNemar p, conditional on that seed's models); "
              "MDE at 80% power over the seeds run",
        show_header=True, header_style="bold",
    )
    for col in ["arm", "Δ (pts)", "95% CI", "p", "Holm p", "Δm %", "τ, I²", "per seed", "MDE (pts)", "seeds 1/2/5 pts"]:
        tests.add_column(col, justify="left" if col in ("arm", "per seed") else "right")
    for name, c in report.configs.items():
        if name not in report.deltas:
            continue
        d = report.deltas[name]
        x = delta_cells(d)
        significant = d.get("holm_p") is not None and d["holm_p"] < 0.05
        style = None if not significant else "green" if d["accuracy"] > 0 else "red"
        delta = f"[{style}]{x['delta']}[/]" if style else x["delta"]
        tests.add_row(_arm_label(name, c), delta, x["ci"], x["p"], x["holm"], x["delta_m"], x["heterogeneity"],
                      x["per_seed"], x["mde"], x["seeds_needed"])
    return tests


def _effective_table(report: Any) -> Any:
    """What each arm did in training, and the settings in which it differs from the reference."""
    from rich.table import Table

    from acct.study.report import describe_effective

    ref = report.reference
    did = Table(title="what each arm did", show_header=True, header_style="bold")
    for col in ["arm", "steps", "curriculum", "first change (step)", "task weights", "loss", f"differs from {ref}"]:
        did.add_column(col, no_wrap=col == "curriculum", overflow="fold")
    for name, c in report.configs.items():
        e = describe_effective(c["effective"])
        diff = c.get("differs_from_reference") or {}
        differs = "(reference)" if name == ref else ", ".join(f"{k}={v[1]}" for k, v in diff.items()) or "nothing"
        did.add_row(name, e["steps"], c["effective"]["curriculum"], e["change"], e["weights"], e["loss"], escape(differs))
    return did


def _tuning_table(report: Any) -> Any:
    """With --sweep: every point of each arm's grid on validation, the selected one marked *."""
    from rich.table import Table

    from acct.study.report import point_text

    tuned = Table(title="tuning on validation: every point of each arm's grid, mean validation accuracy over "
                        "seeds; the selected point (*) is the one compared above",
                  show_header=True, header_style="bold")
    for col in ["arm", "point", "validation (mean)", "per seed"]:
        tuned.add_column(col, justify="right" if col == "validation (mean)" else "left")
    for arm, rows in report.tuning.validation.items():
        for row in rows:
            mark = " *" if row["selected"] else ""
            tuned.add_row(arm, escape(point_text(row["point"])) + mark, pct(row["mean"]),
                          ", ".join(f"{s}: {pct(v)}" for s, v in row["seeds"].items()))
    return tuned


def _per_task_table(report: Any, name: str, d: dict[str, Any], top: int) -> Any:
    """An arm's `top` largest per-task gains and losses against the reference, with their q."""
    from rich.table import Table

    from acct.study.report import top_task_deltas

    def signed(x: float) -> str:
        return f"{100 * x:+.2f}"

    ref = report.reference
    gains, losses = top_task_deltas(d, top)
    level = next((v["test"] for v in d["per_task"].values()), "")
    t = Table(title=f"{name} vs {ref}: largest per-task changes (exploratory; q: Benjamini-Hochberg over {level})",
              show_header=True, header_style="bold")
    t.add_column("task")
    t.add_column("Δ (pts)", justify="right")
    t.add_column(ref, justify="right")
    t.add_column(name, justify="right")
    t.add_column("q", justify="right")
    for task, v in gains + losses:
        q = d["per_task"].get(task, {}).get("q")
        t.add_row(task, f"[{'green' if v > 0 else 'red'}]{signed(v)}[/]",
                  pct(report.configs[ref]["tasks"][task]), pct(report.configs[name]["tasks"][task]),
                  "-" if q is None else f"{q:.2g}")
    if not gains and not losses:
        t.add_row("(no task changed)", "", "", "", "")
    return t
