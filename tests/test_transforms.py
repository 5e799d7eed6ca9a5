"""Joint augmentation keeps image and labels aligned and mirrors normals (torchvision v2)."""

from __future__ import annotations

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from cutlib.data.arrays import ArrayDataset
from cutlib.data.transforms import (
    NORMALIZATIONS,
    RandomHorizontalFlip,
    SurfaceNormals,
    denormalize,
    jitter_batch,
    normalize_tensor,
)
from cutlib.tasks import TaskSpec


def test_flip_mirrors_normals_and_moves_every_label_with_the_image() -> None:
    ramp = torch.arange(20, dtype=torch.float32).view(1, 4, 5)
    sample = {
        "image": tv_tensors.Image(ramp.expand(3, -1, -1).to(torch.uint8)),
        "sn": SurfaceNormals(torch.stack([ramp[0], -ramp[0], ramp[0] * 0 + 1])),
        "depth": tv_tensors.Mask(ramp + 1),
        "seg": tv_tensors.Mask(ramp[0].to(torch.uint8)),
    }
    out = RandomHorizontalFlip(p=1.0)(sample)
    flipped = ramp.flip(-1)
    assert torch.equal(out["image"][0].float(), flipped[0])
    assert torch.equal(out["depth"], flipped + 1)
    assert torch.equal(out["seg"].float(), flipped[0])
    assert torch.equal(out["sn"][0], -flipped[0])  # x mirrored
    assert torch.equal(out["sn"][1], -flipped[0])  # y only moved
    assert isinstance(out["sn"], SurfaceNormals)


def test_array_dataset_sample_format_and_augmented_alignment() -> None:
    h, w = 6, 8
    column = np.broadcast_to(np.arange(w, dtype=np.uint8), (h, w))
    arrays = {
        "image": np.repeat(column[None, :, :, None] * 30, 3, axis=3).astype(np.uint8),
        "seg": column[None].copy(),
        "depth": (column[None, None] + 1).astype(np.float16),
    }
    tasks = (TaskSpec("seg", "seg", 8, ignore_value=255), TaskSpec("depth", "depth", 1))
    torch.manual_seed(0)
    data = ArrayDataset(arrays, tasks, augment=True)
    for _ in range(8):  # both flip outcomes occur
        sample = data[0]
        assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, h, w)
        assert sample["seg"].dtype == torch.int64 and sample["seg"].shape == (h, w)
        assert sample["depth"].dtype == torch.float32 and sample["depth"].shape == (1, h, w)
        # labels follow the image: depth = seg + 1 everywhere, and brightness rises with seg
        assert torch.equal(sample["depth"][0], sample["seg"].float() + 1)
        grey = denormalize(sample["image"]).mean(0)
        order = torch.argsort(sample["seg"][0])
        assert torch.all(torch.diff(grey[0][order]) >= -0.15)


def _tiny_arrays(n: int = 6, h: int = 4, w: int = 5) -> tuple[dict[str, np.ndarray], tuple]:
    rng = np.random.default_rng(0)
    arrays = {
        "image": rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8),
        "seg": rng.integers(0, 8, (n, h, w), dtype=np.uint8),
        "depth": rng.random((n, 1, h, w)).astype(np.float16),
        "sn": rng.standard_normal((n, 3, h, w)).astype(np.float16),
    }
    tasks = (
        TaskSpec("seg", "seg", 8, ignore_value=255),
        TaskSpec("depth", "depth", 1),
        TaskSpec("sn", "sn", 3),
    )
    return arrays, tasks


def test_batched_fetch_equals_the_samples_one_by_one_without_augmentation() -> None:
    arrays, tasks = _tiny_arrays()
    for normalization in NORMALIZATIONS:
        data = ArrayDataset(arrays, tasks, augment=False, normalization=normalization)
        batch = data.__getitems__([4, 1, 1, 0])
        for got, index in zip(batch, [4, 1, 1, 0], strict=True):
            alone = data[index]
            assert got.keys() == alone.keys()
            for name in alone:
                assert got[name].dtype == alone[name].dtype
                assert torch.allclose(got[name], alone[name], rtol=1e-5, atol=1e-4), name


def test_batched_augmentation_flips_image_and_labels_together(monkeypatch) -> None:
    arrays, tasks = _tiny_arrays()
    monkeypatch.setattr("cutlib.data.arrays.jitter_batch", lambda images, _: images)  # flips only
    plain = ArrayDataset(arrays, tasks, augment=False)
    data = ArrayDataset(arrays, tasks, augment=True)
    torch.manual_seed(0)
    outcomes = set()
    for _ in range(4):
        for index, got in enumerate(data.__getitems__(list(range(6)))):
            original = plain[index]
            flipped = not torch.equal(got["seg"], original["seg"])
            outcomes.add(flipped)
            expect = {k: v.flip(-1) if flipped else v for k, v in original.items()}
            if flipped:
                expect["sn"][0] = -expect["sn"][0]  # mirrored normals
            for name in original:
                assert torch.allclose(got[name], expect[name], atol=1e-5), (name, flipped)
    assert outcomes == {True, False}


def test_jitter_batch_is_torchvisions_brightness_contrast_saturation_per_sample() -> None:
    torch.manual_seed(1)
    rgb = torch.rand(5, 3, 6, 7)
    torch.manual_seed(7)
    got = jitter_batch(rgb, None, strength=0.3)
    torch.manual_seed(7)
    factors = 1.0 + 0.3 * (2.0 * torch.rand(3, 5) - 1)
    for i in range(5):
        b, c, s = factors[:, i].tolist()
        expected = F.adjust_saturation(F.adjust_contrast(F.adjust_brightness(rgb[i], b), c), s)
        assert torch.allclose(got[i], expected, atol=1e-5), i
    torch.manual_seed(7)  # on normalised images: the same draws, the same colours
    via_normalised = denormalize(jitter_batch(normalize_tensor(rgb), strength=0.3))
    assert torch.allclose(via_normalised, got, atol=1e-5)
