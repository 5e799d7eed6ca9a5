"""Materials: procedural texture families, the per-class recipes that random materials are
drawn from (with the block-wise random numbers of scene sampling), and the evaluation of a
pattern on surface coordinates."""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

_NOISE_CELLS = 64  # side of the value-noise lattice (wraps around)

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
