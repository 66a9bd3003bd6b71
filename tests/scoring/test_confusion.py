"""Reading, recomputing, ranking and plotting a checkpoint's inter-task confusion matrix."""

from __future__ import annotations

import json
import sys

import pytest

from acct.scoring.confusion import (
    PLOT_EXTRA_MESSAGE,
    ConfusionReport,
    category_order,
    plot_heatmap,
    recompute_confusion,
    require_matplotlib,
    saved_confusion,
)
from acct.errors import CheckpointError, UsageError
from acct.data.synthetic import SYNTHETIC_PAIRS, SYNTHETIC_TASKS


@pytest.fixture(scope="module")
def saved(tiny_run):
    return saved_confusion(tiny_run, "best")


def test_saved_matrix_and_context(saved, tiny_run):
    n = len(SYNTHETIC_TASKS)
    assert saved.tasks == list(SYNTHETIC_TASKS)
    assert len(saved.matrix) == n and all(len(row) == n for row in saved.matrix)
    for i in range(n):
        for j in range(n):
            assert saved.matrix[i][j] == pytest.approx(saved.matrix[j][i], abs=1e-6)
    assert sum(saved.weights) == pytest.approx(1.0)
    meta = json.loads((tiny_run / "checkpoints" / "best" / "acct.json").read_text())
    assert saved.step == meta["step"] and saved.weights == meta["curriculum_weights"]
    logged = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    validation = [r for r in logged if r["event"] == "validation" and r["step"] == meta["step"]][-1]
    assert saved.accuracy == {t: v["accuracy"] for t, v in validation["tasks"].items()}


def test_pairs_are_ranked_and_the_schema_holds(saved):
    pairs = saved.pairs()
    n = len(saved.tasks)
    assert len(pairs) == n * (n - 1) // 2  # 240 steps of 4 x 4 batches meet every pair
    scores = [p["score"] for p in pairs]
    assert scores == sorted(scores, reverse=True)
    report = saved.to_dict(top=3)
    assert len(report["pairs"]) == 3
    assert all(set(p) == {"task_a", "task_b", "score"} for p in report["pairs"])
    assert set(report["tasks"]) == set(saved.tasks)
    assert all(set(v) == {"confusion", "weight", "accuracy"} for v in report["tasks"].values())
    # A task's confusion is its mean confusion with the others: what the curriculum ranks.
    i = saved.tasks.index("even_number")
    expected = sum(saved.matrix[i][j] for j in range(n) if j != i) / (n - 1)
    assert report["tasks"]["even_number"]["confusion"] == pytest.approx(expected)


def test_the_suite_known_confusable_pairs_come_out_on_top(saved):
    top = {frozenset((p["task_a"], p["task_b"])) for p in saved.pairs(len(SYNTHETIC_PAIRS))}
    assert top == {frozenset(pair) for pair in SYNTHETIC_PAIRS}


def test_recompute_follows_the_training_definition(tiny_run):
    """One recomputed batch equals the definition computed pair by pair with plain loops."""
    import torch

    from acct.data.batching import TaskBatchSampler
    from acct.curriculum.weights import uniform_weights
    from acct.engine import load_run, load_run_split
    from acct.losses import normalized_entropy
    from acct.data.tokenize import collate, encode_examples

    report = recompute_confusion(tiny_run, "best", split="val", batches=1, seed=5, device="cpu")
    assert report.source == "recomputed" and report.batches == 1

    run = load_run(tiny_run, "best", torch.device("cpu"))
    val = load_run_split(run).val
    index = {t: i for i, t in enumerate(run.tasks)}
    encoded = encode_examples(run.tokenizer, val, index, run.settings.model.max_length)
    shape = run.settings.batch
    sampler = TaskBatchSampler(encoded.task_ids, len(run.tasks), shape.tasks_per_batch, shape.examples_per_task, 5)
    batch = collate(encoded, sampler.batch(0, uniform_weights(len(run.tasks))), run.pad_id)
    with torch.no_grad():
        out = run.model(
            batch.input_ids, batch.attention_mask, batch.sequence_task_ids, batch.choice_mask,
            batch.question_ids, batch.question_mask,
        )
    u = normalized_entropy(out.scores, batch.choice_mask).tolist()
    z = out.embeddings.tolist()
    tasks = batch.task_ids.tolist()
    sums: dict[tuple[int, int], list[float]] = {}
    for i in range(len(tasks)):
        for j in range(len(tasks)):
            if tasks[i] == tasks[j]:
                continue
            cos = sum(a * b for a, b in zip(z[i], z[j])) / (
                sum(a * a for a in z[i]) ** 0.5 * sum(b * b for b in z[j]) ** 0.5
            )
            sums.setdefault((tasks[i], tasks[j]), []).append(max(0.0, cos) * (u[i] + u[j]) / 2)
    n = len(run.tasks)
    for a in range(n):
        for b in range(n):
            if (a, b) in sums:
                assert report.seen[a][b]
                assert report.matrix[a][b] == pytest.approx(sum(sums[a, b]) / len(sums[a, b]), abs=1e-5)
            else:
                assert not report.seen[a][b] and report.matrix[a][b] == 0.0


def test_recompute_defaults_to_one_pass_and_scores_the_split(tiny_run):
    report = recompute_confusion(tiny_run, "best", split="test", device="cpu")
    n_test = len(json.loads((tiny_run / "split.json").read_text())["test"])
    assert report.batches == -(-n_test // 16) and report.split == "test"
    assert set(report.accuracy) == set(SYNTHETIC_TASKS)
    assert all(0.0 <= a <= 1.0 for a in report.accuracy.values())
    assert len(report.pairs()) > 0 and report.weights is not None


def test_errors(tmp_path, tiny_run):
    with pytest.raises(UsageError, match="run directory not found"):
        saved_confusion(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no 'best' checkpoint"):
        saved_confusion(tmp_path)


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(UsageError) as info:
        require_matplotlib()
    assert str(info.value) == PLOT_EXTRA_MESSAGE
    assert "acct[plot]" in PLOT_EXTRA_MESSAGE and "\n" not in PLOT_EXTRA_MESSAGE


def _report() -> ConfusionReport:
    tasks = ["b_word", "a_num", "c_word", "d_num"]
    return ConfusionReport(
        tasks=tasks,
        categories={"b_word": "words", "a_num": "numbers", "c_word": "words", "d_num": "numbers"},
        matrix=[[0.0, 0.1, 0.2, 0.3], [0.1, 0.0, 0.4, 0.5], [0.2, 0.4, 0.0, 0.6], [0.3, 0.5, 0.6, 0.0]],
        seen=[[i != j for j in range(4)] for i in range(4)],
        weights=None,
        accuracy=None,
        source="checkpoint",
        step=3,
        checkpoint="best",
    )


def test_heatmap_orders_tasks_by_category():
    report = _report()
    assert [report.tasks[i] for i in category_order(report)] == ["a_num", "d_num", "b_word", "c_word"]
    assert report.pairs(2) == [
        {"task_a": "c_word", "task_b": "d_num", "score": 0.6},
        {"task_a": "a_num", "task_b": "d_num", "score": 0.5},
    ]


def test_heatmap_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_heatmap(_report(), tmp_path / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
