"""The papers' claims, checked against this run's numbers
(docs/method/disparse.md#published-results, docs/method/metrics.md#statistics-over-seeds).

Each comparative claim "A beats B" is checked on Δ_MTL (percent against the dense model, higher is
better) in every setting of the grid where both methods ran: dataset, task selection, sparsity and
protocol. The two methods are compared **paired by seed** (:func:`cutlib.significance.
paired_comparison`): each seed's runs share that seed's data and pre-trained model, so the claim
is judged on the per-seed differences d_s = Δ_MTL_s(A) − Δ_MTL_s(B), their mean and its 95 %
Student-t interval. Verdict: **holds** when the interval lies above 0, **does not hold** when it
lies below, **undecided** otherwise; each row also gives the **detectable difference**, the
smallest true difference these seeds could have detected with 80 % power. The noise is measured
from the seeds, never chosen: a setting with a single shared seed has no interval and is reported
as a **single seed** observation, its difference shown but not judged.

**Multiplicity.** A claims table judges dozens of settings at 95 % each; by chance alone about
one in twenty undecided comparisons would come out decided. Every row therefore carries two
verdicts: the one of its own interval (``verdict``, uncorrected), and the one of Holm's
family-wise correction over all judged rows of the table (``verdict_holm``: the paired t-test's
p-value adjusted by :func:`cutlib.significance.holm`, decided below 0.05), which keeps the chance
of any false verdict in the whole table at 5 %.

**The control.** Each row also gives both methods against the control (the same pre-trained model
fine-tuned with nothing pruned, :mod:`cutlib.methods.control`), paired by seed, where the grid has
it: a method "beating" another says nothing about pruning if neither beats the control.

The watershed claim (task masks agree in early layers and diverge after a "watershed" layer,
DiSparse Fig. ``density_plot``, which CUT's fusion relies on) is checked on the per-layer IoU of
the selected tasks' masks: it holds when the mean IoU over the first half of the backbone layers
exceeds that over the second half by more than ``claims.watershed_margin``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import pandas as pd
import yaml

from cutlib.methods import CONTROL
from cutlib.significance import holm, mean_ci, p_value, paired_comparison, verdict_from_p

Verdict = Literal["holds", "does not hold", "undecided", "single seed"]
VERDICTS: tuple[Verdict, ...] = ("holds", "does not hold", "undecided", "single seed")


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


def compare(better: Mapping[int, float], worse: Mapping[int, float]) -> dict[str, object]:
    """One claim in one setting: ``better`` and ``worse`` map seed → Δ_MTL.

    Returns the shared ``seeds``, each side's mean ± 95 % half-width over those seeds, the mean
    paired ``difference`` with its interval (``ci_low``, ``ci_high``), the ``detectable``
    difference and the ``verdict`` (module docstring); with one shared seed the interval and the
    detectable difference are NaN and the verdict is ``single seed``.

    Example:
        >>> row = compare({0: 3.0, 1: 3.5, 2: 2.5}, {0: 1.0, 1: 1.2, 2: 0.9})
        >>> round(row["difference"], 4), row["verdict"]
        (1.9667, 'holds')
        >>> compare({0: 3.0}, {0: 1.0})["verdict"]
        'single seed'
    """
    seeds = sorted(set(better) & set(worse))
    if not seeds:
        raise ValueError(f"no shared seed: {sorted(better)} against {sorted(worse)}")
    sides = {
        name: _spread([values[s] for s in seeds])
        for name, values in (("better", better), ("worse", worse))
    }
    if len(seeds) == 1:
        difference = better[seeds[0]] - worse[seeds[0]]
        low = high = detectable = p = math.nan
        judged: Verdict = "single seed"
    else:
        paired = paired_comparison(better, worse)
        estimate = paired.difference
        difference, low, high = estimate.mean, estimate.low, estimate.high
        detectable, judged, p = paired.detectable, paired.verdict, p_value(estimate)
    return (
        {"seeds": len(seeds)}
        | sides
        | {
            "difference": difference,
            "ci_low": low,
            "ci_high": high,
            "detectable": detectable,
            "verdict": judged,
            "p": p,
        }
    )


def _spread(values: Sequence[float]) -> str:
    """``mean ± half-width of its 95 % interval``, or the mean alone for one value."""
    estimate = mean_ci(values)
    if estimate.n < 2:
        return f"{estimate.mean:+.2f}"
    return f"{estimate.mean:+.2f} ± {estimate.half_width:.2f}"


def check_claims(runs: pd.DataFrame, claims: Sequence[Claim] = CLAIMS) -> pd.DataFrame:
    """Every comparative claim in every setting where both of its methods ran.

    Args:
        runs: the grid's tidy table (:func:`cutlib.grid.collect`); its ``delta_mtl`` rows are used.
        claims: the claims to check.

    Returns:
        One row per (claim, setting): ``source``, ``claim``, ``against`` (the method names),
        ``note``, the setting, the columns of :func:`compare`, each side against the control
        (``better − control``, ``worse − control``: the paired mean and its 95 % interval, or
        ``—`` without a control run), and the Holm-corrected ``p_holm`` and ``verdict_holm``
        (module docstring). Runs with method options (an ablation's variants) are left out: a
        claim is about the method as published.
    """
    delta = runs[runs["metric"] == "delta_mtl"]
    if "options" in delta:  # a run with non-default method options is an ablation, not the method
        delta = delta[delta["options"].fillna("") == ""]
    setting = ["dataset", "tasks", "protocol", "sparsity"]
    rows = []
    for claim in claims:
        a = delta[delta["method"] == claim.better]
        b = delta[delta["method"] == claim.worse]
        for key, left in a.groupby(setting, sort=True):
            where = dict(zip(setting, key, strict=True))
            better, worse = _by_seed(left), _by_seed(_matching(b, where))
            if not set(better) & set(worse):
                continue
            control = _by_seed(_matching(delta[delta["method"] == CONTROL], where, sparsity=False))
            rows.append(
                where
                | {
                    "source": claim.source,
                    "claim": claim.statement,
                    "against": f"{claim.better} vs {claim.worse}",
                    "note": claim.note,
                }
                | compare(better, worse)
                | {"better − control": _against(better, control)}
                | {"worse − control": _against(worse, control)}
            )
    columns = ["source", "claim", "against", "note", *setting, "seeds", "better", "worse"]
    columns += ["difference", "ci_low", "ci_high", "detectable", "verdict", "p"]
    columns += ["better − control", "worse − control"]
    checked = pd.DataFrame(rows, columns=columns)
    checked["p_holm"] = holm(checked["p"].astype(float).tolist())
    checked["verdict_holm"] = [
        "single seed" if math.isnan(p) else verdict_from_p(d, p)
        for d, p in zip(checked["difference"], checked["p_holm"], strict=True)
    ]
    return checked


def _by_seed(rows: pd.DataFrame) -> dict[int, float]:
    return dict(zip(rows["seed"].astype(int), rows["value"], strict=True))


def _matching(
    rows: pd.DataFrame, where: Mapping[str, object], sparsity: bool = True
) -> pd.DataFrame:
    """The rows of ``rows`` in the setting ``where`` (any sparsity when ``sparsity`` is False:
    the control runs at 0)."""
    for column, value in where.items():
        if column != "sparsity" or sparsity:
            rows = rows[rows[column] == value]
    return rows


def _against(values: Mapping[int, float], control: Mapping[int, float]) -> str:
    """``values`` − ``control`` paired by seed: ``mean [low, high]``, the mean alone with one
    shared seed, ``—`` without any."""
    seeds = sorted(set(values) & set(control))
    if not seeds:
        return "—"
    estimate = mean_ci([values[s] - control[s] for s in seeds])
    if estimate.n < 2:
        return f"{estimate.mean:+.2f}"
    return f"{estimate.mean:+.2f} [{estimate.low:+.2f}, {estimate.high:+.2f}]"


def summarise_claims(checked: pd.DataFrame) -> pd.DataFrame:
    """Per claim and method pair: in how many settings it holds, fails, is undecided or rests on
    a single seed after Holm's correction over the whole table (``verdict_holm``; the verdicts
    as they are when the table has none), and the same in words without the correction
    (``uncorrected``).

    Example:
        >>> frame = pd.DataFrame({"source": ["CUT"] * 3, "claim": ["c"] * 3,
        ...     "against": ["cut vs snip"] * 3, "verdict": ["holds", "holds", "undecided"],
        ...     "verdict_holm": ["holds", "undecided", "undecided"]})
        >>> row = summarise_claims(frame).iloc[0].to_dict()
        >>> row["overall (Holm)"], row["uncorrected"]
        ('holds in 1, undecided in 2 of 3 settings', 'holds in 2, undecided in 1 of 3 settings')
    """
    corrected = "verdict_holm" if "verdict_holm" in checked else "verdict"
    rows = []
    for (source, claim, against), group in checked.groupby(
        ["source", "claim", "against"], sort=False
    ):
        counts = group[corrected].value_counts()
        row = {"source": source, "claim": claim, "against": against}
        row |= {v: int(counts.get(v, 0)) for v in VERDICTS}
        row["overall (Holm)"] = _overall(group[corrected])
        rows.append(row | {"uncorrected": _overall(group["verdict"])})
    columns = ["source", "claim", "against", *VERDICTS, "overall (Holm)", "uncorrected"]
    return pd.DataFrame(rows, columns=columns)


def _overall(verdicts: pd.Series) -> str:
    """How many of the settings each verdict has, in words."""
    counts = verdicts.value_counts()
    present = [v for v in VERDICTS if counts.get(v, 0)]
    total = len(verdicts)
    if len(present) == 1:
        return {
            "holds": f"holds in all {total} settings",
            "does not hold": f"does not hold in any of {total} settings",
            "undecided": f"undecided in all {total} settings",
            "single seed": f"single seed in all {total} settings",
        }[present[0]]
    return ", ".join(f"{v} in {counts[v]}" for v in present) + f" of {total} settings"


def watershed_verdict(
    layer_iou: Sequence[float], margin: float
) -> tuple[float, float, Literal["holds", "does not hold", "undecided"]]:
    """Early vs late agreement of task masks: the mean IoU of the first and the second half of
    the backbone layers (in depth order), and whether early exceeds late by more than ``margin``
    (``does not hold`` when late exceeds early by more than it; ``undecided`` in between).

    Example:
        >>> watershed_verdict([0.9, 0.8, 0.2, 0.1], 0.1)
        (0.85, 0.15, 'holds')
    """
    values = [v for v in layer_iou if not math.isnan(v)]
    if len(values) < 2:
        raise ValueError("the watershed needs the IoU of at least two layers")
    half = len(values) // 2
    early = round(sum(values[:half]) / half, 12)
    late = round(sum(values[half:]) / (len(values) - half), 12)
    if early - late > margin:
        return early, late, "holds"
    if late - early > margin:
        return early, late, "does not hold"
    return early, late, "undecided"


def claims_markdown(
    checked: pd.DataFrame, watershed: pd.DataFrame, *, profile: str, watershed_margin: float
) -> str:
    """``claims.md``: how the verdicts are reached, the summary per claim, the watershed per
    dataset, and every setting's numbers."""
    summary = summarise_claims(checked)
    details = checked.drop(columns=["source", "note"]).copy()
    details["sparsity"] = details["sparsity"].map(lambda s: f"{s:.0%}")
    details["95 % CI"] = [
        "—" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"
        for low, high in zip(details.pop("ci_low"), details.pop("ci_high"), strict=True)
    ]
    details["difference"] = details["difference"].map(lambda v: f"{v:+.2f}")
    for column, shown in (("detectable", "{:.2f}"), ("p", "{:.3f}"), ("p_holm", "{:.3f}")):
        details[column] = ["—" if math.isnan(v) else shown.format(v) for v in details[column]]
    last = ["95 % CI", "detectable", "p", "verdict", "p_holm", "verdict_holm"]
    last += ["better − control", "worse − control"]
    order = [c for c in details.columns if c not in last]
    details = details[[*order, *last]]
    seeds = sorted(set(checked["seeds"])) if len(checked) else []
    parts = [
        f"# The papers' claims, checked on this run ({profile} profile)",
        "",
        "Written by `notebooks/07_results.ipynb` from the runs table; nothing here is edited by "
        'hand. A claim "A beats B" is checked on Δ_MTL (% against the dense model) in every '
        "setting where both ran, paired by seed: `difference` is the mean over seeds of "
        "Δ_MTL(A) − Δ_MTL(B), with its 95 % Student-t interval. It **holds** when the interval "
        "lies above 0, **does not hold** when it lies below 0 and is **undecided** otherwise; "
        "`detectable` is the smallest true difference these seeds could have detected (80 % "
        "power). A setting with one seed has no interval: its difference is a **single seed** "
        "observation, not a verdict. `verdict` judges each row on its own (uncorrected); "
        "`verdict_holm` judges the table as a family: the paired t-test's p-value, adjusted by "
        "Holm's step-down method over every judged row (`p_holm`), decides below 0.05, so the "
        "chance of any false verdict in the whole table stays at 5 %. `better − control` and "
        "`worse − control` give each side against the control (the pre-trained model fine-tuned "
        "like the pruned ones, nothing pruned), paired by seed with its 95 % interval. "
        "The watershed holds when the mean IoU of the task masks over "
        "the first half of the backbone layers exceeds that over the second half by more than "
        f"{watershed_margin:g}.",
        "",
        f"Seeds per setting: {', '.join(map(str, seeds)) or 'none'}. These are synthetic scenes "
        "and a small network: a verdict here says what the method does on this benchmark, not "
        "whether the paper's real-data numbers are right.",
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
        details.to_markdown(index=False, disable_numparse=True),
        "",
    ]
    return "\n".join(parts)


