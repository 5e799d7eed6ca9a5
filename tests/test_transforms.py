"""Joint augmentation keeps image and labels aligned and mirrors normals (torchvision v2)."""

from __future__ import annotations

import numpy as np
import torch
from torchvision import tv_tensors

from cutlib.data.arrays import ArrayDataset
from cutlib.data.transforms import RandomHorizontalFlip, SurfaceNormals, denormalize
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
