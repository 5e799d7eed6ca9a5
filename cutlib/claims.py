"""The papers' claims, checked against this run's numbers
(docs/method/disparse.md#published-results).

Each comparative claim "A beats B" is checked on Δ_MTL (percent against the dense model, higher is
better) in every setting of the grid where both methods ran: dataset, task selection, sparsity and
protocol. With the seeds' Δ_MTL of A and of B, the difference of the means is compared with a
margin that is the larger of

- twice the standard error of that difference, ``2·sqrt(s_A²/n_A + s_B²/n_B)`` (sample standard
  deviations; about a 95 % interval for normal errors), and
- a floor, the profile's ``claims.noise_floor``: the seed-to-seed spread measured once on that
  profile (its comment says how), needed because with one seed there is no spread to compute.

Verdict: **holds** when the difference exceeds the margin, **does not hold** when it is below minus
the margin, and **within noise** otherwise.

The watershed claim (task masks agree in early layers and diverge after a "watershed" layer,
DiSparse Fig. ``density_plot``, which CUT's fusion relies on) is checked on the per-layer IoU of
the selected tasks' masks: it holds when the mean IoU over the first half of the backbone layers
exceeds that over the second half by more than ``claims.watershed_margin``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import pandas as pd
import yaml

Verdict = Literal["holds", "does not hold", "within noise"]
VERDICTS: tuple[Verdict, ...] = ("holds", "does not hold", "within noise")


@dataclass(frozen=True)
class Claim:
    """ "``better`` beats ``worse``", as stated by ``source``; ``note`` says how the claim maps onto
    this companion's methods."""

    source: str
    statement: str
    better: str
    worse: str
    note: str = ""


def paper_claims() -> tuple[Claim, ...]:
    """The comparative claims of CUT and DiSparse, in this package's method names, as listed in
    ``cutlib/paper_claims.yaml`` (data, so that no list of method names lives in the code).

    Example:
        >>> paper_claims()[0].statement
        'CUT beats LTH'
    """
    text = resources.files("cutlib").joinpath("paper_claims.yaml").read_text()
    return tuple(Claim(**entry) for entry in yaml.safe_load(text))


#: The comparative claims of CUT and DiSparse (:func:`paper_claims`).
CLAIMS: tuple[Claim, ...] = paper_claims()


def margin(better: Sequence[float], worse: Sequence[float], noise_floor: float) -> float:
    """The margin a difference of means must exceed: max(floor, 2 × its standard error).

    Example:
        >>> margin([1.0], [0.0], 0.5), round(margin([1.0, 3.0], [0.0, 0.0], 0.5), 3)
        (0.5, 2.0)
    """
    if noise_floor < 0:
        raise ValueError(f"the noise floor must be ≥ 0, got {noise_floor}")

    def variance_of_mean(values: Sequence[float]) -> float:
        return statistics.variance(values) / len(values) if len(values) > 1 else 0.0

    standard_error = math.sqrt(variance_of_mean(better) + variance_of_mean(worse))
    return max(noise_floor, 2.0 * standard_error)


def verdict(better: Sequence[float], worse: Sequence[float], noise_floor: float) -> Verdict:
    """Whether ``better`` (seed values, higher is better) beats ``worse`` beyond the noise.

    Example:
        >>> verdict([2.0], [0.0], 1.0), verdict([0.0], [2.0], 1.0), verdict([0.5], [0.0], 1.0)
        ('holds', 'does not hold', 'within noise')
    """
    if not better or not worse:
        raise ValueError("a verdict needs at least one value on each side")
    difference = statistics.fmean(better) - statistics.fmean(worse)
    bound = margin(better, worse, noise_floor)
    if difference > bound:
        return "holds"
    if difference < -bound:
        return "does not hold"
    return "within noise"


