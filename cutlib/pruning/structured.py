"""Structured CUT and channel-magnitude pruning: channels physically removed, calibrated to a
fraction of removed FLOPs. **An extension**: the CUT paper prunes single weights only
(PAPER_NOTES §8.2).

Structured CUT follows CUT step for step (:mod:`cutlib.pruning.cut`), one level up:

1. score every weight of each selected task's sub-model on the frozen pre-trained weights (the
   same per-task Taylor importance);
2. turn weight scores into channel scores: the mean score of the weights a channel takes with it
   (:func:`~cutlib.models.channels.channel_scores`);
3. per task, keep its top κ fraction of channels, one ranking across all its channel groups;
4. fuse the backbone channels by the same vote across the selected tasks; each head keeps its own
   task's channels; every group keeps at least its best channel and is rounded up to a multiple
   of ``round_to`` channels (8 by default) with its next-best channels, since CPU kernels work in
   blocks of 8 or 16 channels and an odd width runs on slower code (measured in notebook 08);
5. choose κ by bisection so that the compact model (backbone + selected heads) loses the requested
   fraction of its FLOPs, remove the channels (:func:`~cutlib.models.channels.remove_channels`),
   and fine-tune the smaller dense network.

A run's ``sparsity`` is therefore the fraction of *FLOPs removed* from the dense compact model, not
a fraction of zero weights (the slimmed model has none). ``channel_magnitude`` is the structured
baseline: channels ranked by the mean |w| of their weights (the L1 filter criterion of Li et al.,
"Pruning Filters for Efficient ConvNets", ICLR 2017), one global ranking, the same FLOP calibration
and fine-tuning.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from cutlib.context import MethodResult, RunContext
from cutlib.efficiency import flop_counts
from cutlib.models import SceneNet
from cutlib.models.channels import BACKBONE, channel_groups, channel_scores, remove_channels
from cutlib.pruning.cut import CutMasker, CutOptions, plan_cut
from cutlib.pruning.fusion import FusionRule
from cutlib.pruning.masks import Masks
from cutlib.pruning.options import check_choice, check_positive_int, options_from_pairs

#: The single voter of a ranking that ignores the tasks (``channel_magnitude``).
ALL_TASKS = "all"


#: What a channel's summed weight score is divided by before ranking (:func:`channel_scores`).
ChannelCost = Literal["weights", "flops", "none"]
CHANNEL_COSTS: tuple[str, ...] = get_args(ChannelCost)


@dataclass(frozen=True)
class StructuredCutOptions(CutOptions):
    """CUT's options (:class:`~cutlib.pruning.cut.CutOptions`) for channels; κ is the fraction of
    channels each task keeps, so the authors' weight keep-ratio table does not apply.

    Args:
        channel_cost: a channel's score is the summed score of its weights divided by its number
            of weights (``weights``: a mean per weight), by its FLOPs (``flops``: importance per
            unit of compute, the knapsack ratio for a FLOP budget) or by nothing (``none``).
        round_to: every group keeps a multiple of this many channels (or all of them), as
            Torch-Pruning's ``round_to``: vectorised CPU kernels (oneDNN, ONNX Runtime's MLAS)
            process channels in blocks of 8 (AVX2) or 16 (AVX-512), and a width that is not a
            multiple falls back to slower code. 1 turns rounding off.
    """

    channel_cost: ChannelCost = "weights"
    round_to: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("channel_cost", self.channel_cost, CHANNEL_COSTS)
        check_positive_int("round_to", self.round_to)
        if self.keep_ratio == "table":
            raise ValueError("structured CUT has no keep-ratio table: use calibrate or a number")

    @classmethod
    def from_pairs(cls, pairs: Mapping[str, object]) -> StructuredCutOptions:
        """Build from ``name → value`` pairs, checking names."""
        return options_from_pairs(cls, pairs)


class ConvFlops:
    """FLOPs of a model as a function of the channels kept (2 FLOPs per multiply-add).

    A conv's FLOPs are proportional to its input and output channel counts, so after removing
    channels they are ``F · (kept outputs / outputs) · (kept inputs / inputs)``, exactly what
    :func:`~cutlib.efficiency.flop_counts` measures on the slimmed model (tested).

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
    """CUT's per-task top-κ and vote (:class:`~cutlib.pruning.cut.CutMasker`) over channel
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


def slim_and_finetune(
    ctx: RunContext,
    model: SceneNet,
    scores: Mapping[str, Mapping[str, Tensor]],
    options: StructuredCutOptions,
) -> MethodResult:
    """Calibrate κ to the run's fraction of removed FLOPs, remove the channels of ``model`` (the
    compact model) and fine-tune it; ``scores`` are the voters' weight scores."""
    start = time.perf_counter()
    groups = channel_groups(model)
    resolution = ctx.profile["data"]["resolution"]
    flops = ConvFlops(model, (1, 3, *resolution))
    cost = {
        "weights": None,
        "flops": flops.per_channel(),
        "none": {g.name: 1.0 for g in groups},
    }[options.channel_cost]
    channel = {voter: channel_scores(groups, per, cost) for voter, per in scores.items()}
    shared = {g.name for g in groups if g.owner == BACKBONE}
    masker = ChannelMasker(channel, shared, options.fusion, options.min_votes, options.round_to)
    plan = plan_cut(masker, ctx.config.sparsity, options, measure=flops.removed_fraction)
    remove_channels(model, plan.masks)
    ctx.time("fusion", start)
    if ctx.progress:
        print(
            f"channels: κ = {plan.keep_ratio:.4f}, {plan.sparsity:.2%} of the FLOPs removed "
            f"({sum(m.numel() - int(m.sum()) for m in plan.masks.values())} channels)"
        )
    result = ctx.train_masked(model, {}, ctx.schedule("pretrained"))
    result.details |= {
        "options": vars(options),
        "keep_ratio": plan.keep_ratio,
        "flops": {
            "dense": flops.total,
            "kept": flops.kept(plan.masks),
            "removed_fraction": plan.sparsity,
        },
        "channels": dict(model.channels),
    }
    return result


def cut_structured(ctx: RunContext) -> MethodResult:
    """Structured CUT (module docstring): per-task Taylor channel scores on the frozen pre-trained
    weights, per-task top-κ channels, vote-fused backbone channels, channels removed to the
    requested fraction of FLOPs, fine-tuned on the selected tasks."""
    options: StructuredCutOptions = ctx.config.method_options()
    model = ctx.load_pretrained()
    scores = ctx.task_scores(
        model, options.criterion, options.bn_mode, batches=options.scoring_batches
    )
    model.keep_tasks(ctx.task_names)
    return slim_and_finetune(ctx, model, scores, options)


def channel_magnitude(ctx: RunContext) -> MethodResult:
    """Channel-magnitude pruning: the compact model's channels ranked by the mean |w| of their
    weights, one ranking for all tasks, removed to the requested fraction of FLOPs, fine-tuned."""
    model = ctx.pretrained_compact()
    scores = {ALL_TASKS: ctx.joint_scores(model, "magnitude")}
    return slim_and_finetune(ctx, model, scores, StructuredCutOptions())
