"""Scores → thresholds → masks: the machinery every pruning method shares
(docs/architecture.md#pruning-conventions).

A method produces *scores* (``dict[param_name, Tensor]``, higher = more important). A
:class:`Ranking` orders all entries of a set of scores once, globally across layers, and then turns
any keep fraction into a mask in one vectorised comparison: the top ``⌊κ·N⌋`` entries are kept, one
threshold across every layer of the set, as in CUT's per-task top-k
(docs/method/cut.md#normalisation-and-per-task-top-k).

Ties at the threshold. The authors keep every entry whose normalised score is ≥ the k-th largest,
so tied scores can push the kept count above k (mostly weights whose score is exactly 0). Here
ties are broken by position (a stable sort), so exactly k entries are kept and the masks for
growing κ are nested; this only differs from the authors' rule when scores tie at the threshold.
Normalising a task's scores by their sum (the authors do) does not change its ranking, so it is
not done.

:func:`calibrate` finds the keep fraction at which a monotone mask builder reaches a target
sparsity, by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from cutlib.pruning.masks import Masks, density


class Ranking:
    """Global rank of every entry of ``scores`` (0 = most important), across all its tensors.

    Example:
        >>> r = Ranking({"a": torch.tensor([0.1, 0.9]), "b": torch.tensor([[0.5, 0.2]])})
        >>> r.masks(0.5)  # keeps the top ⌊0.5 · 4⌋ = 2 scores: 0.9 and 0.5
        {'a': tensor([False,  True]), 'b': tensor([[ True, False]])}
    """

    def __init__(self, scores: Mapping[str, Tensor]) -> None:
        if not scores:
            raise ValueError("cannot rank an empty set of scores")
        self.names = list(scores)
        self.shapes = [scores[n].shape for n in self.names]
        flat = torch.cat([scores[n].detach().reshape(-1).float().cpu() for n in self.names])
        if not torch.isfinite(flat).all():
            raise ValueError("scores contain NaN or infinite values")
        order = torch.sort(flat, descending=True, stable=True).indices
        self.rank = torch.empty_like(order)
        self.rank[order] = torch.arange(order.numel())
        self.size = order.numel()

    def keep_count(self, keep: float) -> int:
        """Number of entries kept at keep fraction ``keep``: ``⌊keep · N⌋``."""
        if not 0.0 <= keep <= 1.0:
            raise ValueError(f"a keep fraction must be in [0, 1], got {keep}")
        return math.floor(keep * self.size)

    def flat_mask(self, keep: float) -> Tensor:
        """Boolean vector over all entries (in ``names`` order) keeping the top ``⌊keep·N⌋``."""
        return self.rank < self.keep_count(keep)

    def masks(self, keep: float) -> Masks:
        """Keep-masks, one per scored tensor, keeping the global top ``⌊keep · N⌋`` entries."""
        return self.unflatten(self.flat_mask(keep))

    def unflatten(self, flat: Tensor) -> Masks:
        """Split a vector over all entries back into tensors shaped like the scores."""
        sizes = [math.prod(shape) for shape in self.shapes]
        parts = torch.split(flat, sizes)
        return {n: p.reshape(s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)}


def weight_sparsity(masks: Masks) -> float:
    """Fraction of pruned entries over all masks: the default measure :func:`calibrate` meets."""
    return 1.0 - density(masks)


def calibrate(
    build: Callable[[float], Masks],
    target_sparsity: float,
    *,
    tolerance: float = 2e-4,
    max_steps: int = 60,
    measure: Callable[[Masks], float] = weight_sparsity,
) -> tuple[float, Masks]:
    """Find the keep fraction κ whose masks ``build(κ)`` have ``target_sparsity``, by bisection.

    ``build`` must be monotone: a larger κ never keeps fewer entries (true for top-k masks and for
    any vote over them). Stops when the achieved sparsity is within ``tolerance`` of the target
    (default 0.02 percentage points) or the interval cannot shrink further, and returns the κ whose
    sparsity is closest to the target, with its masks. ``measure`` says what "sparsity" is: the
    fraction of pruned weights (default) or, for channel masks, the fraction of FLOPs removed
    (:mod:`cutlib.pruning.structured`); it must not decrease as fewer entries are kept.

    Example:
        >>> r = Ranking({"w": torch.arange(1000.0)})
        >>> kappa, masks = calibrate(r.masks, 0.9)
        >>> round(1 - density(masks), 3)
        0.9
    """
    if not 0.0 <= target_sparsity < 1.0:
        raise ValueError(f"target sparsity must be in [0, 1), got {target_sparsity}")
    low, high = 0.0, 1.0
    best: tuple[float, float, Masks] | None = None
    for _ in range(max_steps):
        kappa = (low + high) / 2
        masks = build(kappa)
        sparsity = measure(masks)
        error = abs(sparsity - target_sparsity)
        if best is None or error < best[0]:
            best = (error, kappa, masks)
        if error <= tolerance:
            break
        if sparsity > target_sparsity:
            low = kappa  # too sparse: keep more
        else:
            high = kappa
    assert best is not None
    return best[1], best[2]
