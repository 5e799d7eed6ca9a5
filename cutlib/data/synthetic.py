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

import colorsys
import math
import os
import tempfile
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

#: Bump whenever the rendering changes; it is part of the cache file name.
SYNTHETIC_VERSION = 1

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class SyntheticPreset:
    """One synthetic dataset: which scene generator, which tasks, which segmentation classes."""

    name: str
    scene: Literal["room", "street"]
    tasks: tuple[str, ...]
    class_names: tuple[str, ...]


PRESETS: dict[str, SyntheticPreset] = {
    p.name: p
    for p in (
        SyntheticPreset(
            "synth-nyuv2",
            "room",
            ("seg", "sn", "depth"),
            (
                "wall",
                "floor",
                "ceiling",
                "bed",
                "cabinet",
                "sofa",
                "table",
                "chair",
                "tv",
                "painting",
                "window",
                "lamp",
                "object",
            ),
        ),
        SyntheticPreset(
            "synth-cityscapes",
            "street",
            ("seg", "depth"),
            ("road", "sidewalk", "building", "wall", "pole", "vegetation", "sky", "person", "car"),
        ),
        SyntheticPreset(
            "synth-taskonomy",
            "room",
            ("seg", "sn", "depth", "keypoint", "edge"),
            (
                "wall",
                "floor",
                "ceiling",
                "bed",
                "cabinet",
                "shelf",
                "sofa",
                "table",
                "chair",
                "tv",
                "painting",
                "window",
                "lamp",
                "rug",
                "plant",
                "ball",
            ),
        ),
    )
}

_INDOOR_MAX_DEPTH = 10.0  # metres; farther indoor pixels get depth 0 (invalid)
_EPS = 1e-4  # smallest accepted ray parameter
_EDGE_SCALE = 0.08  # blurred gradient magnitude (grey in [0, 1] per pixel) giving edge = 1
_KEYPOINT_SCALE = 0.05  # blurred sqrt corner response that maps to keypoint = 1
_NOISE_CELLS = 64  # side of the value-noise lattice (wraps around)
_SHADOW_BINS = 256  # buckets of light-space coordinates for culling shadow rays

# ---------------------------------------------------------------------------------------------
# Materials
# ---------------------------------------------------------------------------------------------

_PLAIN, _CHECKER, _STRIPES, _GRID, _DOTS, _BRICK, _WOOD, _NOISE, _ROAD = range(9)


@dataclass(frozen=True)
class _Material:
    """A procedural texture: mix of colours ``c0``/``c1`` by a pattern m(u, v) in [0, 1]."""

    family: int
    c0: tuple[float, float, float]
    c1: tuple[float, float, float]
    scale: float = 1.0  # metres per pattern unit
    angle: float = 0.0  # rotation of the pattern in the surface plane
    params: tuple[float, ...] = ()  # family parameters (line widths, dot radius, road layout)
    offset: tuple[float, float] = (0.0, 0.0)  # pattern-space offset
    mean: float = 0.0  # mean of m, the value fine patterns fade to
    feature: float = 1.0  # size in metres of the pattern's finest feature


@dataclass(frozen=True)
class _Style:
    """A recipe for random materials of one kind of surface.

    ``families`` are (family, weight) pairs; colours are drawn in HSV. The second colour is a
    lighter or darker shade of the first unless ``hsv2`` gives it a palette of its own, in which
    case ``contrast`` is how far it moves from the first colour towards that one. ``scale`` is the
    range of pattern periods in metres (drawn log-uniformly).
    """

    families: tuple[tuple[int, float], ...]
    hsv: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    scale: tuple[float, float] = (0.1, 0.4)
    contrast: tuple[float, float] = (0.2, 0.5)
    hsv2: tuple[tuple[float, float], tuple[float, float], tuple[float, float]] | None = None
    grid: tuple[float, float] = (0.06, 0.5)  # line width range of the grid family


_ANY_HUE = (0.0, 1.0)
_VIVID = (_ANY_HUE, (0.5, 0.95), (0.45, 0.95))
_WOODS = ((0.04, 0.11), (0.35, 0.75), (0.3, 0.75))

_STYLES: dict[str, _Style] = {
    # room
    "wall": _Style(
        ((_PLAIN, 0.55), (_STRIPES, 0.2), (_NOISE, 0.15), (_DOTS, 0.1)),
        (_ANY_HUE, (0.0, 0.35), (0.55, 0.95)),
        (0.1, 0.5),
        (0.05, 0.25),
    ),
    "floor": _Style(
        ((_STRIPES, 0.3), (_CHECKER, 0.3), (_NOISE, 0.25), (_PLAIN, 0.15)),
        ((0.0, 0.15), (0.1, 0.6), (0.25, 0.8)),
        (0.15, 0.6),
        (0.15, 0.5),
    ),
    "ceiling": _Style(((_PLAIN, 1.0),), (_ANY_HUE, (0.0, 0.1), (0.8, 1.0))),
    "bed": _Style(
        ((_NOISE, 0.4), (_PLAIN, 0.3), (_STRIPES, 0.3)),
        (_ANY_HUE, (0.1, 0.6), (0.5, 0.95)),
        (0.1, 0.5),
        (0.1, 0.35),
    ),
    "wood": _Style(((_WOOD, 0.7), (_PLAIN, 0.3)), _WOODS, (0.1, 0.4), (0.25, 0.55)),
    "shelf": _Style(
        ((_STRIPES, 0.6), (_GRID, 0.4)),
        ((0.04, 0.11), (0.2, 0.6), (0.55, 0.9)),
        (0.15, 0.4),
        (0.6, 1.0),
        (_ANY_HUE, (0.4, 0.9), (0.1, 0.45)),
        (0.15, 0.3),
    ),
    "fabric": _Style(
        ((_NOISE, 0.5), (_PLAIN, 0.5)), (_ANY_HUE, (0.2, 0.7), (0.3, 0.85)), (0.1, 0.4), (0.1, 0.35)
    ),
    "chair": _Style(
        ((_PLAIN, 0.6), (_STRIPES, 0.4)),
        (_ANY_HUE, (0.2, 0.8), (0.2, 0.9)),
        (0.08, 0.25),
        (0.2, 0.5),
    ),
    "metal": _Style(((_PLAIN, 1.0),), (_ANY_HUE, (0.0, 0.15), (0.1, 0.5))),
    "tv": _Style(((_PLAIN, 1.0),), (_ANY_HUE, (0.0, 0.2), (0.02, 0.1))),
    "painting": _Style(
        ((_NOISE, 0.4), (_DOTS, 0.3), (_CHECKER, 0.3)), _VIVID, (0.1, 0.4), (0.6, 1.0), _VIVID
    ),
    "window": _Style(
        ((_GRID, 1.0),),
        ((0.5, 0.65), (0.05, 0.35), (0.75, 1.0)),
        (0.3, 0.7),
        (0.6, 1.0),
        (_ANY_HUE, (0.0, 0.3), (0.05, 0.95)),
        (0.06, 0.15),
    ),
    "lampshade": _Style(
        ((_PLAIN, 0.7), (_STRIPES, 0.3)),
        ((0.05, 0.18), (0.05, 0.5), (0.8, 1.0)),
        (0.06, 0.2),
        (0.2, 0.4),
    ),
    "rug": _Style(
        ((_CHECKER, 0.3), (_STRIPES, 0.3), (_DOTS, 0.2), (_GRID, 0.2)),
        _VIVID,
        (0.15, 0.5),
        (0.5, 1.0),
        _VIVID,
    ),
    "foliage": _Style(
        ((_NOISE, 1.0),), ((0.22, 0.38), (0.5, 0.9), (0.25, 0.7)), (0.08, 0.25), (0.4, 0.8)
    ),
    "pot": _Style(
        ((_PLAIN, 0.7), (_STRIPES, 0.3)),
        ((0.0, 0.1), (0.3, 0.7), (0.3, 0.8)),
        (0.06, 0.15),
        (0.2, 0.5),
    ),
    "ball": _Style(
        ((_DOTS, 0.35), (_CHECKER, 0.35), (_STRIPES, 0.3)), _VIVID, (0.1, 0.25), (0.6, 1.0), _VIVID
    ),
    "object": _Style(
        ((_CHECKER, 0.2), (_STRIPES, 0.2), (_DOTS, 0.2), (_NOISE, 0.2), (_PLAIN, 0.2)),
        _VIVID,
        (0.08, 0.3),
        (0.4, 1.0),
        _VIVID,
    ),
    # street
    "sidewalk": _Style(
        ((_CHECKER, 0.35), (_GRID, 0.35), (_PLAIN, 0.3)),
        ((0.05, 0.15), (0.0, 0.25), (0.45, 0.8)),
        (0.3, 0.8),
        (0.1, 0.3),
        grid=(0.05, 0.12),
    ),
    "facade": _Style(
        ((_BRICK, 0.45), (_PLAIN, 0.55)),
        ((0.0, 0.15), (0.05, 0.5), (0.35, 0.9)),
        (0.3, 0.6),
        (0.2, 0.4),
    ),
    "windows": _Style(
        ((_GRID, 1.0),),
        ((0.5, 0.65), (0.05, 0.4), (0.05, 0.35)),
        (2.0, 4.0),
        (0.6, 1.0),
        ((0.0, 0.15), (0.05, 0.5), (0.35, 0.9)),
        (0.3, 0.6),
    ),
    "lowwall": _Style(
        ((_BRICK, 0.4), (_PLAIN, 0.3), (_STRIPES, 0.3)),
        ((0.0, 0.12), (0.0, 0.5), (0.3, 0.8)),
        (0.15, 0.5),
        (0.15, 0.45),
    ),
    "pole": _Style(
        ((_PLAIN, 0.8), (_STRIPES, 0.2)),
        (_ANY_HUE, (0.0, 0.2), (0.15, 0.6)),
        (0.3, 0.6),
        (0.3, 0.6),
    ),
    "sign": _Style(
        ((_PLAIN, 0.6), (_DOTS, 0.4)),
        ((0.0, 0.7), (0.6, 1.0), (0.5, 0.95)),
        (0.3, 0.6),
        (0.6, 1.0),
        ((0.0, 1.0), (0.0, 0.1), (0.9, 1.0)),
    ),
    "bark": _Style(
        ((_PLAIN, 0.5), (_STRIPES, 0.5)),
        ((0.05, 0.1), (0.3, 0.6), (0.15, 0.4)),
        (0.08, 0.2),
        (0.2, 0.4),
    ),
    "clothes": _Style(
        ((_PLAIN, 0.6), (_STRIPES, 0.4)),
        (_ANY_HUE, (0.1, 0.9), (0.1, 0.9)),
        (0.1, 0.25),
        (0.3, 0.7),
    ),
    "skin": _Style(((_PLAIN, 1.0),), ((0.03, 0.1), (0.25, 0.6), (0.35, 0.9))),
    "paint": _Style(((_PLAIN, 1.0),), (_ANY_HUE, (0.0, 0.9), (0.1, 0.95))),
    "glass": _Style(((_PLAIN, 1.0),), ((0.5, 0.7), (0.1, 0.4), (0.05, 0.25))),
}


