"""Rendering: ray casting a scene into a clean image, class ids, camera-frame normals and
z-depth, with Lambertian shading and hard shadows."""

from __future__ import annotations

import math

import numpy as np

from cutlib.data.synthetic.materials import _PLAIN, _Material, _pattern
from cutlib.data.synthetic.primitives import _hit, _Prim, _surface
from cutlib.data.synthetic.scenes import _Room, _Scene, _Street

_INDOOR_MAX_DEPTH = 10.0  # metres; farther indoor pixels get depth 0 (invalid)
_SHADOW_BINS = 256  # buckets of light-space coordinates for culling shadow rays

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
