"""``dense``: the pre-trained model with only the selected heads, the reference every pruned model
is compared with; and the pre-training of the dense multi-task model itself
(docs/method/cut.md#pre-training-the-dense-model), which is the ``dense`` run on all tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.registry import Method, register
from cutlib.models import SceneNet
from cutlib.pruning.masks import copy_model

DENSE = "dense"


class EarlyWeights:
    """A step hook that keeps a copy of ``model`` as it is after ``iteration`` (LTH's rewinding
    point), carried over a resume (:class:`cutlib.resume.StatefulHook`)."""

    def __init__(self, model: SceneNet, iteration: int | None) -> None:
        self.model, self.iteration = model, iteration
        self.copy: SceneNet | None = None

    def __call__(self, iteration: int, batch: Mapping[str, torch.Tensor]) -> None:
        if iteration == self.iteration:
            self.copy = copy_model(self.model)

    def state_dict(self) -> dict[str, Any]:
        """The copy's weights, once taken."""
        return {"weights": None if self.copy is None else self.copy.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back the copy of :meth:`state_dict`."""
        if state["weights"] is not None:
            self.copy = copy_model(self.model)
            self.copy.load_state_dict(state["weights"])


def pretrain(ctx: RunContext) -> MethodResult:
    """Train the dense multi-task model from scratch on all tasks, keeping a copy of the weights
    at ``pretrain.rewind_iteration`` for lottery-ticket rewinding."""
    model = ctx.initial_model()
    schedule = ctx.profile.pretrain
    early = EarlyWeights(model, schedule.rewind_iteration)
    if ctx.progress:
        print(
            f"pre-training the dense {ctx.spec.dataset} model ({ctx.spec.profile.name} profile, "
            f"{schedule.iterations} iterations on {ctx.device})"
        )
    history = ctx.train(model, ctx.all_tasks, schedule, "pretrain", early)
    artifacts = {} if early.copy is None else {"rewind": early.copy}
    return MethodResult(model, history, artifacts=artifacts)


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
        prunes=False,
        label="dense",
        colour="#000000",
        marker="H",
    )
)
