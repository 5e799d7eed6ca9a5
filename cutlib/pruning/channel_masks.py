"""Channel masks for structured pruning: FLOPs as a function of the channels kept, and CUT's
per-task top-κ and vote over channel scores (the primitives of ``cut_structured`` and
``channel_magnitude``; docs/method/efficiency.md#what-gives-real-savings).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from cutlib.models import SceneNet
from cutlib.models.channels import channel_groups
from cutlib.pruning.flops import flop_counts
from cutlib.pruning.fusion import FusionRule
from cutlib.pruning.masks import Masks
from cutlib.pruning.per_task import CutMasker


class ConvFlops:
    """FLOPs of a model as a function of the channels kept (2 FLOPs per multiply-add).

    A conv's FLOPs are proportional to its input and output channel counts, so after removing
    channels they are ``F · (kept outputs / outputs) · (kept inputs / inputs)``, exactly what
    :func:`~cutlib.pruning.flops.flop_counts` measures on the slimmed model (tested).

    Args:
        model: the dense compact model.
        input_shape: the input the FLOPs are counted for, e.g. ``(1, 3, 96, 96)``.
    """

    def __init__(self, model: SceneNet, input_shape: tuple[int, ...]) -> None:
        groups = channel_groups(model)
        out_group = {conv: g.name for g in groups for conv in g.producers}
        in_group = {conv: g.name for g in groups for conv in g.consumers}
        self.terms = [
            (flops, out_group.get(module), in_group.get(module))
            for module, flops in flop_counts(model, input_shape).items()
        ]
        self.total = sum(flops for flops, _, _ in self.terms)
        self.sizes = {g.name: g.size for g in groups}

    def per_channel(self) -> dict[str, float]:
        """FLOPs that one channel of each group costs: its share of every conv that produces or
        reads it."""
        cost: dict[str, float] = {name: 0.0 for name in self.sizes}
        for flops, out_group, in_group in self.terms:
            for group in (out_group, in_group):
                if group is not None:
                    cost[group] += flops / self.sizes[group]
        return cost

    def kept(self, keep: Masks) -> float:
        """FLOPs of the model slimmed to the channel masks ``keep`` (group → bool mask)."""
        fraction = {name: float(mask.float().mean()) for name, mask in keep.items()}
        return sum(f * fraction.get(o, 1.0) * fraction.get(i, 1.0) for f, o, i in self.terms)

    def removed_fraction(self, keep: Masks) -> float:
        """Fraction of the FLOPs that slimming to ``keep`` removes."""
        return 1.0 - self.kept(keep) / self.total if self.total else 0.0


class ChannelMasker:
    """CUT's per-task top-κ and vote (:class:`~cutlib.pruning.per_task.CutMasker`) over channel
    scores; every group then keeps at least one channel and a multiple of ``round_to`` channels
    (or all), the extra channels taken in order of the voters' summed scores.

    Args:
        scores: voter (task) → group name → channel scores.
        shared: names of the backbone groups, fused by ``fusion``.
        round_to: channel multiple of every group (1: no rounding, only the best channel kept).
    """

    def __init__(
        self,
        scores: Mapping[str, Mapping[str, Tensor]],
        shared: set[str],
        fusion: FusionRule,
        min_votes: int,
        round_to: int = 1,
    ) -> None:
        self.masker = CutMasker(dict(scores), list(scores), shared, fusion, min_votes)
        summed: dict[str, Tensor] = {}
        for per_group in scores.values():
            for name, score in per_group.items():
                summed[name] = summed.get(name, 0) + score
        #: Per group, its channels from the best to the worst by the voters' summed scores.
        self.order = {name: torch.argsort(score, descending=True) for name, score in summed.items()}
        self.round_to = round_to

    def __call__(self, keep: float) -> Masks:
        masks = {}
        for name, mask in self.masker(keep).items():
            size = mask.numel()
            wanted = min(size, -(-max(int(mask.sum()), 1) // self.round_to) * self.round_to)
            # kept channels first (in score order), then the best of the others
            order = self.order[name]
            ranked = order[torch.argsort((~mask[order]).to(torch.int8), stable=True)]
            rounded = torch.zeros_like(mask)
            rounded[ranked[:wanted]] = True
            masks[name] = rounded
        return masks
