"""``imp``: iterative magnitude pruning of the pre-trained model (Han et al., NeurIPS 2015),
R rounds of "remove the smallest surviving weights, then fine-tune"; no rewinding.

Round r = 1…R keeps the global top ⌊(1 − sparsity)^{r/R}·N⌋ weights by |w| among the survivors of
round r − 1 (pruned weights never come back), so every round removes the same fraction of the
survivors and the last one lands exactly on the requested sparsity; the network is fine-tuned
with the mask fixed after every round. R is the profile's ``baselines.rounds``. Under the ``fair``
protocol the rounds share the fine-tuning budget; under ``paper`` each round gets all of it.
DiSparse lists IMP among its pre-trained baselines; neither paper's code implements it.

:func:`iterative_magnitude` is shared with :mod:`cutlib.pruning.lth`, which adds rewinding.
"""

from __future__ import annotations

import torch

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.registry import Method, register
from cutlib.models import SceneNet
from cutlib.pruning.masks import Masks, masks_of, prunable_weights
from cutlib.pruning.thresholds import Ranking
from cutlib.train import TrainConfig


def surviving_magnitudes(model: SceneNet, alive: Masks) -> dict[str, torch.Tensor]:
    """|w| of the surviving weights and −1 for pruned ones, so survivors always rank first."""
    return {
        w.name: torch.where(alive[w.name], w.weight.detach().abs(), -1.0)
        for w in prunable_weights(model)
    }


def iterative_magnitude(
    ctx: RunContext,
    model: SceneNet,
    rounds: int,
    schedule: TrainConfig,
    rewind: SceneNet | None = None,
) -> MethodResult:
    """Prune ``model`` to the run's sparsity in ``rounds`` magnitude rounds, training after each
    with ``schedule``; with ``rewind``, the weights are reset to ``rewind``'s (same architecture)
    after each pruning step, before training (the lottery-ticket procedure)."""
    if rounds < 1:
        raise ValueError(f"iterative pruning needs at least one round, got {rounds}")
    target_keep = 1.0 - ctx.spec.sparsity
    history: list[dict[str, float]] = []
    before = None
    alive = masks_of(model)
    for round_ in range(1, rounds + 1):
        masks = Ranking(surviving_magnitudes(model, alive)).masks(target_keep ** (round_ / rounds))
        if rewind is not None:
            model.load_state_dict(rewind.state_dict())
        result = ctx.train_masked(model, masks, schedule)
        offset = (round_ - 1) * schedule.iterations
        history += [
            entry | {"iteration": entry["iteration"] + offset, "round": round_}
            for entry in result.history
        ]
        before = before or result.details["metrics_before_finetune"]
        alive = masks
    details = result.details | {"metrics_before_finetune": before, "rounds": rounds}
    return MethodResult(model, history, details)


def imp(ctx: RunContext) -> MethodResult:
    """Iterative magnitude pruning of the pre-trained compact model with fine-tuning."""
    rounds = ctx.spec.method.rounds(ctx.profile)
    return iterative_magnitude(ctx, ctx.pretrained_compact(), rounds, ctx.schedule())


METHOD = register(
    Method(
        "imp",
        imp,
        start="pretrained",
        summary="iterative magnitude pruning of the pre-trained weights, fine-tuning each round",
        iterative=True,
        label="IMP",
        colour="#882255",
        marker="X",
    )
)
