"""Structured CUT and channel-magnitude pruning: channels physically removed, calibrated to a
fraction of removed FLOPs. **An extension**: the CUT paper prunes single weights only
(docs/method/efficiency.md#what-gives-real-savings).

Structured CUT follows CUT step for step (:mod:`cutlib.methods.cut`), one level up:

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

from torch import Tensor

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.cut import CutOptions
from cutlib.methods.registry import Method, register
from cutlib.models import SceneNet
from cutlib.models.channels import BACKBONE, channel_groups, channel_scores, remove_channels
from cutlib.pruning.channel_masks import ChannelMasker, ConvFlops
from cutlib.pruning.options import check_choice, check_positive_int
from cutlib.pruning.per_task import plan_cut

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
    resolution = ctx.profile.data.resolution
    flops = ConvFlops(model, (1, 3, *resolution))
    cost = {
        "weights": None,
        "flops": flops.per_channel(),
        "none": {g.name: 1.0 for g in groups},
    }[options.channel_cost]
    channel = {voter: channel_scores(groups, per, cost) for voter, per in scores.items()}
    shared = {g.name for g in groups if g.owner == BACKBONE}
    masker = ChannelMasker(channel, shared, options.fusion, options.min_votes, options.round_to)
    plan = plan_cut(masker, ctx.spec.sparsity, options.keep_ratio, measure=flops.removed_fraction)
    remove_channels(model, plan.masks)
    ctx.time("fusion", start)
    if ctx.progress:
        print(
            f"channels: κ = {plan.keep_ratio:.4f}, {plan.sparsity:.2%} of the FLOPs removed "
            f"({sum(m.numel() - int(m.sum()) for m in plan.masks.values())} channels)"
        )
    result = ctx.train_masked(model, {}, ctx.schedule())
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
    options: StructuredCutOptions = ctx.spec.options
    model = ctx.load_pretrained()
    scores = ctx.task_scores(
        model, options.criterion, options.bn_mode, batches=options.scoring_batches
    )
    model.keep_tasks(ctx.task_names)
    return slim_and_finetune(ctx, model, scores, options)


METHOD = register(
    Method(
        "cut_structured",
        cut_structured,
        start="pretrained",
        sparsity="flops",
        summary="structured CUT (an extension): channels removed to a fraction of the FLOPs",
        options=StructuredCutOptions,
        label="structured CUT",
        colour="#56B4E9",
        marker="D",
    )
)
