"""The ablation statistics against small cases computed by hand."""

from __future__ import annotations

import math

import pytest

from acct.stats import (
    discordant_counts,
    mcnemar_exact,
    mcnemar_exact_counts,
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
