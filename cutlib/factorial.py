"""The criterion × arbiter factorial: which of CUT's two differences from DiSparse on the
pre-trained model moves Δ_MTL (docs/method/cut.md#cut-against-disparse-two-choices-at-once).

On the synthetic presets, CUT scores each weight per task by |w·∂L_t/∂w| (``taylor``) and keeps a
backbone weight that two tasks keep (``vote``); DiSparse on the pre-trained model scores by |w|
(``magnitude``, the same for every task) and keeps what any task keeps (``union``). Comparing the
two methods mixes both choices. The study's factorial block runs CUT with each combination
(``-o criterion=… -o fusion=…``; taylor + vote is CUT itself) on the same seeds, and the effects
are paired differences of Δ_MTL per seed (:func:`cutlib.significance.paired_comparison`):

- **arbiter** = (taylor, vote) − (taylor, union): what the vote buys on Taylor scores;
- **criterion** = (taylor, vote) − (magnitude, vote): what Taylor scores buy under the vote;
- **criterion under union** = (taylor, union) − (magnitude, union);
- **interaction** = arbiter under taylor − arbiter under magnitude.

With the ``magnitude`` criterion every task ranks the shared weights alike, so each task keeps
the same backbone weights and the vote and the union give nearly the same backbone mask (only the
per-task thresholds differ, through the heads' sizes): the arbiter under magnitude is close to 0,
a check built into the design.

With three selected tasks (the ``regime`` study's synth-taskonomy selection), ``intersection`` is
a third level, and the vote (two of three) lies between the union and the intersection; with two
tasks the intersection is the vote itself, so two-task factorials have two levels.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from cutlib.methods.cut import NAME as CUT
from cutlib.methods.cut import CutOptions
from cutlib.significance import mean_ci, paired_comparison

FACTORS = ("criterion", "fusion")
LEVELS = {"criterion": ("taylor", "magnitude"), "fusion": ("vote", "union", "intersection")}
#: effect name → (left cell, right cell) or, for the interaction, two such pairs
EFFECTS: dict[str, tuple[tuple[str, str], ...]] = {
    "arbiter: vote − union (taylor)": (("taylor", "vote"), ("taylor", "union")),
    "criterion: taylor − magnitude (vote)": (("taylor", "vote"), ("magnitude", "vote")),
    "criterion: taylor − magnitude (union)": (("taylor", "union"), ("magnitude", "union")),
    "arbiter: vote − union (magnitude)": (("magnitude", "vote"), ("magnitude", "union")),
    "arbiter: vote − intersection (taylor)": (("taylor", "vote"), ("taylor", "intersection")),
    "arbiter: vote − intersection (magnitude)": (
        ("magnitude", "vote"),
        ("magnitude", "intersection"),
    ),
}
INTERACTION = "interaction: arbiter (taylor) − arbiter (magnitude)"


def parse_options(label: str) -> dict[str, str]:
    """``"criterion=magnitude,fusion=union"`` → ``{"criterion": "magnitude", "fusion": "union"}``.

    Example:
        >>> parse_options(""), parse_options("fusion=union")
        ({}, {'fusion': 'union'})
    """
    if not label:
        return {}
    return dict(item.split("=", 1) for item in label.split(","))


def factorial_values(runs: pd.DataFrame, dataset: str, tasks: str) -> pd.DataFrame:
    """The factorial's Δ_MTL values, one row per (criterion, fusion, sparsity, seed), from the
    ``cut`` runs of ``runs`` (the grid's tidy table) whose options touch only the two factors,
    missing factors at CUT's defaults."""
    defaults = CutOptions()
    chosen = runs[
        (runs["dataset"] == dataset)
        & (runs["tasks"] == tasks)
        & (runs["method"] == CUT)
        & (runs["task"] == "all")
        & (runs["metric"] == "delta_mtl")
    ]
    rows = []
    for record in chosen.itertuples(index=False):
        options = parse_options(record.options if isinstance(record.options, str) else "")
        if set(options) - set(FACTORS):
            continue
        rows.append(
            {
                "criterion": options.get("criterion", defaults.criterion),
                "fusion": options.get("fusion", defaults.fusion),
                "sparsity": record.sparsity,
                "seed": int(record.seed),
                "value": record.value,
            }
        )
    frame = pd.DataFrame(rows, columns=["criterion", "fusion", "sparsity", "seed", "value"])
    levels = frame[list(FACTORS)].apply(tuple, axis=1)
    wanted = {(c, f) for c in LEVELS["criterion"] for f in LEVELS["fusion"]}
    return frame[levels.isin(wanted)].drop_duplicates(["criterion", "fusion", "sparsity", "seed"])


def factorial_table(
    values: pd.DataFrame, control: Mapping[int, float] | None = None
) -> pd.DataFrame:
    """Per (sparsity, criterion, fusion): seeds, mean Δ_MTL and its 95 % interval; with
    ``control`` (seed → the control's Δ_MTL, :mod:`cutlib.methods.control`), also each cell minus
    the control, paired by seed (``minus control``): a cell above the dense model may only have
    trained more."""
    rows = []
    for (sparsity, criterion, fusion), block in values.groupby(["sparsity", *FACTORS], sort=True):
        estimate = mean_ci(list(block["value"]))
        rows.append(
            {"sparsity": sparsity, "criterion": criterion, "fusion": fusion, "seeds": estimate.n}
            | {"Δ_MTL": estimate.mean, "low": estimate.low, "high": estimate.high}
        )
        if control:
            paired = [v - control[s] for s, v in zip(block["seed"], block["value"], strict=True)]
            rows[-1]["minus control"] = mean_ci(paired).mean
    return pd.DataFrame(rows)


def _by_seed(values: pd.DataFrame, sparsity: float, cell: tuple[str, str]) -> dict[int, float]:
    block = values[
        np.isclose(values["sparsity"], sparsity)
        & (values["criterion"] == cell[0])
        & (values["fusion"] == cell[1])
    ]
    return dict(zip(block["seed"], block["value"], strict=True))


def factorial_effects(values: pd.DataFrame) -> pd.DataFrame:
    """Each effect of the module docstring at each sparsity, paired by seed: ``effect``,
    ``sparsity``, ``seeds``, ``difference`` (mean), ``low``, ``high`` (its 95 % interval),
    ``detectable`` and ``verdict`` (``holds``: the effect is positive). Effects whose cells share
    fewer than two seeds are left out."""
    rows = []
    for sparsity in sorted(set(values["sparsity"])):
        cells = {
            (c, f): _by_seed(values, sparsity, (c, f))
            for c in LEVELS["criterion"]
            for f in LEVELS["fusion"]
        }
        differences = {
            name: {
                s: cells[left][s] - cells[right][s] for s in set(cells[left]) & set(cells[right])
            }
            for name, (left, right) in EFFECTS.items()
        }
        arbiters = "arbiter: vote − union (taylor)", "arbiter: vote − union (magnitude)"
        contrasts = dict(differences)
        contrasts[INTERACTION] = {
            s: differences[arbiters[0]][s] - differences[arbiters[1]][s]
            for s in set(differences[arbiters[0]]) & set(differences[arbiters[1]])
        }
        for name, per_seed in contrasts.items():
            if len(per_seed) < 2:
                continue
            comparison = paired_comparison(per_seed, dict.fromkeys(per_seed, 0.0))
            estimate = comparison.difference
            rows.append(
                {"effect": name, "sparsity": sparsity, "seeds": estimate.n}
                | {"difference": estimate.mean, "low": estimate.low, "high": estimate.high}
                | {"detectable": comparison.detectable, "verdict": comparison.verdict}
            )
    columns = ["effect", "sparsity", "seeds", "difference", "low", "high", "detectable", "verdict"]
    return pd.DataFrame(rows, columns=columns)


def effect_sentence(row: pd.Series | dict) -> str:
    """One effect of :func:`factorial_effects` in words, with its interval and verdict.

    Example:
        >>> effect_sentence({"effect": "arbiter: vote − union (taylor)", "sparsity": 0.9,
        ...     "seeds": 5, "difference": -0.4, "low": -0.9, "high": 0.1, "detectable": 0.7,
        ...     "verdict": "undecided"})[:52]
        '**arbiter: vote − union (taylor)** at 90 %: -0.40 po'
    """
    return (
        f"**{row['effect']}** at {100 * row['sparsity']:.0f} %: {row['difference']:+.2f} points"
        f" of Δ_MTL, 95 % CI [{row['low']:+.2f}, {row['high']:+.2f}] over {row['seeds']} seeds"
        f" (detectable {row['detectable']:.2f}): {row['verdict']}"
    )
