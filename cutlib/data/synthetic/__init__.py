"""Procedurally rendered 3-D scenes with exact per-pixel labels: cutlib's embedded dataset.

No download is needed: every sample is ray cast on the fly from a random scene, so the labels are
exact. Three presets mirror the task sets of the paper's datasets (see :data:`PRESETS`).

Scene model
    The world frame has y up and the floor (or street) at y = 0. A scene is an environment plus a
    list of primitives: boxes (rotated about the vertical axis), spheres and vertical capped
    cylinders. Composite objects (a table is a top and legs, a tree a crown on a trunk) are several
    primitives of one class. The *room* environment is the inside of a box (floor, four walls,
    ceiling) with furniture on the floor and flat items (tv, painting, window) on the walls; the
    *street* environment is a ground plane (road between raised sidewalks) in a canyon of building
    blocks closed by a cross block, under a sky gradient, with cars, people, poles, trees, hedges
    and low walls.

Camera
    A pinhole camera with random position, yaw, pitch and horizontal field of view. Rays are cast
    through pixel centres, vectorised over the image; their directions are scaled to a camera-z
    component of 1, so the ray parameter of a hit is its z-depth.

Appearance
    Every primitive has a material: a procedural texture family (plain, checker, stripes, grid,
    dots, brick, wood, value noise) evaluated on 2-D surface coordinates in metres, two colours, a
    scale and an orientation. Families, palettes, scales and contrasts are drawn per instance from
    per-class recipes, so a class is told by shape *and* texture (cabinet and shelf are both tall
    boxes, wood against book stripes; rug and floor are both flat on the ground) while texture
    frequency and contrast vary between classes and instances, and plain surfaces exist. Patterns
    whose features would be finer than ~2 pixels fade to their mean colour (cheap anti-aliasing).
    Shading is Lambertian with an ambient term and one light: a point light below the ceiling
    (room) or the sun (street), of random colour and intensity, with hard shadows from shadow rays
    tested against every primitive. Gaussian sensor noise is added to the final uint8 image only.

Labels (conventions of :mod:`cutlib.tasks`)
    ``seg``: class id per pixel (index into the preset's ``class_names``); the sky is a class of its
    own; no pixel is marked 255 (ignore), although consumers must accept it.
    ``sn``: unit surface normal in the OpenCV camera frame (x right, y down, z forward; a surface
    facing the camera has n_z < 0); the zero vector where there is no surface (sky).
    ``depth``: z-depth in metres along the optical axis; 0 where invalid (sky, and indoors beyond
    the sensor range of 10 m).
    ``edge``: 2-D texture edges as in Taskonomy: Sobel gradient magnitude of the clean (noise-free)
    grey image, blurred with sigma = 1 px, scaled and clipped to [0, 1].
    ``keypoint``: 2-D keypoint saliency as in Taskonomy: square root of the Shi-Tomasi corner
    response (smaller eigenvalue of the structure tensor) of the clean grey image, blurred with
    sigma = 1 px, scaled and clipped to [0, 1].

Determinism
    Image ``i`` of a render is drawn from its own generator, seeded by ``(seed, preset, i)``, so it
    does not depend on how many images are rendered. The scene itself is drawn before anything that
    depends on the resolution, so one seed gives the same scene at every resolution.
"""

from __future__ import annotations

import os
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cutlib.data.synthetic.labels import _Filters
from cutlib.data.synthetic.presets import PRESETS, SyntheticPreset
from cutlib.data.synthetic.render import _camera_axes as _camera_axes  # re-exported for tests
from cutlib.data.synthetic.render import _render
from cutlib.data.synthetic.scenes import _room_scene, _street_scene

#: Bump whenever the rendering changes; it is part of the cache file name.
SYNTHETIC_VERSION = 1

SPLITS: tuple[str, ...] = ("train", "val", "test")


