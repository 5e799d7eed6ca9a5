"""``disparse_static``: DiSparse's static sparse training, i.e. pruning at initialisation with
disentangled per-task scores and a unanimous arbiter (Sun et al., "DiSparse: Disentangled Sparsity
for Multitask Model Compression", CVPR 2022; docs/method/disparse.md).

1. Copy the freshly initialised network and re-initialise every prunable weight of the copy with
   ``xavier_normal_`` (W̃); score each selected task t on the copy,
   s_{t,j} = Σ_b |W̃_j · ∂L_t(W̃; D_b)/∂W̃_j| over task t's sub-model (backbone + head t).
2. Per task, keep the global top ⌊κ·|Θ_t|⌋ (the sum-normalisation of the code does not change it).
3. Arbiter on the backbone: the **union** of the tasks' keeps (prune a shared weight only if every
   task prunes it); each head keeps its own task's mask.
4. Apply the masks to the original fresh network (its own initialisation, not the Xavier copy) and
   train it from scratch with the masks fixed.

Differences from the reference code: only the selected tasks are scored and deployed (DiSparse has
no task selection); κ is calibrated to the requested sparsity of the deployed model by default
(``keep_ratio=table`` uses DiSparse's table from the profile,
docs/method/disparse.md#keep-ratio-tables); the scoring batches are seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.registry import Method, register
from cutlib.models import SceneNet
from cutlib.pruning.masks import copy_model, prunable_weights
from cutlib.pruning.options import check_keep_ratio

NAME = "disparse_static"


@dataclass(frozen=True)
class DisparseStaticOptions:
    """``keep_ratio``: ``calibrate`` (default), ``table`` (DiSparse's κ) or a number."""

    keep_ratio: str | float = "calibrate"

    def __post_init__(self) -> None:
        check_keep_ratio(self.keep_ratio)


def xavier_copy(model: SceneNet, seed: int) -> SceneNet:
    """A copy of ``model`` whose prunable weights are re-drawn with ``xavier_normal_`` (seeded)."""
    copy = copy_model(model)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for w in prunable_weights(copy):
            nn.init.xavier_normal_(w.module.weight, generator=generator)
    return copy


def disparse_static(ctx: RunContext) -> MethodResult:
    """Per-task SNIP on a Xavier copy, union arbiter, then training from scratch."""
    options: DisparseStaticOptions = ctx.spec.options
    model = ctx.initial_compact()
    scores = ctx.task_scores(xavier_copy(model, ctx.spec.seed), "taylor")
    table = ctx.profile.baselines.keep_ratios.get(NAME)
    plan = ctx.per_task_masks(model, scores, "union", options.keep_ratio, table=table)
    result = ctx.train_masked(model, plan.masks, ctx.schedule(), stage="train")
    result.details |= {"options": vars(options), "keep_ratio": plan.keep_ratio}
    return result


METHOD = register(
    Method(
        NAME,
        disparse_static,
        start="scratch",
        summary="DiSparse, static: per-task SNIP on a Xavier copy, union arbiter, from scratch",
        paper_schedule="pretrain",
        options=DisparseStaticOptions,
        label="DiSparse (static)",
        colour="#E69F00",
        marker="^",
    )
)