def claim_sentence(row: pd.Series | dict) -> str:
    """One checked claim in words, with its numbers (a row of :func:`check_claims`).

    Example:
        >>> text = claim_sentence({"claim": "CUT beats SNIP", "against": "cut vs snip",
        ...     "tasks": "a+b", "protocol": "fair", "sparsity": 0.9, "seeds": 5,
        ...     "difference": 1.5, "ci_low": 0.5, "ci_high": 2.5, "detectable": 1.1,
        ...     "verdict": "holds"})
        >>> text[:57]
        '**CUT beats SNIP** (cut vs snip; a+b, fair, 90 %): +1.50 '
        >>> text[57:]
        'points, 95 % CI [+0.50, +2.50] over 5 seeds (detectable 1.10): **holds**'
    """
    where = f"{row['against']}; {row['tasks']}, {row['protocol']}, {100 * row['sparsity']:.0f} %"
    head = f"**{row['claim']}** ({where}): {row['difference']:+.2f} points"
    if row["verdict"] == "single seed":
        return f"{head}, a single seed: no verdict"
    interval = f"95 % CI [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
    text = (
        f"{head}, {interval} over {row['seeds']} seeds (detectable {row['detectable']:.2f}): "
        f"**{row['verdict']}**"
    )
    if "verdict_holm" in row:
        text += f", **{row['verdict_holm']}** after Holm's correction"
    return text
