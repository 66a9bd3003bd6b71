"""Inference with the seed as the unit of replication: what `acct ablate` concludes across training runs.

Fine-tuning's largest source of variance is the training run itself (initialisation of the new
layers, data order), so an arm is compared with the reference by one observation per seed: the
paired difference in accuracy on that seed's shared held-out questions. Across seeds:
- the primary test is a paired t-test of the per-seed differences (n - 1 degrees of freedom), with
  its t interval; when the seeds' differences are all equal, their sd (0) says nothing, and the
  standard error is the one each seed's question sampling alone implies (with small test splits
  the same single question flipping on every seed is common, and is no certain difference); with
  one seed there is no test across seeds and nothing here pretends otherwise;
- heterogeneity (tau, I², Cochran's Q) comes from a random-effects meta-analysis of the per-seed
  differences, each with its within-seed (question-level) variance;
- power is stated at the same level: the smallest mean difference a paired t-test over the seeds
  run detects with 80 % power at the observed between-seed sd, and the seeds needed for 1, 2 and 5
  points.
A question-level McNemar test treats the trained models as fixed; it stays as a per-seed diagnostic.
No torch; scipy and statsmodels do the arithmetic.
"""

from __future__ import annotations

import math
import operator
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

ALPHA = 0.05
POWER = 0.8
TEST_NAME = "paired t-test over seeds"
FLOOR_NOTE = "standard error at least the within-seed sampling error"
TARGET_POINTS = (1, 2, 5)


@dataclass(frozen=True)
class SeedSummary:
    """Mean, sd and t interval of one quantity observed once per seed."""

    mean: float
    sd: float | None
    ci_low: float | None
    ci_high: float | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(values: Sequence[float], confidence: float = 1 - ALPHA) -> SeedSummary:
    """Mean ± sd over seeds with a t interval (none with one seed; a zero-width one when all are equal)."""
    if not values:
        raise ValueError("no seeds to summarise")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return SeedSummary(mean, None, None, None, len(values))
    from scipy.stats import t

    sd = statistics.stdev(values)
    half = float(t.ppf(0.5 + confidence / 2, len(values) - 1)) * sd / math.sqrt(len(values))
    return SeedSummary(mean, sd, mean - half, mean + half, len(values))


@dataclass(frozen=True)
class SeedTest:
    """The test across seeds of the mean of per-seed differences."""

    mean: float
    se: float | None
    df: int
    p: float | None
    ci_low: float | None
    ci_high: float | None
    floored: bool  # the per-seed differences were all equal: the within-seed sampling error set the standard error


def seed_test(deltas: Sequence[float], within_variances: Sequence[float] | None = None,
              confidence: float = 1 - ALPHA) -> SeedTest:
    """Paired t-test over seeds of the mean difference, with its t interval (n - 1 df).

    The standard error is sd/sqrt(n) of the per-seed differences. When they are all equal that sd is
    0 and estimates nothing; the standard error is then sqrt(mean(v)/n), with v the within-seed
    variances of each difference: the spread the question sampling alone produces. (Taking the larger
    of the two at every sd would make the test far more conservative than its nominal level; equal
    differences have probability 0 under a continuous model, so this leaves the test's level as it
    is.) None for p and the interval with one seed; p is 1 when the arms answered every question
    alike on every seed.
    """
    n = len(deltas)
    mean = statistics.fmean(deltas) if deltas else 0.0
    if n < 2:
        return SeedTest(mean, None, 0, None, None, None, False)
    between = statistics.stdev(deltas) / math.sqrt(n)
    within = math.sqrt(statistics.fmean(within_variances) / n) if within_variances else 0.0
    se = between if between > 1e-12 else within
    if se <= 1e-15:
        same = abs(mean) <= 1e-15
        return SeedTest(mean, 0.0, n - 1, 1.0 if same else None, mean if same else None, mean if same else None, False)
    from scipy.special import stdtr, stdtrit

    p = float(min(1.0, 2.0 * stdtr(n - 1, -abs(mean / se))))
    half = float(stdtrit(n - 1, 0.5 + confidence / 2)) * se
    return SeedTest(mean, se, n - 1, p, mean - half, mean + half, se != between)


def paired_t_p(deltas: Sequence[float], within_variances: Sequence[float] | None = None) -> float | None:
    """Two-sided p of the test across seeds (`seed_test`) of the per-seed differences against 0."""
    return seed_test(deltas, within_variances).p


def heterogeneity(deltas: Sequence[float], within_variances: Sequence[float]) -> dict[str, float | None]:
    """Between-seed spread of the true difference: tau (Paule-Mandel), I² and Cochran's Q p-value.

    Each seed's difference is weighted by its within-seed variance (of a mean of paired question
    differences); tau is in the units of the differences. None where it cannot be estimated (one
    seed, or a seed whose arms never disagreed, which has no within-seed variance).
    """
    empty = {"tau": None, "i2": None, "q": None, "q_p": None, "method": None}
    if len(deltas) < 2 or min(within_variances) <= 0:
        return empty
    import warnings

    import numpy as np
    from statsmodels.stats.meta_analysis import combine_effects

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = combine_effects(np.asarray(deltas, float), np.asarray(within_variances, float), method_re="pm")
        q_p = float(res.test_homogeneity().pvalue)
    return {"tau": math.sqrt(max(0.0, float(res.tau2))), "i2": float(res.i2), "q": float(res.q), "q_p": q_p,
            "method": "random effects (Paule-Mandel tau²), Cochran's Q"}


