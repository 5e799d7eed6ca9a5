"""The allocation swap's primitives: exact per-layer counts, and a within-layer order that is the
vote, checked against CUT's own masker on single-layer scores (an independent oracle)."""

from __future__ import annotations

import pytest
import torch

from cutlib.pruning.fusion import vote_threshold
from cutlib.pruning.layerwise import kept_counts, top_per_layer, vote_ranks, within_layer_ranks
from cutlib.pruning.per_task import CutMasker


def test_top_per_layer_keeps_exact_counts_of_the_best() -> None:
    scores = {"a": torch.tensor([[0.3, 0.1], [0.9, 0.2]]), "b": torch.arange(6.0)}
    masks = top_per_layer(scores, {"a": 1, "b": 4})
    assert masks["a"].tolist() == [[False, False], [True, False]]
    assert masks["b"].tolist() == [False, False, True, True, True, True]
    assert kept_counts(masks) == {"a": 1, "b": 4}
    assert kept_counts(top_per_layer(scores, {"a": 0, "b": 6})) == {"a": 0, "b": 6}


def test_top_per_layer_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="cannot keep 5"):
        top_per_layer({"a": torch.zeros(4)}, {"a": 5})
    with pytest.raises(ValueError, match="no kept count"):
        top_per_layer({"a": torch.zeros(4)}, {})


def test_ties_are_broken_by_position() -> None:
    assert within_layer_ranks(torch.tensor([1.0, 1.0, 2.0])).tolist() == [1, 2, 0]
    assert top_per_layer({"w": torch.ones(4)}, {"w": 2})["w"].tolist() == [True, True, False, False]


@pytest.mark.parametrize(("tasks", "rule"), [(2, "vote"), (3, "vote"), (3, "union"), (4, "vote")])
def test_vote_ranks_reproduce_the_vote_at_every_keep_ratio(tasks: int, rule: str) -> None:
    """On one shared layer (no heads), CUT's per-task top-k and vote keep exactly the weights
    that rank best by :func:`vote_ranks`, for every per-task k."""
    generator = torch.Generator().manual_seed(tasks)
    scores = {f"t{i}": {"w": torch.rand(7, 5, generator=generator)} for i in range(tasks)}
    threshold = vote_threshold(rule, tasks)  # type: ignore[arg-type]
    order = vote_ranks(scores, ["w"], threshold)
    masker = CutMasker(scores, list(scores), {"w"}, rule)  # type: ignore[arg-type]
    for k in range(36):
        voted = masker(k / 35)["w"]
        assert torch.equal(top_per_layer(order, {"w": int(voted.sum())})["w"], voted), k


def test_vote_ranks_refuse_an_impossible_threshold() -> None:
    with pytest.raises(ValueError, match="cannot need 3 votes"):
        vote_ranks({"a": {"w": torch.ones(2)}, "b": {"w": torch.ones(2)}}, ["w"], 3)
