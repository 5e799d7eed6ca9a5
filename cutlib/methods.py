"""The methods a run can use (DESIGN §5), by contract name. Each turns the dense pre-trained model
into a deployed model for the selected tasks; the shared machinery (run context, budgets, masked
training) is in :mod:`cutlib.context`, the algorithms in :mod:`cutlib.pruning`.

A method is a function ``RunContext → MethodResult`` registered in :data:`METHODS`; a method with
options registers a parser in :data:`METHOD_OPTIONS` (``cutlib run --option name=value``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from cutlib.context import MethodResult, RunContext
from cutlib.models import SceneNet
from cutlib.pruning.cut import CutOptions, cut
from cutlib.pruning.disparse_dynamic import disparse_dynamic
from cutlib.pruning.disparse_pt import DisparsePtOptions, disparse_pt
from cutlib.pruning.disparse_static import DisparseStaticOptions, disparse_static
from cutlib.pruning.imp import imp
from cutlib.pruning.lth import lth
from cutlib.pruning.magnitude import magnitude
from cutlib.pruning.masks import copy_model
from cutlib.pruning.random_pruning import random_pruning
from cutlib.pruning.rigl import rigl
from cutlib.pruning.snip import snip
from cutlib.pruning.structured import StructuredCutOptions, channel_magnitude, cut_structured

DENSE = "dense"


def pretrain(ctx: RunContext) -> MethodResult:
    """Train the dense multi-task model from scratch on all tasks (PAPER_NOTES §1.12), keeping a
    copy of the weights at ``pretrain.rewind_iteration`` for lottery-ticket rewinding."""
    model = ctx.initial_model()
    schedule = ctx.train_config("pretrain")
    rewind_at = ctx.profile["pretrain"].get("rewind_iteration")
    early: dict[str, SceneNet] = {}

    def keep_early_weights(iteration: int, batch: Mapping[str, torch.Tensor]) -> None:
        if iteration == rewind_at:
            early["rewind"] = copy_model(model)

    if ctx.progress:
        print(
            f"pre-training the dense {ctx.config.dataset} model ({ctx.config.profile} profile, "
            f"{schedule.iterations} iterations on {ctx.device})"
        )
    history = ctx.train(model, ctx.all_tasks, schedule, "pretrain", keep_early_weights)
    return MethodResult(model, history, artifacts=early)


def dense(ctx: RunContext) -> MethodResult:
    """The pre-trained model with only the selected heads (the unselected ones removed)."""
    return MethodResult(ctx.pretrained_compact())


#: Method name → implementation (the contract names of DESIGN §5).
METHODS: dict[str, Callable[[RunContext], MethodResult]] = {
    DENSE: dense,
    "cut": cut,
    "disparse_static": disparse_static,
    "disparse_pt": disparse_pt,
    "disparse_dynamic": disparse_dynamic,
    "snip": snip,
    "random": random_pruning,
    "magnitude": magnitude,
    "imp": imp,
    "lth": lth,
    "rigl": rigl,
    "cut_structured": cut_structured,
    "channel_magnitude": channel_magnitude,
}

#: Method name → parser of its ``--option`` pairs (methods without options are absent).
METHOD_OPTIONS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "cut": CutOptions.from_pairs,
    "disparse_static": DisparseStaticOptions.from_pairs,
    "disparse_pt": DisparsePtOptions.from_pairs,
    "cut_structured": StructuredCutOptions.from_pairs,
}
