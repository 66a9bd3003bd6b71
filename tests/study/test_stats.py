"""The ablation statistics against small cases computed by hand."""

from __future__ import annotations

import math

import pytest

from acct.study.stats import (
    bh_qvalues,
    binomial_ci,
    discordant_counts,
    holm,
    mcnemar_exact,
    mcnemar_exact_counts,
    mcnemar_mde,
    mcnemar_sample_size,
    mean_sd,
    paired_bootstrap_ci,
    percentile,
)


def pairs(both: int = 0, only_a: int = 0, only_b: int = 0, neither: int = 0) -> tuple[list[bool], list[bool]]:
    """Correctness flags of A and B with the given counts of each outcome."""
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return a, b


@pytest.mark.parametrize(
    ("only_a", "only_b", "expected"),
    [
        (0, 0, 1.0),  # never disagree
        (3, 3, 1.0),  # 2 * P[X <= 3 | n=6] = 2 * 42/64 > 1, capped
        (0, 5, 2 / 32),  # 2 * C(5,0) / 2^5
        (5, 0, 2 / 32),  # two-sided: symmetric
        (1, 9, 2 * (1 + 10) / 1024),  # 2 * (C(10,0) + C(10,1)) / 2^10
        (2, 8, 2 * (1 + 10 + 45) / 1024),
        (1, 1, 1.0),
    ],
)
def test_mcnemar_exact_hand_cases(only_a, only_b, expected):
    a, b = pairs(both=7, only_a=only_a, only_b=only_b, neither=4)  # concordant pairs do not matter
    assert mcnemar_exact(a, b) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_exact_counts(only_a, only_b) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_is_exact_for_many_pairs():
    # 2 / 2^1000 underflows no intermediate float: exact fractions all the way.
    assert mcnemar_exact_counts(0, 1000) == pytest.approx(2.0 ** -999, rel=1e-12)
    assert mcnemar_exact_counts(500, 500) == 1.0


def test_discordant_counts():
    a, b = pairs(both=2, only_a=3, only_b=5, neither=1)
    assert discordant_counts(a, b) == (3, 5)


def test_bootstrap_degenerate_cases_are_exact():
    a, b = pairs(both=10, neither=10)
    ci = paired_bootstrap_ci(a, b, resamples=500)
    assert (ci.delta, ci.low, ci.high) == (0.0, 0.0, 0.0)
    a, b = pairs(only_b=8)
    ci = paired_bootstrap_ci(a, b, resamples=500)
    assert (ci.delta, ci.low, ci.high) == (1.0, 1.0, 1.0)


def test_bootstrap_matches_the_normal_approximation():
    # n = 100, B-only 20, A-only 10: delta = 0.1; per-pair difference d in {-1, 0, 1} has
    # variance E[d^2] - E[d]^2 = 0.3 - 0.01 = 0.29, so SE = sqrt(0.29 / 100) = 0.0539 and the
    # normal 95% interval is 0.1 +- 1.96 * 0.0539 = [-0.0056, 0.2056].
    a, b = pairs(both=40, only_a=10, only_b=20, neither=30)
    ci = paired_bootstrap_ci(a, b, resamples=20_000, seed=1)
    assert ci.delta == pytest.approx(0.1)
    se = math.sqrt(0.29 / 100)
    assert ci.low == pytest.approx(0.1 - 1.96 * se, abs=0.015)
    assert ci.high == pytest.approx(0.1 + 1.96 * se, abs=0.015)
    assert ci.low < ci.delta < ci.high


def test_bootstrap_is_seeded():
    a, b = pairs(both=5, only_a=4, only_b=9, neither=2)
    assert paired_bootstrap_ci(a, b, resamples=300, seed=7) == paired_bootstrap_ci(a, b, resamples=300, seed=7)
    others = {paired_bootstrap_ci(a, b, resamples=300, seed=s) for s in range(8, 13)}
    assert len(others) > 1  # the seed does drive the resampling


def test_bootstrap_with_groups_averages_per_group_deltas():
    # Group 0: two pairs, B always right and A always wrong -> delta 1.0 in every resample.
    # Group 1: four concordant pairs -> delta 0.0 in every resample.
    # The statistic is the mean of the group deltas, 0.5 (pooling would give 2/6).
    a0, b0 = pairs(only_b=2)
    a1, b1 = pairs(both=2, neither=2)
    ci = paired_bootstrap_ci(a0 + a1, b0 + b1, groups=[0, 0, 1, 1, 1, 1], resamples=200)
    assert (ci.delta, ci.low, ci.high) == (0.5, 0.5, 0.5)


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap_ci([True], [True, False])
    with pytest.raises(ValueError, match="no paired"):
        paired_bootstrap_ci([], [])
    with pytest.raises(ValueError, match="group label"):
        paired_bootstrap_ci([True, False], [True, True], groups=[0])


