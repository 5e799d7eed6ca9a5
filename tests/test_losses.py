"""Losses on hand-computed cases (docs/method/metrics.md#training-losses)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from cutlib.losses import multitask_loss, task_loss, unit_vectors, valid_mask
from cutlib.tasks import TaskSpec

SEG = TaskSpec("seg", "seg", channels=2, ignore_value=255)
SN = TaskSpec("sn", "sn", channels=3)
DEPTH = TaskSpec("depth", "depth", channels=1)
KEYPOINT = TaskSpec("keypoint", "keypoint", channels=1, ignore_value=255)


def image(*rows: list[float]) -> torch.Tensor:
    """A (1, 1, H, W) float map from its rows."""
    return torch.tensor([list(r) for r in rows], dtype=torch.float32)[None, None]


def test_valid_mask_per_kind() -> None:
    seg = torch.tensor([[[0, 1, 255, 2, -1]]])  # 2 and -1 are outside 0..C-1 for C = 2
    assert valid_mask(SEG, seg).tolist() == [[[True, True, False, False, False]]]
    sn = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])[None, :, None, :]  # (1, 3, 1, 2)
    assert valid_mask(SN, sn).tolist() == [[[True, False]]]
    assert valid_mask(DEPTH, image([2.0, 0.0])).tolist() == [[[True, False]]]
    assert valid_mask(KEYPOINT, image([0.0, 255.0])).tolist() == [[[True, False]]]
    edge = TaskSpec("edge", "edge", channels=1)  # no ignore value: every pixel counts
    assert valid_mask(edge, image([0.0, 255.0])).tolist() == [[[True, True]]]


def test_unit_vectors_matches_normalize_and_keeps_zero_vectors() -> None:
    x = torch.tensor([[[[3.0, 0.0]], [[4.0, 0.0]], [[0.0, 0.0]]]])  # (1, 3, 1, 2)
    out = unit_vectors(x)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.6, 0.8, 0.0]))
    assert torch.equal(out[0, :, 0, 1], torch.zeros(3))
    y = torch.randn(2, 3, 4, 5)
    assert torch.allclose(unit_vectors(y), F.normalize(y, dim=1), atol=1e-6)


def test_cross_entropy_two_pixels_and_class_weights() -> None:
    # pixel 1: logits (0, 0), label 0 -> ln 2; pixel 2: logits (0, ln 3), label 1 -> -ln(3/4);
    # pixel 3 is ignored whatever its logits.
    logits = torch.tensor([[0.0, 0.0, 9.0], [0.0, math.log(3), -9.0]]).view(1, 2, 1, 3)
    target = torch.tensor([[[0, 1, 255]]])
    ce_0, ce_1 = math.log(2), math.log(4 / 3)
    assert task_loss(SEG, logits, target).item() == pytest.approx((ce_0 + ce_1) / 2)
    weighted = task_loss(SEG, logits, target, class_weights=torch.tensor([1.0, 3.0]))
    assert weighted.item() == pytest.approx((1 * ce_0 + 3 * ce_1) / 4)
    # the weights a task carries (Taskonomy's semseg_prior_factor) are used by default
    prior = replace(SEG, class_weights=(1.0, 3.0))
    assert task_loss(prior, logits, target).item() == pytest.approx((1 * ce_0 + 3 * ce_1) / 4)
    total, parts = multitask_loss([prior], {"seg": logits}, {"seg": target})
    assert parts["seg"].item() == pytest.approx((1 * ce_0 + 3 * ce_1) / 4)
    with pytest.raises(ValueError, match="one weight per class"):
        replace(SEG, class_weights=(1.0, 2.0, 3.0))


def normals(*vectors: tuple[float, float, float]) -> torch.Tensor:
    """A (1, 3, 1, W) normal map from W 3-vectors."""
    return torch.tensor(vectors, dtype=torch.float32).T[None, :, None, :]


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        (normals((5, 0, 0), (0, 2, 0)), 0.0),  # parallel (any length): cos 1
        (normals((0, 1, 0), (0, 0, 3)), 1.0),  # orthogonal: cos 0
        (normals((-1, 0, 0), (0, -1, 0)), 2.0),  # opposite: cos -1
        (normals((2, 0, 0), (1, 0, 0)), 0.5),  # one parallel, one orthogonal
    ],
)
def test_normal_loss_is_one_minus_cosine(pred: torch.Tensor, expected: float) -> None:
    target = normals((1, 0, 0), (0, 1, 0), (0, 0, 0))  # the third pixel is invalid
    pred = torch.cat([pred, normals((0, 0, 7))], dim=3)
    assert task_loss(SN, pred, target).item() == pytest.approx(expected, abs=1e-6)


def test_l1_losses() -> None:
    # depth: |1-2| and |1-4| over the two valid pixels; keypoint: |0.5-0| and |0.5-1|
    assert task_loss(DEPTH, image([1.0, 1.0, 1.0]), image([2.0, 4.0, 0.0])).item() == 2.0
    kp = task_loss(KEYPOINT, image([0.5, 0.5, 0.5]), image([0.0, 1.0, 255.0]))
    assert kp.item() == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("spec", "target"),
    [
        (SEG, torch.full((2, 4, 4), 255)),
        (SN, torch.zeros(2, 3, 4, 4)),
        (DEPTH, torch.zeros(2, 1, 4, 4)),
        (KEYPOINT, torch.full((2, 1, 4, 4), 255.0)),
    ],
)
@pytest.mark.parametrize("align", ["upsample", "downsample"])
def test_no_valid_pixel_gives_zero_with_gradient(
    spec: TaskSpec, target: torch.Tensor, align: str
) -> None:
    pred = torch.randn(2, spec.channels, 2, 2, requires_grad=True)
    loss = task_loss(spec, pred, target, align=align)
    loss.backward()
    assert loss.item() == 0.0
    assert pred.grad is not None and torch.equal(pred.grad, torch.zeros_like(pred))


def test_bilinear_upsample_hand_case() -> None:
    # (0, 4) upsampled to width 4 with align_corners=False is (0, 1, 3, 4)
    pred = image([0.0, 4.0])
    target = image([1.0, 1.0, 3.0, 0.0])  # errors 1, 0, 0 on the three valid pixels
    assert task_loss(DEPTH, pred, target).item() == pytest.approx(1 / 3)


def test_downsample_uses_nearest_labels() -> None:
    # nearest 4 -> 2 keeps label columns 0 and 2
    pred = image([1.0, 1.0])
    target = image([2.0, 100.0, 4.0, 100.0])
    assert task_loss(DEPTH, pred, target, align="downsample").item() == pytest.approx(2.0)
    seg_pred = torch.tensor([[0.0, 0.0], [0.0, math.log(3)]]).view(1, 2, 1, 2)
    seg_target = torch.tensor([[[0, 1, 1, 0]]])  # downsampled: (0, 1)
    seg_loss = task_loss(SEG, seg_pred, seg_target, align="downsample")
    assert seg_loss.item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)


def test_unknown_align_is_rejected() -> None:
    with pytest.raises(ValueError, match="upsample, downsample"):
        task_loss(DEPTH, image([1.0]), image([1.0, 2.0]), align="bicubic")


def random_case(spec: TaskSpec, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """A random full-resolution target with about a third of its pixels invalid."""
    gen = torch.Generator().manual_seed(0)
    invalid = torch.rand(2, 1, size, size, generator=gen) < 0.35
    if spec.kind == "seg":
        target = torch.randint(0, spec.channels, (2, size, size), generator=gen)
        return target.masked_fill(invalid[:, 0], 255), invalid
    if spec.kind == "sn":
        target = F.normalize(torch.randn(2, 3, size, size, generator=gen), dim=1)
        return target.masked_fill(invalid, 0.0), invalid
    target = torch.rand(2, 1, size, size, generator=gen) + 0.5
    return target.masked_fill(invalid, 0.0 if spec.kind == "depth" else 255.0), invalid


@pytest.mark.parametrize("spec", [SEG, SN, DEPTH, KEYPOINT])
def test_invalid_pixels_get_no_gradient_with_downsample(spec: TaskSpec) -> None:
    target, invalid = random_case(spec, size=8)
    invalid = invalid[..., ::2, ::2]  # nearest 8 -> 4 keeps the even rows and columns
    pred = torch.randn(2, spec.channels, 4, 4, requires_grad=True)
    task_loss(spec, pred, target, align="downsample").backward()
    grad_norm = pred.grad.abs().sum(dim=1, keepdim=True)
    assert torch.all(grad_norm[invalid] == 0)
    assert torch.all(grad_norm[~invalid] > 0)


@pytest.mark.parametrize("spec", [SEG, SN, DEPTH, KEYPOINT])
def test_invalid_pixels_do_not_change_the_upsampled_loss(spec: TaskSpec) -> None:
    target, invalid = random_case(spec)
    low = torch.randn(2, spec.channels, 2, 2)
    full = F.interpolate(low, size=(8, 8), mode="bilinear", align_corners=False)
    loss = task_loss(spec, low, target).item()
    assert task_loss(spec, full, target).item() == pytest.approx(loss)
    noisy = full + 10 * torch.randn_like(full) * invalid  # other predictions at invalid pixels
    assert task_loss(spec, noisy, target).item() == task_loss(spec, full, target).item()


@pytest.mark.parametrize(("spec", "other_invalid"), [(SEG, -1), (SEG, 7), (DEPTH, -3.0)])
def test_other_invalid_label_values_change_nothing(spec: TaskSpec, other_invalid: float) -> None:
    target, invalid = random_case(spec)
    other = target.masked_fill(invalid[:, 0] if spec.kind == "seg" else invalid, other_invalid)
    pred = torch.randn(2, spec.channels, 2, 2)
    for align in ("upsample", "downsample"):
        loss = task_loss(spec, pred, target, align=align)
        assert task_loss(spec, pred, other, align=align).item() == loss.item()


def test_multitask_loss_weights_and_unweighted_parts() -> None:
    depth = TaskSpec("depth", "depth", channels=1, loss_weight=3.0)
    keypoint = TaskSpec("keypoint", "keypoint", channels=1, loss_weight=0.5, ignore_value=255)
    preds = {"depth": image([1.0, 1.0]), "keypoint": image([0.0, 0.0])}
    batch = {"depth": image([2.0, 3.0]), "keypoint": image([4.0, 255.0])}
    total, parts = multitask_loss([depth, keypoint], preds, batch)
    assert {k: v.item() for k, v in parts.items()} == {"depth": 1.5, "keypoint": 4.0}
    assert total.item() == pytest.approx(3.0 * 1.5 + 0.5 * 4.0)


def test_multitask_parts_keep_their_graph() -> None:
    pred = image([1.0, 1.0]).requires_grad_()
    _, parts = multitask_loss([DEPTH], {"depth": pred}, {"depth": image([2.0, 0.0])})
    parts["depth"].backward()
    assert pred.grad.tolist() == [[[[-1.0, 0.0]]]]
