"""Inspecting the inter-task confusion matrix of a checkpoint: what `acct inspect-confusion` shows.

Owns reading the matrix a checkpoint saved (acct.json "confusion", with the curriculum's
"seen" mask from its state when present), rebuilding it from a model's embeddings of a split
with the training definition (`recompute_confusion`), ranking task pairs, and the optional
heatmap. No Typer, no printing.

The recomputed matrix uses `acct.curriculum.signals.ConfusionTracker` on batches built like training
batches (tasks_per_batch x examples_per_task, tasks drawn uniformly by `TaskBatchSampler`),
folded once, so each entry is the mean of max(0, cos) * (u_i + u_j) / 2 over every cross-task
pair of questions that met in a batch. The model runs in eval mode (no dropout), unlike the
training-time tracker.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acct.errors import CheckpointError, UsageError
from acct.scoring.predict import score_examples

PLOT_EXTRA_MESSAGE = "--plot needs matplotlib, an optional extra: pip install 'acct[plot]'"


@dataclass
class ConfusionReport:
    """A confusion matrix over a run's tasks, with the context a reader needs to judge it."""

    tasks: list[str]
    categories: dict[str, str]
    matrix: list[list[float]]
    seen: list[list[bool]]
    weights: list[float] | None
    accuracy: dict[str, float] | None
    source: str  # "checkpoint" or "recomputed"
    step: int
    checkpoint: str
    split: str | None = None
    batches: int | None = None
    notes: list[str] = field(default_factory=list)

    def pairs(self, top: int | None = None) -> list[dict[str, Any]]:
        """Task pairs (A < B in task order) by descending confusion; pairs never observed are left out."""
        n = len(self.tasks)
        rows = [
            {"task_a": self.tasks[i], "task_b": self.tasks[j], "score": float(self.matrix[i][j])}
            for i in range(n)
            for j in range(i + 1, n)
            if self.seen[i][j]
        ]
        rows.sort(key=lambda r: (-r["score"], r["task_a"], r["task_b"]))
        return rows if top is None else rows[:top]

    def task_scores(self) -> dict[str, float]:
        """c_t = mean over observed partners j != t of C[t, j]: the statistic the curriculum ranks."""
        out = {}
        for i, t in enumerate(self.tasks):
            vals = [self.matrix[i][j] for j in range(len(self.tasks)) if j != i and self.seen[i][j]]
            out[t] = sum(vals) / len(vals) if vals else 0.0
        return out

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        scores = self.task_scores()
        tasks = {
            t: {
                "confusion": scores[t],
                "weight": None if self.weights is None else float(self.weights[i]),
                "accuracy": None if self.accuracy is None else self.accuracy.get(t),
            }
            for i, t in enumerate(self.tasks)
        }
        return {
            "pairs": self.pairs(top),
            "tasks": tasks,
            "source": self.source,
            "checkpoint": self.checkpoint,
            "step": self.step,
            "split": self.split,
        }


