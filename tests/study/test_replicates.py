"""Seed-level inference: hand-checked numbers, and the calibration of the verdict on simulated studies.

The simulations draw per-seed results with a known between-seed sd τ of the true difference (no
training), as a study of trained models produces them, and count how often the test `acct ablate`
reports as its verdict (`replicates.primary_test`) rejects at α = 0.05.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from acct.study import replicates


def test_paired_t_on_numbers_checked_by_hand():
    from scipy.stats import ttest_1samp

    assert replicates.paired_t_p([0.03, -0.01, 0.05, 0.02]) == pytest.approx(ttest_1samp([0.03, -0.01, 0.05, 0.02], 0).pvalue)
    # Δ = 0.5, 0, 0.25: mean 0.25, sd 0.25, t = sqrt(3) on 2 df; P(|T_2| > t) = 1 - t / sqrt(2 + t²).
    p = replicates.paired_t_p([0.5, 0.0, 0.25])
    assert p == pytest.approx(1 - math.sqrt(3) / math.sqrt(5), rel=1e-9)
    s = replicates.summarize([0.5, 0.0, 0.25])
    half = 4.302652729911275 * 0.25 / math.sqrt(3)  # t_{0.975, 2}
    assert (s.mean, s.sd, s.ci_low, s.ci_high) == pytest.approx((0.25, 0.25, 0.25 - half, 0.25 + half))


def test_one_seed_has_no_test_and_says_why():
    assert replicates.paired_t_p([0.1]) is None
    s = replicates.summarize([0.1])
    assert (s.sd, s.ci_low, s.ci_high) == (None, None, None)
    pw = replicates.power([0.1])
    assert pw.mde is None and "cannot be estimated" in pw.why_not
    comparison = replicates.compare([[True, False]], [[True, True]])
    assert comparison.p is None and comparison.test == "none: one seed"


def test_degenerate_seed_differences():
    assert replicates.paired_t_p([0.0, 0.0, 0.0]) == 1.0  # the arms never differed
    assert replicates.paired_t_p([0.1, 0.1]) is None  # no between-seed variance to test against
    assert "did not vary" in replicates.power([0.0, 0.0]).why_not


def test_equal_differences_on_every_seed_are_tested_against_the_question_sampling_error():
    """Three seeds on which one question of 16 flips the same way: the per-seed Δ agree exactly, but
    that is what one question's noise looks like, not a certain difference."""
    ref = [[True] * 5 + [False] * 11] * 3
    arm = [[False] + [True] * 4 + [False] * 11] * 3
    deltas, test = replicates.primary_test(ref, arm)
    assert deltas == [-1 / 16] * 3 and test.floored
    v = (15 / 16) / 15 / 16  # sample variance of one -1 among sixteen paired differences, over 16 questions
    assert v == pytest.approx(replicates.within_variance(ref[0], arm[0]))
    t = (1 / 16) / math.sqrt(v / 3)
    assert test.p == pytest.approx(1 - t / math.sqrt(2 + t * t))  # P(|T_2| > t)
    assert test.p > 0.2
    # Otherwise the test is the paired t-test itself.
    rng = np.random.default_rng(1)
    for _ in range(50):
        ref = [(rng.random(40) < 0.6).tolist() for _ in range(3)]
        arm = [(rng.random(40) < 0.6).tolist() for _ in range(3)]
        deltas, test = replicates.primary_test(ref, arm)
        plain = replicates.paired_t_p(deltas)
        assert test.p == pytest.approx(plain, rel=1e-12)


def test_power_at_the_seed_level():
    deltas = [0.02, -0.01, 0.03, 0.0]
    pw = replicates.power(deltas)
    sd = float(np.std(deltas, ddof=1))
    from statsmodels.stats.power import TTestPower

    # The MDE is the effect a t-test over 4 seeds detects with 80% power, in units of the observed sd.
    assert TTestPower().power(effect_size=pw.mde / sd, nobs=4, alpha=0.05) == pytest.approx(0.8, abs=1e-4)
    # More seeds for smaller effects; each count reaches 80% power, one seed fewer would not.
    needed = [pw.seeds_needed[k] for k in ("1", "2", "5")]
    assert needed[0] >= needed[1] >= needed[2] >= 2
    for points, k in zip((1, 2), needed):
        assert TTestPower().power(effect_size=points / 100 / sd, nobs=k, alpha=0.05) >= 0.8
        assert TTestPower().power(effect_size=points / 100 / sd, nobs=k - 1, alpha=0.05) < 0.8


def test_heterogeneity_sees_seeds_that_disagree_beyond_their_question_noise():
    rng = np.random.default_rng(0)
    n = 400
    base = rng.random((3, n)) < 0.6
    same = [list(b) for b in base]
    # Arms that differ by about +20, -20 and +5 points on three seeds: far beyond a seed's sampling noise.
    shifted = []
    for b, shift in zip(base, (0.2, -0.2, 0.05)):
        flip = rng.random(n) < abs(shift)
        shifted.append(list(np.where(flip, shift > 0, b)))
    het = replicates.compare(same, shifted).heterogeneity
    assert het["tau"] > 0.1 and het["i2"] > 0.8 and het["q_p"] < 0.01


def test_delta_m_is_the_mean_relative_change_over_tasks():
    value, n = replicates.delta_m({"a": 0.5, "b": 0.8, "c": 0.0}, {"a": 0.6, "b": 0.6, "c": 0.3})
    assert n == 2  # c has no relative change from 0
    assert value == pytest.approx((20.0 - 25.0) / 2)


def simulate(n_seeds: int, tau: float, effect: float, studies: int, *, questions: int = 200, seed: int = 0):
    """Per-seed correctness flags of `studies` simulated two-arm studies; the true Δ of seed s is effect + N(0, tau)."""
    rng = np.random.default_rng(seed)
    for _ in range(studies):
        ref, arm = [], []
        for _ in range(n_seeds):
            level = 0.6 + rng.normal(0, 0.05)  # the reference's accuracy varies between seeds too
            true_delta = effect + rng.normal(0, tau)
            ref.append((rng.random(questions) < np.clip(level, 0.01, 0.99)).tolist())
            arm.append((rng.random(questions) < np.clip(level + true_delta, 0.01, 0.99)).tolist())
        yield ref, arm


def rejection_rate(n_seeds: int, tau: float, effect: float = 0.0, studies: int = 2000) -> float:
    hits = 0
    for ref, arm in simulate(n_seeds, tau, effect, studies, seed=n_seeds * 1000 + int(tau * 1000)):
        _, test = replicates.primary_test(ref, arm)
        hits += test.p is not None and test.p < 0.05
    return hits / studies


@pytest.mark.parametrize("n_seeds", [3, 5])
@pytest.mark.parametrize("tau", [0.0, 0.05, 0.20])
def test_an_aa_study_is_significant_at_most_at_the_nominal_rate(n_seeds, tau):
    """False positives at α = 0.05 over 2,000 simulated A/A studies (no true difference on average)."""
    assert rejection_rate(n_seeds, tau) <= 0.06


def test_the_test_has_power_where_it_should():
    # A true +10 points on every seed, 200 questions each: 5 seeds detect it nearly always.
    assert rejection_rate(5, 0.0, effect=0.10, studies=500) >= 0.9
    # The same effect hidden in a between-seed sd of 20 points is rarely detected with 3 seeds.
    assert rejection_rate(3, 0.20, effect=0.10, studies=500) < 0.5
