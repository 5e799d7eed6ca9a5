"""The best constant predictor: fitting on a hand case and scoring through evaluate()."""

from __future__ import annotations

import math

import pytest
import torch

from cutlib.metrics import evaluate
from cutlib.tasks import TaskSpec
from cutlib.trivial import SEG_LOGIT, ConstantPredictor, fit_constants

SPECS = (
    TaskSpec("seg", "seg", channels=3, ignore_value=255),
    TaskSpec("sn", "sn", channels=3),
    TaskSpec("depth", "depth", channels=1),
    TaskSpec("keypoint", "keypoint", channels=1, ignore_value=255),
)


def batch(seg: list[int], sn: list[tuple[float, ...]], depth: list[float], kp: list[float]):
    """One image of 1×W pixels per task."""
    return {
        "image": torch.zeros(1, 3, 1, len(seg)),
        "seg": torch.tensor([[seg]]),
        "sn": torch.tensor(sn, dtype=torch.float32).T[None, :, None, :],
        "depth": torch.tensor([[[depth]]]),
        "keypoint": torch.tensor([[[kp]]]),
    }


# Two training batches. Valid labels: seg 0, 1, 1, 2, 2, 2 (majority 2); normals (1,0,0) and
# (0,1,0) (mean direction (1,1,0)/√2); depth 1, 3, 5 (mean 3); keypoint 0.2, 0.4 (mean 0.3).
TRAIN = [
    batch(
        [0, 1, 1, 255],
        [(1, 0, 0), (0, 1, 0), (0, 0, 0), (0, 0, 0)],
        [1, 3, 0, 0],
        [0.2, 0.4, 255, 255],
    ),
    batch([2, 2, 2, 255], [(0, 0, 0)] * 4, [5, 0, 0, 0], [255] * 4),
]


def test_fit_constants_hand_case() -> None:
    constants = fit_constants(SPECS, TRAIN)
    assert constants["seg"].dtype == torch.long and constants["seg"].item() == 2
    half = 1 / math.sqrt(2)
    assert constants["sn"].tolist() == pytest.approx([half, half, 0.0])
    assert constants["depth"].item() == pytest.approx(3.0)
    assert constants["keypoint"].item() == pytest.approx(0.3)


def test_fit_constants_needs_a_valid_label() -> None:
    empty = [batch([255], [(0, 0, 0)], [0], [255])]
    with pytest.raises(ValueError, match="no valid 'seg' label"):
        fit_constants(SPECS, empty)


def test_constant_predictor_outputs() -> None:
    model = ConstantPredictor(SPECS, fit_constants(SPECS, TRAIN)).to("cpu")
    out = model(torch.zeros(5, 3, 16, 16))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "seg": (5, 3, 1, 1),
        "sn": (5, 3, 1, 1),
        "depth": (5, 1, 1, 1),
        "keypoint": (5, 1, 1, 1),
    }
    assert out["seg"][0, :, 0, 0].tolist() == [0.0, 0.0, SEG_LOGIT]
    assert out["depth"][:, 0, 0, 0].tolist() == pytest.approx([3.0] * 5)
    assert set(model.state_dict()) == {f"output_{s.name}" for s in SPECS}


def test_constant_predictor_scores_through_evaluate() -> None:
    # Predictions: class 2, normal (1,1,0)/√2, depth 3, keypoint 0.3, at every pixel.
    test = [
        batch(
            [2, 2, 0, 1],
            [(1, 0, 0), (0, 0, 1), (1, 1, 0), (0, 0, 0)],
            [2, 6, 0, 0],
            [0.3, 0.5, 255, 255],
        )
    ]
    model = ConstantPredictor(SPECS, fit_constants(SPECS, TRAIN))
    result = evaluate(model, test, SPECS)
    # seg: IoU_2 = 2/4, classes 0 and 1 present without TP -> mIoU = (0 + 0 + 1/2) / 3
    assert result["seg"] == pytest.approx({"mIoU": 1 / 6, "pixel_acc": 1 / 2})
    # sn: angles 45, 90, 0 degrees
    assert result["sn"]["angle_mean"] == pytest.approx(45.0)
    assert result["sn"]["angle_median"] == pytest.approx(45.0, abs=0.01)
    assert result["sn"]["within_11.25"] == pytest.approx(1 / 3)
    # depth: |3-2| and |3-6|; ratios 1.5 and 2
    assert result["depth"] == pytest.approx(
        {
            "abs_err": 2.0,
            "rel_err": (1 / 2 + 3 / 6) / 2,
            "delta_1.25": 0.0,
            "delta_1.25^2": 1 / 2,
            "delta_1.25^3": 1 / 2,
        }
    )
    assert result["keypoint"]["err"] == pytest.approx(0.1)
