"""Scoring a model on encoded examples, and evaluating a saved run on a split of its manifest."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from acct.config.commands import EvaluateSettings
from acct.data.records import Example
from acct.data.tokenize import (
    EVAL_TOKENS_PER_BATCH,
    EncodedExamples,
    collate,
    default_cache_dir,
    encode_examples_cached,
    evaluation_batches,
)
from acct.errors import CheckpointError, UsageError
from acct.model.encoder import MultipleChoiceModel
from acct.run import checkpoint as ckpt_io
from acct.run.loaded import LoadedRun
from acct.run.rundir import load_run, load_run_split
from acct.scoring import predictions
from acct.scoring.metrics import EvalResult, majority_answer, summarize
from acct.train.device import autocast, resolve_device


@torch.inference_mode()
def predict_encoded(
    model: MultipleChoiceModel,
    encoded: EncodedExamples,
    *,
    device: torch.device,
    precision: str,
    batch_size: int,
    pad_id: int,
    max_tokens: int | None = EVAL_TOKENS_PER_BATCH,
) -> tuple[list[int], torch.Tensor]:
    """Predicted choice and per-choice probabilities ([N, K_max], 0 at padded choices) of every example.

    Batches hold at most `batch_size` questions and `max_tokens` padded tokens (None: no token
    bound), so peak memory does not grow with the length of the questions; the results do not
    depend on either limit.
    """
    was_training = model.training
    model.eval()
    probs_chunks: list[tuple[list[int], torch.Tensor]] = []
    for idx in evaluation_batches(encoded, batch_size, max_tokens):
        batch = collate(encoded, idx, pad_id).to(device)
        with autocast(device, precision):
            out = model(**batch.model_inputs(questions=False))
        probs_chunks.append((idx, out.scores.float().softmax(-1).cpu()))
    model.train(was_training)
    k_max = max((p.shape[1] for _, p in probs_chunks), default=2)
    probs = torch.zeros(len(encoded), k_max)
    for idx, p in probs_chunks:
        probs[torch.tensor(idx), : p.shape[1]] = p
    return probs.argmax(-1).tolist(), probs


def shard(encoded: EncodedExamples, rank: int, world_size: int) -> EncodedExamples:
    """Examples rank::world_size: this rank's share of an evaluation, without padding or overlap."""
    if world_size == 1:
        return encoded
    return EncodedExamples(
        sequences=encoded.sequences[rank::world_size],
        answers=encoded.answers[rank::world_size],
        task_ids=encoded.task_ids[rank::world_size],
        questions=None if encoded.questions is None else encoded.questions[rank::world_size],
    )


def score_examples(
    run: LoadedRun, examples: Sequence[Example], train: Sequence[Example], split: str, *,
    device: torch.device, precision: str, batch_size: int,
) -> tuple[list[int], EvalResult]:
    """Predictions and accuracy summary of `run` on examples of its own split; `train` sets the majority baseline."""
    preds, _, result = _score(run, examples, train, split, device=device, precision=precision, batch_size=batch_size)
    return preds, result


def _score(
    run: LoadedRun, examples: Sequence[Example], train: Sequence[Example], split: str, *,
    device: torch.device, precision: str, batch_size: int,
) -> tuple[list[int], torch.Tensor, EvalResult]:
    """Predicted choices, per-choice probabilities and the accuracy summary of `run` on `examples`."""
    unknown = sorted({ex.task for ex in examples} - set(run.tasks))
    if unknown:
        raise CheckpointError(f"the checkpoint's task list lacks {unknown[:3]}")
    task_index = {t: i for i, t in enumerate(run.tasks)}
    encoded = encode_examples_cached(run.tokenizer, examples, task_index, run.settings.model.max_length, default_cache_dir())
    preds, probs = predict_encoded(run.model, encoded, device=device, precision=precision, batch_size=batch_size, pad_id=run.pad_id)
    result = summarize(split, examples, preds, task_categories=run.categories, majority=majority_answer(train))
    return [int(p) for p in preds], probs, result


def score_and_keep(
    run: LoadedRun, split: str, checkpoint: str, *, device: torch.device, precision: str, batch_size: int,
    data_dir: Path | None = None,
) -> tuple[EvalResult, list[dict[str, Any]]]:
    """Score a held-out split of the run's manifest and keep every prediction.

    Writes RUN_DIR/predictions-<split>.jsonl (one line per question) and RUN_DIR/eval-<split>.json
    (the summary, with the checkpoint and weight digest the predictions come from), each atomically.
    """
    parts = load_run_split(run, data_dir)
    examples = list(parts.val if split == "val" else parts.test)
    if not examples:
        raise UsageError(f"{run.run_dir} has no {split} examples in its split")
    preds, probs, result = _score(run, examples, parts.train, split, device=device, precision=precision,
                                  batch_size=batch_size)
    rows = predictions.rows_of(examples, preds, probs.tolist(), run.categories)
    digest = predictions.write_jsonl(predictions.predictions_path(run.run_dir, split), rows)
    summary = {**result.to_dict(), "checkpoint": checkpoint,
               "predictions": predictions.record(split, checkpoint, run.checkpoint,
                                                 predictions.weights_sha256(run.checkpoint), digest)}
    ckpt_io.write_json(predictions.eval_path(run.run_dir, split), summary)
    return result, rows


def evaluate(settings: EvaluateSettings, *, trust_remote_code: bool = False) -> EvalResult:
    """Score a held-out split of a run's manifest; writes RUN_DIR/eval-<split>.json and predictions-<split>.jsonl."""
    device, precision = resolve_device(settings.device, settings.precision)
    run = load_run(settings.run_dir, settings.checkpoint, device, trust_remote_code=trust_remote_code)
    result, _ = score_and_keep(run, settings.split, settings.checkpoint, device=device, precision=precision,
                               batch_size=settings.batch_size, data_dir=settings.data_dir)
    return result
