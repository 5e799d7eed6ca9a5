"""``dense``: the pre-trained model with only the selected heads, the reference every pruned model
is compared with; and the pre-training of the dense multi-task model itself
(docs/method/cut.md#pre-training-the-dense-model), which is the ``dense`` run on all tasks.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.registry import Method, register
from cutlib.models import SceneNet
from cutlib.pruning.masks import copy_model

DENSE = "dense"


def pretrain(ctx: RunContext) -> MethodResult:
    """Train the dense multi-task model from scratch on all tasks, keeping a copy of the weights
    at ``pretrain.rewind_iteration`` for lottery-ticket rewinding."""
    model = ctx.initial_model()
    schedule = ctx.profile.pretrain
    rewind_at = schedule.rewind_iteration
    early: dict[str, SceneNet] = {}

    def keep_early_weights(iteration: int, batch: Mapping[str, torch.Tensor]) -> None:
        if iteration == rewind_at:
            early["rewind"] = copy_model(model)

    if ctx.progress:
        print(
            f"pre-training the dense {ctx.spec.dataset} model ({ctx.spec.profile.name} profile, "
            f"{schedule.iterations} iterations on {ctx.device})"
        )
    history = ctx.train(model, ctx.all_tasks, schedule, "pretrain", keep_early_weights)
    return MethodResult(model, history, artifacts=early)


def dense(ctx: RunContext) -> MethodResult:
    """The pre-trained model with only the selected heads (the unselected ones removed); on all
    tasks and without a pre-trained model yet, the pre-training itself."""
    if ctx.pretrained is None:
        return pretrain(ctx)
    return MethodResult(ctx.pretrained_compact())


METHOD = register(
    Method(
        DENSE,
        dense,
        start="pretrained",
        summary="no pruning: the pre-trained model with the selected heads (the reference)",
        trains=False,
        label="dense",
        colour="#000000",
        marker="H",
    )
)
