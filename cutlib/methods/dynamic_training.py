"""Dynamic sparse training of a method's compact model, the loop RigL and DiSparse's dynamic
variant share (docs/method/disparse.md#dynamic-sparse-training); the mask updates themselves are
:class:`~cutlib.pruning.dynamic.DynamicSparsity`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence

import torch

from cutlib.losses import Align
from cutlib.methods.context import MethodResult, RunContext
from cutlib.models import SceneNet
from cutlib.pruning.dynamic import (
    DynamicSparsity,
    GrowRule,
    RegrowValue,
    deployed_shapes,
    erk_counts,
    random_masks,
)
from cutlib.pruning.masks import Masks, prunable_weights
from cutlib.tasks import TaskSpec


def _initial_densities(model: SceneNet, masks: Masks) -> dict[str, float]:
    """Density of ``masks`` per owner (``backbone`` and each head)."""
    kept: dict[str, list[int]] = {}
    for w in prunable_weights(model):
        counts = kept.setdefault(w.owner, [0, 0])
        counts[0] += int(masks[w.name].sum())
        counts[1] += masks[w.name].numel()
    return {owner: round(k / total, 6) for owner, (k, total) in kept.items()}


def train_dynamic(
    ctx: RunContext,
    grow: Callable[[Sequence[TaskSpec], Align], GrowRule],
    *,
    power: float,
    alpha: float,
    regrow: RegrowValue,
    dense: Collection[str] = (),
) -> MethodResult:
    """Dynamic sparse training of the compact model (backbone + selected heads) from its
    initialisation W₀, growing by the rule ``grow(selected tasks, the schedule's align)``: ERK
    budgets (with ``power``; ``dense`` layers kept whole) at the run's
    sparsity, random initial masks (timed under ``masks``), then the profile's
    ``baselines.dynamic`` schedule (ΔT = ``update_every``, T_end = ``end_fraction`` · T, a first
    update before training with ``update_at_start``) of :class:`DynamicSparsity` updates with
    drop fraction ``alpha``, over the ``scratch`` schedule of the run's protocol (the reference
    code's ``pretrain`` one under ``paper``)."""
    settings = ctx.profile.baselines.dynamic
    model = ctx.initial_compact()
    shapes = deployed_shapes(model)
    start = time.perf_counter()
    counts = erk_counts(shapes, 1.0 - ctx.spec.sparsity, power, dense)
    masks = random_masks(shapes, counts, torch.Generator().manual_seed(ctx.spec.seed))
    ctx.time("masks", start)
    schedule = ctx.schedule()
    updater = DynamicSparsity(
        model,
        shapes,
        grow(ctx.tasks, schedule.align),
        every=settings.update_every,
        end=int(settings.end_fraction * schedule.iterations),
        alpha=alpha,
        regrow=regrow,
        evaluations=schedule.evaluation_iterations(),
        at_start=settings.update_at_start,
    )
    result = ctx.train_masked(model, masks, schedule, stage="train", on_step=updater)
    result.details |= {
        "mask_updates": updater.updates,
        "weights_regrown": updater.moved,
        "mask_update_seconds": round(updater.seconds, 3),
        "drop_fraction": alpha,
        "update_every": settings.update_every,
        "update_end": updater.end,
        "update_at_start": 0 in updater.iterations,
        "regrow": regrow,
        "erk_power": power,
        "erk_dense_layers": [n for n in shapes if counts[n] == math.prod(shapes[n])],
        "erk_density": _initial_densities(model, masks),
    }
    return result
