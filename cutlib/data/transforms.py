"""Joint image/label augmentation with ``torchvision.transforms.v2`` (docs/architecture.md#data).

Every sample is a dict of tv_tensors: the image is an :class:`~torchvision.tv_tensors.Image`, dense
labels are :class:`~torchvision.tv_tensors.Mask` (so geometric transforms use nearest interpolation
and photometric ones leave them alone), and surface normals are :class:`SurfaceNormals`, a Mask
whose x component changes sign under a horizontal flip, as geometry requires. (The reference NYUv2
loader flips normal maps without mirroring them,
docs/method/metrics.md#quirks-before-comparing-numbers; Taskonomy's negates x, as here.)

Two choices of the real datasets' pipeline are profile settings (``data.normalize`` and
``data.pad``), because the reference code makes another choice than the usual one:

- **normalisation** (:data:`NORMALIZATIONS`): ``imagenet`` (default) gives RGB in [0, 1] minus the
  ImageNet mean, divided by its standard deviation; ``caffe`` is the reference code's: BGR on a
  0–255 scale minus the Caffe mean :data:`CAFFE_MEAN_BGR`, no division (inputs about 58× larger).
- **padding** of a scaled-down image before the crop (:data:`PADDINGS`): ``random`` (default,
  torchvision's ``pad_if_needed``) pads the deficit on both sides, so the image lands anywhere in
  the crop; ``centred`` is the reference code's: pad to exactly the crop size, image centred.
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
#: The Caffe mean of the reference code's loaders, in BGR order on a 0–255 scale.
CAFFE_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)
#: Image normalisations (module docstring).
NORMALIZATIONS: tuple[str, ...] = ("imagenet", "caffe")
#: Paddings of a training image smaller than the crop (module docstring).
PADDINGS: tuple[str, ...] = ("random", "centred")
#: The range of the random scale factor s of the real datasets' training augmentation.
SCALE_RANGE = (0.5, 1.5)


class SurfaceNormals(tv_tensors.Mask):
    """A (3, H, W) map of unit normals in the camera frame (x right, y down, z forward)."""


class IgnoreValueMask(tv_tensors.Mask):
    """A label map with an ignore value of 255 (class ids, or Taskonomy's keypoint and edge
    maps), so padding writes 255 rather than 0."""


#: What padding writes into each kind of sample entry
#: (docs/method/data.md#pre-processing-and-augmentation): black image pixels, the
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


class CentredPadRandomCrop(v2.RandomCrop):
    """``v2.RandomCrop`` of ``size`` whose input, where smaller than the crop, is first padded to
    exactly the crop size with the image centred (the reference code's
    ``__random_crop_and_pad_image_and_labels__``); ``fill`` as for ``v2.RandomCrop``.

    Example:
        >>> crop = CentredPadRandomCrop((4, 6), fill=PAD_FILL)
        >>> crop(tv_tensors.Image(torch.ones(1, 2, 3, dtype=torch.uint8)))[0].tolist()
        [[0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]]
    """

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        crop_height, crop_width = self.size
        pad_height, pad_width = max(crop_height - height, 0), max(crop_width - width, 0)
        top, left = pad_height // 2, pad_width // 2
        padding = [left, top, pad_width - left, pad_height - top]  # left, top, right, bottom
        spare_height = height + pad_height - crop_height
        spare_width = width + pad_width - crop_width
        return {
            "needs_crop": spare_height > 0 or spare_width > 0,
            "top": int(torch.randint(0, spare_height + 1, ())),
            "left": int(torch.randint(0, spare_width + 1, ())),
            "height": crop_height,
            "width": crop_width,
            "needs_pad": any(padding),
            "padding": padding,
        }


def random_scale(native: tuple[int, int]) -> v2.ScaleJitter:
    """Resize image and labels by a factor s ~ U[0.5, 1.5) of the dataset's ``native`` (H, W) size,
    drawn per sample: the reference loaders' random scale. Bilinear for the image,
    nearest for every label (``Mask``), so class ids, ignore values and unit normals are never
    interpolated; depth values are not divided by s, as in the reference.

    ``v2.ScaleJitter`` takes its ``target_size`` as (width, height): passing (H, W) would scale
    non-square images by min(H/W, W/H)·s (0.375–1.125 on NYUv2, 0.25–0.75 on Cityscapes).

    Example:
        >>> torch.manual_seed(0) and None
        >>> image = tv_tensors.Image(torch.zeros(3, 256, 512, dtype=torch.uint8))
        >>> tuple(random_scale((256, 512))(image).shape[1:])  # s = 0.996
        (255, 510)
    """
    height, width = native
    return v2.ScaleJitter((width, height), SCALE_RANGE)


def _check_normalization(normalization: str) -> None:
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"unknown image normalisation {normalization!r}; valid: {', '.join(NORMALIZATIONS)}"
        )


def normalize_steps(normalization: str = "imagenet") -> list[v2.Transform]:
    """Float conversion and normalisation of the image (module docstring); labels untouched.

    Example:
        >>> step = v2.Compose(normalize_steps("caffe"))
        >>> pixel = tv_tensors.Image(torch.tensor([255, 0, 0], dtype=torch.uint8).view(3, 1, 1))
        >>> [round(v, 2) for v in step(pixel).flatten().tolist()]  # red, as B, G, R minus the mean
        [-104.01, -116.67, 132.32]
    """
    _check_normalization(normalization)
    steps: list[v2.Transform] = [v2.ToDtype(torch.float32, scale=True)]
    if normalization == "imagenet":
        return steps + [v2.Normalize(IMAGE_MEAN, IMAGE_STD)]
    # caffe: RGB in [0, 1] → BGR in [0, 255] minus the mean (std 1/255 undoes the scale)
    return steps + [
        v2.Lambda(lambda image: tv_tensors.wrap(image.flip(-3), like=image), tv_tensors.Image),
        v2.Normalize([m / 255 for m in CAFFE_MEAN_BGR], [1 / 255] * 3),
    ]


#: Strength s of the synthetic data's colour jitter: brightness, contrast and saturation factors
#: are drawn per sample from U[1 − s, 1 + s] (:func:`jitter_batch`).
JITTER_STRENGTH = 0.2
#: ITU-R 601 luma weights of R, G, B: torchvision's grayscale, which contrast and saturation use.
LUMA = (0.2989, 0.587, 0.114)


def build_transform(augment: bool, normalization: str = "imagenet") -> v2.Compose:
    """The per-sample pipeline of the synthetic data: with ``augment``, a horizontal flip with
    p = 0.5 (normals mirrored); then float conversion and normalisation (:func:`normalize_steps`).
    Labels are never resampled, so depth stays metric.

    The augmentation's photometric part, a colour jitter, is applied to whole batches by
    :func:`jitter_batch` (:meth:`cutlib.data.arrays.ArrayDataset.__getitems__`): on a 2-core CPU,
    ``v2.ColorJitter`` sample by sample took 0.5 ms of the 1 ms a sample cost, a tenth of a
    quick training step. The jitter leaves the hue alone: a hue shift would cost another 0.9 ms
    per sample.
    """
    steps: list[v2.Transform] = [RandomHorizontalFlip(p=0.5)] if augment else []
    return v2.Compose(steps + normalize_steps(normalization))


def jitter_batch(
    images: Tensor, normalization: str | None = "imagenet", strength: float = JITTER_STRENGTH
) -> Tensor:
    """Random brightness, contrast and saturation of each image of a batch (B, 3, H, W),
    normalised with ``normalization`` (``None``: RGB in [0, 1]), vectorised over the batch: for
    each sample, factors b, c, s ~ U[1 − strength, 1 + strength] from the global generator,
    applied in that order to the RGB image x in [0, 1] as ``v2.ColorJitter`` applies them
    (clamping to [0, 1] after each), then normalised again:

    - brightness: x ← b·x;
    - contrast: x ← c·x + (1 − c)·mean(gray(x)), the mean over the image;
    - saturation: x ← s·x + (1 − s)·gray(x), per pixel;

    with gray = :data:`LUMA` · (R, G, B). ``v2.ColorJitter`` draws the order of the three per
    sample; here it is fixed.

    Example:
        >>> images = torch.zeros(4, 3, 2, 2)  # the ImageNet mean colour, normalised
        >>> jitter_batch(images, strength=0.0).abs().max().item() < 1e-6  # factors of 1: as is
        True
    """
    rgb = images if normalization is None else denormalize(images, normalization)
    factors = 1.0 + strength * (2.0 * torch.rand(3, len(images), 1, 1, 1, device=images.device) - 1)
    luma = torch.tensor(LUMA, device=images.device).view(1, 3, 1, 1)
    rgb = (factors[0] * rgb).clamp(0, 1)
    mean = (rgb * luma).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    rgb = (factors[1] * rgb + (1 - factors[1]) * mean).clamp(0, 1)
    gray = (rgb * luma).sum(1, keepdim=True)
    rgb = (factors[2] * rgb + (1 - factors[2]) * gray).clamp(0, 1)
    return rgb if normalization is None else normalize_tensor(rgb, normalization)


def normalize_tensor(rgb: Tensor, normalization: str = "imagenet") -> Tensor:
    """:func:`normalize_steps` on a float RGB tensor (…, 3, H, W) in [0, 1]; the inverse of
    :func:`denormalize`.

    Example:
        >>> rgb = torch.rand(2, 3, 4, 4)
        >>> all(torch.allclose(denormalize(normalize_tensor(rgb, k), k), rgb, atol=1e-5)
        ...     for k in NORMALIZATIONS)
        True
    """
    _check_normalization(normalization)
    if normalization == "caffe":
        mean = torch.tensor(CAFFE_MEAN_BGR, device=rgb.device).view(3, 1, 1)
        return rgb.flip(-3) * 255 - mean
    mean = torch.tensor(IMAGE_MEAN, device=rgb.device).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD, device=rgb.device).view(3, 1, 1)
    return (rgb - mean) / std


def real_transform(
    train: bool,
    crop: tuple[int, int],
    native: tuple[int, int],
    eval_size: tuple[int, int] | None = None,
    *,
    normalization: str = "imagenet",
    padding: str = "random",
) -> v2.Compose:
    """The pipeline of the real datasets (docs/method/data.md#pre-processing-and-augmentation), then
    float conversion and normalisation (:func:`normalize_steps`).

    Training: the random scale of :func:`random_scale` about the dataset's ``native`` size,
    horizontal flip with p = 0.5 (the x component of :class:`SurfaceNormals` negated; normals given
    as a plain ``Mask`` are only moved, as the reference NYUv2 loader does, §6.3), then a random
    ``crop``, padding first where the image is smaller (``padding``: module docstring; the fill is
    :data:`PAD_FILL`, the ignore values). Evaluation: the whole image, resized to ``eval_size``
    when that differs from its size.

    Example:
        >>> t = real_transform(True, (8, 8), (16, 16))
        >>> sample = {"image": tv_tensors.Image(torch.zeros(3, 16, 16, dtype=torch.uint8)),
        ...           "seg": IgnoreValueMask(torch.zeros(16, 16, dtype=torch.uint8))}
        >>> {k: tuple(v.shape) for k, v in t(sample).items()}
        {'image': (3, 8, 8), 'seg': (8, 8)}
    """
    if padding not in PADDINGS:
        raise ValueError(f"unknown padding {padding!r}; valid: {', '.join(PADDINGS)}")
    steps: list[v2.Transform] = []
    if train:
        crop_step = (
            CentredPadRandomCrop(crop, fill=PAD_FILL)
            if padding == "centred"
            else v2.RandomCrop(crop, pad_if_needed=True, fill=PAD_FILL)
        )
        steps += [random_scale(native), RandomHorizontalFlip(p=0.5), crop_step]
    elif eval_size is not None:  # a no-op on inputs already of that size
        steps += [v2.Resize(eval_size)]
    return v2.Compose(steps + normalize_steps(normalization))


def unwrap(sample: dict[str, Any], seg_keys: tuple[str, ...]) -> dict[str, Tensor]:
    """Plain tensors for collation: images float, seg labels long, everything else float32."""
    out: dict[str, Tensor] = {}
    for key, value in sample.items():
        tensor = value.as_subclass(Tensor) if isinstance(value, Tensor) else value
        out[key] = tensor.long() if key in seg_keys else tensor
    return out


def denormalize(image: Tensor, normalization: str = "imagenet") -> Tensor:
    """Invert the normalisation: a (…, 3, H, W) image back to RGB in [0, 1], for display.

    Example:
        >>> pixel = torch.tensor([255, 0, 0], dtype=torch.uint8).view(3, 1, 1)
        >>> for kind in NORMALIZATIONS:
        ...     normalized = v2.Compose(normalize_steps(kind))(tv_tensors.Image(pixel))
        ...     print(kind, denormalize(normalized, kind).flatten().round(decimals=4).tolist())
        imagenet [1.0, 0.0, 0.0]
        caffe [1.0, 0.0, 0.0]
    """
    _check_normalization(normalization)
    if normalization == "caffe":
        mean = torch.tensor(CAFFE_MEAN_BGR, device=image.device).view(3, 1, 1)
        return ((image + mean) / 255).flip(-3).clamp(0, 1)
    mean = torch.tensor(IMAGE_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD, device=image.device).view(3, 1, 1)
    return (image * std + mean).clamp(0, 1)
