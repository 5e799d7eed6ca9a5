"""Has the dense pre-training converged? A stated criterion on its validation curve
(docs/method/metrics.md#the-control).

Every Δ_MTL is measured against the dense pre-trained model. If that model is still learning when
its pre-training stops, any further training, pruned or not, raises the metrics, and the pruned
models' fine-tuning shows up as a gain over the dense model that pruning never earned. The check:

    gain = (best validation loss before the last quarter − best in the last quarter)
           / best before the last quarter

over the validation points of the pre-training's history (its λ-weighted loss, ``val_loss``). The
pre-training **converged** when the gain is below ``tolerance`` (1 %): the last quarter of the
steps bought less than 1 % of loss. The criterion is one-sided by design: a validation loss that
rises at the end (over-fitting) counts as converged, since the selected checkpoint is the best one
either way. The control run (:mod:`cutlib.methods.control`) is the check's consequence measured:
if the pre-training converged, fine-tuning without pruning should not beat the dense model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

LAST_FRACTION = 0.25  #: the part of the pre-training whose gain is checked
TOLERANCE = 0.01  #: the relative gain below which it counts as converged


def convergence(
    history: Sequence[Mapping[str, float]],
    last: float = LAST_FRACTION,
    tolerance: float = TOLERANCE,
) -> dict[str, object]:
    """The convergence check of one pre-training (module docstring) from its ``history`` (the
    validation points of ``history.json``: ``iteration`` and ``val_loss``).

    Returns ``iterations`` (the last point's), ``points_last`` (validation points in the last
    part), ``best_before``, ``best_last``, ``gain`` (relative) and ``converged``.

    Raises:
        ValueError: no validation point before or in the last part, or ``last`` outside (0, 1).

    Example:
        >>> h = [{"iteration": i, "val_loss": v} for i, v in [(250, 6.4), (500, 5.5), (750, 5.17),
        ...      (1000, 4.94)]]
        >>> check = convergence(h)  # the last quarter (after 750) gains 0.23 on 5.17: 4.4 %
        >>> round(check["gain"], 4), check["converged"]
        (0.0445, False)
    """
    if not 0.0 < last < 1.0:
        raise ValueError(f"the last part must be a fraction in (0, 1), got {last}")
    points = [(int(h["iteration"]), float(h["val_loss"])) for h in history]
    if not points:
        raise ValueError("a history without validation points")
    iterations = max(i for i, _ in points)
    start = iterations * (1.0 - last)
    before = [v for i, v in points if i <= start]
    after = [v for i, v in points if i > start]
    if not before or not after:
        raise ValueError(
            f"the convergence check needs validation points before and after iteration {start:g}"
        )
    best_before, best_last = min(before), min(after)
    gain = (best_before - best_last) / best_before
    return {
        "iterations": iterations,
        "points_last": len(after),
        "best_before": best_before,
        "best_last": best_last,
        "gain": gain,
        "converged": bool(gain < tolerance),
    }


def convergence_table(histories: Mapping[int, Sequence[Mapping[str, float]]]) -> pd.DataFrame:
    """The check of every seed's pre-training (``seed → history``), one row per seed.

    Example:
        >>> flat = [{"iteration": i, "val_loss": 1.0} for i in (100, 200, 300, 400)]
        >>> convergence_table({0: flat}).to_dict("records")[0]["converged"]
        True
    """
    return pd.DataFrame([{"seed": seed} | convergence(h) for seed, h in sorted(histories.items())])
