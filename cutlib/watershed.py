"""How much the tasks' own masks agree, layer by layer: the "watershed" (PAPER_NOTES §2.10).

DiSparse observed that the per-task masks of a multi-task network overlap almost completely in
the early backbone layers and hardly at all after some layer, the "watershed"; CUT's vote on the
shared weights relies on the same picture. :func:`layer_iou` measures it for any set of task
masks; :func:`pretrained_task_masks` makes the masks CUT would vote on (each task's own top-κ of
its Taylor scores on the frozen pre-trained model).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from cutlib.experiments import pretrained_task_scores
from cutlib.models import SceneNet
from cutlib.pruning.importance import BNMode
from cutlib.pruning.masks import BACKBONE, Masks
from cutlib.pruning.thresholds import Ranking


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
    index for two tasks and not a multi-set IoU for more, PAPER_NOTES §2.10).
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


def total_iou(task_masks: Mapping[str, Masks], names: Sequence[str]) -> dict[str, float]:
    """Pairwise IoU over all the given layers together (DiSparse's "total IoU")."""
    tasks = list(task_masks)
    return {
        f"{s}–{t}": iou(
            torch.cat([task_masks[s][n].reshape(-1) for n in names]),
            torch.cat([task_masks[t][n].reshape(-1) for n in names]),
        )
        for s, t in itertools.combinations(tasks, 2)
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
