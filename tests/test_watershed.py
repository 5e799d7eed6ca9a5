"""Agreement of task masks per layer (the watershed), on hand-made masks."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import cutlib.watershed
from cutlib.models import SceneNet
from cutlib.pruning.masks import owned_by
from cutlib.watershed import (
    DISPARSE_PUBLISHED_IOU,
    chance_iou,
    iou,
    layer_iou,
    overall_iou,
    pretrained_watershed,
    steepest_drop,
    total_iou,
    watershed_summary,
)

T, F = True, False


def test_layer_iou_columns_on_hand_made_masks() -> None:
    layers = pd.DataFrame(
        {
            "name": ["l1", "l2", "h"],
            "owner": ["backbone", "backbone", "a"],
            "label": ["L1", "L2", "head"],
            "kind": ["conv", "conv", "out"],
        }
    )
    masks = {
        "a": {"l1": torch.tensor([T, T, F, F]), "l2": torch.tensor([T, F, F, F])},
        "b": {"l1": torch.tensor([T, T, F, F]), "l2": torch.tensor([F, T, F, F])},
        "c": {"l1": torch.tensor([T, F, T, F]), "l2": torch.tensor([F, F, T, F])},
    }
    table = layer_iou(masks, layers).set_index("layer")
    assert list(table.index) == ["L1", "L2"]  # backbone layers only
    assert table.loc["L1", "a–b"] == 1.0 and table.loc["L1", "a–c"] == pytest.approx(1 / 3)
    assert table.loc["L1", "mean pairwise"] == pytest.approx((1 + 1 / 3 + 1 / 3) / 3)
    assert table.loc["L1", "all tasks ∩/∪"] == pytest.approx(1 / 3)  # {0} of {0, 1, 2}
    # votes on L1: [3, 2, 1, 0]: exactly two = {1}, one or two = {1, 2}
    assert table.loc["L1", "DiSparse's formula"] == 0.5
    assert table.loc["L2", "mean pairwise"] == 0.0
    assert table.loc["L2", "chance (mean pairwise)"] == pytest.approx(1 / 7)
    assert total_iou(masks, ["l1", "l2"])["a–b"] == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="two tasks"):
        layer_iou({"a": masks["a"]}, layers)


def test_iou_edge_cases_and_steepest_drop() -> None:
    empty = torch.zeros(3, dtype=torch.bool)
    assert torch.isnan(torch.tensor(iou(empty, empty)))
    assert chance_iou(torch.ones(4, dtype=torch.bool), torch.ones(4, dtype=torch.bool)) == 1.0
    curve = pd.DataFrame({"layer": list("abcd"), "mean pairwise": [0.9, 0.85, 0.3, 0.25]})
    before, after, change = steepest_drop(curve)
    assert (before, after) == ("b", "c") and change == pytest.approx(-0.55)


def test_overall_iou_pools_the_layers() -> None:
    a = {"l1": torch.tensor([T, T, F, F]), "l2": torch.tensor([T, F])}
    b = {"l1": torch.tensor([T, F, T, F]), "l2": torch.tensor([T, F]), "extra": torch.tensor([T])}
    assert overall_iou(a, b) == 2 / 4  # {l1:0, l2:0} of {l1:0, l1:1, l1:2, l2:0}
    assert overall_iou(a, b, ["l1"]) == pytest.approx(1 / 3)
    assert overall_iou(b, a, ["l2"]) == 1.0


def test_watershed_summary_halves_drop_and_verdict() -> None:
    curve = pd.DataFrame({"layer": list("abcdef"), "mean pairwise": [1.0, 0.9, 0.8, 0.6, 0.1, 0.2]})
    summary = watershed_summary(curve, margin=0.2)
    assert summary["early IoU"] == pytest.approx(0.9) and summary["late IoU"] == pytest.approx(0.3)
    assert summary["steepest drop"] == "d → e (-0.50)" and summary["verdict"] == "holds"
    flat = curve.assign(**{"mean pairwise": [0.5] * 6})
    assert watershed_summary(flat, margin=0.2)["verdict"] == "undecided"


def test_pretrained_watershed_leaves_out_the_downsample_convs(
    tiny_net: SceneNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    backbone = owned_by(tiny_net, {"backbone"})
    masks = {
        t: {w.name: torch.ones_like(w.weight, dtype=torch.bool) for w in backbone} for t in "ab"
    }
    calls = []

    def fake_masks(dataset, profile, kappa, *, seed, device):
        calls.append((dataset, profile, kappa, seed, device))
        return tiny_net, masks

    monkeypatch.setattr(cutlib.watershed, "pretrained_task_masks", fake_masks)
    curve = pretrained_watershed("synth-nyuv2", "smoke", 0.1, seed=1)
    assert calls == [("synth-nyuv2", "smoke", 0.1, 1, "auto")]
    downsample = sum("downsample" in w.name for w in backbone)
    assert downsample == 3 and len(curve) == len(backbone) - downsample
    assert list(curve.index) == list(range(len(curve))) and (curve["a–b"] == 1.0).all()


def test_published_watershed_has_one_value_per_resnet34_conv() -> None:
    assert {name: len(v) for name, v in DISPARSE_PUBLISHED_IOU.items()} == {
        "NYUv2": 33,
        "Cityscapes": 33,
    }
    assert all(0 <= x <= 1 for values in DISPARSE_PUBLISHED_IOU.values() for x in values)
