"""``control``: the dense pre-trained model with only the selected heads, fine-tuned exactly as the
pruned models are (the same schedule, budget and tasks), with nothing pruned
(docs/method/metrics.md#the-control).

Every pre-trained pruner (CUT, magnitude, DiSparse on the pre-trained model, IMP) fine-tunes its
compact model for the profile's ``finetune`` schedule. When the dense model has not finished
learning, that fine-tuning alone raises the metrics, and a pruned model can "beat" the dense one
without pruning having helped at all. The control measures that training bonus: a pruned model's
Δ_MTL minus the control's, paired by seed, is what pruning costs at an equal training budget.
Under ``fair`` it has also had the budget of a method trained from scratch (P + F optimiser steps
since its random initialisation).

The paper has no such control: its tables compare the compact models with the dense model alone.
"""

from __future__ import annotations

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.registry import Method, register

CONTROL = "control"


def control(ctx: RunContext) -> MethodResult:
    """The pre-trained compact model (selected heads), fine-tuned on the selected tasks with the
    pruned models' schedule and no mask."""
    return ctx.train_masked(ctx.pretrained_compact(), {}, ctx.schedule())


METHOD = register(
    Method(
        CONTROL,
        control,
        start="pretrained",
        summary="the control: the pre-trained model fine-tuned like the pruned models, unpruned",
        prunes=False,
        label="control (dense + fine-tuning)",
        colour="#3B3B3B",
        marker="8",
    )
)
