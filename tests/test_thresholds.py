"""Global top-k rankings and keep-fraction calibration: exact counts, global thresholds, stable
tie-breaking, nested masks, and calibrate's tolerance."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from torch import Tensor

from cutlib.pruning.fusion import fuse_masks
from cutlib.pruning.masks import Masks, density
from cutlib.pruning.thresholds import Ranking, calibrate

KEEPS = (0.0, 0.01, 0.1, 0.25, 0.37, 0.5, 0.75, 0.9, 0.999, 1.0)


def _random_scores(seed: int = 0) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "conv": torch.rand(4, 3, 3, 3, generator=generator),
        "bias_like": torch.rand(17, generator=generator) * 5,
        "head": torch.rand(6, 5, generator=generator) * 0.01,
    }


def _kept(masks: Masks) -> int:
    return sum(int(m.sum()) for m in masks.values())


@pytest.mark.parametrize("keep", KEEPS)
def test_keeps_exactly_floor_kappa_n_entries(keep: float) -> None:
    scores = _random_scores()
    n = sum(s.numel() for s in scores.values())
    assert n == 108 + 17 + 30
    masks = Ranking(scores).masks(keep)
    assert list(masks) == list(scores)
    for name, mask in masks.items():
        assert mask.dtype == torch.bool and mask.shape == scores[name].shape
    assert _kept(masks) == math.floor(Fraction(keep) * n)


@pytest.mark.parametrize("keep", KEEPS)
def test_one_global_threshold_keeps_the_largest_scores(keep: float) -> None:
    scores = _random_scores(1)
    masks = Ranking(scores).masks(keep)
    kept = torch.cat([scores[n][masks[n]] for n in scores])
    dropped = torch.cat([scores[n][~masks[n]] for n in scores])
    if kept.numel() and dropped.numel():
        assert kept.min() > dropped.max()


def test_threshold_is_global_not_per_layer() -> None:
    # Layer "big" holds all the large scores: a per-layer top-k would keep half of each layer.
    scores = {
        "small": torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
        "big": torch.tensor([10.0, 40.0, 30.0, 20.0]),
    }
    ranking = Ranking(scores)
    half = ranking.masks(0.5)
    assert half["big"].tolist() == [True, True, True, True]
    assert half["small"].tolist() == [[False, False], [False, False]]
    five = ranking.masks(5 / 8)
    assert five["big"].all() and five["small"].tolist() == [[False, False], [False, True]]
    three = ranking.masks(3 / 8)
    assert three["big"].tolist() == [False, True, True, True] and not three["small"].any()


def test_masks_are_nested_for_growing_keep_fractions() -> None:
    generator = torch.Generator().manual_seed(2)
    # Few distinct values, so most entries tie with others: nesting must survive ties.
    scores = {
        "a": torch.randint(0, 4, (50,), generator=generator).float(),
        "b": torch.randint(0, 4, (5, 10), generator=generator).float(),
    }
    ranking = Ranking(scores)
    previous = None
    for keep in torch.linspace(0, 1, 41).tolist():
        flat = ranking.flat_mask(keep)
        if previous is not None:
            dropped = previous & ~flat
            assert not dropped.any(), f"an entry kept at a smaller κ is dropped at κ = {keep}"
        previous = flat


def test_ties_are_broken_by_position() -> None:
    assert Ranking({"w": torch.zeros(6)}).masks(0.5)["w"].tolist() == [True] * 3 + [False] * 3
    mixed = Ranking({"w": torch.tensor([0.5, 1.0, 0.5, 1.0, 0.5])}).masks(0.6)["w"]
    assert mixed.tolist() == [True, True, False, True, False]
    # Across tensors, position follows the order of the scores mapping.
    across = Ranking({"a": torch.ones(2), "b": torch.ones(2, 1)}).masks(0.75)
    assert across["a"].tolist() == [True, True] and across["b"].tolist() == [[True], [False]]
    swapped = Ranking({"b": torch.ones(2, 1), "a": torch.ones(2)}).masks(0.75)
    assert swapped["b"].tolist() == [[True], [True]] and swapped["a"].tolist() == [True, False]


def test_tied_scores_never_push_the_count_above_k() -> None:
    scores = {"w": torch.tensor([3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0])}
    mask = Ranking(scores).masks(0.3)["w"]
    assert int(mask.sum()) == 3
    assert mask.tolist() == [True, True] + [False] * 7 + [True]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_scores_raise(bad: float) -> None:
    with pytest.raises(ValueError, match="NaN or infinite"):
        Ranking({"a": torch.ones(3), "b": torch.tensor([1.0, bad])})


def test_empty_scores_raise() -> None:
    with pytest.raises(ValueError, match="empty"):
        Ranking({})


@pytest.mark.parametrize("keep", [-0.01, 1.01, 2.0, -1.0])
def test_keep_fraction_out_of_range_raises(keep: float) -> None:
    ranking = Ranking(_random_scores())
    with pytest.raises(ValueError, match=r"keep fraction must be in \[0, 1\]"):
        ranking.masks(keep)
    with pytest.raises(ValueError, match="keep fraction"):
        ranking.keep_count(keep)


def test_unflatten_round_trips_the_flat_mask() -> None:
    ranking = Ranking(_random_scores())
    flat = ranking.flat_mask(0.4)
    masks = ranking.unflatten(flat)
    assert torch.equal(torch.cat([m.reshape(-1) for m in masks.values()]), flat)


@pytest.mark.parametrize("target", [0.5, 0.9, 0.95])
def test_calibrate_hits_the_target_sparsity(target: float) -> None:
    generator = torch.Generator().manual_seed(3)
    scores = {
        "a": torch.rand(64, 32, 3, 3, generator=generator),
        "b": torch.rand(1000, generator=generator).pow(3),
        "c": torch.rand(50, 70, generator=generator) * 100,
    }
    ranking = Ranking(scores)
    kappa, masks = calibrate(ranking.masks, target)
    assert abs((1.0 - density(masks)) - target) <= 2e-4
    assert 0.0 < kappa < 1.0
    rebuilt = ranking.masks(kappa)
    assert all(torch.equal(rebuilt[n], masks[n]) for n in scores)


@pytest.mark.parametrize("target", [0.5, 0.9, 0.95])
def test_calibrate_a_vote_of_several_rankings(target: float) -> None:
    generator = torch.Generator().manual_seed(4)
    rankings = [Ranking({"w": torch.rand(20_000, generator=generator)}) for _ in range(3)]

    def build(keep: float) -> Masks:
        return fuse_masks({f"t{i}": r.masks(keep) for i, r in enumerate(rankings)}, "vote", 2)

    kappa, masks = calibrate(build, target, tolerance=1e-3)
    assert abs((1.0 - density(masks)) - target) <= 1e-3
    # Two of three independent random masks must agree, so κ exceeds the plain 1 − target.
    assert kappa > 1.0 - target


def test_calibrate_returns_the_closest_when_the_target_is_unreachable() -> None:
    # 4 entries: only sparsities 0, 0.25, 0.5, 0.75 and 1 exist; 0.3 is closest to 0.25.
    ranking = Ranking({"w": torch.arange(4.0)})
    _, masks = calibrate(ranking.masks, 0.3)
    assert 1.0 - density(masks) == 0.25


@pytest.mark.parametrize("target", [1.0, -0.1, 1.5])
def test_calibrate_rejects_targets_outside_0_1(target: float) -> None:
    with pytest.raises(ValueError, match="target sparsity"):
        calibrate(Ranking({"w": torch.arange(10.0)}).masks, target)
