"""CUT: from per-task importance scores to the masks of the compact model (PAPER_NOTES §1.6–1.9).

The pipeline (DESIGN §5), with the module doing each step:

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
   (:mod:`cutlib.experiments`).

κ is either calibrated (bisection, :func:`~cutlib.pruning.thresholds.calibrate`) so that the
deployed model (backbone + selected heads) has exactly the requested sparsity, or taken from the
authors' keep-ratio table (or given as a number); then the achieved sparsity differs from the
nominal one and is what gets reported (PAPER_NOTES §1.9).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cutlib.context import MethodResult, RunContext
from cutlib.models import SceneNet
from cutlib.pruning.fusion import AUTHORS_MIN_VOTES, FUSION_RULES, FusionRule, fuse_masks
from cutlib.pruning.importance import BN_MODES, CRITERIA, BNMode, Criterion, TaskScores
from cutlib.pruning.masks import BACKBONE, Masks, owned_by
from cutlib.pruning.options import (
    check_choice,
    check_keep_ratio,
    check_positive_int,
    options_from_pairs,
)
from cutlib.pruning.thresholds import Ranking, calibrate, weight_sparsity


@dataclass(frozen=True)
class CutOptions:
    """CUT's choices. The defaults are the authors' (PAPER_NOTES §1.14 "faithful"), except that κ
    is calibrated to the requested sparsity.

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

    @classmethod
    def from_pairs(cls, pairs: Mapping[str, Any]) -> CutOptions:
        """Build from ``name → value`` pairs (e.g. ``--option fusion=union``), checking names."""
        return options_from_pairs(cls, pairs)


def table_keep_ratio(sparsity: float, table: Mapping[float, float] | None) -> float:
    """The authors' κ for a nominal sparsity (PAPER_NOTES §1.9): the table entry when there is
    one, else ``1 − sparsity`` (their fallback).

    Example:
        >>> table_keep_ratio(0.9, {0.9: 0.08, 0.7: 0.257}), table_keep_ratio(0.8, {0.9: 0.08})
        (0.08, 0.2)
    """
    for nominal, kappa in (table or {}).items():
        if abs(float(nominal) - sparsity) < 1e-9:
            return float(kappa)
    return round(1.0 - sparsity, 12)


class CutMasker:
    """CUT's masks for any keep ratio κ, from per-task scores (steps 4–5).

    The per-task rankings are computed once, so building the masks for a new κ (as calibration
    does dozens of times) is a few vectorised comparisons.

    Args:
        scores: per-task scores over each task's sub-model (:func:`task_importance`).
        selected: the selected tasks (they vote on the shared weights and keep their heads).
        shared: names of the shared (backbone) weights.
        fusion: the fusion rule; ``min_votes``: the ``vote`` threshold.

    Example:
        >>> import torch
        >>> s = {"a": {"b": torch.tensor([3.0, 2, 1, 0]), "ha": torch.tensor([1.5, 0])},
        ...      "c": {"b": torch.tensor([0.0, 2, 1, 3]), "hc": torch.tensor([1.5, 0])}}
        >>> CutMasker(s, ["a", "c"], {"b"})(0.5)["b"]  # each keeps 3 of 6; both keep index 1
        tensor([False,  True, False, False])
    """

    def __init__(
        self,
        scores: TaskScores,
        selected: Sequence[str],
        shared: Collection[str],
        fusion: FusionRule = "vote",
        min_votes: int = AUTHORS_MIN_VOTES,
    ) -> None:
        if not selected:
            raise ValueError("CUT needs at least one selected task")
        missing = [t for t in selected if t not in scores]
        if missing:
            raise ValueError(f"no scores for selected task(s) {', '.join(missing)}")
        self.selected = list(selected)
        self.shared = [name for name in scores[self.selected[0]] if name in set(shared)]
        self.rankings = {t: Ranking(scores[t]) for t in self.selected}
        self.fusion: FusionRule = fusion
        self.min_votes = min_votes

    def task_masks(self, keep: float) -> dict[str, Masks]:
        """Step 4: each selected task's own mask M_t over its sub-model, at keep ratio κ."""
        return {t: ranking.masks(keep) for t, ranking in self.rankings.items()}

    def __call__(self, keep: float) -> Masks:
        """Steps 4–5: the deployed model's masks (fused backbone, each head its own) at κ."""
        per_task = self.task_masks(keep)
        shared = set(self.shared)
        fused = fuse_masks(
            {t: {n: m[n] for n in self.shared} for t, m in per_task.items()},
            self.fusion,
            self.min_votes,
        )
        heads = {n: m for masks in per_task.values() for n, m in masks.items() if n not in shared}
        return fused | heads


