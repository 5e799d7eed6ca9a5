"""Per-task masks and their fusion for any keep ratio κ: the machinery CUT, DiSparse and the
structured variant share (docs/method/cut.md#normalisation-and-per-task-top-k).

Per task, the global top ⌊κ·|Θ_t|⌋ weights across all layers of its sub-model (one threshold per
task, :class:`~cutlib.pruning.thresholds.Ranking`) give the task mask M_t; the masks of the shared
(backbone) weights are fused by a rule (:func:`~cutlib.pruning.fusion.fuse_masks`), each head keeps
its own task's mask. κ is either calibrated so that the deployed model has the requested sparsity,
taken from the authors' keep-ratio table, or given as a number; then the achieved sparsity differs
from the nominal one and is what gets reported (docs/method/cut.md#keep-ratio-tables).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from cutlib.pruning.fusion import AUTHORS_MIN_VOTES, FUSION_RULES, FusionRule, fuse_masks
from cutlib.pruning.importance import TaskScores
from cutlib.pruning.masks import Masks
from cutlib.pruning.thresholds import Ranking, calibrate, weight_sparsity


def table_keep_ratio(sparsity: float, table: Mapping[float, float] | None) -> float:
    """The authors' κ for a nominal sparsity (docs/method/cut.md#keep-ratio-tables): the table entry
    when there is one, else ``1 − sparsity`` (their fallback).

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
        return self.deploy(self.task_masks(keep))

    def deploy(
        self,
        per_task: dict[str, Masks],
        fusion: FusionRule | None = None,
        min_votes: int | None = None,
    ) -> Masks:
        """Step 5 on the tasks' own masks ``per_task`` (:meth:`task_masks`): the shared weights
        fused by ``fusion`` / ``min_votes`` (default: this masker's), each head its own mask."""
        shared = set(self.shared)
        fused = fuse_masks(
            {t: {n: m[n] for n in self.shared} for t, m in per_task.items()},
            self.fusion if fusion is None else fusion,
            self.min_votes if min_votes is None else min_votes,
        )
        heads = {n: m for masks in per_task.values() for n, m in masks.items() if n not in shared}
        return fused | heads


@dataclass(frozen=True)
class CutPlan:
    """What CUT decided: the masks of the deployed model, the κ used, and its sparsity."""

    masks: Masks
    keep_ratio: float
    sparsity: float


def plan_cut(
    masker: Callable[[float], Masks],
    sparsity: float,
    keep_ratio: str | float = "calibrate",
    table: Mapping[float, float] | None = None,
    measure: Callable[[Masks], float] = weight_sparsity,
) -> CutPlan:
    """Choose κ per ``keep_ratio`` and build the masks with ``masker`` (a :class:`CutMasker`, or
    DiSparse's, which is the same with the union rule).

    ``"calibrate"`` bisects κ until the deployed sparsity (as ``measure`` defines it: pruned
    weights by default, removed FLOPs for structured CUT) is within 0.02 points of ``sparsity``;
    ``"table"`` looks κ up in ``table`` (the authors' keep ratios); a number is used as κ.
    """
    if keep_ratio == "calibrate":
        kappa, masks = calibrate(masker, sparsity, measure=measure)
    else:
        kappa = table_keep_ratio(sparsity, table) if keep_ratio == "table" else float(keep_ratio)
        masks = masker(kappa)
    return CutPlan(masks, kappa, measure(masks))


def plan_rules(
    scores: TaskScores,
    selected: Sequence[str],
    shared: Collection[str],
    sparsity: float,
    rules: Sequence[FusionRule] = FUSION_RULES,
) -> dict[str, CutPlan]:
    """CUT's plan for ``selected`` under each fusion rule of ``rules``, each with its own κ
    calibrated to the deployed ``sparsity``: how the rules compare at the same model size.

    Example:
        >>> import torch
        >>> s = {"a": {"b": torch.tensor([3.0, 2, 1, 0]), "ha": torch.tensor([1.5, 0])},
        ...      "c": {"b": torch.tensor([0.0, 2, 1, 3]), "hc": torch.tensor([1.5, 0])}}
        >>> plans = plan_rules(s, ["a", "c"], {"b"}, 0.5, ["union", "intersection"])
        >>> [(plan.masks["b"].tolist(), plan.sparsity) for plan in plans.values()]
        [([True, True, False, True], 0.375), ([False, True, True, False], 0.5)]
    """
    return {rule: plan_cut(CutMasker(scores, selected, shared, rule), sparsity) for rule in rules}