def _validation_accuracy(run_dir: Path, step: int) -> dict[str, float] | None:
    """Per-task validation accuracy logged at `step` (the checkpoint's own validation), if any."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return None
    found = None
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash must not hide the rest
            if rec.get("event") == "validation" and rec.get("step") == step:
                found = {t: float(v["accuracy"]) for t, v in (rec.get("tasks") or {}).items()}
    return found


def _square(value: Any, n: int, what: str, ckpt: Path) -> list[list[Any]]:
    if not isinstance(value, list) or len(value) != n or any(not isinstance(r, list) or len(r) != n for r in value):
        raise CheckpointError(f"{ckpt}/acct.json: {what} is not a {n} x {n} matrix")
    return value


def saved_confusion(run_dir: Path, checkpoint: str = "best") -> ConfusionReport:
    """The confusion matrix, curriculum weights and validation accuracy saved with a checkpoint."""
    from acct.run import checkpoint as ckpt_io

    ckpt = ckpt_io.checkpoint_dir(run_dir, checkpoint)
    meta = ckpt_io.read_meta(ckpt)
    tasks = list(meta["tasks"])
    if "confusion" not in meta:
        raise CheckpointError(f"{ckpt}/acct.json holds no confusion matrix")
    matrix = [[float(x) for x in row] for row in _square(meta["confusion"], len(tasks), "confusion", ckpt)]
    seen = None
    notes: list[str] = []
    if (ckpt / "state.json").is_file():
        try:
            state = ckpt_io.load_state(ckpt, "state")
            seen = state["curriculum"]["confusion"]["seen"].bool().tolist()
            _square(seen, len(tasks), "the confusion 'seen' mask", ckpt)
        except (CheckpointError, KeyError, AttributeError):
            seen = None
    if seen is None:
        # Without the tracker's mask a pair counts as observed when its entry is non-zero.
        seen = [[i != j and matrix[i][j] != 0.0 for j in range(len(tasks))] for i in range(len(tasks))]
        notes.append("no curriculum state in the checkpoint: pairs with confusion 0 are treated as never observed")
    weights = meta.get("curriculum_weights")
    if weights is not None and len(weights) != len(tasks):
        raise CheckpointError(f"{ckpt}/acct.json: {len(weights)} curriculum weights for {len(tasks)} tasks")
    from acct.train.data import task_categories

    return ConfusionReport(
        tasks=tasks,
        categories=meta.get("task_categories") or task_categories(tasks),
        matrix=matrix,
        seen=seen,
        weights=None if weights is None else [float(w) for w in weights],
        accuracy=_validation_accuracy(run_dir, int(meta["step"])),
        source="checkpoint",
        step=int(meta["step"]),
        checkpoint=checkpoint,
        notes=notes,
    )


def recompute_confusion(
    run_dir: Path,
    checkpoint: str = "best",
    *,
    split: str = "val",
    batches: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    device: str = "auto",
    precision: str = "auto",
    data_dir: Path | None = None,
    trust_remote_code: bool = False,
) -> ConfusionReport:
    """Rebuild the matrix from the checkpoint's embeddings of a held-out split (training definition).

    `batches` task-grouped batches are drawn (default: one pass, ceil(N / batch size)); task
    accuracy comes from scoring every example of the split once.
    """
    from acct.run.rundir import load_run, load_run_split
    from acct.train.device import resolve_device

    dev, prec = resolve_device(device, precision)
    run = load_run(Path(run_dir), checkpoint, dev, trust_remote_code=trust_remote_code)
    parts = load_run_split(run, data_dir)
    examples = list(parts.val if split == "val" else parts.test)
    if not examples:
        raise UsageError(f"{run_dir} has no {split} examples in its split")
    scored = score_examples(run, examples, parts.train, split, device=dev, precision=prec, batch_size=batch_size)
    tracker, n_batches = _track_confusion(run, examples, batches, seed, dev, prec)
    weights_saved = run.meta.get("curriculum_weights")
    return ConfusionReport(
        tasks=list(run.tasks),
        categories=dict(run.categories),
        matrix=tracker.matrix.cpu().tolist(),
        seen=tracker.seen.cpu().tolist(),
        weights=None if weights_saved is None else [float(w) for w in weights_saved],
        accuracy={t: float(v["accuracy"]) for t, v in scored.result.tasks.items()},
        source="recomputed",
        step=int(run.meta["step"]),
        checkpoint=checkpoint,
        split=split,
        batches=n_batches,
    )


def _track_confusion(
    run: Any, examples: list[Any], batches: int | None, seed: int, dev: Any, prec: Any
) -> tuple[Any, int]:
    """A fresh `ConfusionTracker` fed training-shaped batches of `examples` in eval mode, and the batch count."""
    import torch

    from acct.curriculum.signals import ConfusionTracker
    from acct.curriculum.weights import uniform_weights
    from acct.data.batching import TaskBatchSampler
    from acct.data.tokenize import collate, encode_examples
    from acct.losses import normalized_entropy
    from acct.train.device import autocast

    index = {t: i for i, t in enumerate(run.tasks)}
    encoded = encode_examples(run.tokenizer, examples, index, run.settings.model.max_length)
    shape = run.settings.batch
    sampler = TaskBatchSampler(encoded.task_ids, len(run.tasks), shape.tasks_per_batch, shape.examples_per_task, seed)
    n_batches = batches or max(1, math.ceil(len(examples) / sampler.batch_size))
    tracker = ConfusionTracker(len(run.tasks), decay=run.settings.curriculum.ema_decay).to(dev)
    weights = uniform_weights(len(run.tasks))
    run.model.eval()
    with torch.inference_mode():
        for step in range(n_batches):
            batch = collate(encoded, sampler.batch(step, weights), run.pad_id).to(dev)
            with autocast(dev, prec):
                out = run.model(**batch.model_inputs())
            u = normalized_entropy(out.scores.float(), batch.choice_mask)
            tracker.observe(out.embeddings.float(), batch.task_ids, u)
    # One fold of a fresh tracker: each entry becomes the window mean, not an EMA.
    tracker.fold()
    return tracker, n_batches


# -- the heatmap ----------------------------------------------------------------------------------


def require_matplotlib() -> Any:
    """matplotlib.pyplot (Agg backend), or a one-line error naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError(PLOT_EXTRA_MESSAGE) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def category_order(report: ConfusionReport) -> list[int]:
    """Task indices grouped by category (categories and tasks alphabetical)."""
    return sorted(range(len(report.tasks)), key=lambda i: (report.categories.get(report.tasks[i], "other"), report.tasks[i]))