class _Draw:
    """Uniform random numbers from a generator, fetched in blocks: scene sampling makes hundreds
    of scalar draws per image, and one numpy call per draw would dominate its cost."""

    def __init__(self, gen: np.random.Generator) -> None:
        self.gen = gen
        self._block: list[float] = []

    def random(self) -> float:
        if not self._block:
            self._block = self.gen.random(256).tolist()[::-1]
        return self._block.pop()

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.random()

    def integers(self, lo: int, hi: int | None = None) -> int:
        """An integer in [lo, hi), or in [0, lo) without ``hi``."""
        if hi is None:
            lo, hi = 0, lo
        return min(lo + int((hi - lo) * self.random()), hi - 1)

    def binomial(self, n: int, p: float) -> int:
        return sum(self.random() < p for _ in range(n))


def _pick(rng: _Draw, weighted):
    """One item of a sequence of (item, weight) pairs, drawn with probability ∝ weight."""
    r = rng.random() * sum(w for _, w in weighted)
    for item, w in weighted:
        r -= w
        if r < 0:
            return item
    return weighted[-1][0]


def _hsv(rng: _Draw, ranges) -> tuple[float, float, float]:
    h, s, v = (rng.uniform(lo, hi) for lo, hi in ranges)
    return colorsys.hsv_to_rgb(h % 1.0, s, v)


def _material(rng: _Draw, style_name: str) -> _Material:
    """Draw one random material from the named recipe."""
    style = _STYLES[style_name]
    family = _pick(rng, style.families)
    c0 = _hsv(rng, style.hsv)
    if family == _PLAIN:
        return _Material(_PLAIN, c0, c0)
    k = rng.uniform(*style.contrast)
    if style.hsv2 is not None:
        other = _hsv(rng, style.hsv2)
        c1 = tuple(a + k * (b - a) for a, b in zip(c0, other, strict=True))
    elif rng.random() < 0.5:
        c1 = tuple(a * (1.0 - k) for a in c0)
    else:
        c1 = tuple(a + k * (1.0 - a) for a in c0)
    scale = math.exp(rng.uniform(math.log(style.scale[0]), math.log(style.scale[1])))
    angle = math.pi / 2 * rng.integers(2) if rng.random() < 0.6 else rng.uniform(0, math.pi)
    offset = (rng.uniform(0, 100), rng.uniform(0, 100))
    if family == _STRIPES:
        p = (rng.uniform(0.3, 0.6),)
        mean, feature = p[0], min(p[0], 1 - p[0])
    elif family == _GRID:
        p = (rng.uniform(*style.grid), rng.uniform(*style.grid))
        mean, feature = p[0] + p[1] - p[0] * p[1], min(p)
    elif family == _DOTS:
        p = (rng.uniform(0.2, 0.42),)
        mean, feature = math.pi * p[0] ** 2, 2 * p[0]
    elif family == _BRICK:
        p = (rng.uniform(0.05, 0.12),)
        mean, feature = 3 * p[0], 0.25
    elif family == _WOOD:
        p = (rng.uniform(0.1, 0.3),)
        mean, feature = 1 / 3, 0.5
    elif family == _NOISE:
        p = ()
        mean, feature = 0.5, 0.5
    else:  # checker
        p = ()
        mean, feature = 0.5, 1.0
    return _Material(family, c0, tuple(c1), scale, float(angle), p, offset, mean, feature * scale)


def _road_material(rng: _Draw, half_width: float, length: float) -> _Material:
    """Asphalt with lane markings; the pattern is laid out in world metres (u = x, v = z)."""
    grey = rng.uniform(0.18, 0.4)
    c0 = _hsv(rng, ((0.55, 0.7), (0.0, 0.12), (grey, grey)))
    white = rng.uniform(0.75, 0.95)
    lanes = 2.0 if half_width > 5.0 else 1.0
    if rng.random() < 0.4:
        z0 = rng.uniform(8.0, max(9.0, length - 10.0))
        crossing = (z0, z0 + rng.uniform(3.0, 5.0))
    else:
        crossing = (-1.0, -1.0)
    params = (half_width, rng.uniform(0, 1), lanes, *crossing)
    return _Material(
        _ROAD, c0, (white, white, white * 0.97), params=params, mean=0.05, feature=0.12
    )


