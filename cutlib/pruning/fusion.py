"""Fusing per-task masks of the shared parameters
(docs/method/cut.md#fusing-the-backbone-masks-by-vote, CUT's "Param Retain Decision Function").

Each selected task votes for the shared (backbone) weights its own mask keeps; a weight survives
when its vote count reaches a threshold that depends on the rule:

- ``vote``: at least ``min(min_votes, n)`` of the n tasks keep it (CUT; the authors use 2);
- ``union``: any task keeps it (DiSparse);
- ``intersection``: every task keeps it;
- ``majority``: more than half of the tasks keep it (what the CUT code's comment describes).

With a single selected task every rule keeps that task's own mask. The authors' literal threshold of
2 would then prune the whole backbone (docs/method/reference-code.md#the-cut-code item 1); clipping
the threshold to the number of voters is the deliberate deviation. For two tasks the authors' vote
is an intersection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

import torch

from cutlib.pruning.masks import Masks

FusionRule = Literal["vote", "union", "intersection", "majority"]
FUSION_RULES: tuple[str, ...] = get_args(FusionRule)
AUTHORS_MIN_VOTES = 2


def vote_threshold(rule: FusionRule, n_tasks: int, min_votes: int = AUTHORS_MIN_VOTES) -> int:
    """Votes a shared weight needs to be kept, for ``n_tasks`` voters under ``rule``.

    Example:
        >>> [vote_threshold("vote", n) for n in (1, 2, 3, 5)]
        [1, 2, 2, 2]
        >>> [vote_threshold("majority", n) for n in (1, 2, 3, 5)]
        [1, 2, 2, 3]
    """
    if n_tasks < 1:
        raise ValueError("fusion needs at least one task's masks")
    if rule == "vote":
        if isinstance(min_votes, bool) or min_votes < 1:
            raise ValueError(f"min_votes must be ≥ 1, got {min_votes}")
        return min(min_votes, n_tasks)
    if rule == "union":
        return 1
    if rule == "intersection":
        return n_tasks
    if rule == "majority":
        return n_tasks // 2 + 1
    raise ValueError(f"unknown fusion rule {rule!r}; valid rules: {', '.join(FUSION_RULES)}")


def vote_counts(task_masks: Mapping[str, Masks]) -> Masks:
    """Per shared weight, how many tasks keep it (int tensors). All tasks must mask the same
    parameters with the same shapes."""
    if not task_masks:
        raise ValueError("fusion needs at least one task's masks")
    first, *others = task_masks.values()
    for task, masks in task_masks.items():
        if masks.keys() != first.keys():
            raise ValueError(f"task {task!r} masks different parameters than the other tasks")
        for name, mask in masks.items():
            if mask.shape != first[name].shape:
                raise ValueError(f"task {task!r} masks {name} with a different shape")
    return {
        name: torch.stack([masks[name] for masks in task_masks.values()]).sum(0, dtype=torch.int32)
        for name in first
    }


def fuse_masks(
    task_masks: Mapping[str, Masks],
    rule: FusionRule = "vote",
    min_votes: int = AUTHORS_MIN_VOTES,
) -> Masks:
    """Fuse the selected tasks' masks of the shared parameters into one mask.

    Args:
        task_masks: task → (parameter name → bool keep-mask), over the same shared parameters.
        rule: ``vote``, ``union``, ``intersection`` or ``majority`` (see the module docstring).
        min_votes: the ``vote`` rule's threshold (the authors' code: 2).

    The input masks are not modified (the authors' code tallies in place,
    docs/method/reference-code.md#the-cut-code).

    Example:
        >>> a = {"w": torch.tensor([True, True, False])}
        >>> b = {"w": torch.tensor([True, False, False])}
        >>> fuse_masks({"seg": a, "depth": b})["w"]  # two tasks, 2 votes: an intersection
        tensor([ True, False, False])
        >>> fuse_masks({"seg": a, "depth": b}, rule="union")["w"]
        tensor([ True,  True, False])
    """
    threshold = vote_threshold(rule, len(task_masks), min_votes)
    return {name: votes >= threshold for name, votes in vote_counts(task_masks).items()}
