"""``cut``: CUT, from the pre-trained multi-task model to the compact model of the selected tasks
(docs/method/cut.md#the-algorithm-step-by-step).

The pipeline, with the code doing each step:

1. decompose the pre-trained model into per-task sub-models Θ_t = backbone ∪ head_t
   (:func:`~cutlib.pruning.importance.sub_model_weights`);
2. select the user's tasks S;
3. score every weight of each selected sub-model on the frozen pre-trained weights
   (:func:`~cutlib.pruning.importance.task_importance`);
4. per task, keep the global top ⌊κ·|Θ_t|⌋ weights across all its layers, one threshold per task
   (:class:`~cutlib.pruning.thresholds.Ranking`), giving the task mask M_t;
5. fuse the backbone part of the selected tasks' masks by a vote
   (:func:`~cutlib.pruning.fusion.fuse_masks`); each selected head keeps its own task's mask;
6. drop the unselected heads physically and fine-tune with the masks fixed
   (:meth:`~cutlib.methods.context.RunContext.train_masked`).

Steps 4–5 for any κ are :class:`~cutlib.pruning.per_task.CutMasker`. κ is either calibrated
(bisection, :func:`~cutlib.pruning.thresholds.calibrate`) so that the deployed model (backbone +
selected heads) has exactly the requested sparsity, or taken from the authors' keep-ratio table
(or given as a number); then the achieved sparsity differs from the nominal one and is what gets
reported (docs/method/cut.md#keep-ratio-tables).
"""

from __future__ import annotations

from dataclasses import dataclass

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.registry import Method, register
from cutlib.models import SceneNet
from cutlib.pruning.fusion import AUTHORS_MIN_VOTES, FUSION_RULES, FusionRule
from cutlib.pruning.importance import BN_MODES, CRITERIA, BNMode, Criterion
from cutlib.pruning.options import check_choice, check_keep_ratio, check_positive_int
from cutlib.pruning.per_task import CutPlan

NAME = "cut"


@dataclass(frozen=True)
class CutOptions:
    """CUT's choices. The defaults are the authors' (docs/method/cut.md#defaults-of-this-companion),
    except that κ is calibrated to the requested sparsity.

    Args:
        criterion: importance score: ``taylor`` (the authors'), ``magnitude`` or ``random``.
        fusion: rule for the shared weights: ``vote`` (the authors'), ``union``, ``intersection``
            or ``majority``.
        min_votes: the ``vote`` rule's threshold (the authors': 2).
        keep_ratio: ``"calibrate"`` (find κ for the requested sparsity), ``"table"`` (the authors'
            κ for the nominal sparsity, from the profile's ``scoring.keep_ratios``) or a number κ.
        bn_mode: BatchNorm/dropout mode while scoring: ``train`` (the authors') or ``eval``.
        scoring_batches: batches the importance is summed over; ``None``: the profile's
            ``scoring.batches`` (the authors: 50).
    """

    criterion: Criterion = "taylor"
    fusion: FusionRule = "vote"
    min_votes: int = AUTHORS_MIN_VOTES
    keep_ratio: str | float = "calibrate"
    bn_mode: BNMode = "train"
    scoring_batches: int | None = None

    def __post_init__(self) -> None:
        check_choice("criterion", self.criterion, CRITERIA)
        check_choice("fusion", self.fusion, FUSION_RULES)
        check_choice("bn_mode", self.bn_mode, BN_MODES)
        check_positive_int("min_votes", self.min_votes)
        check_keep_ratio(self.keep_ratio)
        if self.scoring_batches is not None:
            check_positive_int("scoring_batches", self.scoring_batches)


def plan_compact(ctx: RunContext) -> tuple[SceneNet, CutPlan]:
    """Steps 3–5 without fine-tuning: score the selected tasks on the frozen pre-trained weights,
    drop the unselected heads, and plan the masks (per-task top-κ, fused backbone). Returns the
    compact model (masks not yet installed) and the plan."""
    options: CutOptions = ctx.spec.options
    model = ctx.load_pretrained()
    scores = ctx.task_scores(
        model, options.criterion, options.bn_mode, batches=options.scoring_batches
    )
    model.keep_tasks(ctx.task_names)
    plan = ctx.per_task_masks(
        model,
        scores,
        options.fusion,
        options.keep_ratio,
        options.min_votes,
        ctx.profile.scoring.keep_ratios,
    )
    return model, plan


def cut(ctx: RunContext) -> MethodResult:
    """CUT: score the selected tasks on the frozen pre-trained weights, per-task top-κ masks,
    vote-fused backbone, drop the unselected heads, fine-tune with the masks fixed on the selected
    tasks' losses."""
    model, plan = plan_compact(ctx)
    result = ctx.train_masked(model, plan.masks, ctx.schedule())
    result.details |= {"options": vars(ctx.spec.options), "keep_ratio": plan.keep_ratio}
    return result


METHOD = register(
    Method(
        NAME,
        cut,
        start="pretrained",
        summary="CUT: per-task importance on the pre-trained weights, vote-fused backbone masks",
        options=CutOptions,
        label="CUT",
        colour="#0072B2",
        marker="o",
    )
)
