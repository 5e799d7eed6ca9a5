"""``random``: random pruning at initialisation, then training the sparse network.

Every prunable weight of the deployed model gets a seeded uniform random score and one global top-k
keeps ⌊(1 − sparsity)·N⌋, so each layer loses about the same fraction; the masked network is trained
from its initialisation W₀. This is the CUT code's random baseline (``prune.global_unstructured``
with ``RandomUnstructured`` on a fresh network,
docs/method/baselines.md#how-the-cut-code-configures-its-baselines), over the deployed model
(backbone + selected heads) instead of every head. The training budget follows the protocol
(:mod:`cutlib.context`): the CUT code gives it the short fine-tuning.
"""

from __future__ import annotations

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.registry import Method, register


def random_pruning(ctx: RunContext) -> MethodResult:
    """Random masks at initialisation, then training from scratch."""
    return ctx.prune_at_initialisation("random")


METHOD = register(
    Method(
        "random",
        random_pruning,
        start="scratch",
        summary="random pruning at initialisation",
        paper_schedule="finetune",
        label="random",
        colour="#7F7F7F",
        marker=">",
    )
)
