"""`acct ablate`: train baseline, contrastive-only and full on one split and compare them."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Optional

import typer

from acct.cli._common import code_option, err, escape, handles_errors, import_code, out, print_json
from acct.cli.train import FLAGS as TRAIN_FLAGS
from acct.cli.train import settings_option as _opt
from acct.config import AblateSettings, resolve_flags
from acct.config import nest, resolve_train

# Training overrides ablate accepts (same meaning as for `acct train`); the strategy and
# lambda_con are what the study varies, and --output-dir names the study's directory.
TRAIN_OVERRIDES = [flag for flag in TRAIN_FLAGS if flag not in ("--strategy", "--output-dir")]

EPILOG = (
    "Configurations: baseline (lambda_con = 0, uniform sampling), contrastive (lambda_con from the settings, 0.3 by "
    "default, uniform), full (same lambda_con, uncertainty_gradient curriculum). Each run lives in "
    "DIR/<config>-seed<k>/; starting the command again reuses finished runs and resumes interrupted ones. "
    "Training settings come from --preset, --config FILE.yaml (the same file as for acct train), ACCT_* variables "
    "and the flags; ablation settings from ACCT_* variables (ACCT_SEEDS, ACCT_SPLIT ...) and the flags."
)


@handles_errors
def ablate_command(
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of training settings (as for acct train).", show_default=False),
    preset: Optional[str] = typer.Option(None, "--preset", help="tiny: offline CPU study on the synthetic suite; default: DeBERTa-v3-base on cais/mmlu."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="Directory of the study (default runs/ablation).", show_default=False),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Seeds per configuration: --seed, --seed+1, ... (default 1)."),
    split: Optional[str] = typer.Option(None, "--split", help="val or test (default test): held-out split to compare on."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="best or last (default best) checkpoint of each run."),
    configs: Optional[str] = typer.Option(None, "--configs", help="Comma-separated ablation arms: baseline, contrastive, full or a plugin's (baseline is always run)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Retrain every run even if a finished one is there."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout and nothing else (progress goes to stderr)."),
    model: Optional[str] = _opt("--model"),
    tokenizer: Optional[str] = _opt("--tokenizer"),
    data_source: Optional[str] = _opt("--data-source"),
    data_dir: Optional[Path] = _opt("--data-dir"),
    protocol: Optional[str] = _opt("--protocol"),
    allow_overlap: Optional[bool] = _opt("--allow-overlap"),
    max_steps: Optional[int] = _opt("--max-steps"),
    epochs: Optional[float] = _opt("--epochs"),
    lr: Optional[float] = _opt("--lr"),
    batch_size: Optional[int] = _opt("--batch-size"),
    grad_accum_steps: Optional[int] = _opt("--grad-accum-steps"),
    tasks_per_batch: Optional[int] = _opt("--tasks-per-batch"),
    examples_per_task: Optional[int] = _opt("--examples-per-task"),
    group_by_length: Optional[bool] = _opt("--group-by-length", "--no-group-by-length"),
    max_length: Optional[int] = _opt("--max-length"),
    lambda_contrastive: Optional[float] = _opt("--lambda-contrastive"),
    gather_negatives: Optional[bool] = _opt("--gather-negatives"),
    seed: Optional[int] = _opt("--seed"),
    device: Optional[str] = _opt("--device"),
    precision: Optional[str] = _opt("--precision"),
    eval_every_n_steps: Optional[int] = _opt("--eval-every-n-steps"),
    patience: Optional[int] = _opt("--patience"),
    save_every_n_steps: Optional[int] = _opt("--save-every-n-steps"),
    deterministic: Optional[bool] = _opt("--deterministic"),
    tf32: Optional[bool] = _opt("--tf32", "--no-tf32"),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow a hub model or tokenizer to run its own code (off by default)."
    ),
    code: Optional[list[Path]] = code_option(),
) -> None:
    """Run the ablation study (baseline vs contrastive-only vs full) and compare on the same examples."""
    values = locals()
    flat = {TRAIN_FLAGS[flag]: values[flag[2:].replace("-", "_")] for flag in TRAIN_OVERRIDES}
    refs = import_code(code)
    if refs:
        flat["plugins"] = refs
    if trust_remote_code:
        flat["model.trust_remote_code"] = True
    base = resolve_train(nest(flat), preset=preset, config_file=config)
    chosen = None if configs is None else [c.strip() for c in configs.split(",") if c.strip()]
    settings: AblateSettings = resolve_flags(AblateSettings, {
        "output_dir": output_dir, "seeds": seeds, "split": split, "checkpoint": checkpoint, "configs": chosen,
        "overwrite": True if overwrite else None,
    })
    report = run(settings, base)
    if report is None:  # a torchrun rank other than 0: rank 0 reports
        return
    if as_json:
        print_json(report.to_dict())
    else:
        for table in tables(report, settings.top_tasks):
            out.print(table)
        out.print(f"[dim]written to {escape(settings.output_dir / 'ablation.json')} and "
                  f"{escape(settings.output_dir / 'ablation.md')}[/]", highlight=False, soft_wrap=True)


def run(settings: AblateSettings, base: Any) -> Any:
    """Train what is missing with the inner progress display, then compare; exit 130 when interrupted.

    Under torchrun every rank trains each run together; rank 0 draws the progress and, once the
    process group is gone, compares the runs alone. The other ranks return None.
    """
    from acct import ablation, distributed
    from acct.cli.train import drain, render

    runs = ablation.plan(settings, base)
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
                    step = (r.finished or {}).get("step")
                    if rank == 0:
                        err.rule(title + f"finished run reused (step {step})", style="dim")
                    continue
                if rank == 0:
                    err.rule(title + ("resuming" if r.action == "resume" else "training"))
                events = ablation.train_run(r, should_stop=lambda: stop["requested"])
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

    err.rule(f"evaluating {len(runs)} runs on the {settings.split} split")
    report = ablation.compare(settings, runs, device=base.device, precision=base.precision,
                              on_scored=lambda r: err.print(f"[dim]scored {escape(r.run_dir)}[/]", highlight=False, soft_wrap=True))
    ablation.write_reports(report, settings.output_dir, settings.top_tasks)
    return report


def tables(report: Any, top: int) -> list[Any]:
    from rich.table import Table

    from acct.ablation import top_task_deltas
    from acct.cli._common import pct

    def signed(x: float) -> str:
        return f"{100 * x:+.2f}"

    multi = len(report.seeds) > 1
    cats = sorted(set().union(*(c["categories"] for c in report.configs.values())))
    n = ", ".join(f"{v}" for v in report.n_per_seed.values())
    main = Table(
        title=f"ablation on the {report.split} split ({n} questions{' per seed' if multi else ''}, "
              f"{report.checkpoint} checkpoints{', mean ± sd over seeds ' + str(report.seeds) if multi else ''})",
        show_header=True, header_style="bold",
    )
    for col in ["config", "accuracy", "macro", *cats, "Δ (pts)", "95% CI", "McNemar p"]:
        main.add_column(col, justify="left" if col == "config" else "right")
    for name, c in report.configs.items():
        acc = pct(c["accuracy"])
        macro = pct(c["macro_accuracy"])
        if multi and c["sd"] is not None:
            acc += f" ± {100 * c['sd']['accuracy']:.2f}"
            macro += f" ± {100 * c['sd']['macro_accuracy']:.2f}"
        if name in report.deltas:
            d = report.deltas[name]
            style = "green" if d["ci_low"] > 0 else "red" if d["ci_high"] < 0 else None
            delta = signed(d["accuracy"])
            if multi and d["sd"] is not None:
                delta += f" ± {100 * d['sd']:.2f}"
            delta = f"[{style}]{delta}[/]" if style else delta
            ci = f"[{signed(d['ci_low'])}, {signed(d['ci_high'])}]"
            p = f"{d['mcnemar_p']:.3g}"
        else:
            delta, ci, p = "reference", "", ""
        main.add_row(name, acc, macro, *(pct(c["categories"].get(x)) for x in cats), delta, ci, p)
    out_tables = [main]
    for name, d in report.deltas.items():
        gains, losses = top_task_deltas(d, top)
        t = Table(title=f"{name} vs baseline: largest per-task changes", show_header=True, header_style="bold")
        t.add_column("task")
        t.add_column("Δ (pts)", justify="right")
        t.add_column("baseline", justify="right")
        t.add_column(name, justify="right")
        for task, v in gains + losses:
            t.add_row(task, f"[{'green' if v > 0 else 'red'}]{signed(v)}[/]",
                      pct(report.configs["baseline"]["tasks"][task]), pct(report.configs[name]["tasks"][task]))
        if not gains and not losses:
            t.add_row("(no task changed)", "", "", "")
        out_tables.append(t)
    return out_tables
