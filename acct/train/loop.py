"""The training loop: `train` takes the run directory and yields events; `fit` runs setup, then
steps, logs, validates and saves until the budget, early stopping or a stop request ends it.

Under torchrun (see acct/train/distributed.py and docs/scaling.md) the same loop runs on every
rank: all ranks draw the same global batch and each keeps the rows `rank::world_size`; the model
is wrapped in DistributedDataParallel; the curriculum observes the gathered global batch and its
windows are all-reduced before every update, so the task weights are identical on every rank;
rank 0 alone writes the run directory while the others wait for it. Checkpoints carry every
rank's RNG state and unlogged metrics window (gathered to rank 0), so a resume with the same
number of processes is exact; with another number, ranks > 0 are re-seeded from (seed, rank, step).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from acct import offline, plugins, tracking
from acct.config.train import TrainSettings
from acct.data.tokenize import Batch, collate
from acct.errors import AcctError
from acct.run import checkpoint as ckpt_io
from acct.run.rundir import RunWriter, check_resumable, fingerprint, load_run_settings
from acct.scoring.metrics import EvalResult, summarize
from acct.scoring.score import predict_encoded, shard
from acct.train import distributed
from acct.train.device import resolve_device
from acct.train.events import (
    CheckpointSaved,
    CurriculumUpdated,
    Event,
    Finished,
    ModelLoaded,
    RunStarted,
    StepLogged,
    Validated,
)
from acct.train.setup import Run, check_batch_splits, setup
from acct.train.state import TrainState, checkpoint_state
from acct.train.step import train_step


def train(settings: TrainSettings, *, should_stop: Callable[[], bool] = lambda: False) -> Iterator[Event]:
    """Train one configuration, yielding events; `should_stop` lets a signal end it cleanly.

    Under torchrun every rank runs this generator; it joins the process group on first use
    (the caller tears it down: see `distributed.session`). Every rank yields the same events,
    only rank 0 writes files, and `should_stop` on any rank stops all of them at the same step.
    Rank 0 holds the run directory's lock from start to end (see RunWriter), and passes every
    event to the run's trackers (report_to, see acct/tracking.py) before yielding it; they are
    closed when the generator ends, however it ends.
    """
    run_dir = settings.run_dir()
    trust = settings.model.trust_remote_code
    if settings.resume:
        check_resumable(settings)  # read-only: there must be a 'last' checkpoint
    device, precision = resolve_device(settings.device, settings.precision)
    if not settings.resume:
        # Before joining a process group or touching the run directory (a resume checks its saved batch below).
        check_batch_splits(settings, distributed.launched()[1])
    dist = distributed.init(device)
    if dist.enabled:
        device = dist.device
    writer = RunWriter(settings)
    dist.on_main(writer.begin)
    ok = False
    trackers = None
    try:
        if settings.resume:
            # A resumed run continues with the settings it was started with, whatever the caller
            # built (read under the lock), except trust, which only the caller can give.
            saved = load_run_settings(run_dir)
            settings = saved.model_copy(update={
                "resume": True, "output_dir": run_dir, "model": saved.model.model_copy(update={"trust_remote_code": trust}),
            })
            # Its plugins come from the run's own copies, imported only once their sha256 matches.
            plugins.import_run_code(run_dir, settings.plugins)
        # Rank 0 reports to the run's trackers (report_to): each event before the caller sees it.
        # Every rank checks that they are installed, before setup, so that all of them stop together.
        trackers = tracking.RunTrackers(settings, enabled=dist.is_main)
        for event in fit(settings, writer, dist, device, precision, should_stop):
            trackers.observe(event)
            yield event
        ok = True
    except GeneratorExit:
        if trackers is not None:
            trackers.status = "interrupted"  # the caller stopped reading events
        raise
    finally:
        try:
            if trackers is not None:
                trackers.close(raise_errors=ok)
        finally:
            if dist.is_main:
                writer.end(ok)


def fit(
    settings: TrainSettings, writer: RunWriter, dist: distributed.Distributed, device: torch.device, precision: str,
    should_stop: Callable[[], bool],
) -> Iterator[Event]:
    # Offline, every hub piece the run needs is looked for before any is loaded: one error names them all.
    offline.check_cached(settings)
    run, state = setup(settings, writer, dist, device, precision)
    settings, schedule, window = run.settings, run.schedule, state.window
    yield run_started(run, state)
    yield model_loaded(run)
    window.start, window.paused = time.perf_counter(), 0.0
    reason = "completed"
    while state.step < schedule.total_steps:
        batches = draw_batches(run, state)
        step_sums, found_inf = train_step(
            run.train_model, batches, settings, run.parts.opt, device=device, precision=precision, dist=dist,
            # Rank 0 observes the whole global batch; the others add zeros to the all-reduce.
            observe=run.parts.curriculum.observe if dist.is_main else None,
            weightings=run.parts.weightings,
        )
        window.add_step(step_sums, found_inf)
        state.step += 1
        step = state.step

        updated = update_curriculum(run, state)
        if updated is not None:
            yield updated

        if step % settings.log_every_n_steps == 0 or step == schedule.total_steps:
            yield log_window(run, state)
            check_finite(run, state)
            window.restart(time.perf_counter())

        # A signal may reach one rank only (or reach them a step apart): agree, so that all ranks
        # save the same step and none is left waiting in a collective.
        stop_now = dist.any(should_stop()) if dist.enabled else should_stop()
        pause_start = time.perf_counter()
        if step % schedule.eval_every == 0 or step == schedule.total_steps:
            result = validate(run)
            improved = state.validated(result.accuracy)
            # What the task weighting reports (the uncertainty weighting's log-variances), by task.
            weighting = run.parts.weightings.logged(run.tasks)
            run.log.write("validation", step=step, **result.to_dict(), **({"task_weighting": weighting} if weighting else {}))
            yield Validated(step, step / schedule.steps_per_epoch, result, improved, state.best_accuracy, weighting)
            yield save(run, state, ["last", "best"] if improved else ["last"], result.accuracy)
            # Every rank saw the same predictions, so every rank takes the same decision.
            if state.bad_evals >= settings.patience:
                reason = "early_stopping"
                break
        elif stop_now or (settings.save_every_n_steps and step % settings.save_every_n_steps == 0):
            yield save(run, state, ["last"], None)
        window.paused += time.perf_counter() - pause_start
        if stop_now:
            reason = "interrupted"
            break

    trace_finished(run, state, reason)
    yield Finished(step=state.step, reason=reason, best_accuracy=state.best_accuracy, best_step=state.best_step,
                   run_dir=settings.run_dir())


def trace_finished(run: Run, state: TrainState, reason: str) -> None:
    """With ACCT_DEBUG_RANK_DIR set, each rank records how it ended: its weights' and RNG's digests."""
    if run.trace.enabled:
        rng = hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()
        run.trace.write("finished", step=state.step, reason=reason, parameters=distributed.parameter_digest(run.model), rng=rng,
                        task_weighting=[p.detach().cpu().tolist() for p in run.parts.weightings.parameters()])


def run_started(run: Run, state: TrainState) -> RunStarted:
    return RunStarted(
        run_dir=run.settings.run_dir(),
        device=str(run.device),
        precision=run.precision,
        tasks=run.tasks,
        num_train=len(run.data.split.train),
        num_val=len(run.data.split.val),
        total_steps=run.schedule.total_steps,
        steps_per_epoch=run.schedule.steps_per_epoch,
        start_step=state.step,
        notices=run.notices,
        world_size=run.dist.world_size,
    )


def model_loaded(run: Run) -> ModelLoaded:
    """What the run loaded: the encoder and tokenizer it names (or a resume's checkpoint), their classes and sizes."""
    model_settings = run.settings.model
    if run.data.resume_ckpt is not None:
        encoder = str(run.data.resume_ckpt / "encoder")
    elif run.settings.init_from is not None and not run.settings.resume:
        encoder = f"{run.settings.init_from} (--init-from)"
    else:
        encoder = model_settings.name_or_path
    # A loaded tokenizer knows where it came from; the tiny preset's is trained here and knows nothing.
    tokenizer = getattr(run.tokenizer, "name_or_path", "") or model_settings.tokenizer or model_settings.name_or_path
    return ModelLoaded(
        encoder=encoder,
        encoder_class=type(run.model.encoder).__name__,
        parameters=sum(p.numel() for p in run.model.encoder.parameters()),
        tokenizer=str(tokenizer),
        tokenizer_class=type(run.tokenizer).__name__,
        vocab_size=len(run.tokenizer),
    )


def draw_batches(run: Run, state: TrainState) -> list[Batch]:
    """The micro-batches of the next optimizer step, on the device, counted into `state`."""
    dist, micro_steps = run.dist, run.settings.batch.grad_accum_steps
    batches = []
    for micro in range(micro_steps):
        # Every rank draws the same global batch (same weights, same (seed, step) draw, same
        # sampler state) and keeps its own rows of it.
        drawn = run.parts.sampler.batch(state.step * micro_steps + micro, run.parts.curriculum.weights)
        for index in drawn:
            state.sampled[run.train_enc.task_ids[index]] += 1
        indices = drawn[dist.rank :: dist.world_size]
        batch = collate(run.train_enc, indices, run.pad_id)
        state.window.questions += batch.num_questions
        state.window.tokens += batch.num_tokens
        # Pinned host memory lets the non-blocking copy overlap with the GPU's work.
        batches.append((batch.pin_memory() if run.device.type == "cuda" else batch).to(run.device))
    return batches


def update_curriculum(run: Run, state: TrainState) -> CurriculumUpdated | None:
    """The curriculum's hook after a step; the event of an update (weights and questions drawn since the last)."""
    step = state.step
    weights = run.parts.curriculum.step(step, all_reduce=run.dist.all_reduce_sum if run.dist.enabled else None)
    if weights is None:
        return None
    run.trace.write("curriculum", step=step, weights=weights.tolist())
    named = {t: float(w) for t, w in zip(run.tasks, weights.tolist())}
    drawn_per_task = dict(zip(run.tasks, state.take_sampled()))
    run.log.write("curriculum", step=step, weights=named, sampled=drawn_per_task)
    return CurriculumUpdated(step, named, drawn_per_task)


def log_window(run: Run, state: TrainState) -> StepLogged:
    """The metrics of the window since the last log line, written to metrics.jsonl."""
    settings, dist, window, step = run.settings, run.dist, state.window, state.step
    n = settings.log_every_n_steps if step % settings.log_every_n_steps == 0 else step % settings.log_every_n_steps
    if dist.enabled:
        # The only cross-rank averaging of metrics, at log time: mean over ranks of each
        # rank's mean (equal shares), and throughput summed over ranks.
        totals = dist.all_reduce_(window.sums.clone())
        values = (totals / (n * dist.world_size)).tolist()
        counts = dist.all_gather_object((window.questions, window.tokens))
        questions, tokens = sum(c[0] for c in counts), sum(c[1] for c in counts)
    else:
        values = (window.sums / n).tolist()
        questions, tokens = window.questions, window.tokens
    elapsed = max(time.perf_counter() - window.start - window.paused, 1e-9)
    event = StepLogged(
        step=step,
        total_steps=run.schedule.total_steps,
        epoch=step / run.schedule.steps_per_epoch,
        loss=values[0],
        cls_loss=values[1],
        contrastive_loss=values[2],
        accuracy=values[3],
        lr=run.parts.opt.scheduler.get_last_lr()[0],
        questions_per_s=questions / elapsed,
        tokens_per_s=tokens / elapsed,
        skipped_steps=int(window.skipped.item()),
    )
    run.log.write("train", **event.__dict__)
    return event


def check_finite(run: Run, state: TrainState) -> None:
    """Stop a run whose last `max_nonfinite_steps` steps all had a non-finite loss or gradient."""
    # Gradients are all-reduced, so every rank skipped the same steps and stops together.
    streak = int(state.window.streak.item())
    if streak >= run.settings.max_nonfinite_steps:
        raise AcctError(
            f"{streak} consecutive steps up to step {state.step} had a non-finite loss or gradient; "
            "try --precision fp32 or a lower learning rate"
        )


def validate(run: Run) -> EvalResult:
    dist = run.dist
    # Each rank scores examples rank::W with the plain module (DDP's hooks are for training),
    # then the shards are put back in order: no padding, so no example counts twice.
    local_preds, _ = predict_encoded(
        run.model, shard(run.val_enc, dist.rank, dist.world_size), device=run.device, precision=run.precision,
        batch_size=run.settings.batch.eval_batch_size, pad_id=run.pad_id,
    )
    preds = dist.gather_strided(local_preds, len(run.val_enc))
    return summarize("val", run.data.split.val, preds, task_categories=run.data.categories, majority=run.majority)


def save(run: Run, state: TrainState, tags: list[str], val_acc: float | None) -> CheckpointSaved:
    """Save a checkpoint of the run at `state.step` under `tags` ("last", "best")."""
    everyone = run.dist.all_gather_object(state.rank_state(run.device))
    settings, curriculum = run.settings, run.parts.curriculum

    def write() -> Path:
        # The log is on disk before a checkpoint records its length.
        run.log.sync()
        meta = {
            "step": state.step,
            "epoch": state.step / run.schedule.steps_per_epoch,
            "tasks": run.tasks,
            "task_categories": run.data.categories,
            "head": run.head.to_dict(),
            "val_accuracy": val_acc,
            "best_accuracy": state.best_accuracy,
            "strategy": settings.curriculum.strategy,
            "backends": run.backends,
            "curriculum_weights": curriculum.weights.tolist(),
            "confusion": curriculum.confusion.matrix.tolist(),
            "settings": run.record,
            "settings_digest": fingerprint(run.record),
        }
        trained = checkpoint_state(state, run.parts, everyone, run.log.size(), run.dist.world_size)
        contents = ckpt_io.CheckpointContents(
            run.model, meta, run.tokenizer, state=trained, optimizer=run.parts.opt.optimizer.state_dict()
        )
        saved_to = ckpt_io.save_checkpoint(settings.run_dir(), contents, tags)
        run.writer.saved()
        return saved_to

    # Rank 0 writes; the others wait for it (and share its error, if any).
    path = run.dist.on_main(write)
    return CheckpointSaved(state.step, path, tags)