def within_variance(ref: Sequence[bool], arm: Sequence[bool]) -> float:
    """Variance of the mean paired difference (arm - reference) on one seed's questions."""
    n = len(ref)
    if n < 2:
        return 0.0
    if len(arm) != n:
        raise ValueError("the two arms of a seed must be scored on the same questions")
    ref01, arm01 = list(map(int, ref)), list(map(int, arm))
    # statistics.variance(d) of the differences d = arm - ref, exactly: integer sums, one correctly
    # rounded division (no Fractions). With 0/1 flags, d² is 1 where the two differ.
    total = sum(arm01) - sum(ref01)
    squares = sum(map(operator.ne, ref01, arm01))
    return (n * squares - total * total) / (n * (n - 1)) / n


@dataclass(frozen=True)
class Power:
    """What a paired t-test over seeds could detect, at the observed between-seed sd of the differences."""

    seeds: int
    sd: float | None
    mde: float | None  # smallest |mean difference| detected with 80 % power at alpha 0.05 (fraction)
    seeds_needed: dict[str, int | None]  # "1", "2", "5" points -> seeds
    why_not: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def power(deltas: Sequence[float], within_variances: Sequence[float] | None = None, *, alpha: float = ALPHA,
          target: float = POWER, points: Sequence[int] = TARGET_POINTS) -> Power:
    """The seed-level minimum detectable difference, and the seeds a 1, 2 or 5 point difference needs.

    The sd is the one the test uses: the between-seed sd of the differences, or the within-seed
    sampling sd when the differences were all equal (see `seed_test`).
    """
    n = len(deltas)
    none = {str(p): None for p in points}
    if n < 2:
        return Power(n, None, None, none, "one seed: the between-seed sd, and with it the power, cannot be estimated")
    within = math.sqrt(statistics.fmean(within_variances)) if within_variances else 0.0
    sd = statistics.stdev(deltas)
    sd = sd if sd > 1e-12 else within
    if sd <= 1e-12:
        return Power(n, sd, None, none, "the per-seed differences did not vary: the between-seed sd is 0, "
                                         "so the power cannot be estimated from these seeds")
    from statsmodels.stats.power import TTestPower

    solver = TTestPower()
    mde = float(solver.solve_power(effect_size=None, nobs=n, alpha=alpha, power=target)) * sd
    needed: dict[str, int | None] = {}
    for p in points:
        d = (p / 100) / sd
        try:
            k = float(solver.solve_power(effect_size=d, nobs=None, alpha=alpha, power=target))
        except (ValueError, RuntimeError):
            k = float("nan")
        # The solver answers below 2 for huge effects; a t-test needs two seeds at least.
        needed[str(p)] = max(2, math.ceil(k)) if math.isfinite(k) else None
    return Power(n, sd, mde, needed)


@dataclass(frozen=True)
class SeedComparison:
    """An arm against the reference, one paired difference per seed."""

    deltas: list[float]
    summary: SeedSummary  # mean ± sd of the per-seed differences
    result: SeedTest
    test: str
    heterogeneity: dict[str, float | None]
    power: Power

    @property
    def p(self) -> float | None:
        return self.result.p


def seed_deltas(ref: Sequence[Sequence[bool]], arm: Sequence[Sequence[bool]]) -> list[float]:
    """accuracy(arm) - accuracy(reference) for each seed, on that seed's shared questions."""
    if len(ref) != len(arm) or not ref:
        raise ValueError("one list of flags per seed for both arms is needed")
    deltas = []
    for a, b in zip(ref, arm):
        if len(a) != len(b) or not a:
            raise ValueError("the two arms of a seed must be scored on the same, non-empty questions")
        deltas.append(sum(map(bool, b)) / len(b) - sum(map(bool, a)) / len(a))
    return deltas


def primary_test(ref: Sequence[Sequence[bool]], arm: Sequence[Sequence[bool]]) -> tuple[list[float], SeedTest]:
    """The per-seed differences and the test across seeds `acct ablate` reports as its verdict."""
    deltas = seed_deltas(ref, arm)
    return deltas, seed_test(deltas, [within_variance(a, b) for a, b in zip(ref, arm)])


def compare(ref: Sequence[Sequence[bool]], arm: Sequence[Sequence[bool]]) -> SeedComparison:
    """The primary comparison: per-seed accuracy differences on shared questions, tested across seeds.

    `ref[s]` and `arm[s]` are the correctness flags of seed s's runs on the same questions in the same order.
    """
    deltas, test = primary_test(ref, arm)
    variances = [within_variance(a, b) for a, b in zip(ref, arm)]
    name = TEST_NAME + f" ({len(deltas) - 1} df)" if len(deltas) > 1 else "none: one seed"
    return SeedComparison(deltas, summarize(deltas), test, name, heterogeneity(deltas, variances),
                          power(deltas, variances))


def delta_m(ref_tasks: dict[str, float], arm_tasks: dict[str, float]) -> tuple[float | None, int]:
    """Δm %: the mean over tasks of the relative change of accuracy against the reference, in percent.

    Tasks on which the reference scored 0 have no relative change and are left out; returns the value
    (None if no task is left) and the number of tasks it averages.
    """
    changes = [100.0 * (arm_tasks[t] - base) / base for t, base in ref_tasks.items() if t in arm_tasks and base > 0]
    return (statistics.fmean(changes) if changes else None), len(changes)
