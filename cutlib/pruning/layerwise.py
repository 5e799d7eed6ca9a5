"""Masks with a given number of kept weights in every layer: the primitives of the allocation-swap
ablation (docs/method/cut.md#where-the-budget-goes).

A one-shot pruner makes two decisions at once: *how many* weights each layer keeps (its
allocation), and *which* ones. CUT's one threshold per task across all layers makes the first
decision with the Taylor scores' scale, which differs from layer to layer; global magnitude
pruning makes it with |w|'s. Fixing the counts from one method and the choice within each layer
from the other separates the two: :func:`kept_counts` reads a mask's allocation, and
:func:`top_per_layer` keeps that many of the best-scored weights of each layer.

For the shared weights of several tasks, :func:`vote_ranks` turns per-task scores into one
within-layer order that reproduces a vote: at any per-task keep fraction, the weights a vote of
``threshold`` tasks keeps are exactly those whose ``threshold``-th best rank among the tasks is
below the cut, so keeping the best of that order is CUT's vote within a layer.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch
from torch import Tensor

from cutlib.pruning.masks import Masks


def kept_counts(masks: Masks) -> dict[str, int]:
    """The number of kept entries of each mask.

    Example:
        >>> kept_counts({"a": torch.tensor([True, False, True]), "b": torch.tensor([False])})
        {'a': 2, 'b': 0}
    """
    return {name: int(mask.sum()) for name, mask in masks.items()}


def top_per_layer(scores: Mapping[str, Tensor], counts: Mapping[str, int]) -> Masks:
    """In each layer, keep the ``counts[name]`` entries with the highest scores (ties broken by
    position, as :class:`~cutlib.pruning.thresholds.Ranking` does).

    Raises:
        ValueError: a count outside [0, the layer's size], or a layer without a count.

    Example:
        >>> top_per_layer({"w": torch.tensor([[0.1, 0.9], [0.5, 0.5]])}, {"w": 2})
        {'w': tensor([[False,  True],
                [ True, False]])}
    """
    masks = {}
    for name, score in scores.items():
        if name not in counts:
            raise ValueError(f"no kept count for layer {name}")
        count, flat = counts[name], score.detach().reshape(-1).float().cpu()
        if not 0 <= count <= flat.numel():
            raise ValueError(f"layer {name} has {flat.numel()} weights, cannot keep {count}")
        order = torch.sort(flat, descending=True, stable=True).indices
        keep = torch.zeros(flat.numel(), dtype=torch.bool)
        keep[order[:count]] = True
        masks[name] = keep.reshape(score.shape)
    return masks


def within_layer_ranks(score: Tensor) -> Tensor:
    """Each entry's rank within its tensor, 0 for the highest score (ties by position).

    Example:
        >>> within_layer_ranks(torch.tensor([0.2, 0.9, 0.2]))
        tensor([1, 0, 2])
    """
    flat = score.detach().reshape(-1).float().cpu()
    order = torch.sort(flat, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel())
    return ranks.reshape(score.shape)


def vote_ranks(
    task_scores: Mapping[str, Mapping[str, Tensor]], names: Collection[str], threshold: int
) -> dict[str, Tensor]:
    """For each shared layer in ``names``: a score whose within-layer order is the vote's.

    Per task, every weight's rank within the layer, r_t (0 = best); the weight's score is minus
    the ``threshold``-th smallest of its ranks over the tasks. A vote of ``threshold`` tasks at a
    per-task keep count k keeps weight j iff at least ``threshold`` tasks rank it below k, i.e.
    iff that order statistic is below k; keeping the best-scored entries of this function is
    therefore the vote within the layer, for every k (``threshold`` 1: the union; the number of
    tasks: the intersection).

    Example:
        >>> s = {"a": {"w": torch.tensor([3.0, 2, 1, 0])}, "b": {"w": torch.tensor([0.0, 2, 1, 3])}}
        >>> vote_ranks(s, ["w"], 2)["w"]  # ranks a: 0 1 2 3, b: 3 1 2 0 → the larger of each
        tensor([-3., -1., -2., -3.])
    """
    if not 1 <= threshold <= len(task_scores):
        raise ValueError(f"a vote of {len(task_scores)} tasks cannot need {threshold} votes")
    fused = {}
    for name in names:
        ranks = torch.stack([within_layer_ranks(scores[name]) for scores in task_scores.values()])
        fused[name] = -ranks.kthvalue(threshold, dim=0).values.float()
    return fused