def _spread(values: Sequence[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:+.2f}"
    return f"{mean:+.2f} ± {statistics.stdev(values):.2f}"


def check_claims(
    runs: pd.DataFrame, noise_floor: float, claims: Sequence[Claim] = CLAIMS
) -> pd.DataFrame:
    """Every comparative claim in every setting where both of its methods ran.

    Args:
        runs: the grid's tidy table (:func:`cutlib.grid.collect`); its ``delta_mtl`` rows are used.
        noise_floor: Δ_MTL points below which a difference counts as noise (module docstring).
        claims: the claims to check.

    Returns:
        One row per (claim, setting): ``source``, ``claim``, ``against`` (the method names),
        ``dataset``, ``tasks``, ``protocol``, ``sparsity``, ``seeds``, ``better`` and ``worse``
        (Δ_MTL mean ± std), ``difference``, ``margin`` and ``verdict``.
    """
    delta = runs[runs["metric"] == "delta_mtl"]
    setting = ["dataset", "tasks", "protocol", "sparsity"]
    rows = []
    for claim in claims:
        a = delta[delta["method"] == claim.better]
        b = delta[delta["method"] == claim.worse]
        for key, left in a.groupby(setting, sort=True):
            right = b
            for column, value in zip(setting, key, strict=True):
                right = right[right[column] == value]
            if right.empty:
                continue
            better, worse = list(left["value"]), list(right["value"])
            rows.append(
                dict(zip(setting, key, strict=True))
                | {
                    "source": claim.source,
                    "claim": claim.statement,
                    "against": f"{claim.better} vs {claim.worse}",
                    "note": claim.note,
                    "seeds": min(len(better), len(worse)),
                    "better": _spread(better),
                    "worse": _spread(worse),
                    "difference": statistics.fmean(better) - statistics.fmean(worse),
                    "margin": margin(better, worse, noise_floor),
                    "verdict": verdict(better, worse, noise_floor),
                }
            )
    columns = ["source", "claim", "against", "note", *setting, "seeds", "better", "worse"]
    columns += ["difference", "margin", "verdict"]
    return pd.DataFrame(rows, columns=columns)


def summarise_claims(checked: pd.DataFrame) -> pd.DataFrame:
    """Per claim and method pair: in how many settings it holds, fails or is within noise.

    Example:
        >>> frame = pd.DataFrame({"source": ["CUT"] * 3, "claim": ["c"] * 3,
        ...     "against": ["cut vs snip"] * 3, "verdict": ["holds", "holds", "within noise"]})
        >>> summarise_claims(frame).iloc[0].to_dict()["overall"]
        'holds in 2, within noise in 1 of 3 settings'
    """
    rows = []
    for (source, claim, against), group in checked.groupby(
        ["source", "claim", "against"], sort=False
    ):
        counts = group["verdict"].value_counts()
        row = {"source": source, "claim": claim, "against": against}
        row |= {v: int(counts.get(v, 0)) for v in VERDICTS}
        total = len(group)
        present = [v for v in VERDICTS if row[v]]
        if len(present) == 1:
            overall = {
                "holds": f"holds in all {total} settings",
                "does not hold": f"does not hold in any of {total} settings",
                "within noise": f"within noise in all {total} settings",
            }[present[0]]
        else:
            overall = ", ".join(f"{v} in {row[v]}" for v in present) + f" of {total} settings"
        rows.append(row | {"overall": overall})
    return pd.DataFrame(rows, columns=["source", "claim", "against", *VERDICTS, "overall"])


def watershed_verdict(layer_iou: Sequence[float], margin_: float) -> tuple[float, float, Verdict]:
    """Early vs late agreement of task masks: the mean IoU of the first and the second half of
    the backbone layers (in depth order), and whether early exceeds late by more than ``margin_``.

    Example:
        >>> watershed_verdict([0.9, 0.8, 0.2, 0.1], 0.1)
        (0.85, 0.15, 'holds')
    """
    values = [v for v in layer_iou if not math.isnan(v)]
    if len(values) < 2:
        raise ValueError("the watershed needs the IoU of at least two layers")
    half = len(values) // 2
    early = sum(values[:half]) / half
    late = sum(values[half:]) / (len(values) - half)
    return round(early, 12), round(late, 12), verdict([early], [late], margin_)


def claims_markdown(
    checked: pd.DataFrame,
    watershed: pd.DataFrame,
    *,
    profile: str,
    noise_floor: float,
    watershed_margin: float,
) -> str:
    """``results/tables/claims.md``: how the verdicts are reached, the summary per claim, the
    watershed per dataset, and every setting's numbers."""
    summary = summarise_claims(checked)
    details = checked.drop(columns=["source", "note"]).copy()
    details["sparsity"] = details["sparsity"].map(lambda s: f"{s:.0%}")
    for column in ("difference", "margin"):
        details[column] = details[column].map(lambda v: f"{v:.2f}")
    parts = [
        f"# The papers' claims, checked on this run ({profile} profile)",
        "",
        "Written by `notebooks/07_results.ipynb` from `runs.csv`; nothing here is edited by hand.",
        'A claim "A beats B" is checked on Δ_MTL (% against the dense model) in every setting '
        "where both ran: it **holds** when A's mean exceeds B's by more than the margin, "
        "**does not hold** when it falls short by more than the margin, and is **within noise** "
        "otherwise. The margin is the larger of twice the standard error of the difference over "
        f"seeds and a noise floor of {noise_floor:g} Δ_MTL points (`claims.noise_floor`). The "
        "watershed holds when the mean IoU of the task masks over the first half of the backbone "
        f"layers exceeds that over the second half by more than {watershed_margin:g}.",
        "",
        "These are synthetic scenes and a small network: a verdict here says what the method "
        "does on this benchmark, not whether the paper's real-data numbers are right.",
        "",
        "## Summary",
        "",
        summary.to_markdown(index=False),
        "",
        "## The watershed: task masks agree early and diverge late",
        "",
        watershed.to_markdown(index=False, floatfmt=".2f") if len(watershed) else "(not run)",
        "",
        "## Every setting",
        "",
        details.to_markdown(index=False),
        "",
    ]
    return "\n".join(parts)