@dataclass(frozen=True)
class CutPlan:
    """What CUT decided: the masks of the deployed model, the κ used, and its sparsity."""

    masks: Masks
    keep_ratio: float
    sparsity: float


class KeepRatioChoice(Protocol):
    """Any method options with a ``keep_ratio`` (``calibrate``, ``table`` or a number)."""

    keep_ratio: str | float


def plan_cut(
    masker: Callable[[float], Masks],
    sparsity: float,
    options: KeepRatioChoice = CutOptions(),
    table: Mapping[float, float] | None = None,
    measure: Callable[[Masks], float] = weight_sparsity,
) -> CutPlan:
    """Choose κ per ``options.keep_ratio`` and build the masks with ``masker`` (a
    :class:`CutMasker`, or DiSparse's, which is the same with the union rule).

    ``"calibrate"`` bisects κ until the deployed sparsity (as ``measure`` defines it: pruned
    weights by default, removed FLOPs for structured CUT) is within 0.02 points of ``sparsity``;
    ``"table"`` looks κ up in ``table`` (the authors' keep ratios); a number is used as κ.
    """
    if options.keep_ratio == "calibrate":
        kappa, masks = calibrate(masker, sparsity, measure=measure)
    else:
        kappa = (
            table_keep_ratio(sparsity, table)
            if options.keep_ratio == "table"
            else float(options.keep_ratio)
        )
        masks = masker(kappa)
    return CutPlan(masks, kappa, measure(masks))


def per_task_masks(
    ctx: RunContext,
    model: SceneNet,
    scores: TaskScores,
    fusion: FusionRule,
    options: KeepRatioChoice,
    min_votes: int = AUTHORS_MIN_VOTES,
    table: Mapping[float, float] | None = None,
) -> CutPlan:
    """Per-task top-κ masks fused by ``fusion`` on the shared weights of ``model`` (the compact
    model: backbone + selected heads), κ chosen per ``options`` (timed under ``fusion``). CUT uses
    the vote, DiSparse the union."""
    start = time.perf_counter()
    shared = {w.name for w in owned_by(model, {BACKBONE})}
    masker = CutMasker(scores, ctx.task_names, shared, fusion, min_votes)
    plan = plan_cut(masker, ctx.config.sparsity, options, table)
    ctx.time("fusion", start)
    if ctx.progress:
        print(
            f"{fusion} of per-task masks: κ = {plan.keep_ratio:.4f}, {plan.sparsity:.2%} sparsity"
        )
    return plan


def cut(ctx: RunContext) -> MethodResult:
    """CUT (PAPER_NOTES §1.13, DESIGN §5): score the selected tasks on the frozen pre-trained
    weights, per-task top-κ masks, vote-fused backbone, drop the unselected heads, fine-tune with
    the masks fixed on the selected tasks' losses."""
    options: CutOptions = ctx.config.method_options()
    model = ctx.load_pretrained()
    scores = ctx.task_scores(
        model, options.criterion, options.bn_mode, batches=options.scoring_batches
    )
    model.keep_tasks(ctx.task_names)
    table = ctx.profile["scoring"].get("keep_ratios")
    plan = per_task_masks(ctx, model, scores, options.fusion, options, options.min_votes, table)
    result = ctx.train_masked(model, plan.masks, ctx.schedule("pretrained"))
    result.details |= {"options": vars(options), "keep_ratio": plan.keep_ratio}
    return result
