"""The study's comparison from kept predictions, on numbers small enough to check by hand (no training)."""

from __future__ import annotations

import math

import pytest

from acct.study.plan import PlannedRun
from acct.study.layers import registered_arm_settings
from acct.study.compare import aggregate, compare_arm
from acct.study.report import markdown, top_task_deltas
from acct.config.commands import AblateSettings
from tests.conftest import tiny_settings

TASKS = [("even_number", "numbers")] * 2 + [("animal_word", "words")] * 2
# Seed 0: baseline 2/4, full 4/4; seed 1: 3/4 each (one each way); seed 2: baseline 1/4, full 2/4.
FLAGS = {
    ("baseline", 0): [1, 1, 0, 0], ("full", 0): [1, 1, 1, 1],
    ("baseline", 1): [1, 1, 1, 0], ("full", 1): [1, 1, 0, 1],
    ("baseline", 2): [1, 0, 0, 0], ("full", 2): [1, 1, 0, 0],
}


def rows(flags, seed):
    return [{"uid": f"{task}/{seed}/{i}", "task": task, "category": cat, "answer": 0, "prediction": 0 if ok else 1,
             "correct": bool(ok), "probabilities": [0.5, 0.5]} for i, ((task, cat), ok) in enumerate(zip(TASKS, flags))]


@pytest.fixture
def report(tmp_path):
    base = tiny_settings(tmp_path)
    study = AblateSettings(output_dir=tmp_path, seeds=3, arms=["baseline", "full"])
    runs = [PlannedRun(c, s, tmp_path / f"{c}-seed{s}", registered_arm_settings(base, c, s, tmp_path / f"{c}-seed{s}"), "train")
            for s in (0, 1, 2) for c in ("baseline", "full")]
    scored = {key: rows(f, key[1]) for key, f in FLAGS.items()}
    return aggregate(study, runs, scored)


def test_the_seed_is_the_replicate(report):
    d = report.deltas["full"]
    assert [s["accuracy"] for s in d["per_seed"]] == pytest.approx([0.5, 0.0, 0.25])
    assert d["accuracy"] == pytest.approx(0.25) and d["sd"] == pytest.approx(0.25)
    # Paired t over the three per-seed Δ: t = sqrt(3) on 2 df, P(|T_2| > t) = 1 - t / sqrt(2 + t²).
    assert d["p"] == pytest.approx(1 - math.sqrt(3 / 5))
    assert d["test"] == "paired t-test over seeds (2 df)"
    assert d["se"] == pytest.approx(0.25 / math.sqrt(3)) and not d["se_floored"]
    half = 4.302652729911275 * 0.25 / math.sqrt(3)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((0.25 - half, 0.25 + half))
    assert d["holm_p"] == d["p"]  # one comparison: nothing to adjust
    # McNemar stays, per seed and labelled: seed 0 has two full-only questions, seed 1 one each way.
    assert [s["mcnemar_p"] for s in d["per_seed"]] == pytest.approx([0.5, 1.0, 1.0])
    assert [s["discordant"] for s in d["per_seed"]] == [[0, 2], [1, 1], [0, 1]]
    assert "conditional on its trained models" in d["per_seed_note"]
    assert "mcnemar_p" not in d  # no pooled question-level test


def test_arm_accuracy_is_a_mean_over_seeds_with_a_t_interval(report):
    full = report.configs["full"]
    assert full["accuracy"] == pytest.approx((1.0 + 0.75 + 0.5) / 3)
    assert full["sd"]["accuracy"] == pytest.approx(0.25)
    half = 4.302652729911275 * 0.25 / math.sqrt(3)
    assert (full["ci_low"], full["ci_high"]) == pytest.approx((0.75 - half, 1.0))  # 0.75 + half > 1: clipped
    assert full["ci_method"] == "t interval over seeds, clipped to [0, 1]"
    base = report.configs["baseline"]  # 0.5, 0.75, 0.25: the t interval reaches below 0 and above 1
    assert (base["ci_low"], base["ci_high"]) == (0.0, 1.0)
    assert full["tasks"] == {"animal_word": pytest.approx(0.5), "even_number": pytest.approx(1.0)}


def test_macro_categories_and_delta_m_get_seed_level_intervals(report):
    d = report.deltas["full"]
    # Per seed, macro Δ = mean over the two tasks: (0 + 1)/2, (0 + 0)/2, (0.5 + 0)/2.
    assert d["macro_accuracy"] == pytest.approx((0.5 + 0.0 + 0.25) / 3)
    assert d["macro_accuracy_ci"][0] < d["macro_accuracy"] < d["macro_accuracy_ci"][1]
    assert d["categories"] == {"numbers": pytest.approx(0.5 / 3), "words": pytest.approx(1 / 3)}
    assert set(d["categories_ci"]) == {"numbers", "words"}
    # Δm %: seed 0 only even_number counts (animal_word's reference is 0): 0 %; seed 1: 0 %; seed 2: +100 %.
    assert d["delta_m"] == pytest.approx(100 / 3)
    assert d["delta_m_ci"]["n"] == 3 and d["delta_m_ci"]["ci_low"] < 0 < d["delta_m_ci"]["ci_high"]


def test_per_task_results_are_seed_level_with_three_seeds(report):
    per_task = report.deltas["full"]["per_task"]
    # even_number Δ per seed: 0, 0, 0.5; animal_word: 1, 0, 0: both t = 1 on 2 df, p = 1 - 1/sqrt(3).
    for t in ("even_number", "animal_word"):
        assert per_task[t]["p"] == pytest.approx(1 - 1 / math.sqrt(3))
        assert per_task[t]["q"] == pytest.approx(1 - 1 / math.sqrt(3))
        assert per_task[t]["test"] == "paired t-test over seeds"