def _preset(name: str) -> SyntheticPreset:
    if name not in PRESETS:
        raise ValueError(f"unknown synthetic preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def render_scenes(
    preset: str, n: int, height: int, width: int, seed: int, *, progress: bool = False
) -> dict[str, np.ndarray]:
    """Render ``n`` random scenes of a preset with exact labels.

    Image ``i`` depends only on (preset, seed, i, height, width), not on ``n``.

    Args:
        preset: a key of :data:`PRESETS`.
        n: number of scenes.
        height, width: image size in pixels (at least 8).
        seed: non-negative integer seed.
        progress: show a tqdm progress bar.

    Returns:
        ``"image"`` uint8 (n, H, W, 3) RGB with sensor noise; ``"seg"`` uint8 (n, H, W) class ids;
        and per further task of the preset ``"sn"`` float16 (n, 3, H, W), ``"depth"`` float16
        (n, 1, H, W), ``"keypoint"`` and ``"edge"`` float16 (n, 1, H, W), as described in the module
        docstring.

    Raises:
        ValueError: on an unknown preset (the message lists the valid ones) or a bad size.
    """
    spec = _preset(preset)
    if n < 0 or height < 8 or width < 8:
        raise ValueError(f"need n >= 0 and an image of at least 8x8, got n={n}, {height}x{width}")
    out = {
        "image": np.empty((n, height, width, 3), np.uint8),
        "seg": np.empty((n, height, width), np.uint8),
    }
    for task in spec.tasks:
        if task != "seg":
            out[task] = np.empty((n, 3 if task == "sn" else 1, height, width), np.float16)
    filters = _Filters(height, width) if {"edge", "keypoint"} & set(spec.tasks) else None
    make_scene = _room_scene if spec.scene == "room" else _street_scene
    key = zlib.crc32(preset.encode())
    for i in tqdm(range(n), desc=preset, unit="scene", disable=not progress):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key, i)))
        scene = make_scene(rng, spec)
        rgb, seg, normal, depth = _render(scene, height, width)
        noise = rng.standard_normal((height, width, 3), dtype=np.float32) * scene.sensor_sigma
        out["image"][i] = np.clip(np.rint(rgb * 255.0 + noise), 0, 255)
        out["seg"][i] = seg
        if "sn" in out:
            out["sn"][i] = normal
        if "depth" in out:
            out["depth"][i, 0] = depth
        if filters is not None:
            edge, keypoint = filters.edge_keypoint(rgb @ np.float32([0.299, 0.587, 0.114]))
            if "edge" in out:
                out["edge"][i, 0] = edge
            if "keypoint" in out:
                out["keypoint"][i, 0] = keypoint
    return out


def _split_seed(seed: int, split: str) -> int:
    return int(np.random.SeedSequence([seed, SPLITS.index(split)]).generate_state(1)[0])


def load_split(
    preset: str, split: str, n: int, height: int, width: int, seed: int, cache_dir: Path | None
) -> dict[str, np.ndarray]:
    """Return one split of a synthetic dataset, rendering it (and caching it) if needed.

    Each split is rendered from its own sub-seed of ``seed``. With ``cache_dir`` the arrays are
    read from ``{preset}-{split}-n{n}-{H}x{W}-seed{seed}-v{SYNTHETIC_VERSION}.npz`` there if it
    exists; otherwise they are rendered (printing one line with the time taken) and written there
    atomically.

    Args:
        preset: a key of :data:`PRESETS`.
        split: ``"train"``, ``"val"`` or ``"test"``.
        n, height, width, seed: as in :func:`render_scenes`.
        cache_dir: folder of cached renders, created if missing; ``None`` to always render.

    Returns:
        The arrays of :func:`render_scenes`.

    Raises:
        ValueError: on an unknown preset or split; the message lists the valid choices.
    """
    _preset(preset)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / (
            f"{preset}-{split}-n{n}-{height}x{width}-seed{seed}-v{SYNTHETIC_VERSION}.npz"
        )
        if path.exists():
            with np.load(path) as cached:
                return {key: cached[key] for key in cached.files}
    start = time.perf_counter()
    data = render_scenes(preset, n, height, width, _split_seed(seed, split))
    print(
        f"rendered {preset}/{split}: {n} scenes at {height}x{width} in "
        f"{time.perf_counter() - start:.1f} s",
        flush=True,
    )
    if path is not None:
        _save_atomic(path, data)
    return data


def _save_atomic(path: Path, data: dict[str, np.ndarray]) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