def test_percentile_and_mean_sd():
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.0) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 1.0) == 4.0
    assert percentile([0.0, 10.0], 0.025) == pytest.approx(0.25)
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_sd([5.0]) == (5.0, None)


# Benjamini & Hochberg (1995), section 4: fifteen p-values of one study; at FDR 0.05 the
# step-up procedure rejects the four smallest. The adjusted values below are R's
# p.adjust(p, "holm") / p.adjust(p, "BH") (statsmodels' multipletests gives the same).
BH_1995 = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262,
           0.5719, 0.6528, 0.7590, 1.000]
HOLM_1995 = [0.0015, 0.0056, 0.0247, 0.114, 0.2211, 0.278, 0.278, 0.278, 0.3213, 1, 1, 1, 1, 1, 1]
BH_Q_1995 = [0.0015, 0.003, 0.0095, 0.035625, 0.0603, 0.063857, 0.063857, 0.0645, 0.0765, 0.486, 0.581182,
             0.714875, 0.753231, 0.813214, 1.0]


def test_holm_against_reference_values():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm(BH_1995) == pytest.approx(HOLM_1995, abs=1e-6)
    shuffled = [BH_1995[i] for i in (14, 3, 0, 9, 7, 1, 12, 5, 2, 10, 4, 13, 6, 11, 8)]
    expected = [HOLM_1995[i] for i in (14, 3, 0, 9, 7, 1, 12, 5, 2, 10, 4, 13, 6, 11, 8)]
    assert holm(shuffled) == pytest.approx(expected, abs=1e-6)  # results come back in the input order
    assert holm([0.2]) == [0.2] and holm([]) == []
    with pytest.raises(ValueError, match="p-values"):
        holm([1.5])


def test_benjamini_hochberg_against_the_1995_example():
    q = bh_qvalues(BH_1995)
    assert q == pytest.approx(BH_Q_1995, abs=1e-6)
    assert [x <= 0.05 for x in q] == [True] * 4 + [False] * 11
    assert bh_qvalues(list(reversed(BH_1995))) == pytest.approx(list(reversed(BH_Q_1995)), abs=1e-6)


def test_wilson_interval():
    # Wilson score interval of 8/10 at 95% (Newcombe 1998, table I: 0.4902 to 0.9433).
    low, high = binomial_ci(8, 10)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)


def test_mde_inverts_connors_sample_size_and_scales_with_discordance():
    for n, psi in ((1500, 0.1), (300, 0.25), (5000, 0.04)):
        delta = mcnemar_mde(n, psi)
        assert mcnemar_sample_size(delta, psi) == pytest.approx(n, rel=1e-9)
    # Large n: delta ~ (z_a + z_b) sqrt(psi / n); four times the discordance doubles the MDE.
    assert mcnemar_mde(10**6, 0.1) == pytest.approx((1.959964 + 0.841621) * math.sqrt(0.1 / 10**6), rel=1e-3)
    assert mcnemar_mde(2000, 0.2) / mcnemar_mde(2000, 0.05) == pytest.approx(2.0, rel=0.01)
    assert mcnemar_mde(100, 0.0) is None
    assert mcnemar_mde(1, 0.5) is None  # too few pairs for the approximation
    assert mcnemar_mde(4, 0.5) <= 0.5
    with pytest.raises(ValueError):
        mcnemar_mde(0, 0.1)


def simulated_power(n: int, psi: float, delta: float, reps: int = 4000, seed: int = 0) -> float:
    """Share of simulated studies in which the exact McNemar test rejects at 0.05."""
    import numpy as np
    from scipy.stats import binom

    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, [(psi - delta) / 2, (psi + delta) / 2, 1 - psi], size=reps)
    only_a, only_b = counts[:, 0], counts[:, 1]
    disc = only_a + only_b
    p = np.minimum(1.0, 2 * binom.cdf(np.minimum(only_a, only_b), disc, 0.5))
    p[disc == 0] = 1.0
    return float((p < 0.05).mean())


@pytest.mark.parametrize(("n", "psi"), [(1500, 0.12), (400, 0.3)])
def test_mde_has_eighty_percent_power_in_simulation(n, psi):
    delta = mcnemar_mde(n, psi)
    assert simulated_power(n, psi, delta) == pytest.approx(0.8, abs=0.04)
    assert simulated_power(n, psi, delta / 2) < 0.45  # half the MDE is detected far less often