def _value_noise(table: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smooth value noise in [0, 1] on a wrapping lattice with unit cells."""
    fx, fy = np.floor(x), np.floor(y)
    tx, ty = x - fx, y - fy
    tx = tx * tx * (3 - 2 * tx)
    ty = ty * ty * (3 - 2 * ty)
    ix = fx.astype(np.int64) & (_NOISE_CELLS - 1)
    iy = fy.astype(np.int64) & (_NOISE_CELLS - 1)
    jx, jy = (ix + 1) & (_NOISE_CELLS - 1), (iy + 1) & (_NOISE_CELLS - 1)
    a, b = table[ix, iy], table[jx, iy]
    c, d = table[ix, jy], table[jx, jy]
    top = a + (b - a) * tx
    return top + (c + (d - c) * tx - top) * ty


def _road_marks(params: tuple[float, ...], x: np.ndarray, z: np.ndarray) -> np.ndarray:
    half_width, phase, lanes, cross0, cross1 = params
    ax = np.abs(x)
    dash = (z / 6.0 + phase) % 1.0 < 0.5
    marks = (ax < 0.07) & dash
    marks |= np.abs(ax - (half_width - 0.3)) < 0.08
    if lanes > 1:
        marks |= (np.abs(ax - half_width / 2) < 0.06) & dash
    marks |= (z > cross0) & (z < cross1) & (x % 1.0 < 0.5) & (ax < half_width - 0.5)
    return marks.astype(np.float32)


def _pattern(mat: _Material, u: np.ndarray, v: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The mixing weight m(u, v) in [0, 1] of a material at surface coordinates in metres."""
    if mat.family == _ROAD:
        return _road_marks(mat.params, u, v)
    ca, sa = math.cos(mat.angle) / mat.scale, math.sin(mat.angle) / mat.scale
    x = ca * u - sa * v + mat.offset[0]
    y = sa * u + ca * v + mat.offset[1]
    fam, p = mat.family, mat.params
    if fam == _CHECKER:
        m = (np.floor(x) + np.floor(y)) % 2.0
    elif fam == _STRIPES:
        m = x % 1.0 < p[0]
    elif fam == _GRID:
        m = (x % 1.0 < p[0]) | (y % 1.0 < p[1])
    elif fam == _DOTS:
        m = (x % 1.0 - 0.5) ** 2 + (y % 1.0 - 0.5) ** 2 < p[0] ** 2
    elif fam == _BRICK:
        rows = 2.0 * y
        shifted = x + 0.5 * (np.floor(rows) % 2.0)
        m = (shifted % 1.0 < p[0]) | (rows % 1.0 < 2.0 * p[0])
    elif fam == _WOOD:
        ring = np.sqrt(x * x + (p[0] * y) ** 2) + 0.15 * np.sin(1.7 * y)
        m = (ring % 1.0) ** 2
    else:  # noise
        m = 0.65 * _value_noise(table, x, y) + 0.35 * _value_noise(table, 2.1 * x, 2.1 * y)
    return m.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------
# Primitives and ray intersection
# ---------------------------------------------------------------------------------------------

_BOX, _SPHERE, _CYLINDER = range(3)


@dataclass(frozen=True)
class _Prim:
    """A primitive. ``size`` is the half extent (box), (r, r, r) (sphere) or (r, half height, r)
    (vertical cylinder); ``yaw`` rotates a box about its vertical axis."""

    shape: int
    cls: int
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    mat: _Material
    yaw: float = 0.0
    casts_shadow: bool = True

    def extent(self) -> tuple[float, float, float]:
        """Half extent of the world-axis-aligned bounding box."""
        if self.shape != _BOX or self.yaw == 0.0:
            return self.size
        c, s = abs(math.cos(self.yaw)), abs(math.sin(self.yaw))
        hx, hy, hz = self.size
        return (c * hx + s * hz, hy, s * hx + c * hz)


def _box(cls, center, half, mat, **kw) -> _Prim:
    return _Prim(_BOX, cls, center, half, mat, **kw)


def _sphere(cls, center, r, mat) -> _Prim:
    return _Prim(_SPHERE, cls, center, (r, r, r), mat)


def _cylinder(cls, x, y0, y1, z, r, mat) -> _Prim:
    return _Prim(_CYLINDER, cls, (x, (y0 + y1) / 2, z), (r, (y1 - y0) / 2, r), mat)


def _placed(prims: list[_Prim], x: float, z: float, yaw: float) -> list[_Prim]:
    """Move prims built around the origin: turn by ``yaw`` about the vertical, then shift to
    (x, z) on the floor."""
    c, s = math.cos(yaw), math.sin(yaw)
    out = []
    for p in prims:
        px, py, pz = p.center
        center = (x + c * px + s * pz, py, z - s * px + c * pz)
        out.append(replace(p, center=center, yaw=p.yaw + yaw if p.shape == _BOX else 0.0))
    return out


def _hit(p: _Prim, o, d, dd) -> np.ndarray:
    """Ray parameter of the first hit of rays ``o + t d`` (t > eps) with ``p``, else inf.

    ``o`` and ``d`` are (x, y, z) triples of scalars or arrays, ``dd`` is |d|^2.
    """
    ox, oy, oz = o[0] - p.center[0], o[1] - p.center[1], o[2] - p.center[2]
    dx, dy, dz = d
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if p.shape == _BOX:
            if p.yaw != 0.0:
                c, s = math.cos(p.yaw), math.sin(p.yaw)
                ox, oz = c * ox - s * oz, s * ox + c * oz
                dx, dz = c * dx - s * dz, s * dx + c * dz
            near = far = None
            for lo, ld, h in ((ox, dx, p.size[0]), (oy, dy, p.size[1]), (oz, dz, p.size[2])):
                inv = 1.0 / ld
                t1, t2 = (-h - lo) * inv, (h - lo) * inv
                tn, tf = np.minimum(t1, t2), np.maximum(t1, t2)
                near = tn if near is None else np.maximum(near, tn)
                far = tf if far is None else np.minimum(far, tf)
            return np.where((near <= far) & (near > _EPS), near, np.inf)
        r = p.size[0]
        if p.shape == _SPHERE:
            b = ox * dx + oy * dy + oz * dz
            disc = b * b - dd * (ox * ox + oy * oy + oz * oz - r * r)
            t = (-b - np.sqrt(disc)) / dd
            return np.where((disc >= 0) & (t > _EPS), t, np.inf)
        # vertical cylinder: side, then the cap facing the ray
        a = dx * dx + dz * dz
        b = ox * dx + oz * dz
        disc = b * b - a * (ox * ox + oz * oz - r * r)
        t = (-b - np.sqrt(disc)) / a
        hh = p.size[1]
        side = (disc >= 0) & (t > _EPS) & (np.abs(oy + t * dy) <= hh)
        t_side = np.where(side, t, np.inf)
        t_cap = (np.where(dy < 0, hh, -hh) - oy) / dy
        cx, cz = ox + t_cap * dx, oz + t_cap * dz
        cap = (t_cap > _EPS) & (cx * cx + cz * cz <= r * r)
        return np.minimum(t_side, np.where(cap, t_cap, np.inf))


def _surface(p: _Prim, x: np.ndarray, y: np.ndarray, z: np.ndarray):
    """World normal and 2-D surface coordinates (metres) at points on the surface of ``p``."""
    lx, ly, lz = x - p.center[0], y - p.center[1], z - p.center[2]
    if p.shape == _BOX:
        c, s = math.cos(p.yaw), math.sin(p.yaw)
        lx, lz = c * lx - s * lz, s * lx + c * lz
        gx, gy, gz = (h - np.abs(a) for h, a in zip(p.size, (lx, ly, lz), strict=True))
        on_x = (gx <= gy) & (gx <= gz)  # the face nearest to the point
        on_y = ~on_x & (gy <= gz)
        on_z = ~on_x & ~on_y
        nx, ny, nz = np.sign(lx) * on_x, np.sign(ly) * on_y, np.sign(lz) * on_z
        nx, nz = c * nx + s * nz, -s * nx + c * nz
        return (nx, ny, nz), (np.where(on_x, lz, lx), np.where(on_y, lz, ly))
    r = p.size[0]
    if p.shape == _SPHERE:
        nx, ny, nz = lx / r, ly / r, lz / r
        return (nx, ny, nz), (r * np.arctan2(nx, nz), r * np.arcsin(np.clip(ny, -1, 1)))
    rho = np.maximum(np.sqrt(lx * lx + lz * lz), 1e-6)
    cap = p.size[1] - np.abs(ly) < r - rho
    nx, nz = np.where(cap, 0.0, lx / rho), np.where(cap, 0.0, lz / rho)
    ny = np.where(cap, np.sign(ly), 0.0)
    around = r * np.arctan2(lx, lz)
    return (nx, ny, nz), (np.where(cap, lx, around), np.where(cap, lz, ly))


# ---------------------------------------------------------------------------------------------
# Scenes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Room:
    """Inside of the box [-wx/2, wx/2] x [0, hy] x [0, dz]."""

    wx: float
    hy: float
    dz: float
    wall: _Material
    floor: _Material
    ceiling: _Material
    classes: tuple[int, int, int]  # wall, floor, ceiling


@dataclass(frozen=True)
class _Street:
    """Ground plane y = 0: road for |x| < half_width, sidewalk beyond; sky where nothing is hit."""

    half_width: float
    road: _Material
    sidewalk: _Material
    horizon: tuple[float, float, float]
    zenith: tuple[float, float, float]
    classes: tuple[int, int, int]  # road, sidewalk, sky


@dataclass(frozen=True)
class _Scene:
    env: _Room | _Street
    prims: list[_Prim]
    camera: tuple[float, float, float]
    yaw: float
    pitch: float
    hfov: float
    light: tuple[float, float, float]  # position (point light) or direction towards the sun
    point_light: bool
    light_rgb: tuple[float, float, float]
    ambient_rgb: tuple[float, float, float]
    noise_table: np.ndarray
    sensor_sigma: float  # grey levels


def _light(rng: _Draw, lo: float, hi: float) -> tuple[float, float, float]:
    """Random light colour times intensity: a tint around white."""
    level = rng.uniform(lo, hi)
    return colorsys.hsv_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.25), level)


