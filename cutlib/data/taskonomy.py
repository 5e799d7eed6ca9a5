"""Tiny-Taskonomy in the AdaShare layout (docs/method/data.md#tiny-taskonomy-on-disk): 5 tasks, seg
(17 classes), sn, depth, keypoint (2-D) and edge (2-D texture edges).

On disk, under the dataset root (``data/taskonomy/`` by default)::

    taskonomy.json    {"train": [[rgb, seg, normal, depth, keypoint, edge], …], "test": […]}
    semseg_prior_factor.npy   float, (17,): the seg classes' weights in the loss
                      paths relative to the root, as the index gives them (the AdaShare layout;
                      DiSparse's rewrite into the newer per-domain folders is not applied)
    rgb               PNG, RGB, uint8
    seg               PNG, grey, uint8: 0 = unlabelled, 1–17 = the classes
    normal            PNG, RGB, uint8: (n + 1)·127.5 per axis
    depth             PNG, 16-bit: 1/512 m per unit, ≥ 64500 = invalid
    keypoint, edge    PNG, 16-bit

Decoding into the sample conventions of docs/architecture.md#data (options in brackets give the
reference's):

- seg: classes 0–16 from raw 1–17; raw 0 (unlabelled) is ignored (255). [``seg_unlabelled: class0``:
  the reference merges it into class 0, docs/method/metrics.md#quirks-before-comparing-numbers item
  7.] The cross-entropy weighs class c by ``semseg_prior_factor.npy``'s c-th entry, in training and
  in the importance scores, as the reference loss does (``seg_weights: prior``, the default;
  ``none`` weighs every class alike). The reference loader also reads the file, for a per-pixel
  ``seg_mask`` that neither its loss nor its evaluation uses; nothing here needs it.
- sn: unit normals ``rgb / 127.5 − 1`` renormalised; a horizontal flip negates x (as the
  reference does for Taskonomy).
- depth: metres (raw / 512), 0 where raw ≥ 64500. [``depth: log``: the reference's
  log(1 + raw) / log(2¹⁶), still 0 where invalid.]
- keypoint, edge: raw / 2¹⁶ clipped to [0, 0.005] and [0, 0.08], rescaled to [0, 1]. [``maps:
  signed``: rescaled to [−1, 1] as the reference, which doubles their errors.]

The evaluation size is 256×256 (``eval_resolution`` of the paper profile); the reference resizes
the RGB image with nearest interpolation, we use bilinear for images and nearest for labels.

Under the ``reference`` metric conventions, Taskonomy's normals are measured as true angles (the
reference compares colour vectors only on NYUv2) and pixel accuracy, depth and keypoint/edge
errors are averaged per evaluation batch (its test batches hold 16 images), as its code does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from torch import Tensor
from torchvision import tv_tensors

from cutlib.data.nyuv2 import decode_normals
from cutlib.data.real import (
    SEG_WEIGHTS,
    Layout,
    as_tensor,
    expect,
    numbered_seg_task,
    read_png,
)
from cutlib.data.transforms import IgnoreValueMask, SurfaceNormals
from cutlib.tasks import TaskSpec

NATIVE_SIZE = (256, 256)
CLASSES = 17
IGNORE = 255
INVALID_DEPTH = 64500
#: Clipping range of the 16-bit keypoint and edge maps (as fractions of 2¹⁶),
#: docs/method/data.md#tiny-taskonomy-on-disk.
MAP_CLIP = {"keypoint": 0.005, "edge": 0.08}
OPTIONS = {
    "seg_unlabelled": ("ignore", "class0"),
    "depth": ("metres", "log"),
    "maps": ("unit", "signed"),
    "seg_weights": SEG_WEIGHTS,
}
#: The seg classes' loss weights under the dataset root (AdaShare's; the reference loss reads it).
CLASS_WEIGHTS_FILE = "semseg_prior_factor.npy"

DOWNLOAD = (
    "Get Tiny-Taskonomy by the instructions of the Taskonomy project (its data page; "
    "docs/method/data.md#datasets-and-tasks) with AdaShare's taskonomy.json index, and lay it out "
    "so that the index's paths are "
    "relative to data/taskonomy/ (or pass that folder as --data-root); data/README.md has the "
    "steps, and `cutlib data check taskonomy` validates them."
)


def _check_uint8(channels: int, what: str) -> Any:
    shape = (None, None, channels) if channels > 1 else (None, None)
    return lambda a: expect(a, shape, ["uint8"], what)


def _check_uint16(what: str) -> Any:
    return lambda a: expect(a, (None, None), ["uint16"], what)


def _check_seg(a: np.ndarray) -> str | None:
    wrong = expect(a, (None, None), ["uint8"], "a grey class map")
    if wrong is None and (a > CLASSES).any():
        return f"class ids up to {int(a.max())} (expected 0 = unlabelled or 1–{CLASSES})"
    return wrong


def _option(options: Mapping[str, Any], name: str) -> str:
    value = options[name]
    if value not in OPTIONS[name]:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(OPTIONS[name])}")
    return value


def to_sample(arrays: Mapping[str, np.ndarray], options: Mapping[str, Any]) -> dict[str, Tensor]:
    """The decoded tv_tensors of one Taskonomy entry (the fields that were read)."""
    image = as_tensor(arrays["image"]).permute(2, 0, 1)
    sample: dict[str, Tensor] = {"image": tv_tensors.Image(image)}
    if "seg" in arrays:
        raw = arrays["seg"].astype(np.int64)
        if _option(options, "seg_unlabelled") == "class0":
            labels = np.maximum(raw, 1) - 1
        else:
            labels = np.where(raw == 0, IGNORE, raw - 1)
        sample["seg"] = IgnoreValueMask(as_tensor(labels.astype(np.uint8)))
    if "sn" in arrays:
        sample["sn"] = SurfaceNormals(as_tensor(decode_normals(arrays["sn"], "unit")))
    if "depth" in arrays:
        raw = arrays["depth"].astype(np.float32)
        if _option(options, "depth") == "log":
            depth = np.log1p(raw) / np.log(2.0**16)
        else:
            depth = raw / 512.0
        depth[arrays["depth"] >= INVALID_DEPTH] = 0.0
        sample["depth"] = tv_tensors.Mask(as_tensor(depth)[None])
    signed = _option(options, "maps") == "signed"
    for task, clip in MAP_CLIP.items():
        if task in arrays:
            values = np.clip(arrays[task].astype(np.float32) / 2.0**16, 0.0, clip) / clip
            values = 2.0 * values - 1.0 if signed else values
            sample[task] = IgnoreValueMask(as_tensor(values)[None])
    return sample


LAYOUT = Layout(
    name="taskonomy",
    description="Tiny-Taskonomy (AdaShare layout): seg 17 classes, normals, depth, keypoint, edge",
    tasks=(
        numbered_seg_task(CLASSES, IGNORE),
        TaskSpec("sn", "sn", 3, 3.0),
        TaskSpec("depth", "depth", 1, 2.0),
        TaskSpec("keypoint", "keypoint", 1, 7.0, IGNORE),
        TaskSpec("edge", "edge", 1, 7.0, IGNORE),
    ),
    index_file="taskonomy.json",
    fields=("image", "seg", "sn", "depth", "keypoint", "edge"),
    native_size=NATIVE_SIZE,
    read={name: read_png for name in ("image", "seg", "sn", "depth", "keypoint", "edge")},
    validate={
        "image": _check_uint8(3, "an RGB image"),
        "seg": _check_seg,
        "sn": _check_uint8(3, "an RGB-encoded normal map"),
        "depth": _check_uint16("a 16-bit depth map"),
        "keypoint": _check_uint16("a 16-bit keypoint map"),
        "edge": _check_uint16("a 16-bit edge map"),
    },
    to_sample=to_sample,
    download=DOWNLOAD,
    options={"seg_unlabelled": "ignore", "depth": "metres", "maps": "unit", "seg_weights": "prior"},
    class_weights_file=CLASS_WEIGHTS_FILE,
    reference_metrics=lambda options: {
        "normals": "unit",
        "pixel_acc": "per_batch",
        "depth_errors": "per_batch",
        "map_errors": "per_batch",
    },
)