PLOT_NAME = "confusion.png"


def plot_path(path: Path) -> Path:
    """Where `--plot PATH` writes: PATH itself, or PATH/confusion.png when PATH is a directory."""
    path = Path(path)
    return path / PLOT_NAME if path.is_dir() else path


def plot_heatmap(report: ConfusionReport, path: Path) -> Path:
    """Write a labelled heatmap PNG of the matrix, tasks ordered by category; returns the file written.

    Pairs never observed are drawn in their own colour (grey), apart from zero confusion, and
    each category is labelled along the axes.
    """
    plt = require_matplotlib()

    import numpy as np
    from matplotlib.patches import Patch

    order = category_order(report)
    labels = [report.tasks[i] for i in order]
    data = np.ma.masked_invalid(np.array(
        [[report.matrix[i][j] if i != j and report.seen[i][j] else float("nan") for j in order] for i in order],
        dtype=float,
    ))
    size = max(4.0, 0.22 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.6, size + 0.6))
    # Grey for pairs never observed (and the diagonal): not zero confusion.
    cmap = plt.get_cmap("magma").with_extremes(bad="#9e9e9e")
    image = ax.imshow(data, cmap=cmap, interpolation="nearest", vmin=0)
    ax.set_xticks(range(len(labels)))
    ax.set_yticks(range(len(labels)))
    fontsize = 8 if len(labels) <= 20 else 5
    ax.set_xticklabels(labels, rotation=90, fontsize=fontsize)
    ax.set_yticklabels(labels, fontsize=fontsize)
    # Lines between categories make the block structure readable; each block carries its name.
    cats = [report.categories.get(t, "other") for t in labels]
    starts = [k for k in range(len(cats)) if k == 0 or cats[k] != cats[k - 1]]
    for k in starts[1:]:
        ax.axhline(k - 0.5, color="white", linewidth=0.8)
        ax.axvline(k - 0.5, color="white", linewidth=0.8)
    ends = starts[1:] + [len(cats)]
    top = ax.secondary_xaxis("top")
    top.set_xticks([(a + b - 1) / 2 for a, b in zip(starts, ends)])
    top.set_xticklabels([cats[a] for a in starts], fontsize=8)
    top.tick_params(length=0)
    right = ax.secondary_yaxis("right")
    right.set_yticks([(a + b - 1) / 2 for a, b in zip(starts, ends)])
    right.set_yticklabels([cats[a] for a in starts], fontsize=8, rotation=90, va="center")
    right.tick_params(length=0)
    where = f"{report.split} split, recomputed" if report.source == "recomputed" else "saved in the checkpoint"
    ax.set_title(f"inter-task confusion at step {report.step} ({where})", fontsize=10, pad=18)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.08)
    fig.legend(handles=[Patch(color="#9e9e9e", label="never observed (or the diagonal)")], loc="lower left",
               fontsize=7, frameon=False)
    fig.tight_layout()
    path = plot_path(path)
    try:
        fig.savefig(path, dpi=150, format="png")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return path
