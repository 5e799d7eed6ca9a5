"""Scenes: random rooms and streets (environment, objects, camera and light) drawn from a
generator for a preset."""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from cutlib.data.synthetic.materials import (
    _NOISE_CELLS,
    _Draw,
    _hsv,
    _Material,
    _material,
    _pick,
    _road_material,
)
from cutlib.data.synthetic.presets import SyntheticPreset
from cutlib.data.synthetic.primitives import _box, _cylinder, _placed, _Prim, _sphere


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
