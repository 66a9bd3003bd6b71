"""Paired comparisons of two classifiers scored on the same examples: pure Python, seeded.

Owns the statistics `acct ablate` reports: the paired bootstrap confidence interval of an
accuracy difference, the exact McNemar test, the multiple-comparison adjustments (Holm across
arms, Benjamini-Hochberg across tasks), a binomial interval for one accuracy, and the minimum
detectable difference of the paired design. Inputs are per-example correctness flags of
configuration A and configuration B on the *same* examples, in the same order. No torch; the
bootstrap and McNemar are plain Python so they can be checked by hand, and scipy supplies what
it already has (normal quantiles, Benjamini-Hochberg, Wilson intervals).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class BootstrapCI:
    """Observed difference (B - A) and its percentile interval."""

    delta: float
    low: float
    high: float
    confidence: float
    resamples: int


def _differences(a: Sequence[bool], b: Sequence[bool]) -> list[int]:
    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    return [int(bool(y)) - int(bool(x)) for x, y in zip(a, b)]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of already sorted values, q in [0, 1]."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must lie in [0, 1], got {q}")
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def paired_bootstrap_ci(
    a: Sequence[bool],
    b: Sequence[bool],
    *,
    groups: Sequence[object] | None = None,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapCI:
    """Percentile bootstrap CI of accuracy(B) - accuracy(A), resampling examples as pairs.

    With `groups` (e.g. the seed each example was scored under) the statistic is the mean over
    groups of the per-group difference, and every group is resampled on its own (a stratified
    bootstrap), so runs on different splits are never mixed into one pool.
    """
    diffs = _differences(a, b)
    if not diffs:
        raise ValueError("no paired examples to compare")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    labels = list(groups) if groups is not None else [0] * len(diffs)
    if len(labels) != len(diffs):
        raise ValueError("one group label per example is needed")
    by_group: dict[object, list[int]] = {}
    for label, d in zip(labels, diffs):
        by_group.setdefault(label, []).append(d)
    strata = list(by_group.values())

    def statistic(samples: list[list[int]]) -> float:
        return sum(sum(s) / len(s) for s in samples) / len(samples)

    observed = statistic(strata)
    rng = random.Random(seed)
    # Only the sum of a resample matters, and sum() of random.choices runs at C speed: about
    # a second for 10,000 resamples of 1,500 examples.
    draws = sorted(
        sum(sum(rng.choices(s, k=len(s))) / len(s) for s in strata) / len(strata) for _ in range(resamples)
    )
    alpha = (1.0 - confidence) / 2.0
    return BootstrapCI(
        delta=observed,
        low=percentile(draws, alpha),
        high=percentile(draws, 1.0 - alpha),
        confidence=confidence,
        resamples=resamples,
    )


def discordant_counts(a: Sequence[bool], b: Sequence[bool]) -> tuple[int, int]:
    """(examples only A gets right, examples only B gets right)."""
    diffs = _differences(a, b)
    return sum(d < 0 for d in diffs), sum(d > 0 for d in diffs)


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Exact two-sided McNemar p-value: a binomial(n, 1/2) test on the n discordant pairs.

    p = min(1, 2 * P[X <= min(n01, n10)]) with X ~ Binomial(n01 + n10, 1/2); 1.0 when the two
    never disagree. Computed with exact fractions, so it is right even for thousands of pairs.
    """
    only_a, only_b = discordant_counts(a, b)
    return mcnemar_exact_counts(only_a, only_b)


def mcnemar_exact_counts(only_a: int, only_b: int) -> float:
    """The exact McNemar p-value from the two discordant counts."""
    if only_a < 0 or only_b < 0:
        raise ValueError("discordant counts must be non-negative")
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    if not values:
        raise ValueError("mean of no values")
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order.

    Sort ascending, multiply the i-th smallest (0-based) by m - i, take the running maximum so the
    adjusted values keep the order of the raw ones, and cap at 1 (Holm 1979; R's p.adjust "holm").
    """
    m = len(pvalues)
    for p in pvalues:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values must lie in [0, 1], got {p}")
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def bh_qvalues(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values, false discovery rate), in the input order."""
    if not pvalues:
        return []
    from scipy.stats import false_discovery_control

    return [float(q) for q in false_discovery_control(list(pvalues), method="bh")]


def binomial_ci(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (one arm's accuracy on n questions)."""
    if n <= 0:
        raise ValueError("a proportion of no trials has no interval")
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def mcnemar_mde(n: int, discordance: float, *, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """Smallest accuracy difference |p_B - p_A| the paired McNemar test detects with `power`.

    Normal approximation of Connor (1987) for n pairs with discordance rate psi = P(the two
    configurations disagree on a question) and difference delta = p_01 - p_10:

        n = (z_{1-alpha/2} sqrt(psi) + z_{power} sqrt(psi - delta^2))^2 / delta^2

    solved for delta (the positive root of a quadratic):

        delta = sqrt(psi) (z_a sqrt(n) + z_b sqrt(n + z_b^2 - z_a^2)) / (n + z_b^2)

    None when there is no discordance (nothing to detect with) or n is too small for the formula.
    The result is capped at psi: a difference cannot exceed the share of questions that disagree.
    """
    if n <= 0:
        raise ValueError("the minimum detectable difference needs at least one pair")
    if not 0.0 <= discordance <= 1.0:
        raise ValueError(f"the discordance rate must lie in [0, 1], got {discordance}")
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError("alpha and power must lie in (0, 1)")
    if discordance == 0.0:
        return None
    from scipy.stats import norm

    z_a, z_b = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))
    inner = n + z_b**2 - z_a**2
    if inner < 0:
        return None
    delta = math.sqrt(discordance) * (z_a * math.sqrt(n) + z_b * math.sqrt(inner)) / (n + z_b**2)
    return min(delta, discordance)


def mcnemar_sample_size(delta: float, discordance: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Connor's (1987) number of pairs for difference `delta` at discordance rate psi (the inverse of the MDE)."""
    if not 0.0 < abs(delta) <= discordance <= 1.0:
        raise ValueError("need 0 < |delta| <= discordance <= 1")
    from scipy.stats import norm

    z_a, z_b = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))
    return (z_a * math.sqrt(discordance) + z_b * math.sqrt(discordance - delta**2)) ** 2 / delta**2
