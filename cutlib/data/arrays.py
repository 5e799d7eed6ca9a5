"""A map-style dataset over in-memory label arrays, yielding samples in the
docs/architecture.md#data format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors

from cutlib.data.transforms import SurfaceNormals, build_transform, unwrap
from cutlib.tasks import TaskSpec


class ArrayDataset(Dataset):
    """Samples ``{"image": (3,H,W) float, <task>: label}`` from arrays indexed by sample.

    Args:
        arrays: ``"image"`` uint8 (N, H, W, 3) RGB, and one array per task named like the task
            (seg (N, H, W) integer; others (N, C, H, W) float).
        tasks: the tasks to return, which must all be in ``arrays``.
        augment: apply the training augmentation of :func:`~cutlib.data.transforms.build_transform`.
        normalization: the image normalisation (:data:`~cutlib.data.transforms.NORMALIZATIONS`).
    """

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        tasks: Sequence[TaskSpec],
        augment: bool,
        normalization: str = "imagenet",
    ) -> None:
        missing = [t.name for t in tasks if t.name not in arrays]
        if "image" not in arrays or missing:
            raise ValueError(
                f"arrays lack {['image', *missing] if 'image' not in arrays else missing}"
            )
        self.arrays = arrays
        self.tasks = tuple(tasks)
        self.transform = build_transform(augment, normalization)
        self._seg_keys = tuple(t.name for t in self.tasks if t.kind == "seg")

    def __len__(self) -> int:
        return len(self.arrays["image"])

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        image = torch.from_numpy(np.ascontiguousarray(self.arrays["image"][index])).permute(2, 0, 1)
        sample: dict[str, Tensor] = {"image": tv_tensors.Image(image)}
        for task in self.tasks:
            label = torch.from_numpy(np.asarray(self.arrays[task.name][index]))
            if task.kind == "sn":
                sample[task.name] = SurfaceNormals(label.float())
            elif task.kind == "seg":
                sample[task.name] = tv_tensors.Mask(label)
            else:
                sample[task.name] = tv_tensors.Mask(label.float())
        return unwrap(self.transform(sample), self._seg_keys)
