"""The allocation-swap ablation, not a method of either paper
(docs/method/cut.md#where-the-budget-goes): two hybrids of CUT and one-shot magnitude pruning that
separate *how many* weights each layer keeps from *which* ones.

- ``swap_taylor``: each layer keeps as many weights as global magnitude pruning keeps there, and
  within the layer CUT chooses them: per-task Taylor scores on the frozen pre-trained weights,
  ranked within the layer, fused by the vote on the backbone (:func:`~cutlib.pruning.layerwise.
  vote_ranks`), each head by its own task's scores.
- ``swap_magnitude``: each layer keeps as many weights as CUT keeps there (per-task global top-κ,
  vote, κ calibrated to the sparsity), and within the layer the largest |w|.

Both then fine-tune like every pre-trained pruner. If CUT loses to magnitude because its one
threshold per task starves the layers where Taylor scores are small, ``swap_taylor`` should do
as well as magnitude and ``swap_magnitude`` as badly as CUT.
"""

from __future__ import annotations

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.registry import Method, register
from cutlib.pruning.fusion import AUTHORS_MIN_VOTES, vote_threshold
from cutlib.pruning.layerwise import kept_counts, top_per_layer, vote_ranks
from cutlib.pruning.masks import BACKBONE, owned_by


def swap_taylor(ctx: RunContext) -> MethodResult:
    """Magnitude's per-layer counts, CUT's per-task Taylor scores and vote within each layer."""
    model = ctx.load_pretrained()
    scores = ctx.task_scores(model, "taylor")
    model.keep_tasks(ctx.task_names)
    counts = kept_counts(ctx.global_masks(model, "magnitude"))
    shared = [w.name for w in owned_by(model, {BACKBONE})]
    votes = vote_threshold("vote", len(ctx.task_names), AUTHORS_MIN_VOTES)
    layer_scores = vote_ranks(scores, shared, votes)
    for task in ctx.task_names:
        layer_scores |= {w.name: scores[task][w.name] for w in owned_by(model, {task})}
    return ctx.train_masked(model, top_per_layer(layer_scores, counts), ctx.schedule())


def swap_magnitude(ctx: RunContext) -> MethodResult:
    """CUT's per-layer counts (per-task top-κ, vote, κ calibrated), the largest |w| within each
    layer."""
    model = ctx.load_pretrained()
    scores = ctx.task_scores(model, "taylor")
    model.keep_tasks(ctx.task_names)
    plan = ctx.per_task_masks(model, scores, "vote", "calibrate")
    magnitudes = ctx.joint_scores(model, "magnitude")
    masks = top_per_layer(magnitudes, kept_counts(plan.masks))
    result = ctx.train_masked(model, masks, ctx.schedule())
    result.details["keep_ratio"] = plan.keep_ratio
    return result


SWAP_TAYLOR = register(
    Method(
        "swap_taylor",
        swap_taylor,
        start="pretrained",
        summary="ablation: CUT's Taylor scores and vote within each layer, magnitude's layer sizes",
        label="Taylor at |w|'s layer densities (ablation)",
        colour="#88CCEE",
        marker="d",
    )
)

SWAP_MAGNITUDE = register(
    Method(
        "swap_magnitude",
        swap_magnitude,
        start="pretrained",
        summary="ablation: the largest |w| within each layer, CUT's layer sizes",
        label="|w| at CUT's layer densities (ablation)",
        colour="#117733",
        marker="4",
    )
)