class _Layout:
    """Axis-aligned footprints already taken on the floor, for rejection sampling."""

    def __init__(self) -> None:
        self.boxes: list[tuple[float, float, float, float]] = []

    def free(self, x: float, z: float, ex: float, ez: float) -> bool:
        return all(
            x + ex < x0 or x - ex > x1 or z + ez < z0 or z - ez > z1
            for x0, x1, z0, z1 in self.boxes
        )

    def take(self, x: float, z: float, ex: float, ez: float) -> None:
        self.boxes.append((x - ex, x + ex, z - ez, z + ez))


def _furniture(rng: _Draw, kind: str, cls: int) -> tuple[list[_Prim], float, float, float]:
    """A floor object around the origin, back towards +z: (prims, half width, half depth,
    probability that it stands against a wall)."""
    u = rng.uniform
    if kind == "bed":
        hx, hz, h, head = u(0.6, 0.9), u(0.95, 1.1), u(0.45, 0.65), u(0.9, 1.2)
        return (
            [
                _box(cls, (0, h / 2, -0.04), (hx, h / 2, hz - 0.04), _material(rng, "bed")),
                _box(cls, (0, head / 2, hz - 0.04), (hx, head / 2, 0.04), _material(rng, "wood")),
            ],
            hx,
            hz,
            0.8,
        )
    if kind in ("cabinet", "shelf"):
        hx, hz, h = u(0.3, 0.7), u(0.2, 0.3), u(0.8, 2.0) if kind == "cabinet" else u(1.2, 2.05)
        style = "wood" if kind == "cabinet" else "shelf"
        return [_box(cls, (0, h / 2, 0), (hx, h / 2, hz), _material(rng, style))], hx, hz, 0.7
    if kind == "sofa":
        hx, hz, seat, back = u(0.8, 1.2), u(0.4, 0.5), u(0.4, 0.5), u(0.8, 0.95)
        mat = _material(rng, "fabric")
        return (
            [
                _box(cls, (0, seat / 2, -0.1), (hx, seat / 2, hz - 0.1), mat),
                _box(cls, (0, back / 2, hz - 0.1), (hx, back / 2, 0.1), mat),
            ],
            hx,
            hz,
            0.6,
        )
    if kind in ("table", "chair"):
        hx, hz = (u(0.4, 0.9), u(0.3, 0.5)) if kind == "table" else (u(0.22, 0.28), u(0.22, 0.28))
        h, thick = (u(0.7, 0.8), 0.05) if kind == "table" else (u(0.42, 0.5), 0.06)
        top = _material(rng, "wood" if kind == "table" else "chair")
        leg_mat = _material(rng, "metal") if rng.random() < 0.5 else top
        prims = [_box(cls, (0, h - thick / 2, 0), (hx, thick / 2, hz), top)]
        if kind == "chair":
            back = u(0.4, 0.55)
            prims.append(_box(cls, (0, h + back / 2, hz - 0.03), (hx, back / 2, 0.03), top))
        under, leg = (h - thick) / 2, 0.03
        if kind == "table" and rng.random() < 0.5:  # pedestal
            prims.append(_cylinder(cls, 0, 0, h - thick, 0, u(0.05, 0.08), leg_mat))
        elif kind == "table":  # four legs
            prims += [
                _box(cls, (sx * (hx - leg), under, sz * (hz - leg)), (leg, under, leg), leg_mat)
                for sx in (-1, 1)
                for sz in (-1, 1)
            ]
        else:  # sled base: two side panels
            prims += [
                _box(cls, (sx * (hx - leg), under, 0), (leg, under, hz), leg_mat) for sx in (-1, 1)
            ]
        return prims, hx, hz, 0.2
    if kind == "lamp":
        h, r, shade = u(1.2, 1.6), u(0.2, 0.35), u(0.3, 0.45)
        return (
            [
                _cylinder(cls, 0, 0, h, 0, 0.04, _material(rng, "metal")),
                _cylinder(cls, 0, h, h + shade, 0, r, _material(rng, "lampshade")),
            ],
            r,
            r,
            0.3,
        )
    if kind == "rug":
        hx, hz = u(0.6, 1.3), u(0.4, 1.0)
        return (
            [_box(cls, (0, 0.008, 0), (hx, 0.008, hz), _material(rng, "rug"), casts_shadow=False)],
            hx,
            hz,
            0.0,
        )
    if kind == "plant":
        r, pot = u(0.13, 0.22), u(0.3, 0.5)
        crown = u(0.3, 0.5)
        return (
            [
                _cylinder(cls, 0, 0, pot, 0, r, _material(rng, "pot")),
                _sphere(cls, (0, pot + crown * 0.8, 0), crown, _material(rng, "foliage")),
            ],
            crown,
            crown,
            0.3,
        )
    # ball / object: balls, crates and vases
    shape = 0 if kind == "ball" else rng.integers(3)
    style = "ball" if kind == "ball" else "object"
    if shape == 0:
        r = u(0.2, 0.45)
        return [_sphere(cls, (0, r, 0), r, _material(rng, style))], r, r, 0.0
    if shape == 1:
        hx, hy, hz = u(0.2, 0.45), u(0.2, 0.45), u(0.2, 0.45)
        return [_box(cls, (0, hy, 0), (hx, hy, hz), _material(rng, style))], hx, hz, 0.3
    r = u(0.12, 0.25)
    return [_cylinder(cls, 0, 0, u(0.4, 0.9), 0, r, _material(rng, style))], r, r, 0.2


