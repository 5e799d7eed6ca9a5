"""How much the tasks' own masks agree, layer by layer: the "watershed"
(docs/method/disparse.md#the-watershed-figure).

DiSparse observed that the per-task masks of a multi-task network overlap almost completely in
the early backbone layers and hardly at all after some layer, the "watershed"; CUT's vote on the
shared weights relies on the same picture. :func:`layer_iou` measures it for any set of task
masks; :func:`pretrained_task_masks` makes the masks CUT would vote on (each task's own top-κ of
its Taylor scores on the frozen pre-trained model), :func:`pretrained_watershed` their curve as
DiSparse drew it and :func:`watershed_summary` what it says.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from cutlib.claims import watershed_verdict
from cutlib.experiments import pretrained_task_scores
from cutlib.models import SceneNet
from cutlib.pruning.importance import BNMode
from cutlib.pruning.masks import BACKBONE, Masks
from cutlib.pruning.thresholds import Ranking
from cutlib.reporting import layer_table

#: DiSparse's published watershed (``Figs/density_plot.png``,
#: docs/method/disparse.md#the-watershed-figure): the IoU of the
#: task masks of an untrained, Xavier-initialised ResNet-34 at κ = 0.078, for its 33 backbone convs
#: in depth order (downsample convs left out), read off the figure.
DISPARSE_PUBLISHED_IOU: dict[str, tuple[float, ...]] = {
    "NYUv2": (.97, .95, .94, .93, .91, .91, .89, .87, .76, .73, .67, .64, .58, .56, .47, .38, .13,
              .10, .05, .04, .02, .02, .02, .01, .03, .03, .04, .06, .03, .03, .03, .06, .03),
    "Cityscapes": (.99, .98, .98, .97, .96, .96, .96, .95, .91, .90, .88, .87, .84, .83, .81, .76,
                   .60, .55, .47, .45, .35, .36, .24, .25, .16, .21, .13, .15, .05, .03, .05, .05,
                   .05),
}  # fmt: skip


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """Jaccard index |a ∩ b| / |a ∪ b| of two boolean masks (NaN when both are empty).

    Example:
        >>> iou(torch.tensor([True, True, False]), torch.tensor([True, False, True]))
        0.3333333333333333
    """
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else float("nan")


def chance_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """The IoU two independent random masks with the densities of ``a`` and ``b`` would have:
    d_a·d_b / (d_a + d_b − d_a·d_b).

    Example:
        >>> chance_iou(torch.tensor([True, False]), torch.tensor([True, False]))
        0.3333333333333333
    """
    da, db = float(a.float().mean()), float(b.float().mean())
    return da * db / (da + db - da * db) if da + db > 0 else float("nan")


def layer_iou(task_masks: Mapping[str, Masks], layers: pd.DataFrame) -> pd.DataFrame:
    """Per backbone layer (rows in depth order, from :func:`cutlib.reporting.layer_table`), the
    agreement of the tasks' own masks.

    Columns: ``name``, ``layer`` (tick label), ``kind``, one IoU column per task pair ``a–b``,
    ``mean pairwise``, ``chance (mean pairwise)``, ``all tasks ∩/∪`` and ``DiSparse's formula``
    (positions kept by exactly two tasks over those kept by one or two, which is the Jaccard
    index for two tasks and not a multi-set IoU for more,
    docs/method/disparse.md#the-watershed-figure).
    """
    names = list(task_masks)
    pairs = list(itertools.combinations(names, 2))
    if not pairs:
        raise ValueError("the agreement of task masks needs at least two tasks")
    backbone = layers[layers["owner"] == BACKBONE]
    rows = []
    for name, label, kind in zip(
        backbone["name"], backbone["label"], backbone["kind"], strict=True
    ):
        row: dict[str, object] = {"name": name, "layer": label, "kind": kind}
        for s, t in pairs:
            row[f"{s}–{t}"] = iou(task_masks[s][name], task_masks[t][name])
        row["mean pairwise"] = float(np.mean([row[f"{s}–{t}"] for s, t in pairs]))
        row["chance (mean pairwise)"] = float(
            np.mean([chance_iou(task_masks[s][name], task_masks[t][name]) for s, t in pairs])
        )
        stacked = torch.stack([task_masks[t][name] for t in names])
        row["all tasks ∩/∪"] = int(stacked.all(0).sum()) / max(int(stacked.any(0).sum()), 1)
        votes = stacked.sum(0)
        row["DiSparse's formula"] = int((votes == 2).sum()) / max(
            int(((votes == 1) | (votes == 2)).sum()), 1
        )
        rows.append(row)
    return pd.DataFrame(rows)


def overall_iou(a: Masks, b: Masks, names: Sequence[str] | None = None) -> float:
    """The IoU of two mask sets over the layers ``names`` (default: all of ``a``'s) taken together.

    Example:
        >>> a = {"l1": torch.tensor([True, True]), "l2": torch.tensor([True, False])}
        >>> b = {"l1": torch.tensor([True, False]), "l2": torch.tensor([True, True])}
        >>> overall_iou(a, b), overall_iou(a, b, ["l1"])
        (0.5, 0.5)
    """
    names = list(a) if names is None else names
    return iou(
        torch.cat([a[n].reshape(-1) for n in names]), torch.cat([b[n].reshape(-1) for n in names])
    )


def total_iou(task_masks: Mapping[str, Masks], names: Sequence[str]) -> dict[str, float]:
    """Pairwise IoU over all the given layers together (DiSparse's "total IoU")."""
    return {
        f"{s}–{t}": overall_iou(task_masks[s], task_masks[t], names)
        for s, t in itertools.combinations(task_masks, 2)
    }


def steepest_drop(curve: pd.DataFrame, column: str = "mean pairwise") -> tuple[str, str, float]:
    """The adjacent pair of layers of ``curve`` (rows in depth order, with a ``layer`` column)
    where ``column`` falls most: ``(layer before, layer after, change)``.

    Example:
        >>> curve = pd.DataFrame({"layer": ["a", "b", "c"], "mean pairwise": [0.9, 0.8, 0.2]})
        >>> steepest_drop(curve)
        ('b', 'c', -0.6000000000000001)
    """
    if len(curve) < 2:
        raise ValueError("a drop needs at least two layers")
    change = curve[column].diff().to_numpy()
    after = int(np.nanargmin(change))
    return (
        str(curve["layer"].iloc[after - 1]),
        str(curve["layer"].iloc[after]),
        float(change[after]),
    )


def group_ranges(
    curve: pd.DataFrame, layers: pd.DataFrame, columns: Sequence[str] = ("mean pairwise",)
) -> pd.DataFrame:
    """The lowest and highest value of each of ``columns`` over the layers of each group (stem,
    stage 1 … stage 4), in depth order: the numbers a sentence about the watershed quotes.
    ``curve`` is indexed by parameter name (as :func:`layer_iou`'s, ``set_index("name")``);
    ``layers`` is :func:`~cutlib.reporting.layer_table`'s.

    Example:
        >>> layers = pd.DataFrame({"name": ["a", "b", "c"], "group": ["stem", "s1", "s1"]})
        >>> curve = pd.DataFrame({"mean pairwise": [0.9, 0.8, 0.5]}, index=["a", "b", "c"])
        >>> print(group_ranges(curve, layers).to_string())
              mean pairwise low  mean pairwise high
        stem                0.9                 0.9
        s1                  0.5                 0.8
    """
    group = layers.set_index("name")["group"].reindex(curve.index)
    grouped = curve[list(columns)].groupby(group, sort=False)
    ranges = pd.concat({"low": grouped.min(), "high": grouped.max()}, axis=1)
    ranges.columns = [f"{column} {bound}" for bound, column in ranges.columns]
    order = [f"{column} {bound}" for column in columns for bound in ("low", "high")]
    return ranges[order].rename_axis(None)


def range_text(ranges: pd.DataFrame, groups: Sequence[str], column: str = "mean pairwise") -> str:
    """``"0.83–0.97"``: the range of ``column`` over ``groups`` of :func:`group_ranges`."""
    rows = ranges.loc[list(groups)]
    return f"{rows[f'{column} low'].min():.2f}–{rows[f'{column} high'].max():.2f}"


def pretrained_task_masks(
    dataset: str,
    profile: str,
    kappa: float,
    *,
    tasks: Sequence[str] | None = None,
    seed: int = 0,
    bn_mode: BNMode = "train",
    device: str = "auto",
) -> tuple[SceneNet, dict[str, Masks]]:
    """Each task's own top-κ mask of its Taylor scores on the frozen pre-trained model of
    ``dataset`` (:func:`~cutlib.experiments.pretrained_task_scores`).

    Returns:
        the pre-trained model (all heads) and ``task → mask over its sub-model``.
    """
    model, scores = pretrained_task_scores(
        dataset, profile, tasks, seed=seed, bn_mode=bn_mode, device=device
    )
    return model, {t: Ranking(s).masks(kappa) for t, s in scores.items()}


def pretrained_watershed(
    dataset: str, profile: str, kappa: float, *, seed: int = 0, device: str = "auto"
) -> pd.DataFrame:
    """The watershed of ``dataset``'s pre-trained model as DiSparse drew it: :func:`layer_iou` of
    every task's own top-κ mask (:func:`pretrained_task_masks`) over the backbone convs in depth
    order, the 1×1 downsample convs left out."""
    model, task_masks = pretrained_task_masks(dataset, profile, kappa, seed=seed, device=device)
    curve = layer_iou(task_masks, layer_table(model))
    return curve[curve["kind"] != "downsample"].reset_index(drop=True)


def watershed_summary(curve: pd.DataFrame, margin: float) -> dict[str, object]:
    """What a watershed curve (:func:`layer_iou`, rows in depth order) says: the mean pairwise IoU
    of the first and the second half of the layers and the verdict at ``margin``
    (:func:`~cutlib.claims.watershed_verdict`), and its :func:`steepest_drop`.

    Example:
        >>> curve = pd.DataFrame({"layer": list("abcd"), "mean pairwise": [0.9, 0.8, 0.3, 0.1]})
        >>> watershed_summary(curve, 0.1)
        {'early IoU': 0.85, 'late IoU': 0.2, 'steepest drop': 'b → c (-0.50)', 'verdict': 'holds'}
    """
    early, late, verdict = watershed_verdict(list(curve["mean pairwise"]), margin)
    before, after, change = steepest_drop(curve)
    return {
        "early IoU": early,
        "late IoU": late,
        "steepest drop": f"{before} → {after} ({change:+.2f})",
        "verdict": verdict,
    }
