"""The convergence check of a pre-training, on hand-made validation curves."""

from __future__ import annotations

import pytest

from cutlib.convergence import convergence, convergence_table


def _curve(values: list[float], every: int = 100) -> list[dict[str, float]]:
    return [{"iteration": every * (i + 1), "val_loss": v} for i, v in enumerate(values)]


def test_a_flat_end_converges_and_a_falling_end_does_not() -> None:
    # 8 points, the last quarter is iterations 700 and 800
    flat = convergence(_curve([9, 7, 6, 5.5, 5.2, 5.1, 5.08, 5.07]))
    # best before 600 is 5.1, best after is 5.07: gain 0.03 / 5.1 = 0.59 %
    assert flat["gain"] == pytest.approx(0.03 / 5.1) and flat["converged"]
    assert flat["points_last"] == 2 and flat["iterations"] == 800
    falling = convergence(_curve([9, 7, 6, 5.5, 5.2, 5.1, 4.9, 4.8]))
    assert falling["gain"] == pytest.approx(0.3 / 5.1) and not falling["converged"]


def test_a_rising_end_counts_as_converged() -> None:
    # over-fitting: the best checkpoint is before the last quarter, the gain negative
    check = convergence(_curve([9, 7, 6, 5.0, 5.1, 5.2, 5.3, 5.4]))
    assert check["gain"] < 0 and check["converged"]


def test_the_tolerance_and_the_fraction_are_parameters() -> None:
    curve = _curve([9, 7, 6, 5.5, 5.2, 5.1, 5.08, 5.07])
    assert not convergence(curve, tolerance=0.005)["converged"]
    assert convergence(curve, last=0.5)["best_before"] == 5.5


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="before and after"):
        convergence(_curve([1.0]))
    with pytest.raises(ValueError, match="without validation points"):
        convergence([])
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        convergence(_curve([1.0, 2.0]), last=1.0)


def test_one_row_per_seed() -> None:
    table = convergence_table({1: _curve([3, 2, 2, 1]), 0: _curve([3, 2, 2, 2])})
    assert list(table["seed"]) == [0, 1]
    assert list(table["converged"]) == [True, False]
