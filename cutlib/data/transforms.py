"""Joint image/label augmentation with ``torchvision.transforms.v2`` (DESIGN §3).

Every sample is a dict of tv_tensors: the image is an :class:`~torchvision.tv_tensors.Image`, dense
labels are :class:`~torchvision.tv_tensors.Mask` (so geometric transforms use nearest interpolation
and photometric ones leave them alone), and surface normals are :class:`SurfaceNormals`, a Mask
whose x component changes sign under a horizontal flip, as geometry requires. (The reference NYUv2
loader flips normal maps without mirroring them, PAPER_NOTES §6.3; Taskonomy's negates x, as here.)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

#: ImageNet statistics used to normalise RGB images in [0, 1].
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


class SurfaceNormals(tv_tensors.Mask):
    """A (3, H, W) map of unit normals in the camera frame (x right, y down, z forward)."""


class IgnoreValueMask(tv_tensors.Mask):
    """A label map with an ignore value of 255 (class ids, or Taskonomy's keypoint and edge
    maps), so padding writes 255 rather than 0."""


#: What padding writes into each kind of sample entry (PAPER_NOTES §5.5): black image pixels, the
#: ignore value for classes, and the zero vector / zero depth that every loss treats as invalid.
PAD_FILL = {tv_tensors.Image: 0, IgnoreValueMask: 255, SurfaceNormals: 0.0, tv_tensors.Mask: 0.0}


class RandomHorizontalFlip(v2.RandomHorizontalFlip):
    """``v2.RandomHorizontalFlip`` that also mirrors normals: n_x → −n_x on flipped samples."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        out = super().transform(inpt, params)
        if isinstance(inpt, SurfaceNormals):
            sign = torch.tensor([-1.0, 1.0, 1.0], dtype=out.dtype, device=out.device)
            out = tv_tensors.wrap(out * sign.view(3, 1, 1), like=inpt)
        return out


def build_transform(augment: bool) -> v2.Compose:
    """The per-sample pipeline: optional augmentation, then float conversion and normalisation.

    Augmentation (training split only): horizontal flip with p = 0.5 (normals mirrored) and a mild
    colour jitter of the image. Labels are never resampled, so depth stays metric.
    """
    steps: list[v2.Transform] = []
    if augment:
        steps += [RandomHorizontalFlip(p=0.5), v2.ColorJitter(0.2, 0.2, 0.2, 0.02)]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGE_MEAN, IMAGE_STD)]
    return v2.Compose(steps)


def real_transform(
    train: bool,
    crop: tuple[int, int],
    native: tuple[int, int],
    eval_size: tuple[int, int] | None = None,
) -> v2.Compose:
    """The pipeline of the real datasets (PAPER_NOTES §5.5), then float conversion and
    normalisation as :func:`build_transform`.

    Training: random scale by s ~ U[0.5, 1.5) of the dataset's ``native`` size
    (``v2.ScaleJitter``: bilinear for the image, nearest for every label; depth values are not
    divided by s, as in the reference), horizontal flip with p = 0.5 (the x component of
    :class:`SurfaceNormals` negated; normals given as a plain ``Mask`` are only moved, as the
    reference NYUv2 loader does, §6.3), then a random
    ``crop``, padding first where the image is smaller (:data:`PAD_FILL`: ignore values).
    Evaluation: the whole image, resized to ``eval_size`` when that differs from its size.

    Example:
        >>> t = real_transform(True, (8, 8), (16, 16))
        >>> sample = {"image": tv_tensors.Image(torch.zeros(3, 16, 16, dtype=torch.uint8)),
        ...           "seg": IgnoreValueMask(torch.zeros(16, 16, dtype=torch.uint8))}
        >>> {k: tuple(v.shape) for k, v in t(sample).items()}
        {'image': (3, 8, 8), 'seg': (8, 8)}
    """
    steps: list[v2.Transform] = []
    if train:
        steps += [
            v2.ScaleJitter(native, (0.5, 1.5)),
            RandomHorizontalFlip(p=0.5),
            v2.RandomCrop(crop, pad_if_needed=True, fill=PAD_FILL),
        ]
    elif eval_size is not None:  # a no-op on inputs already of that size
        steps += [v2.Resize(eval_size)]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGE_MEAN, IMAGE_STD)]
    return v2.Compose(steps)


def unwrap(sample: dict[str, Any], seg_keys: tuple[str, ...]) -> dict[str, Tensor]:
    """Plain tensors for collation: images float, seg labels long, everything else float32."""
    out: dict[str, Tensor] = {}
    for key, value in sample.items():
        tensor = value.as_subclass(Tensor) if isinstance(value, Tensor) else value
        out[key] = tensor.long() if key in seg_keys else tensor
    return out


def denormalize(image: Tensor) -> Tensor:
    """Invert the normalisation: a (…, 3, H, W) image back to RGB in [0, 1], for display."""
    mean = torch.tensor(IMAGE_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD, device=image.device).view(3, 1, 1)
    return (image * std + mean).clamp(0, 1)
