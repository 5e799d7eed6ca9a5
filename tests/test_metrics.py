"""Metrics and Δ_MTL on hand-computed cases (docs/method/metrics.md,
docs/method/disparse.md#published-results)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cutlib.metrics import (
    REFERENCE,
    STANDARD,
    MetricConventions,
    MultiTaskEvaluator,
    conventions_from_name,
    delta_mtl,
    evaluate,
    make_evaluator,
)
from cutlib.tasks import METRIC_DIRECTIONS, TaskSpec

SEG3 = TaskSpec("seg", "seg", channels=3, ignore_value=255)
SN = TaskSpec("sn", "sn", channels=3)
DEPTH = TaskSpec("depth", "depth", channels=1)
KEYPOINT = TaskSpec("keypoint", "keypoint", channels=1, ignore_value=255)
ALL = (SEG3, SN, DEPTH, KEYPOINT)


def score(spec: TaskSpec, pred: torch.Tensor, target: torch.Tensor, conv=STANDARD) -> dict:
    evaluator = make_evaluator(spec, conv)
    evaluator.update(pred, target)
    return evaluator.compute()


def one_hot_logits(labels: list[list[int]], classes: int = 3) -> torch.Tensor:
    """(1, C, H, W) logits whose argmax is ``labels``."""
    return F.one_hot(torch.tensor(labels), classes).permute(2, 0, 1)[None].float()


def image(*rows: list[float]) -> torch.Tensor:
    """A (1, 1, H, W) float map from its rows."""
    return torch.tensor([list(r) for r in rows], dtype=torch.float64)[None, None]


# --- conventions ---------------------------------------------------------------------------------


def test_conventions_by_name() -> None:
    assert conventions_from_name("standard") == STANDARD == MetricConventions()
    assert conventions_from_name("reference") == REFERENCE
    assert REFERENCE == MetricConventions(
        "tp", "per_image", "per_image", "color", False, "nearest", "per_image"
    )
    with pytest.raises(ValueError, match="standard, reference"):
        conventions_from_name("libmtl")
    with pytest.raises(ValueError, match="miou='all'; valid: present, tp"):
        MetricConventions(miou="all")


# --- segmentation --------------------------------------------------------------------------------


def test_seg_confusion_matrix_hand_case() -> None:
    # valid pixels (gt -> pred): 0->0, 0->1, 1->1, 1->0, 2->2; the 255 pixel is ignored.
    # IoU_0 = 1/(2+2-1), IoU_1 = 1/(2+2-1), IoU_2 = 1/1; accuracy 3/5.
    target = torch.tensor([[[0, 0, 1], [1, 2, 255]]])
    pred = one_hot_logits([[0, 1, 1], [0, 2, 0]])
    result = score(SEG3, pred, target)
    assert result == pytest.approx({"mIoU": (1 / 3 + 1 / 3 + 1) / 3, "pixel_acc": 0.6})


def test_seg_miou_present_vs_tp() -> None:
    # gt (0, 0, 1), pred (0, 0, 0): IoU_0 = 2/3, IoU_1 = 0 (present, no TP), class 2 absent
    target, pred = torch.tensor([[[0, 0, 1]]]), one_hot_logits([[0, 0, 0]])
    assert score(SEG3, pred, target)["mIoU"] == pytest.approx((2 / 3 + 0) / 2)
    assert score(SEG3, pred, target, MetricConventions(miou="tp"))["mIoU"] == pytest.approx(2 / 3)
    no_tp = score(SEG3, one_hot_logits([[1, 1]]), torch.tensor([[[0, 2]]]), REFERENCE)
    assert no_tp == {"mIoU": 0.0, "pixel_acc": 0.0}


def test_seg_labels_outside_the_classes_are_ignored() -> None:
    target = torch.tensor([[[0, 1, 5, -1, 255]]])
    result = score(SEG3, one_hot_logits([[0, 0, 1, 1, 1]]), target)
    assert result == pytest.approx({"mIoU": (1 / 2 + 0) / 2, "pixel_acc": 0.5})


def test_pixel_acc_global_vs_per_image() -> None:
    # image 1: 4 valid pixels, all right; image 2: 1 valid pixel, wrong
    target = torch.tensor([[[0, 1], [2, 0]], [[1, 255], [255, 255]]])
    pred = torch.cat([one_hot_logits([[0, 1], [2, 0]]), one_hot_logits([[0, 0], [0, 0]])])
    assert score(SEG3, pred, target)["pixel_acc"] == pytest.approx(4 / 5)
    per_image = MetricConventions(pixel_acc="per_image")
    assert score(SEG3, pred, target, per_image)["pixel_acc"] == pytest.approx((1 + 0) / 2)


def test_pixel_acc_per_batch_weighs_each_batch_by_its_size() -> None:
    # batch 1 (one image): 3 of 4 valid pixels right; batch 2 (two images): 1 of 2 valid pixels
    # right, all in the first image (the second has no valid pixel). Per batch, as the reference:
    # (1 · 3/4 + 2 · 1/2) / 3; per image (3/4 + 1/2) / 2; pooled 4/6.
    ev = {
        averaging: make_evaluator(SEG3, MetricConventions(pixel_acc=averaging))
        for averaging in ("global", "per_image", "per_batch")
    }
    first = (one_hot_logits([[0, 1], [2, 2]]), torch.tensor([[[0, 1], [2, 0]]]))
    second = (
        torch.cat([one_hot_logits([[1, 1], [0, 0]]), one_hot_logits([[0, 0], [0, 0]])]),
        torch.tensor([[[1, 0], [255, 255]], [[255, 255], [255, 255]]]),
    )
    for evaluator in ev.values():
        evaluator.update(*first)
        evaluator.update(*second)
    assert ev["per_batch"].compute()["pixel_acc"] == pytest.approx((3 / 4 + 2 * 1 / 2) / 3)
    assert ev["per_image"].compute()["pixel_acc"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert ev["global"].compute()["pixel_acc"] == pytest.approx(4 / 6)


def test_ignored_pixels_count_as_wrong_in_pixel_acc_only_when_asked() -> None:
    # Cityscapes' void pixels: the reference counts them in pixel accuracy (always wrong), never
    # in the confusion matrix
    target = torch.tensor([[[0, 1, 255, 255]]])
    pred = one_hot_logits([[0, 1, 0, 2]])
    excluded = score(SEG3, pred, target)
    wrong = score(SEG3, pred, target, MetricConventions(ignored_pixels="wrong"))
    assert excluded["pixel_acc"] == 1.0 and wrong["pixel_acc"] == 0.5
    assert excluded["mIoU"] == wrong["mIoU"] == 1.0


# --- surface normals -----------------------------------------------------------------------------


def normals(*vectors: tuple[float, float, float]) -> torch.Tensor:
    """A (1, 3, 1, W) normal map from W 3-vectors."""
    return torch.tensor(vectors, dtype=torch.float64).T[None, :, None, :]


def in_plane(*degrees: float) -> torch.Tensor:
    """Unnormalised predictions at the given angles from (1, 0, 0)."""
    radians = [math.radians(a) for a in degrees]
    return normals(*[(3 * math.cos(r), 3 * math.sin(r), 0.0) for r in radians])


def test_normal_angles_hand_case() -> None:
    # angles 10, 20, 25, 60 degrees; a fifth pixel has no label
    pred = torch.cat([in_plane(10, 20, 25, 60), normals((0, 0, 1))], dim=3)
    target = normals(*[(1, 0, 0)] * 4, (0, 0, 0))
    result = score(SN, pred, target)
    assert result["angle_mean"] == pytest.approx(115 / 4)
    assert result["angle_median"] == pytest.approx(20, abs=0.01)  # lower median, as torch.median
    assert result["within_11.25"] == 0.25
    assert result["within_22.5"] == 0.5
    assert result["within_30"] == 0.75


def test_normals_unit_vs_color() -> None:
    # unit: (1,0,0) vs (0,0,1) is 90 deg; colour encodings ∝ (2,1,1) and (1,1,2): cos = 5/6
    pred, target = normals((1, 0, 0)), normals((0, 0, 1))
    assert score(SN, pred, target)["angle_mean"] == pytest.approx(90)
    color = score(SN, pred, target, MetricConventions(normals="color"))
    assert color["angle_mean"] == pytest.approx(33.5573, abs=1e-4)  # acos(5/6)


def test_histogram_median_matches_torch_median() -> None:
    gen = torch.Generator().manual_seed(1)
    pred, target = torch.randn(2, 1, 3, 1, 20001, generator=gen).double().unbind(0)
    cos = (F.normalize(pred, dim=1) * F.normalize(target, dim=1)).sum(1)
    exact = torch.rad2deg(torch.arccos(cos)).median().item()
    assert score(SN, pred, target)["angle_median"] == pytest.approx(exact, abs=0.01)


# --- depth and keypoint / edge errors ------------------------------------------------------------


def test_depth_hand_case_and_delta_boundary_is_inclusive() -> None:
    # ratios 1.25, 1.25 (g/d), 1.5625 = 1.25², 1.953125 = 1.25³, 2: each boundary is a hit
    pred = image([1.25, 1.0, 1.5625, 1.953125, 2.0, 9.0])
    target = image([1.0, 1.25, 1.0, 1.0, 1.0, 0.0])  # the last pixel has no depth
    assert score(DEPTH, pred, target) == pytest.approx(
        {
            "abs_err": (0.25 + 0.25 + 0.5625 + 0.953125 + 1.0) / 5,
            "rel_err": (0.25 + 0.2 + 0.5625 + 0.953125 + 1.0) / 5,
            "delta_1.25": 2 / 5,
            "delta_1.25^2": 3 / 5,
            "delta_1.25^3": 4 / 5,
        }
    )


def test_negative_depth_is_a_delta_hit_only_in_reference_mode() -> None:
    pred, target = image([-1.0]), image([2.0])
    standard = score(DEPTH, pred, target)
    assert standard["abs_err"] == 3.0
    assert standard["rel_err"] == pytest.approx(1.0)  # |1e-6 - 2| / 2
    assert standard["delta_1.25"] == 0.0
    for conv in (MetricConventions(clamp_depth=False), REFERENCE):
        reference = score(DEPTH, pred, target, conv)
        assert (reference["rel_err"], reference["delta_1.25"]) == (1.5, 1.0)


def test_depth_errors_global_vs_per_image() -> None:
    # image 1: one valid pixel, error 1 (rel 1/2); image 2: three valid pixels, error 0
    pred = torch.cat([image([3.0, 5.0], [5.0, 5.0]), image([1.0, 1.0], [1.0, 5.0])])
    target = torch.cat([image([2.0, 0.0], [0.0, 0.0]), image([1.0, 1.0], [1.0, 0.0])])
    pooled = score(DEPTH, pred, target)
    assert (pooled["abs_err"], pooled["rel_err"]) == pytest.approx((1 / 4, 0.5 / 4))
    per_image = score(DEPTH, pred, target, MetricConventions(depth_errors="per_image"))
    assert (per_image["abs_err"], per_image["rel_err"]) == pytest.approx((1 / 2, 0.5 / 2))
    assert pooled["delta_1.25"] == per_image["delta_1.25"] == 3 / 4  # δ is always pooled


def test_keypoint_error_skips_ignored_pixels() -> None:
    result = score(KEYPOINT, image([0.5, 0.5, 0.5]), image([0.0, 1.5, 255.0]))
    assert result == {"err": 0.75}


def test_keypoint_error_pooled_per_image_and_per_batch() -> None:
    # one batch of two images: errors (1, 1, 1) and (0); then a batch of one image: error (4)
    batches = [
        (
            torch.cat([image([1.0, 1.0, 1.0]), image([0.0, 5.0, 5.0])]),
            torch.cat([image([0.0, 0.0, 0.0]), image([0.0, 255.0, 255.0])]),
        ),
        (image([4.0, 9.0, 9.0]), image([0.0, 255.0, 255.0])),
    ]
    results = {}
    for averaging in ("global", "per_image", "per_batch"):
        evaluator = make_evaluator(KEYPOINT, MetricConventions(map_errors=averaging))
        for pred, target in batches:
            evaluator.update(pred, target)
        results[averaging] = evaluator.compute()["err"]
    assert results["global"] == pytest.approx(7 / 5)
    assert results["per_image"] == pytest.approx((1 + 0 + 4) / 3)
    assert results["per_batch"] == pytest.approx((2 * 3 / 4 + 1 * 4) / 3)


def test_bilinear_vs_nearest_upsampling() -> None:
    # (0, 4) to width 4: bilinear (0, 1, 3, 4), nearest (0, 0, 4, 4)
    pred, target = image([0.0, 4.0]), image([1.0, 1.0, 3.0, 4.0])
    assert score(KEYPOINT, pred, target) == {"err": 1 / 4}
    assert score(KEYPOINT, pred, target, MetricConventions(upsample="nearest")) == {"err": 3 / 4}


def test_nothing_valid_gives_nan() -> None:
    empty = {
        SEG3: torch.full((1, 2, 2), 255),
        SN: torch.zeros(1, 3, 2, 2),
        DEPTH: torch.zeros(1, 1, 2, 2),
        KEYPOINT: torch.full((1, 1, 2, 2), 255.0),
    }
    for spec, target in empty.items():
        result = score(spec, torch.ones(1, spec.channels, 1, 1), target)
        assert set(result) == set(METRIC_DIRECTIONS[spec.kind])
        assert all(math.isnan(v) for v in result.values())
        assert all(math.isnan(v) for v in make_evaluator(spec).compute().values())


# --- properties shared by every evaluator --------------------------------------------------------


def random_batch(spec: TaskSpec, batch: int = 6, size: int = 8, seed: int = 0):
    """Random (low-res prediction, full-res target, invalid mask) with unequal valid counts."""
    gen = torch.Generator().manual_seed(seed)
    rate = torch.linspace(0.1, 0.8, batch).view(batch, 1, 1, 1)  # unequal valid counts
    invalid = torch.rand(batch, 1, size, size, generator=gen) < rate
    pred = torch.randn(batch, spec.channels, size // 2, size // 2, generator=gen)
    if spec.kind == "seg":
        target = torch.randint(0, spec.channels, (batch, size, size), generator=gen)
        return pred, target.masked_fill(invalid[:, 0], 255), invalid
    if spec.kind == "sn":
        target = F.normalize(torch.randn(batch, 3, size, size, generator=gen), dim=1)
        return pred, target.masked_fill(invalid, 0.0), invalid
    target = torch.rand(batch, 1, size, size, generator=gen) + 0.5
    return pred, target.masked_fill(invalid, 0.0 if spec.kind == "depth" else 255.0), invalid


@pytest.mark.parametrize("conv", [STANDARD, REFERENCE], ids=["standard", "reference"])
@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.kind)
def test_streaming_equals_one_big_update(spec: TaskSpec, conv: MetricConventions) -> None:
    pred, target, _ = random_batch(spec)
    streamed = make_evaluator(spec, conv)
    for chunk in (slice(0, 1), slice(1, 4), slice(4, 6)):
        streamed.update(pred[chunk], target[chunk])
    assert streamed.compute() == pytest.approx(score(spec, pred, target, conv), rel=1e-12)


@pytest.mark.parametrize("conv", [STANDARD, REFERENCE], ids=["standard", "reference"])
@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.kind)
def test_predictions_at_invalid_pixels_change_nothing(
    spec: TaskSpec, conv: MetricConventions
) -> None:
    low, target, invalid = random_batch(spec)
    pred = F.interpolate(low, size=target.shape[-2:], mode="nearest")  # at label resolution
    noisy = pred + 10 * torch.randn_like(pred) * invalid
    assert score(spec, noisy, target, conv) == score(spec, pred, target, conv)


def test_multitask_evaluator_and_evaluate() -> None:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(1.0))

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            assert not self.training and torch.is_inference_mode_enabled()
            return {"depth": self.scale * x[:, :1, ::2, ::2], "seg": x[:, :3, ::2, ::2]}

    specs = (SEG3, DEPTH)
    loader = []
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        loader.append(
            {
                "image": torch.rand(2, 3, 8, 8, generator=gen) + 0.1,
                "seg": torch.randint(0, 3, (2, 8, 8), generator=gen),
                "depth": torch.rand(2, 1, 8, 8, generator=gen),
                "name": ["a", "b"],
            }
        )
    expected = MultiTaskEvaluator(specs, REFERENCE)
    for batch in loader:
        x = batch["image"]
        expected.update({"depth": x[:, :1, ::2, ::2], "seg": x[:, :3, ::2, ::2]}, batch)
    model = Model()
    for training in (True, False):
        model.train(training)
        result = evaluate(model, loader, specs, conventions=REFERENCE, progress=True)
        assert result == expected.compute()
        assert model.training is training
    assert set(result) == {"seg", "depth"}
    assert set(result["depth"]) == set(METRIC_DIRECTIONS["depth"])


# --- Δ_MTL ---------------------------------------------------------------------------------------


def test_delta_mtl_hand_case() -> None:
    # seg: mIoU +10 %, pixel_acc -10 % -> 0; depth: abs_err 0.5 -> 0.4 is +20 % -> Δ = 10 %
    metrics = {"seg": {"mIoU": 0.44, "pixel_acc": 0.45, "extra": 1.0}, "depth": {"abs_err": 0.4}}
    reference = {"seg": {"mIoU": 0.4, "pixel_acc": 0.5}, "depth": {"abs_err": 0.5, "rel_err": 1}}
    directions = {"seg": METRIC_DIRECTIONS["seg"], "depth": METRIC_DIRECTIONS["depth"]}
    assert delta_mtl(metrics, reference, directions) == pytest.approx(10.0)
    assert delta_mtl(reference, reference, directions) == 0.0


def test_delta_mtl_errors() -> None:
    directions = {"seg": METRIC_DIRECTIONS["seg"]}
    with pytest.raises(ValueError, match="'seg' is missing from reference"):
        delta_mtl({"seg": {"mIoU": 0.5}}, {"depth": {"abs_err": 1.0}}, directions)
    with pytest.raises(ValueError, match="missing from directions"):
        delta_mtl({"seg": {"mIoU": 0.5}}, {"seg": {"mIoU": 0.5}}, {})
    with pytest.raises(ValueError, match="seg/mIoU is 0"):
        delta_mtl({"seg": {"mIoU": 0.5}}, {"seg": {"mIoU": 0.0}}, directions)


# DiSparse Tables 1-3 (docs/method/disparse.md#published-results), metric sets and expected Δ_MTL of
# Appendix A.
NYU = (
    "seg/mIoU seg/pixel_acc sn/angle_mean sn/angle_median "
    "sn/within_11.25 sn/within_22.5 sn/within_30"
)
CITYSCAPES = (
    "seg/mIoU seg/pixel_acc - depth/abs_err depth/rel_err "  # "-": the CE "Error"
    "depth/delta_1.25 depth/delta_1.25^2 depth/delta_1.25^3"
)
TASKONOMY = (
    "seg/mIoU seg/pixel_acc sn/angle_mean sn/angle_median "
    "depth/abs_err depth/rel_err keypoint/err edge/err"
)
TABLES = {
    "nyuv2": (
        NYU,
        "27.69 58.77 16.55 14.17 39.62 73.54 86.33",
        {
            "lth": ("24.63 56.25 17.01 14.27 39.49 71.95 84.31", -4.67),
            "snip": ("23.83 56.90 16.58 14.05 39.82 73.73 85.77", -4.20),
            "random_static": ("25.56 25.18 18.86 16.22 27.81 69.55 85.45", -22.68),
            "disparse_static": ("26.48 57.77 16.44 13.69 41.24 74.07 85.85", -0.69),
            "rigl": ("24.91 56.74 17.27 14.63 38.52 70.75 83.71", -5.09),
            "disparse_dynamic": ("28.16 59.18 16.54 13.47 42.25 73.14 84.73", 1.52),
            "imp": ("29.19 59.81 16.58 13.32 43.32 72.31 84.03", 2.88),
            "random_pt": ("25.56 25.18 18.69 16.04 23.37 73.08 86.78", -22.94),
            "disparse_pt": ("29.45 59.95 16.56 13.30 43.33 72.49 84.18", 3.24),
        },
    ),
    "cityscapes": (
        CITYSCAPES,
        "42.58 74.84 0.49 0.016 0.33 74.22 88.90 94.47",
        {
            "lth": ("36.19 73.97 0.51 0.017 0.35 72.46 87.29 93.59", -5.78),
            "snip": ("38.47 73.99 0.53 0.016 0.36 72.49 87.51 93.61", -4.09),
            "random_static": ("35.67 71.74 0.60 0.021 0.43 66.47 82.21 90.63", -13.45),
            "disparse_static": ("38.21 74.31 0.49 0.015 0.35 72.72 87.60 93.59", -3.17),
            "rigl": ("36.57 74.02 0.51 0.017 0.37 71.98 86.66 93.05", -6.34),
            "disparse_dynamic": ("38.55 74.28 0.49 0.016 0.36 72.11 87.01 93.41", -4.07),
            "imp": ("37.63 73.90 0.50 0.018 0.37 71.15 86.41 93.01", -6.53),
            "random_pt": ("33.62 51.63 1.18 0.034 0.43 50.09 72.42 82.73", -33.64),
            "disparse_pt": ("40.71 74.64 0.49 0.016 0.37 72.06 86.67 93.11", -3.06),
        },
    ),
    "taskonomy": (
        TASKONOMY,
        "29.51 92.98 24.36 12.88 0.021 0.033 0.20 0.21",
        {
            "lth": ("24.36 91.62 26.07 15.78 0.023 0.036 0.20 0.22", -7.66),
            "snip": ("26.03 91.89 27.06 18.12 0.022 0.036 0.20 0.21", -7.86),
            "random_static": ("25.39 91.18 26.31 16.30 0.023 0.037 0.20 0.22", -8.16),
            "disparse_static": ("25.53 91.85 25.42 14.80 0.022 0.035 0.20 0.21", -4.48),
            "rigl": ("23.87 90.14 26.91 17.75 0.023 0.037 0.19 0.20", -7.26),
            "disparse_dynamic": ("25.21 91.49 25.28 14.63 0.022 0.034 0.19 0.20", -2.18),
            "imp": ("26.71 91.74 24.99 13.89 0.021 0.033 0.20 0.21", -2.12),
            "random_pt": ("23.89 83.89 41.21 38.35 0.25 0.39 0.45 0.40", -289.90),
            "disparse_pt": ("29.12 92.58 24.70 13.42 0.021 0.033 0.19 0.20", 1.22),
        },
    ),
}


def table_row(columns: str, values: str) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` from a table row; columns named ``-`` are dropped."""
    row: dict[str, dict[str, float]] = {}
    for column, value in zip(columns.split(), values.split(), strict=True):
        if column != "-":
            task, metric = column.split("/")
            row.setdefault(task, {})[metric] = float(value)
    return row


@pytest.mark.parametrize(
    ("dataset", "method"), [(d, m) for d, (_, _, rows) in TABLES.items() for m in rows]
)
def test_delta_mtl_matches_appendix_a(dataset: str, method: str) -> None:
    columns, dense, rows = TABLES[dataset]
    values, expected = rows[method]
    reference = table_row(columns, dense)
    directions = {task: METRIC_DIRECTIONS[task] for task in reference}
    result = delta_mtl(table_row(columns, values), reference, directions)
    assert round(result, 2) == expected
