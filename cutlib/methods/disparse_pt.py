"""``disparse_pt``: DiSparse applied to a pre-trained model (Sun et al., CVPR 2022;
docs/method/disparse.md#pruning-a-pre-trained-model): per-task scores on the pre-trained weights,
per-task global top-κ, the **union** arbiter on the backbone (each head keeps its own mask), then
fine-tuning.

The score is a parameter (``criterion``), because the reference code uses two:

- ``magnitude``, s_{t,j} = |W_j| (its NYUv2 and Cityscapes script): the backbone scores are the
  same for every task and only the per-task thresholds differ (each task's top-k also competes
  with its own head), so the union is the mask of the task with the lowest threshold;
- ``w2grad``, s_{t,j} = W_j² · Σ_b |∂L_t/∂W_j| (its Taskonomy script).

``auto`` (the default) picks the one the reference code uses for the dataset's family. Differences
from the reference code: only the selected tasks are scored and deployed; κ is calibrated to the
requested sparsity by default (``keep_ratio=table``: DiSparse's table from the profile); the
fine-tuning is the profile's, with its learning-rate schedule (the reference's scheduler stays
bound to an old optimiser, so its rate is constant).
"""

from __future__ import annotations

from dataclasses import dataclass

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.registry import Method, register
from cutlib.pruning.options import check_choice, check_keep_ratio

NAME = "disparse_pt"
PT_CRITERIA = ("auto", "magnitude", "w2grad", "taylor")


@dataclass(frozen=True)
class DisparsePtOptions:
    """``criterion``: ``auto`` (default: ``w2grad`` on Taskonomy-like data, else ``magnitude``),
    ``magnitude``, ``w2grad`` or ``taylor``; ``keep_ratio``: ``calibrate``, ``table`` or a
    number."""

    criterion: str = "auto"
    keep_ratio: str | float = "calibrate"

    def __post_init__(self) -> None:
        check_choice("criterion", self.criterion, PT_CRITERIA)
        check_keep_ratio(self.keep_ratio)

    def resolved_criterion(self, dataset: str) -> str:
        """The criterion for ``dataset``: ``auto`` becomes what the reference code uses."""
        if self.criterion != "auto":
            return self.criterion
        return "w2grad" if "taskonomy" in dataset else "magnitude"


def disparse_pt(ctx: RunContext) -> MethodResult:
    """Per-task scores on the pre-trained weights, union arbiter, fine-tuning."""
    options: DisparsePtOptions = ctx.spec.options
    criterion = options.resolved_criterion(ctx.spec.dataset)
    model = ctx.pretrained_compact()
    scores = ctx.task_scores(model, criterion)  # type: ignore[arg-type]
    table = ctx.profile.baselines.keep_ratios.get(NAME)
    plan = ctx.per_task_masks(model, scores, "union", options.keep_ratio, table=table)
    result = ctx.train_masked(model, plan.masks, ctx.schedule())
    result.details |= {
        "options": vars(options) | {"criterion": criterion},
        "keep_ratio": plan.keep_ratio,
    }
    return result


METHOD = register(
    Method(
        NAME,
        disparse_pt,
        start="pretrained",
        summary="DiSparse on the pre-trained model: per-task top-k, union of the backbone masks",
        options=DisparsePtOptions,
        label="DiSparse (pre-trained)",
        colour="#D55E00",
        marker="s",
    )
)
