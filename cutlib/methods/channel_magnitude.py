"""``channel_magnitude``: the structured baseline of structured CUT
(:mod:`cutlib.methods.cut_structured`): channels ranked by the mean |w| of their weights (the L1
filter criterion of Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017), one global
ranking for all tasks, the same FLOP calibration, channel removal and fine-tuning.
"""

from __future__ import annotations

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.cut_structured import StructuredCutOptions, slim_and_finetune
from cutlib.methods.registry import Method, register

#: The single voter of a ranking that ignores the tasks.
ALL_TASKS = "all"


def channel_magnitude(ctx: RunContext) -> MethodResult:
    """Channel-magnitude pruning: the compact model's channels ranked by the mean |w| of their
    weights, one ranking for all tasks, removed to the requested fraction of FLOPs, fine-tuned."""
    model = ctx.pretrained_compact()
    scores = {ALL_TASKS: ctx.joint_scores(model, "magnitude")}
    return slim_and_finetune(ctx, model, scores, StructuredCutOptions())


METHOD = register(
    Method(
        "channel_magnitude",
        channel_magnitude,
        start="pretrained",
        sparsity="flops",
        summary="channel pruning by mean |w| (L1 filters), removed to a fraction of the FLOPs",
        label="channel magnitude",
        colour="#AA4499",
        marker="h",
    )
)