_Z_MIN = 1.0  # floor objects stand at least this far into the room (the camera is nearer)


def _footprint(hx: float, hz: float, yaw: float) -> tuple[float, float]:
    """Half extents along world x and z of a rectangle of half extents (hx, hz) turned by yaw."""
    c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
    return c * hx + s * hz, s * hx + c * hz


def _floor_pose(rng: _Draw, room: _Room, hx: float, hz: float, p_wall: float):
    """Random (x, z, yaw) of a floor object with its back to the back, left or right wall, or
    free; ``None`` if it does not fit in the room in the drawn orientation."""
    side = rng.integers(3) if rng.random() < p_wall else None
    yaw = rng.uniform(0.0, 2 * math.pi) if side is None else (0.0, -math.pi / 2, math.pi / 2)[side]
    ex, ez = _footprint(hx, hz, yaw)
    x_lo, x_hi, z_lo, z_hi = -room.wx / 2 + ex, room.wx / 2 - ex, _Z_MIN + ez, room.dz - ez
    if x_lo > x_hi or z_lo > z_hi:
        return None
    x, z = rng.uniform(x_lo, x_hi), rng.uniform(z_lo, z_hi)
    if side == 0:
        z = z_hi - 0.02
    elif side is not None:
        x = x_lo + 0.02 if side == 1 else x_hi - 0.02
    return x, z, yaw


_WALL_ITEMS = {  # width, height, bottom ranges (metres) of items hung on walls
    "tv": ((0.9, 1.5), (0.55, 0.85), (0.9, 1.3)),
    "painting": ((0.6, 1.5), (0.5, 1.1), (1.0, 1.5)),
    "window": ((0.9, 2.0), (1.1, 1.6), (0.8, 1.1)),
}

_ROOM_OBJECTS = {  # object kind -> sampling weight, per preset
    "synth-nyuv2": {
        "bed": 0.07,
        "cabinet": 0.12,
        "sofa": 0.09,
        "table": 0.11,
        "chair": 0.12,
        "tv": 0.07,
        "painting": 0.1,
        "window": 0.09,
        "lamp": 0.08,
        "object": 0.15,
    },
    "synth-taskonomy": {
        "bed": 0.05,
        "cabinet": 0.08,
        "shelf": 0.08,
        "sofa": 0.06,
        "table": 0.07,
        "chair": 0.08,
        "tv": 0.05,
        "painting": 0.07,
        "window": 0.07,
        "lamp": 0.06,
        "rug": 0.08,
        "plant": 0.08,
        "ball": 0.12,
    },
}


def _wall_item(rng: _Draw, kind: str, cls: int, room: _Room, walls) -> list[_Prim]:
    """A flat item on the back (0), left (1) or right (2) wall, or nothing if it does not fit.

    ``walls`` holds per wall the (start, end, bottom, top) rectangles already hung there."""
    (w0, w1), (h0, h1), (b0, b1) = _WALL_ITEMS[kind]
    u = rng.uniform
    w, h = u(w0, w1), u(h0, h1)
    bottom = min(u(b0, b1), room.hy - h - 0.1)
    depth = 0.06 if kind == "tv" else 0.03
    item = [
        _box(
            cls,
            (0, bottom + h / 2, 0),
            (w / 2, h / 2, depth / 2),
            _material(rng, kind),
            casts_shadow=False,
        )
    ]
    for _ in range(10):
        side = _pick(rng, ((0, 0.6), (1, 0.2), (2, 0.2)))
        lo, hi = (-room.wx / 2, room.wx / 2) if side == 0 else (0.6, room.dz)
        if hi - lo < w + 0.2:
            continue
        a = u(lo + 0.1 + w / 2, hi - 0.1 - w / 2)
        if any(
            a + w / 2 > a0 and a - w / 2 < a1 and bottom + h > y0 and bottom < y1
            for a0, a1, y0, y1 in walls[side]
        ):
            continue
        walls[side].append((a - w / 2, a + w / 2, bottom, bottom + h))
        if side == 0:
            return _placed(item, a, room.dz - depth / 2, 0.0)
        sign = 1.0 if side == 2 else -1.0
        return _placed(item, sign * (room.wx / 2 - depth / 2), a, sign * math.pi / 2)
    return []


def _room_scene(gen: np.random.Generator, preset: SyntheticPreset) -> _Scene:
    rng = _Draw(gen)
    cid = preset.class_names.index
    u = rng.uniform
    wx, hy, dz = u(3.5, 5.5), u(2.4, 3.0), u(4.0, 6.5)
    env = _Room(
        wx,
        hy,
        dz,
        _material(rng, "wall"),
        _material(rng, "floor"),
        _material(rng, "ceiling"),
        (cid("wall"), cid("floor"), cid("ceiling")),
    )
    camera = (u(-wx / 2 + 0.4, wx / 2 - 0.4), u(1.1, 1.6), u(0.2, 0.7))
    target = (u(-wx / 4, wx / 4), u(0.5 * dz, 0.9 * dz))
    yaw = math.atan2(target[0] - camera[0], target[1] - camera[2]) + u(-0.2, 0.2)
    pitch = -math.radians(u(5.0, 22.0))
    hfov = math.radians(u(55.0, 75.0))

    kinds = tuple(_ROOM_OBJECTS[preset.name].items())
    floor, walls = _Layout(), ([], [], [])
    prims: list[_Prim] = []
    for _ in range(4 + rng.binomial(8, 0.7)):
        kind = _pick(rng, kinds)
        if kind in _WALL_ITEMS:
            prims += _wall_item(rng, kind, cid(kind), env, walls)
            continue
        parts, hx, hz, p_wall = _furniture(rng, kind, cid(kind))
        for _ in range(20):
            pose = _floor_pose(rng, env, hx, hz, p_wall)
            if pose is None:
                continue
            x, z, yaw_o = pose
            ex, ez = _footprint(hx, hz, yaw_o)
            if kind == "rug" or floor.free(x, z, ex, ez):
                if kind != "rug":
                    floor.take(x, z, ex, ez)
                prims += _placed(parts, x, z, yaw_o)
                break

    light = (u(-wx / 2 + 0.5, wx / 2 - 0.5), hy - u(0.15, 0.35), u(0.5, dz - 0.5))
    return _Scene(
        env,
        prims,
        camera,
        yaw,
        pitch,
        hfov,
        light,
        True,
        _light(rng, 0.9, 1.5),
        _light(rng, 0.25, 0.45),
        gen.random((_NOISE_CELLS,) * 2, dtype=np.float32),
        u(1.0, 5.0),
    )


def _facade(rng: _Draw) -> _Material:
    """A building front: rows of dark windows (55 %), brick or plain render."""
    return _material(rng, "windows" if rng.random() < 0.55 else "facade")


def _tree(rng: _Draw, cls: int) -> list[_Prim]:
    """A trunk and a round crown around the origin."""
    r, h, crown = rng.uniform(0.12, 0.25), rng.uniform(2.0, 3.5), rng.uniform(1.2, 2.5)
    return [
        _cylinder(cls, 0, 0, h, 0, r, _material(rng, "bark")),
        _sphere(cls, (0, h + 0.6 * crown, 0), crown, _material(rng, "foliage")),
    ]


