"""Cityscapes in the AdaShare layout (docs/method/data.md#cityscapes-on-disk): 2 tasks, seg (19
classes) and depth.

On disk, under the dataset root (``data/cityscapes/`` by default)::

    cityscape.json           {"train": [[img, depth, label2, label7, label19], …], "test": […]}
    …/img*.npy               float, (256, 512, 3), RGB in [0, 1]
    …/depth*.npy             float, (256, 512, 1) (or (256, 512)): a normalised, disparity-like
                             value (maximum about 0.49), 0 = invalid
    …/label{2,7,19}*.npy     integer, (256, 512): classes, −1 = void

Decoding into the sample conventions of docs/architecture.md#data: the image as RGB (the reference
reverses it to BGR and multiplies by 255 for its Caffe mean, which we do not use); seg from the
19-class labels (the only ones both projects use), void mapped to the ignore value 255; depth as
stored, in the dataset's own unit, 0 invalid. The official validation split is the ``test`` of the
index (2975 train / 500 test, docs/method/data.md#datasets-and-tasks).

Under the ``reference`` metric conventions, void pixels count as wrong in pixel accuracy: the
reference code keeps every label below 19, and −1 is one of them (they stay out of its confusion
matrix, so mIoU is unaffected).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from torch import Tensor
from torchvision import tv_tensors

from cutlib.data.real import Layout, as_tensor, expect, numbered_seg_task, read_npy
from cutlib.data.transforms import IgnoreValueMask
from cutlib.tasks import TaskSpec

NATIVE_SIZE = (256, 512)
CLASSES = 19
IGNORE = 255

DOWNLOAD = (
    "Get Cityscapes as preprocessed by AdaShare (the archive the DiSparse and CUT READMEs link, "
    "docs/method/data.md#datasets-and-tasks) and unpack it so that "
    "data/cityscapes/cityscape.json sits beside the folders it names (or pass that folder as "
    "--data-root); data/README.md has the steps, and `cutlib data check cityscapes` validates "
    "them."
)


def _check_image(a: np.ndarray) -> str | None:
    wrong = expect(a, (*NATIVE_SIZE, 3), ["float32", "float64"], "an RGB image in [0, 1]")
    if wrong is None and (a.min() < 0 or a.max() > 1):
        return f"values in [{a.min():.3g}, {a.max():.3g}] (expected an RGB image in [0, 1])"
    return wrong


def _check_depth(a: np.ndarray) -> str | None:
    shape = (*NATIVE_SIZE, 1) if a.ndim == 3 else NATIVE_SIZE
    wrong = expect(a, shape, ["float32", "float64"], "a depth map")
    if wrong is None and (not np.isfinite(a).all() or (a < 0).any()):
        return "non-finite or negative depths (expected values ≥ 0, 0 = invalid)"
    return wrong


def _check_labels(classes: int) -> Any:
    def check(a: np.ndarray) -> str | None:
        wrong = expect(a, NATIVE_SIZE, ["int8", "int16", "int32", "int64"], "a class map")
        if wrong is None and ((a < -1) | (a >= classes)).any():
            return f"class ids in [{a.min()}, {a.max()}] (expected −1 or 0–{classes - 1})"
        return wrong

    return check


def to_sample(arrays: Mapping[str, np.ndarray], options: Mapping[str, Any]) -> dict[str, Tensor]:
    """The decoded tv_tensors of one Cityscapes entry (the fields that were read)."""
    image = as_tensor(arrays["image"].astype(np.float32)).permute(2, 0, 1)
    sample: dict[str, Tensor] = {"image": tv_tensors.Image(image)}
    if "seg" in arrays:
        labels = np.where(arrays["seg"] < 0, IGNORE, arrays["seg"]).astype(np.uint8)
        sample["seg"] = IgnoreValueMask(as_tensor(labels))
    if "depth" in arrays:
        depth = arrays["depth"].astype(np.float32).reshape(arrays["depth"].shape[:2])
        sample["depth"] = tv_tensors.Mask(as_tensor(depth)[None])
    return sample


LAYOUT = Layout(
    name="cityscapes",
    description="Cityscapes (AdaShare layout): seg 19 classes, depth",
    tasks=(
        numbered_seg_task(CLASSES, IGNORE),
        TaskSpec("depth", "depth", 1, 20.0),
    ),
    index_file="cityscape.json",
    fields=("image", "depth", "label2", "label7", "seg"),
    native_size=NATIVE_SIZE,
    read={name: read_npy for name in ("image", "depth", "label2", "label7", "seg")},
    validate={
        "image": _check_image,
        "depth": _check_depth,
        "label2": _check_labels(2),
        "label7": _check_labels(7),
        "seg": _check_labels(CLASSES),
    },
    to_sample=to_sample,
    download=DOWNLOAD,
    # the reference keeps void (−1) in pixel accuracy, where it is always wrong
    reference_metrics=lambda options: {"ignored_pixels": "wrong"},
)
