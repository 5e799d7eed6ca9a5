"""Statistics over seeds: a cell's mean with its confidence interval, and paired comparisons between
methods with the verdict the data support (docs/method/metrics.md#statistics-over-seeds).

A study runs every method on the same seeds, and each seed's runs share that seed's pre-trained
model and data, so two methods are compared **per seed**: d_s = x_s(A) − x_s(B). The comparison is
the mean of the d_s with its Student-t confidence interval (n − 1 degrees of freedom); pairing
removes the seed-to-seed variation both methods share, which is most of it. A claim "A beats B":

- **holds** when the interval lies above 0, **does not hold** when it lies below 0, and is
  **undecided** otherwise; the noise is the measured spread of the d_s, not a chosen floor;
- comes with the **detectable difference**: the smallest true mean difference this many seeds
  with this spread would detect at the interval's level with the given power (80 %), by the
  usual approximation (t_{1−α/2} + t_{power}) · s_d / √n. An undecided verdict with a detectable
  difference of 3 points says "no difference of 3 points or more", not "no difference".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from scipy import stats

Verdict = Literal["holds", "does not hold", "undecided"]
LEVEL = 0.95  #: confidence level of every interval
POWER = 0.8  #: power of the detectable difference


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` values with its ``level`` confidence interval [``low``, ``high``] and the
    values' sample standard deviation ``sd`` (``nan`` bounds and sd for a single value)."""

    mean: float
    low: float
    high: float
    sd: float
    n: int
    level: float = LEVEL

    @property
    def half_width(self) -> float:
        """Half the interval's width (the "±" of "mean ± half width")."""
        return (self.high - self.low) / 2


def _t(probability: float, n: int) -> float:
    return float(stats.t.ppf(probability, n - 1))


def mean_ci(values: Sequence[float], level: float = LEVEL) -> Estimate:
    """The mean of ``values`` with its Student-t confidence interval.

    Example:
        >>> e = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])  # s = √2.5, t(0.975, 4) = 2.7764
        >>> round(e.mean, 4), round(e.low, 4), round(e.high, 4)
        (3.0, 1.0368, 4.9632)

    Raises:
        ValueError: no values, or a level outside (0, 1).
    """
    if not values:
        raise ValueError("a mean needs at least one value")
    if not 0.0 < level < 1.0:
        raise ValueError(f"a confidence level must be in (0, 1), got {level}")
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return Estimate(mean, math.nan, math.nan, math.nan, 1, level)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = _t(0.5 + level / 2, n) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, sd, n, level)


@dataclass(frozen=True)
class PairedComparison:
    """``better`` − ``worse`` paired by seed: the mean difference with its interval, the verdict
    on "better beats worse", the detectable difference, and the seeds used."""

    difference: Estimate
    verdict: Verdict
    detectable: float
    seeds: tuple[int, ...]


def verdict_of(estimate: Estimate) -> Verdict:
    """``holds`` if the interval lies above 0, ``does not hold`` if below, else ``undecided``.

    Example:
        >>> [verdict_of(mean_ci(v)) for v in ([1.0, 1.2, 0.9], [-1.0, -1.2, -0.9], [1.0, -1.0])]
        ['holds', 'does not hold', 'undecided']
    """
    if estimate.low > 0:
        return "holds"
    if estimate.high < 0:
        return "does not hold"
    return "undecided"


def detectable_difference(sd: float, n: int, level: float = LEVEL, power: float = POWER) -> float:
    """The smallest true mean difference that ``n`` paired seeds with spread ``sd`` would detect
    (two-sided test at ``level``, with probability ``power``): (t_{(1+level)/2} + t_{power}) · sd/√n
    with n − 1 degrees of freedom (``nan`` for n < 2).

    Example:
        >>> round(detectable_difference(math.sqrt(2.5), 5), 4)  # (2.7764 + 0.9410) · 0.7071
        2.6286
    """
    if n < 2:
        return math.nan
    return (_t(0.5 + level / 2, n) + _t(power, n)) * sd / math.sqrt(n)


def paired_comparison(
    better: Mapping[int, float],
    worse: Mapping[int, float],
    level: float = LEVEL,
    power: float = POWER,
) -> PairedComparison:
    """Compare two methods' values (seed → value, e.g. Δ_MTL) on the seeds they share.

    Raises:
        ValueError: fewer than two shared seeds (no spread to judge a difference by).
    """
    seeds = tuple(sorted(set(better) & set(worse)))
    if len(seeds) < 2:
        raise ValueError(
            f"a paired comparison needs at least two shared seeds, got {len(seeds)} "
            f"(seeds {sorted(better)} against {sorted(worse)})"
        )
    difference = mean_ci([better[s] - worse[s] for s in seeds], level)
    return PairedComparison(
        difference,
        verdict_of(difference),
        detectable_difference(difference.sd, difference.n, level, power),
        seeds,
    )


def p_value(estimate: Estimate) -> float:
    """The two-sided p-value of a paired t-test of "the mean difference is 0" for ``estimate``
    (a mean of per-seed differences): 2 · P(T > |mean| / (sd/√n)) with n − 1 degrees of freedom;
    ``nan`` for a single value. It is below 1 − ``LEVEL`` exactly when the interval of
    :func:`mean_ci` excludes 0.

    Example:
        >>> round(p_value(mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])), 4)  # t = 3 / (√2.5/√5) = 4.2426
        0.0132
    """
    if estimate.n < 2:
        return math.nan
    if estimate.sd == 0:
        return 0.0 if estimate.mean != 0 else 1.0
    t = abs(estimate.mean) / (estimate.sd / math.sqrt(estimate.n))
    return float(2 * stats.t.sf(t, estimate.n - 1))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (Holm, "A Simple Sequentially
    Rejective Multiple Test Procedure", Scand. J. Statist. 1979): with the m p-values sorted,
    p_(1) ≤ … ≤ p_(m), the adjusted p_(i) is max over j ≤ i of min(1, (m − j + 1) · p_(j)).
    Rejecting where the adjusted value is below α keeps the family-wise error rate at α whatever
    the dependence between the tests. ``nan`` entries are not tests: they stay ``nan`` and do not
    count in m.

    Example:
        >>> holm([0.01, 0.04, 0.03, 0.005])  # m = 4: 0.005·4, 0.01·3, 0.03·2, then 0.04·1 → 0.06
        [0.03, 0.06, 0.06, 0.02]
    """
    tests = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running, m = 0.0, len(tests)
    for position, (p, index) in enumerate(tests):
        running = max(running, min(1.0, (m - position) * p))
        adjusted[index] = round(running, 15)
    return adjusted


def verdict_from_p(difference: float, p: float, level: float = LEVEL) -> Verdict:
    """``holds`` / ``does not hold`` when ``p`` (adjusted or not) is below 1 − ``level``, by the
    sign of ``difference``; ``undecided`` otherwise.

    Example:
        >>> verdict_from_p(1.2, 0.01), verdict_from_p(-1.2, 0.01), verdict_from_p(1.2, 0.2)
        ('holds', 'does not hold', 'undecided')
    """
    if p < round(1 - level, 12):  # 1 − 0.95 is 0.05000000000000004 in floating point
        return "holds" if difference > 0 else "does not hold"
    return "undecided"