def _street_objects(
    rng: _Draw, cid, hw: float, sw: float, length: float, lane: float
) -> list[_Prim]:
    """Cars, people, poles, trees, low walls and hedges along the street; ``lane`` is the x of
    the camera, which often follows a car."""
    u = rng.uniform
    layout, prims = _Layout(), []

    def put(parts: list[_Prim], x: float, z: float, yaw: float, hx: float, hz: float) -> None:
        ex, ez = _footprint(hx, hz, yaw)
        if layout.free(x, z, ex, ez):
            layout.take(x, z, ex, ez)
            prims.extend(_placed(parts, x, z, yaw))

    car = cid("car")
    for i in range(rng.integers(2, 11)):
        hx, hy, hz = u(0.85, 0.95), u(0.35, 0.45), u(1.9, 2.4)
        cab = (u(0.72, 0.82), u(0.25, 0.3), hz * u(0.45, 0.6))
        parts = [
            _box(car, (0, 0.2 + hy, 0), (hx, hy, hz), _material(rng, "paint")),
            _box(car, (0, 0.2 + 2 * hy + cab[1], -0.15 * hz), cab, _material(rng, "glass")),
        ]
        if i == 0 and rng.random() < 0.7:  # the car ahead
            x, z, yaw = lane + u(-0.5, 0.5), u(5.0, 12.0), u(-0.08, 0.08)
        elif rng.random() < 0.6:  # parked along a kerb
            sign = 1.0 if rng.random() < 0.5 else -1.0
            x, z, yaw = sign * (hw - u(1.0, 1.3)), u(5.0, 0.7 * length), u(-0.05, 0.05)
        else:  # driving in a lane
            x, z = u(-hw + 1.2, hw - 1.2), u(8.0, 0.7 * length)
            yaw = (math.pi if x < 0 else 0.0) + u(-0.1, 0.1)
        put(parts, x, z, yaw, hx, hz)

    person = cid("person")
    for _ in range(rng.integers(1, 7)):
        r, h, head = u(0.22, 0.3), u(1.2, 1.45), u(0.11, 0.14)
        parts = [
            _cylinder(person, 0, 0, h, 0, r, _material(rng, "clothes")),
            _sphere(person, (0, h + 0.9 * head, 0), head, _material(rng, "skin")),
        ]
        sign = 1.0 if rng.random() < 0.5 else -1.0
        x = sign * (hw + u(0.5, sw - 0.3)) if rng.random() < 0.8 else u(-hw + 0.5, hw - 0.5)
        put(parts, x, u(2.5, 14.0), 0.0, r, r)

    pole = cid("pole")
    for _ in range(rng.integers(1, 6)):
        r, h = u(0.1, 0.2), u(3.0, 7.0)
        parts = [_cylinder(pole, 0, 0, h, 0, r, _material(rng, "pole"))]
        if rng.random() < 0.5:
            hs = u(0.35, 0.55)
            parts.append(
                _box(pole, (0, h - hs - 0.2, -r - 0.03), (hs, hs, 0.03), _material(rng, "sign"))
            )
        sign = 1.0 if rng.random() < 0.5 else -1.0
        put(parts, sign * (hw + u(0.3, 0.6)), u(3.0, 0.7 * length), 0.0, r, r)

    vegetation = cid("vegetation")
    for _ in range(rng.integers(1, 7)):
        parts = _tree(rng, vegetation)
        sign = 1.0 if rng.random() < 0.5 else -1.0
        r = parts[0].size[0]
        put(parts, sign * (hw + sw * u(0.45, 0.8)), u(3.0, 0.8 * length), 0.0, r, r)

    for _ in range(rng.integers(0, 3)):
        half_len = u(2.0, 6.0)
        if rng.random() < 0.5:
            cls, h, half_thick, style = cid("wall"), u(1.0, 2.5), 0.15, "lowwall"
        else:
            cls, h, half_thick, style = vegetation, u(0.7, 1.5), u(0.3, 0.5), "foliage"
        parts = [_box(cls, (0, h / 2, 0), (half_thick, h / 2, half_len), _material(rng, style))]
        sign = 1.0 if rng.random() < 0.5 else -1.0
        put(
            parts,
            sign * (hw + sw - half_thick - u(0.05, 0.3)),
            u(2.0, 0.6 * length),
            0.0,
            half_thick,
            half_len,
        )
    return prims


def _street_scene(gen: np.random.Generator, preset: SyntheticPreset) -> _Scene:
    rng = _Draw(gen)
    cid = preset.class_names.index
    u = rng.uniform
    hw, sw, curb, length = u(3.0, 6.0), u(3.0, 5.5), u(0.1, 0.18), u(35.0, 70.0)
    horizon = _hsv(rng, ((0.55, 0.62), (0.0, 0.15), (0.75, 0.95)))
    overcast = rng.random() < 0.4
    zenith = _hsv(rng, ((0.55, 0.65), (0.0, 0.15) if overcast else (0.4, 0.8), (0.6, 0.95)))
    env = _Street(
        hw,
        _road_material(rng, hw, length),
        _material(rng, "sidewalk"),
        horizon,
        zenith,
        (cid("road"), cid("sidewalk"), cid("sky")),
    )
    building = cid("building")
    prims: list[_Prim] = []
    for sign in (-1.0, 1.0):
        prims.append(
            _box(
                cid("sidewalk"),
                (sign * (hw + 20), curb / 2, (length - 17) / 2),
                (20.0, curb / 2, (length + 17) / 2),
                env.sidewalk,
                casts_shadow=False,
            )
        )
        z = -15.0
        while z < length:
            width, front = u(6.0, 20.0), hw + sw + u(0.0, 1.5)
            if rng.random() < 0.25:  # a yard: wall on the building line, trees, house set back
                wall = u(1.5, 3.0)
                prims.append(
                    _box(
                        cid("wall"),
                        (sign * (front + 0.15), wall / 2, z + width / 2),
                        (0.15, wall / 2, width / 2),
                        _material(rng, "lowwall"),
                    )
                )
                yard = u(6.0, 12.0)
                for _ in range(rng.integers(0, 3)):
                    prims += _placed(
                        _tree(rng, cid("vegetation")),
                        sign * (front + u(2.0, yard - 2.0)),
                        z + u(1.0, width - 1.0),
                        0.0,
                    )
                front += yard
            height = u(6.0, 25.0)
            prims.append(
                _box(
                    building,
                    (sign * (front + 5), height / 2, z + width / 2),
                    (5.0, height / 2, width / 2),
                    _facade(rng),
                )
            )
            z += width
    height = u(8.0, 25.0)
    prims.append(
        _box(building, (0.0, height / 2, length + 8), (hw + sw + 30, height / 2, 8.0), _facade(rng))
    )
    camera = (hw * u(0.25, 0.75) * (1.0 if rng.random() < 0.5 else -1.0), u(1.0, 1.5), 0.0)
    yaw, pitch, hfov = u(-0.35, 0.35), math.radians(u(-2.0, 7.0)), math.radians(u(60.0, 85.0))
    prims += _street_objects(rng, cid, hw, sw, length, camera[0])
    elevation, azimuth = math.radians(u(20.0, 65.0)), u(0.0, 2 * math.pi)
    sun = (
        math.cos(elevation) * math.sin(azimuth),
        math.sin(elevation),
        math.cos(elevation) * math.cos(azimuth),
    )
    return _Scene(
        env,
        prims,
        camera,
        yaw,
        pitch,
        hfov,
        sun,
        False,
        _light(rng, 0.6, 1.0),
        _light(rng, 0.3, 0.5),
        gen.random((_NOISE_CELLS,) * 2, dtype=np.float32),
        u(1.0, 5.0),
    )


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

