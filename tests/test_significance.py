"""Statistics over seeds: hand-computed intervals, pairing, verdicts, and the interval's coverage
and the detectable difference's power checked by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cutlib.significance import (
    detectable_difference,
    mean_ci,
    paired_comparison,
    verdict_of,
)


def test_mean_ci_by_hand() -> None:
    # values 2, 4, 9: mean 5, s² = (9 + 1 + 16)/2 = 13, t(0.975, 2) = 4.302653
    estimate = mean_ci([2.0, 4.0, 9.0])
    half = 4.302653 * math.sqrt(13) / math.sqrt(3)
    assert estimate.mean == 5.0 and estimate.n == 3
    assert estimate.sd == pytest.approx(math.sqrt(13))
    assert (estimate.low, estimate.high) == pytest.approx((5 - half, 5 + half), rel=1e-6)
    assert estimate.half_width == pytest.approx(half, rel=1e-6)


def test_one_value_has_no_interval_and_bad_input_is_refused() -> None:
    single = mean_ci([3.0])
    assert single.mean == 3.0 and math.isnan(single.low) and math.isnan(single.high)
    assert verdict_of(single) == "undecided"
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci([])
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        mean_ci([1.0, 2.0], level=1.0)


def test_pairing_removes_what_the_seeds_share() -> None:
    # seeds differ by up to 10 points, the methods by exactly 0.5 on every seed
    seed_effect = {0: -6.0, 1: 4.0, 2: 0.0, 3: 3.5}
    better = {s: v + 0.5 for s, v in seed_effect.items()}
    comparison = paired_comparison(better, seed_effect)
    assert comparison.difference.mean == pytest.approx(0.5)
    assert comparison.difference.half_width == pytest.approx(0.0)
    assert comparison.verdict == "holds" and comparison.detectable == pytest.approx(0.0)
    reverse = paired_comparison(seed_effect, better)
    assert reverse.verdict == "does not hold"


def test_only_shared_seeds_are_paired() -> None:
    comparison = paired_comparison({0: 1.0, 1: 2.0, 7: 100.0}, {0: 0.0, 1: 0.5, 3: -50.0})
    assert comparison.seeds == (0, 1)
    assert comparison.difference.mean == pytest.approx(1.25)
    with pytest.raises(ValueError, match="at least two shared seeds, got 1"):
        paired_comparison({0: 1.0, 1: 2.0}, {1: 0.0, 2: 0.0})


def test_the_interval_covers_the_true_mean_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    draws = rng.normal(1.0, 2.0, size=(4000, 5))
    covered = [e.low <= 1.0 <= e.high for e in map(mean_ci, draws.tolist())]
    assert 0.94 <= np.mean(covered) <= 0.96  # binomial sd of the rate: 0.0034


def test_a_true_difference_of_the_detectable_size_is_found_about_80_percent_of_the_time() -> None:
    n, sd = 10, 1.5
    delta = detectable_difference(sd, n)
    rng = np.random.default_rng(1)
    differences = rng.normal(delta, sd, size=(4000, n))
    found = [verdict_of(mean_ci(d)) == "holds" for d in differences.tolist()]
    # the approximation ignores the noncentral t's skew: slightly under 80 % at n = 10
    assert 0.74 <= np.mean(found) <= 0.84
    smaller = [verdict_of(mean_ci(d)) == "holds" for d in (differences - delta / 2).tolist()]
    assert np.mean(smaller) < 0.5  # half the detectable difference is usually missed


def test_p_value_by_hand_and_agrees_with_the_interval() -> None:
    from scipy import stats

    from cutlib.significance import p_value

    # differences 1..5: t = 3 / (√2.5 / √5) = 4.2426, 4 degrees of freedom
    assert p_value(mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx(
        2 * stats.t.sf(3 / math.sqrt(0.5), 4)
    )
    assert p_value(mean_ci([0.0, 0.0])) == 1.0 and p_value(mean_ci([1.0, 1.0])) == 0.0
    assert math.isnan(p_value(mean_ci([1.0])))
    rng = np.random.default_rng(3)
    for _ in range(200):  # p < 0.05 exactly when the 95 % interval excludes 0
        estimate = mean_ci(list(rng.normal(0.3, 1.0, 5)))
        assert (p_value(estimate) < 0.05) == (verdict_of(estimate) != "undecided")


def test_holm_by_hand() -> None:
    from cutlib.significance import holm

    # sorted 0.005 < 0.01 < 0.03 < 0.04 with m = 4: 0.02, 0.03, 0.06, max(0.06, 0.04)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # NaN entries are not tests: m = 2 here
    adjusted = holm([0.02, math.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.04) and math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.04)
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []


def test_holm_is_not_bonferroni_and_controls_the_family() -> None:
    """A planted alternative (Bonferroni: every p times m) rejects less; under the global null,
    Holm's rejections of any hypothesis stay at about 5 % of families, the uncorrected ones do
    not."""
    from cutlib.significance import holm

    p = [0.01, 0.02, 0.03]
    assert [q < 0.05 for q in holm(p)] == [True, True, True]  # 0.03, 0.04, 0.03 → 0.04
    assert [min(1, 3 * q) < 0.05 for q in p] == [True, False, False]
    rng = np.random.default_rng(0)
    families = rng.uniform(size=(4000, 10))
    any_holm = np.mean([min(holm(list(row))) < 0.05 for row in families])
    any_raw = np.mean((families < 0.05).any(axis=1))
    assert any_holm < 0.065 and any_raw > 0.35


def test_verdict_from_p() -> None:
    from cutlib.significance import verdict_from_p

    assert verdict_from_p(0.5, 0.049) == "holds"
    assert verdict_from_p(-0.5, 0.049) == "does not hold"
    assert verdict_from_p(0.5, 0.05) == "undecided"