def test_per_task_with_fewer_seeds_is_one_seeds_mcnemar(tmp_path):
    base = tiny_settings(tmp_path)
    runs = [PlannedRun(c, s, tmp_path / f"{c}-seed{s}", registered_arm_settings(base, c, s, tmp_path / f"{c}-seed{s}"), "train")
            for s in (0, 1) for c in ("baseline", "full")]
    scored = {key: rows(f, key[1]) for key, f in FLAGS.items() if key[1] < 2}
    report = aggregate(AblateSettings(output_dir=tmp_path, seeds=2, arms=["baseline", "full"]), runs, scored)
    per_task = report.deltas["full"]["per_task"]
    assert per_task["animal_word"]["test"] == "McNemar on seed 0 only (conditional on its trained models)"
    assert per_task["animal_word"]["p"] == pytest.approx(0.5)  # seed 0: full alone right on both
    notes = " ".join(report.notes)
    assert "only 2 seeds" in notes and "cannot account for training variance" in notes
    assert "seed 0's McNemar test per task" in notes


def test_one_seed_says_it_has_no_test_across_seeds(tmp_path):
    base = tiny_settings(tmp_path)
    runs = [PlannedRun(c, 0, tmp_path / c, registered_arm_settings(base, c, 0, tmp_path / c), "train") for c in ("baseline", "full")]
    scored = {key: rows(f, 0) for key, f in FLAGS.items() if key[1] == 0}
    report = aggregate(AblateSettings(output_dir=tmp_path, seeds=1, arms=["baseline", "full"]), runs, scored)
    d = report.deltas["full"]
    assert d["p"] is None and d["holm_p"] is None and d["ci_low"] is None and d["test"] == "none: one seed"
    assert d["power"]["mde"] is None and d["per_seed"][0]["mcnemar_p"] == pytest.approx(0.5)
    assert report.configs["full"]["ci_low"] is None
    notes = " ".join(report.notes)
    assert "says nothing about training variance" in notes and "power (full vs baseline): one seed" in notes
    text = markdown(report)
    assert "| full | +50.00 | - | - | - |" in text and "+50.00 (p 0.5)" in text


def test_val_with_best_checkpoints_is_flagged(tmp_path):
    base = tiny_settings(tmp_path)
    runs = [PlannedRun(c, s, tmp_path / f"{c}{s}", registered_arm_settings(base, c, s, tmp_path / f"{c}{s}"), "train")
            for s in (0, 1, 2) for c in ("baseline", "full")]
    scored = {key: rows(f, key[1]) for key, f in FLAGS.items()}
    report = aggregate(AblateSettings(output_dir=tmp_path, split="val", arms=["baseline", "full"]), runs, scored)
    assert any("val split also chose each run's best checkpoint" in n for n in report.notes)


def test_unpaired_predictions_are_refused(tmp_path):
    from acct.errors import AcctError

    base = tiny_settings(tmp_path)
    runs = [PlannedRun(c, 0, tmp_path / c, registered_arm_settings(base, c, 0, tmp_path / c), "train") for c in ("baseline", "full")]
    scored = {("baseline", 0): rows(FLAGS["baseline", 0], 0), ("full", 0): rows(FLAGS["full", 0], 0)[::-1]}
    with pytest.raises(AcctError, match="other questions"):
        aggregate(AblateSettings(output_dir=tmp_path, seeds=1, arms=["baseline", "full"]), runs, scored)


def test_markdown_report(report):
    text = markdown(report)
    assert "**The seed is the replicate.**" in text and "paired t-test over seeds (2 df)" in text
    assert "| full | +25.00 | [-37.10, +87.10] | 0.23 | 0.23 | +33.33 [" in text
    assert "+50.00 (p 0.5), +0.00 (p 1), +25.00 (p 1)" in text
    assert report.to_dict()["replicate"] == "seed"


def test_holm_runs_over_the_seed_level_p_values(tmp_path):
    from acct.study.stats import holm

    base = tiny_settings(tmp_path)
    names = ("baseline", "contrastive", "full")
    runs = [PlannedRun(c, s, tmp_path / f"{c}{s}", registered_arm_settings(base, c, s, tmp_path / f"{c}{s}"), "train")
            for s in (0, 1, 2) for c in names]
    scored = {key: rows(f, key[1]) for key, f in FLAGS.items()}
    scored.update({("contrastive", s): rows([1, 0, 1, 1] if s else [0, 1, 1, 1], s) for s in (0, 1, 2)})
    report = aggregate(AblateSettings(output_dir=tmp_path, arms=list(names)), runs, scored)
    ps = [report.deltas[n]["p"] for n in ("contrastive", "full")]
    assert [report.deltas[n]["holm_p"] for n in ("contrastive", "full")] == pytest.approx(holm(ps))


def test_top_task_deltas():
    delta = {"tasks": {"a": 0.2, "b": -0.1, "c": 0.0, "d": 0.1}}
    assert top_task_deltas(delta, 1) == ([("a", 0.2)], [("b", -0.1)])
    assert top_task_deltas(delta, 5) == ([("a", 0.2), ("d", 0.1)], [("b", -0.1)])


def test_compare_arm_uses_the_primary_test(monkeypatch):
    """The p of the report is the seed-level test's: replacing it changes the report."""
    from acct.study import replicates

    real = replicates.seed_test
    monkeypatch.setattr(replicates, "seed_test", lambda deltas, within=None: real(deltas, within).__class__(
        0.25, 0.1, 2, 0.123, 0.0, 0.5, False))
    d = compare_arm([rows(FLAGS["baseline", s], s) for s in (0, 1, 2)], [rows(FLAGS["full", s], s) for s in (0, 1, 2)],
                    [0, 1, 2])
    assert d["p"] == 0.123