_CORNERS = np.array(
    [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64
)


def _project_boxes(prims: list[_Prim], origin, axes: np.ndarray, perspective: bool):
    """Bounds of the primitives' bounding boxes seen from ``origin`` along the rows of ``axes``
    (right, down, forward): per primitive (xmin, xmax, ymin, ymax) in x/z, y/z (perspective) or
    x, y (orthographic), whether all corners are in front (bounds valid) and whether any is."""
    centres = np.array([p.center for p in prims], dtype=np.float64)
    extents = np.array([p.extent() for p in prims], dtype=np.float64)
    corners = centres[:, None, :] + _CORNERS[None] * extents[:, None, :] - np.asarray(origin)
    cam = corners @ axes.T
    x, y, z = cam[..., 0], cam[..., 1], cam[..., 2]
    front = z > 1e-3
    if perspective:
        z = np.where(front, z, 1.0)
        x, y = x / z, y / z
    bounds = np.stack([x.min(1), x.max(1), y.min(1), y.max(1)], axis=1)
    return bounds, front.all(1), front.any(1)


def _camera_axes(yaw: float, pitch: float) -> np.ndarray:
    """Rows: camera right, down and forward in world coordinates (OpenCV camera frame)."""
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    return np.array([[cy, 0.0, -sy], [sy * sp, -cp, cy * sp], [sy * cp, sp, cy * cp]])


def _env_hit(env: _Room | _Street, o, d) -> np.ndarray:
    """Ray parameter where primary rays leave the room, or meet the ground (inf: sky)."""
    with np.errstate(divide="ignore"):
        if isinstance(env, _Street):
            return np.where(d[1] < 0, -o[1] / d[1], np.inf).astype(np.float32)
        t = None
        for ok, dk, centre, half in (
            (o[0], d[0], 0.0, env.wx / 2),
            (o[1], d[1], env.hy / 2, env.hy / 2),
            (o[2], d[2], env.dz / 2, env.dz / 2),
        ):
            tk = (half - np.sign(dk) * (ok - centre)) / np.abs(dk)
            t = tk if t is None else np.minimum(t, tk)
    return t


def _env_patches(env: _Room | _Street, x, y, z):
    """Split environment points into patches: (selection, normal, (u, v), material, class)."""
    if isinstance(env, _Street):
        road = np.abs(x) < env.half_width
        return [
            (road, (0.0, 1.0, 0.0), (x, z), env.road, env.classes[0]),
            (~road, (0.0, 1.0, 0.0), (x, z), env.sidewalk, env.classes[1]),
        ]
    gaps = np.stack([x + env.wx / 2, env.wx / 2 - x, y, env.hy - y, z, env.dz - z])
    face = np.argmin(np.abs(gaps), axis=0)
    wall, floor, ceiling = env.classes
    faces = [
        ((1.0, 0.0, 0.0), (z, y), env.wall, wall),
        ((-1.0, 0.0, 0.0), (z, y), env.wall, wall),
        ((0.0, 1.0, 0.0), (x, z), env.floor, floor),
        ((0.0, -1.0, 0.0), (x, z), env.ceiling, ceiling),
        ((0.0, 0.0, 1.0), (x, y), env.wall, wall),
        ((0.0, 0.0, -1.0), (x, y), env.wall, wall),
    ]
    return [(face == k, *spec) for k, spec in enumerate(faces)]


def _shadowed(
    scene: _Scene, q: np.ndarray, n: np.ndarray, to_light: np.ndarray, dist: np.ndarray
) -> np.ndarray:
    """Which surface points ``q`` (3, M) with normals ``n`` see no light: shadow rays along
    ``to_light`` (unit, 3 x M) up to ``dist``, tested against every shadow-casting primitive whose
    light-space bounds cover the point."""
    casters = [p for p in scene.prims if p.casts_shadow]
    shadow = np.zeros(q.shape[1], dtype=bool)
    if not casters:
        return shadow
    if scene.point_light:
        # central projection from the light onto a horizontal plane below it; the objects are
        # kept below the light, so points above it are lit
        axes = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
        below = scene.light[1] - q[1]
        keep = np.flatnonzero(below > 1e-3)
        a = (q[0, keep] - scene.light[0]) / below[keep]
        b = (q[2, keep] - scene.light[2]) / below[keep]
    else:  # orthographic projection along the sun direction
        sun = np.array(scene.light)
        e1 = np.array([sun[2], 0.0, -sun[0]]) / math.hypot(sun[0], sun[2])
        axes = np.stack([e1, np.cross(sun, e1), -sun])
        keep = np.arange(q.shape[1])
        a, b = axes[:2].astype(np.float32) @ q
    if keep.size == 0:
        return shadow
    bounds, all_front, any_front = _project_boxes(casters, scene.light, axes, scene.point_light)

    # sort the points into buckets of their first light-space coordinate (a radix sort of 16-bit
    # bins), so that the points a caster may shade form one contiguous run
    a_lo = float(a.min())
    to_bin = (_SHADOW_BINS - 1) / max(float(a.max()) - a_lo, 1e-6)
    bins = ((a - a_lo) * to_bin).astype(np.int16)
    order = np.argsort(bins, kind="stable")
    bins, a, b, keep = bins[order], a[order], b[order], keep[order]
    origin = q[:, keep] + n[:, keep] * (1e-3 + 2e-5 * np.abs(q[:, keep]).sum(0))
    direction, dist = to_light[:, keep], dist[keep]
    hidden = np.zeros(keep.size, dtype=bool)
    for k, prim in enumerate(casters):
        if not any_front[k]:
            continue
        if all_front[k]:
            x0, x1, y0, y1 = bounds[k]
            first = math.floor(min(max((x0 - a_lo) * to_bin, -1.0), _SHADOW_BINS))
            last = math.floor(min(max((x1 - a_lo) * to_bin, -1.0), _SHADOW_BINS))
            lo, hi = np.searchsorted(bins, (first, last + 1))
            run = slice(lo, hi)
            cand = (a[run] >= x0) & (a[run] <= x1) & (b[run] >= y0) & (b[run] <= y1)
            cand &= ~hidden[run]
        else:
            lo, cand = 0, ~hidden
        idx = np.flatnonzero(cand) + lo
        if idx.size:
            t = _hit(prim, tuple(origin[:, idx]), tuple(direction[:, idx]), 1.0)
            hidden[idx[t < dist[idx]]] = True
    shadow[keep] = hidden
    return shadow


def _render(scene: _Scene, height: int, width: int):
    """Ray cast one scene: clean RGB in [0, 1] (H, W, 3), class ids (H, W), camera-frame normals
    (3, H, W), z-depth (H, W)."""
    axes = _camera_axes(scene.yaw, scene.pitch)
    f = width / 2 / math.tan(scene.hfov / 2)
    xs = ((np.arange(width, dtype=np.float32) + 0.5 - width / 2) / f)[None, :]
    ys = ((np.arange(height, dtype=np.float32) + 0.5 - height / 2) / f)[:, None]
    right, down, fwd = axes.tolist()
    d = [(fwd[k] + right[k] * xs + down[k] * ys).astype(np.float32) for k in range(3)]
    dd = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    o = scene.camera

    # primary rays: environment first, then every primitive inside its screen rectangle
    n_prims = len(scene.prims)
    t = _env_hit(scene.env, o, d)
    ids = np.where(np.isfinite(t), n_prims, -1).astype(np.int16)
    if n_prims:
        bounds, all_front, any_front = _project_boxes(scene.prims, o, axes, True)
    for k, prim in enumerate(scene.prims):
        if not any_front[k]:
            continue
        r0, r1, c0, c1 = 0, height, 0, width
        if all_front[k]:
            x0, x1, y0, y1 = bounds[k]
            c0, c1 = (
                max(0, math.floor(width / 2 + f * x0 - 1)),
                min(width, math.ceil(width / 2 + f * x1 + 1)),
            )
            r0, r1 = (
                max(0, math.floor(height / 2 + f * y0 - 1)),
                min(height, math.ceil(height / 2 + f * y1 + 1)),
            )
            if c0 >= c1 or r0 >= r1:
                continue
        win = (slice(r0, r1), slice(c0, c1))
        tk = _hit(prim, o, (d[0][win], d[1][win], d[2][win]), dd[win])
        closer = tk < t[win]
        np.copyto(t[win], tk, where=closer)
        np.copyto(ids[win], k, where=closer)

    # Shading works on pixels sorted by what they hit (sky, primitive 0, 1, ..., environment),
    # so that each surface is a contiguous run; the results are unsorted at the end.
    t, ids = t.ravel(), ids.ravel()
    order = np.argsort(ids, kind="stable")  # radix sort
    starts = np.searchsorted(ids[order], np.arange(-1, n_prims + 2)).tolist()
    n_pix, n_sky = t.size, starts[1]
    hit = slice(n_sky, n_pix)
    ts, dds = t[order], dd.ravel()[order]
    ds = np.stack([c.ravel()[order] for c in d])
    points = np.zeros((3, n_pix), dtype=np.float32)
    points[:, hit] = np.asarray(o, dtype=np.float32)[:, None] + ts[hit] * ds[:, hit]
    cls = np.zeros(n_pix, dtype=np.uint8)
    normal = np.zeros((3, n_pix), dtype=np.float32)
    albedo = np.zeros((3, n_pix), dtype=np.float32)
    table = scene.noise_table

    def paint(sel, nrm, uv, mat: _Material, cid: int) -> None:
        cls[sel] = cid
        for k in range(3):
            normal[k, sel] = nrm[k]
        c0, c1 = np.array(mat.c0, np.float32)[:, None], np.array(mat.c1, np.float32)[:, None]
        if mat.family == _PLAIN:
            albedo[:, sel] = c0
            return
        m = _pattern(mat, uv[0], uv[1], table)
        facing = np.abs(nrm[0] * ds[0, sel] + nrm[1] * ds[1, sel] + nrm[2] * ds[2, sel])
        feature_px = mat.feature * f * facing / (np.sqrt(dds[sel]) * ts[sel])
        m = mat.mean + (m - mat.mean) * np.clip(feature_px - 1.0, 0.0, 1.0)
        albedo[:, sel] = c0 + (c1 - c0) * m[None]

    for k in range(n_prims + 1):
        run = slice(starts[k + 1], starts[k + 2])
        if run.start == run.stop:
            continue
        x, y, z = points[:, run]
        if k < n_prims:
            prim = scene.prims[k]
            nrm, uv = _surface(prim, x, y, z)
            paint(run, nrm, uv, prim.mat, prim.cls)
        else:
            for sel, nrm, uv, mat, cid in _env_patches(scene.env, x, y, z):
                if sel.any():
                    paint(np.flatnonzero(sel) + run.start, nrm, (uv[0][sel], uv[1][sel]), mat, cid)

    # lighting: ambient + Lambert with shadows
    rgb = np.empty((3, n_pix), dtype=np.float32)
    q, nrm = points[:, hit], normal[:, hit]
    if scene.point_light:
        to_light = np.asarray(scene.light, dtype=np.float32)[:, None] - q
        dist = np.sqrt(to_light[0] ** 2 + to_light[1] ** 2 + to_light[2] ** 2)
        to_light = to_light / dist
        falloff = 1.0 / (1.0 + (dist / 4.0) ** 2)
    else:
        to_light = np.broadcast_to(np.asarray(scene.light, dtype=np.float32)[:, None], q.shape)
        dist = np.full(q.shape[1], np.inf, dtype=np.float32)
        falloff = 1.0
    cosine = nrm[0] * to_light[0] + nrm[1] * to_light[1] + nrm[2] * to_light[2]
    direct = np.maximum(cosine, 0.0) * falloff
    lit = np.flatnonzero(direct > 0)
    direct[lit[_shadowed(scene, q[:, lit], nrm[:, lit], to_light[:, lit], dist[lit])]] = 0.0
    for k in range(3):
        rgb[k, hit] = albedo[k, hit] * (scene.ambient_rgb[k] + scene.light_rgb[k] * direct)
    if n_sky:
        env = scene.env
        cls[:n_sky] = env.classes[2]
        up = np.clip(ds[1, :n_sky] / np.sqrt(dds[:n_sky]) * 1.6, 0.0, 1.0)
        for k in range(3):
            rgb[k, :n_sky] = env.horizon[k] + (env.zenith[k] - env.horizon[k]) * up

    # back to image order
    normal /= np.maximum(np.sqrt(normal[0] ** 2 + normal[1] ** 2 + normal[2] ** 2), 1e-12)
    cam_normal = np.empty((3, n_pix), dtype=np.float32)
    cam_normal[:, order] = axes.astype(np.float32) @ normal
    image = np.empty((n_pix, 3), dtype=np.float32)
    image[order] = np.clip(rgb, 0.0, 1.0).T
    seg = np.empty(n_pix, dtype=np.uint8)
    seg[order] = cls
    depth = np.where(ids >= 0, t, 0.0).astype(np.float32)
    if isinstance(scene.env, _Room):
        depth[depth > _INDOOR_MAX_DEPTH] = 0.0
    return (
        image.reshape(height, width, 3),
        seg.reshape(height, width),
        cam_normal.reshape(3, height, width),
        depth.reshape(height, width),
    )


# ---------------------------------------------------------------------------------------------
# Texture edge and keypoint labels
# ---------------------------------------------------------------------------------------------


def _band_matrix(n: int, weights: dict[int, float]) -> np.ndarray:
    """(n, n) matrix of a 1-D filter with the given tap weights and edge-replicating borders."""
    m = np.zeros((n, n), dtype=np.float32)
    rows = np.arange(n)
    for offset, w in weights.items():
        np.add.at(m, (rows, np.clip(rows + offset, 0, n - 1)), w)
    return m


class _Filters:
    """Separable image filters for one image size, applied as matrix products (deterministic)."""

    def __init__(self, height: int, width: int) -> None:
        gauss = {k: math.exp(-k * k / 2) for k in range(-3, 4)}
        total = sum(gauss.values())
        gauss = {k: w / total for k, w in gauss.items()}
        smooth, diff = {-1: 0.25, 0: 0.5, 1: 0.25}, {-1: -0.5, 1: 0.5}
        self.gauss = _band_matrix(height, gauss), _band_matrix(width, gauss).T
        self.smooth = _band_matrix(height, smooth), _band_matrix(width, smooth).T
        self.diff = _band_matrix(height, diff), _band_matrix(width, diff).T

    def blur(self, img: np.ndarray) -> np.ndarray:
        return self.gauss[0] @ img @ self.gauss[1]

    def edge_keypoint(self, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Texture-edge and keypoint-saliency maps in [0, 1] of a clean grey image."""
        gx = self.smooth[0] @ grey @ self.diff[1]
        gy = self.diff[0] @ grey @ self.smooth[1]
        edge = self.blur(np.sqrt(gx * gx + gy * gy)) / _EDGE_SCALE
        jxx, jyy, jxy = self.blur(gx * gx), self.blur(gy * gy), self.blur(gx * gy)
        smaller = (jxx + jyy) / 2 - np.sqrt(((jxx - jyy) / 2) ** 2 + jxy * jxy)
        keypoint = self.blur(np.sqrt(np.maximum(smaller, 0.0))) / _KEYPOINT_SCALE
        return np.clip(edge, 0.0, 1.0), np.clip(keypoint, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


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
