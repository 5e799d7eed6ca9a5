"""``magnitude``: one-shot global magnitude pruning of the pre-trained weights, then fine-tuning
(Han et al., "Learning both Weights and Connections for Efficient Neural Networks", NeurIPS 2015,
in one shot).

Keep the ⌊(1 − sparsity)·N⌋ prunable weights of the deployed model with the largest |w|, one
threshold across all layers, and fine-tune with the mask fixed.

This is what the CUT code calls its "LTH" baseline (``prune.global_unstructured`` with
``L1Unstructured``, docs/method/baselines.md#how-the-cut-code-configures-its-baselines): no
iterations and no rewinding. Differences from that code: the unselected heads are removed (the CUT
code leaves them dense), so the sparsity is that of the deployed model; the real lottery-ticket
procedure is :mod:`cutlib.pruning.lth`.
"""

from __future__ import annotations

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.registry import Method, register


def magnitude(ctx: RunContext) -> MethodResult:
    """One-shot global |w| pruning of the pre-trained compact model, then fine-tuning."""
    model = ctx.pretrained_compact()
    masks = ctx.global_masks(model, "magnitude")
    return ctx.train_masked(model, masks, ctx.schedule())


METHOD = register(
    Method(
        "magnitude",
        magnitude,
        start="pretrained",
        summary="one-shot global magnitude pruning of the pre-trained weights (the CUT code's LTH)",
        label="magnitude",
        colour="#009E73",
        marker="P",
    )
)
