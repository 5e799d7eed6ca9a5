"""Agreement of task masks per layer (the watershed), on hand-made masks."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from cutlib.watershed import chance_iou, iou, layer_iou, steepest_drop, total_iou

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
