"""Primitives (boxes, spheres and vertical capped cylinders) and ray intersection: hit
distances, surface normals and surface coordinates."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from cutlib.data.synthetic.materials import _Material

_EPS = 1e-4  # smallest accepted ray parameter

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
