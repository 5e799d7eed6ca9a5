"""NYUv2 in the AdaShare layout (docs/method/data.md#nyuv2-on-disk): 3 tasks, seg (40 classes), sn
and depth.

On disk, under the dataset root (``data/nyuv2/`` by default)::

    nyu_v2_3task.json        {"train": [[img, seg, normal, depth], …], "test": […]}
    img/XXXX.png             RGB, 480×640, uint8
    seg/XXXX.png             grey, 480×640, uint8: classes 0–39, 255 = ignore
    normal_mask/XXXX.png     RGB, 480×640, uint8: (n + 1)·127.5 per axis, (255, 255, 255) = invalid
    depth/XXXX.npy           float32, (480, 640), metres, 0 = invalid

Decoding into the sample conventions of docs/architecture.md#data: the image as RGB (the reference
reads BGR through OpenCV; the order only matters for its Caffe mean, which we do not use); seg as
class ids with 255 ignored; depth in metres with 0 invalid; normals, by the ``normals`` option:

- ``"unit"`` (default): ``n = rgb / 127.5 − 1`` renormalised to unit length, invalid pixels the
  zero vector. The red channel is the horizontal axis (x to the right: checked against normals
  computed from the depth of the public samples), so a horizontal flip negates it. Metrics then
  measure true angles.
- ``"colour"`` (paper-compatible): the raw colour vectors ``rgb`` in 0–255, as the reference
  learns and evaluates them, invalid pixels the zero vector, and flips that do not mirror them.
  Angles between colour vectors are compressed (about half the true angle,
  docs/method/metrics.md#quirks-before-comparing-numbers), so only this setting is comparable with
  the paper's NYUv2 normal numbers.

The ``reference`` metric conventions measure NYUv2 normals in colour space either way: with
``unit`` normals by comparing their colour encodings 127.5·(n + 1), with ``colour`` normals by
comparing the vectors as they are.

The classes of the 40-class NYUv2 labelling are named by id here: the AdaShare files carry no
names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from torch import Tensor
from torchvision import tv_tensors

from cutlib.data.real import Layout, as_tensor, expect, numbered_seg_task, read_npy, read_png
from cutlib.data.transforms import IgnoreValueMask, SurfaceNormals
from cutlib.tasks import TaskSpec

NATIVE_SIZE = (480, 640)
CLASSES = 40
IGNORE = 255
NORMAL_MODES = ("unit", "colour")

DOWNLOAD = (
    "Get NYUv2 as preprocessed by AdaShare (the archive the DiSparse and CUT READMEs link, "
    "docs/method/data.md#datasets-and-tasks) and unpack it so that "
    "data/nyuv2/nyu_v2_3task.json, img/, seg/, normal_mask/ and depth/ sit side by side (or pass "
    "that folder as --data-root); data/README.md has the steps, and `cutlib data check nyuv2` "
    "validates them."
)


def _check_image(a: np.ndarray) -> str | None:
    return expect(a, (*NATIVE_SIZE, 3), ["uint8"], "an RGB image")


def _check_seg(a: np.ndarray) -> str | None:
    wrong = expect(a, NATIVE_SIZE, ["uint8"], "a grey class map")
    if wrong is None and ((a >= CLASSES) & (a != IGNORE)).any():
        return f"class ids up to {int(a[a != IGNORE].max())} (expected 0–{CLASSES - 1} or {IGNORE})"
    return wrong


def _check_normal(a: np.ndarray) -> str | None:
    return expect(a, (*NATIVE_SIZE, 3), ["uint8"], "an RGB-encoded normal map")


def _check_depth(a: np.ndarray) -> str | None:
    wrong = expect(a, NATIVE_SIZE, ["float32", "float64"], "a depth map in metres")
    if wrong is None and (not np.isfinite(a).all() or (a < 0).any()):
        return "non-finite or negative depths (expected metres ≥ 0, 0 = invalid)"
    return wrong


def decode_normals(rgb: np.ndarray, mode: str) -> np.ndarray:
    """(H, W, 3) uint8 encoded normals → (3, H, W) float32 (module docstring), invalid = 0.

    Example:
        >>> rgb = np.array([[[255, 128, 128], [255, 255, 255]]], dtype=np.uint8)
        >>> decode_normals(rgb, "unit")[0, 0].round(3).tolist()  # +x, then an invalid pixel
        [1.0, 0.0]
    """
    if mode not in NORMAL_MODES:
        raise ValueError(f"unknown normals mode {mode!r}; valid: {', '.join(NORMAL_MODES)}")
    invalid = (rgb == 255).all(-1)
    values = rgb.astype(np.float32)
    if mode == "unit":
        values = values / 127.5 - 1.0
        norm = np.linalg.norm(values, axis=-1, keepdims=True)
        values = np.divide(values, norm, out=np.zeros_like(values), where=norm > 0)
    values[invalid] = 0.0
    return values.transpose(2, 0, 1)


def to_sample(arrays: Mapping[str, np.ndarray], options: Mapping[str, Any]) -> dict[str, Tensor]:
    """The decoded tv_tensors of one NYUv2 entry (the fields that were read)."""
    image = as_tensor(arrays["image"]).permute(2, 0, 1)
    sample: dict[str, Tensor] = {"image": tv_tensors.Image(image)}
    if "seg" in arrays:
        sample["seg"] = IgnoreValueMask(as_tensor(arrays["seg"]))
    if "sn" in arrays:
        normals = as_tensor(decode_normals(arrays["sn"], options["normals"]))
        # unit normals mirror under a flip; the reference's colour vectors are only moved
        kind = SurfaceNormals if options["normals"] == "unit" else tv_tensors.Mask
        sample["sn"] = kind(normals)
    if "depth" in arrays:
        sample["depth"] = tv_tensors.Mask(as_tensor(arrays["depth"].astype(np.float32))[None])
    return sample


LAYOUT = Layout(
    name="nyuv2",
    description="NYUv2 (AdaShare layout): seg 40 classes, surface normals, depth",
    tasks=(
        numbered_seg_task(CLASSES, IGNORE),
        TaskSpec("sn", "sn", 3, 20.0),
        TaskSpec("depth", "depth", 1, 3.0),
    ),
    index_file="nyu_v2_3task.json",
    fields=("image", "seg", "sn", "depth"),
    native_size=NATIVE_SIZE,
    read={"image": read_png, "seg": read_png, "sn": read_png, "depth": read_npy},
    validate={"image": _check_image, "seg": _check_seg, "sn": _check_normal, "depth": _check_depth},
    to_sample=to_sample,
    download=DOWNLOAD,
    options={"normals": "unit"},
    # the reference measures angles between colour vectors; `colour` targets already are
    reference_metrics=lambda options: {"normals": "unit"} if options["normals"] == "colour" else {},
)
