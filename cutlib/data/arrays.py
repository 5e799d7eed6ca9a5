"""A map-style dataset over in-memory label arrays, yielding samples in the
docs/architecture.md#data format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors

from cutlib.data.transforms import (
    SurfaceNormals,
    build_transform,
    jitter_batch,
    normalize_tensor,
    unwrap,
)
from cutlib.tasks import TaskSpec


class ArrayDataset(Dataset):
    """Samples ``{"image": (3,H,W) float, <task>: label}`` from arrays indexed by sample.

    Args:
        arrays: ``"image"`` uint8 (N, H, W, 3) RGB, and one array per task named like the task
            (seg (N, H, W) integer; others (N, C, H, W) float).
        tasks: the tasks to return, which must all be in ``arrays``.
        augment: apply the training augmentation: a horizontal flip with p = 0.5 (normals
            mirrored) and, in batches (:meth:`__getitems__`), the colour jitter of
            :func:`~cutlib.data.transforms.jitter_batch`.
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
        self.augment = augment
        self.normalization = normalization
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

    def read_batch(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """The samples at ``indices`` stacked, before any random transform: the image as float
        RGB in [0, 1] (B, 3, H, W), the labels as :meth:`__getitem__` gives them
        (:class:`~cutlib.loading.BatchTransformed`: what a DataLoader worker does)."""
        rows = np.asarray(indices)
        image = torch.from_numpy(np.ascontiguousarray(self.arrays["image"][rows]))
        batch = {"image": image.permute(0, 3, 1, 2).float().div(255)}
        for task in self.tasks:
            label = torch.from_numpy(np.asarray(self.arrays[task.name][rows]))
            batch[task.name] = label.long() if task.kind == "seg" else label.float()
        return batch

    def transform_batch(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """A batch of :meth:`read_batch`, augmented when augmenting (the flip and normalisation
        of :meth:`__getitem__` vectorised over the batch, plus the colour jitter of
        :func:`~cutlib.data.transforms.jitter_batch`) and normalised, on the batch's device,
        drawing from the global generator."""
        batch = dict(batch)
        if self.augment:
            image = batch["image"]
            flipped = torch.rand(len(image), device=image.device) < 0.5
            for name, values in batch.items():
                where = flipped.view(-1, *[1] * (values.dim() - 1))
                batch[name] = torch.where(where, values.flip(-1), values)
            for task in self.tasks:
                if task.kind == "sn":  # a mirrored scene's normals point the other way in x
                    sign = torch.where(flipped, -1.0, 1.0).view(-1, 1, 1)
                    batch[task.name][:, 0] *= sign
            batch["image"] = jitter_batch(batch["image"], None)
        batch["image"] = normalize_tensor(batch["image"], self.normalization)
        # the images are channels-last in memory until here; convolutions give other last digits
        return {name: values.contiguous() for name, values in batch.items()}

    def __getitems__(self, indices: list[int]) -> list[dict[str, Tensor]]:
        """The samples at ``indices`` at once, as a ``DataLoader`` fetches a batch
        (:meth:`transform_batch` of :meth:`read_batch`): a quick training batch costs 2 ms
        instead of 15 on a 2-core CPU."""
        batch = self.transform_batch(self.read_batch(indices))
        return [{name: values[i] for name, values in batch.items()} for i in range(len(indices))]
