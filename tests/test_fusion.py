"""Fusion of per-task masks: exhaustive truth tables of every rule, thresholds, and input checks."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor

from cutlib.pruning.fusion import FUSION_RULES, fuse_masks, vote_counts, vote_threshold

#: (rule, min_votes) pairs under test: the authors' vote (2), a stricter vote, and the other rules.
RULES = [
    ("vote", 2),
    ("vote", 3),
    ("vote", 1),
    ("union", 2),
    ("intersection", 2),
    ("majority", 2),
]
TASK_COUNTS = (1, 2, 3, 5)


def _expected_keep(rule: str, min_votes: int, votes: int, n: int) -> bool:
    """The keep decision for one weight, straight from the rules' definitions."""
    if rule == "vote":
        return votes >= min(min_votes, n)
    if rule == "union":
        return votes >= 1
    if rule == "intersection":
        return votes == n
    if rule == "majority":
        return votes > n / 2
    raise AssertionError(rule)


def _truth_table_masks(n: int) -> tuple[list[tuple[bool, ...]], dict[str, dict[str, Tensor]]]:
    """Every keep/prune combination of ``n`` task votes, one combination per position.

    Two parameters carry the table: ``w`` as a flat vector and ``v`` reversed and reshaped to 2-D,
    so a rule that mixes up positions or parameters shows up.
    """
    combos = list(itertools.product([False, True], repeat=n))
    masks = {}
    for i in range(n):
        column = torch.tensor([c[i] for c in combos])
        masks[f"t{i}"] = {"w": column, "v": column.flip(0).reshape(2, -1)}
    return combos, masks


def test_the_valid_rules_are_the_four_documented_ones() -> None:
    assert set(FUSION_RULES) == {"vote", "union", "intersection", "majority"}


@pytest.mark.parametrize("n", TASK_COUNTS)
@pytest.mark.parametrize(("rule", "min_votes"), RULES)
def test_truth_table(rule: str, min_votes: int, n: int) -> None:
    combos, masks = _truth_table_masks(n)
    fused = fuse_masks(masks, rule, min_votes)  # type: ignore[arg-type]
    expected = torch.tensor([_expected_keep(rule, min_votes, sum(c), n) for c in combos])
    assert set(fused) == {"w", "v"}
    assert fused["w"].dtype == torch.bool and fused["w"].shape == (2**n,)
    assert torch.equal(fused["w"], expected)
    assert fused["v"].shape == (2, 2 ** (n - 1))
    assert torch.equal(fused["v"], expected.flip(0).reshape(2, -1))


@pytest.mark.parametrize("n", TASK_COUNTS)
def test_vote_counts_count_keeping_tasks(n: int) -> None:
    combos, masks = _truth_table_masks(n)
    counts = vote_counts(masks)["w"]
    assert counts.tolist() == [sum(c) for c in combos]


def test_authors_vote_with_two_tasks_is_an_intersection() -> None:
    _, masks = _truth_table_masks(2)
    assert torch.equal(fuse_masks(masks)["w"], fuse_masks(masks, "intersection")["w"])
    assert fuse_masks(masks)["w"].tolist() == [False, False, False, True]


@pytest.mark.parametrize(("rule", "min_votes"), [*RULES, ("vote", 5)])
def test_one_selected_task_keeps_its_own_mask(rule: str, min_votes: int) -> None:
    generator = torch.Generator().manual_seed(0)
    own = {
        "a": torch.rand(4, 3, 3, 3, generator=generator) < 0.3,
        "b": torch.rand(7, generator=generator) < 0.6,
    }
    fused = fuse_masks({"seg": own}, rule, min_votes)  # type: ignore[arg-type]
    assert set(fused) == set(own)
    for name, mask in own.items():
        assert torch.equal(fused[name], mask)


@pytest.mark.parametrize(("rule", "min_votes"), RULES)
def test_inputs_are_not_mutated(rule: str, min_votes: int) -> None:
    _, masks = _truth_table_masks(3)
    before = {t: {n: m.clone() for n, m in per.items()} for t, per in masks.items()}
    fused = fuse_masks(masks, rule, min_votes)  # type: ignore[arg-type]
    for task, per in masks.items():
        assert list(per) == list(before[task])
        for name, mask in per.items():
            assert mask.dtype == torch.bool
            assert torch.equal(mask, before[task][name])
    fused["w"].logical_not_()  # writing to the result must not reach the inputs either
    for task, per in masks.items():
        assert torch.equal(per["w"], before[task]["w"])


def test_mismatched_parameter_names_raise() -> None:
    a = {"w": torch.tensor([True, False]), "v": torch.tensor([True])}
    b = {"w": torch.tensor([True, True])}
    with pytest.raises(ValueError, match="different parameters"):
        fuse_masks({"seg": a, "depth": b})
    with pytest.raises(ValueError, match="different parameters"):
        fuse_masks({"seg": a, "depth": {"w": torch.tensor([True, True]), "u": torch.tensor([1])}})


def test_mismatched_shapes_raise() -> None:
    a = {"w": torch.tensor([True, False])}
    b = {"w": torch.tensor([[True, False]])}
    with pytest.raises(ValueError, match="different shape"):
        fuse_masks({"seg": a, "depth": b})


def test_unknown_rule_raises() -> None:
    masks = {"seg": {"w": torch.tensor([True])}, "depth": {"w": torch.tensor([False])}}
    with pytest.raises(ValueError, match="unknown fusion rule 'plurality'"):
        fuse_masks(masks, "plurality")  # type: ignore[arg-type]


def test_no_tasks_raise() -> None:
    with pytest.raises(ValueError, match="at least one task"):
        fuse_masks({})


@pytest.mark.parametrize(
    ("rule", "min_votes", "expected"),
    [
        ("vote", 2, [1, 2, 2, 2, 2]),
        ("vote", 3, [1, 2, 3, 3, 3]),
        ("vote", 1, [1, 1, 1, 1, 1]),
        ("union", 2, [1, 1, 1, 1, 1]),
        ("intersection", 2, [1, 2, 3, 4, 5]),
        ("majority", 2, [1, 2, 2, 3, 3]),
    ],
)
def test_vote_threshold_values(rule: str, min_votes: int, expected: list[int]) -> None:
    got = [vote_threshold(rule, n, min_votes) for n in (1, 2, 3, 4, 5)]  # type: ignore[arg-type]
    assert got == expected


def test_vote_threshold_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one task"):
        vote_threshold("vote", 0)
    with pytest.raises(ValueError, match="min_votes"):
        vote_threshold("vote", 3, min_votes=0)
    with pytest.raises(ValueError, match="valid rules: vote, union, intersection, majority"):
        vote_threshold("plurality", 3)  # type: ignore[arg-type]
