"""Tests of the procedural synthetic dataset (cutlib.data.synthetic)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cutlib.data import synthetic
from cutlib.data.synthetic import PRESETS, SYNTHETIC_VERSION, load_split, render_scenes
from cutlib.tasks import TASK_KINDS

TASK_SHAPE = {"sn": 3, "depth": 1, "keypoint": 1, "edge": 1}


def _render_cached(cache: dict, preset: str, n: int, size: int, seed: int = 0):
    key = (preset, n, size, seed)
    if key not in cache:
        cache[key] = render_scenes(preset, n, size, size, seed)
    return cache[key]


@pytest.fixture(scope="module")
def renders() -> dict:
    return {}


def _interior(seg: np.ndarray, radius: int) -> np.ndarray:
    """Pixels whose (2 radius + 1)^2 neighbourhood lies in one class."""
    h, w = seg.shape[-2:]
    padded = np.pad(seg, ((0, 0), (radius, radius), (radius, radius)), mode="edge")
    inside = np.ones(seg.shape, dtype=bool)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            inside &= padded[:, dy : dy + h, dx : dx + w] == seg
    return inside


def test_presets_are_consistent():
    assert set(PRESETS) == {"synth-nyuv2", "synth-cityscapes", "synth-taskonomy"}
    counts = {"synth-nyuv2": (10, 13), "synth-cityscapes": (7, 9), "synth-taskonomy": (12, 16)}
    for name, spec in PRESETS.items():
        assert spec.name == name
        assert spec.tasks[0] == "seg"
        assert list(spec.tasks) == [t for t in TASK_KINDS if t in spec.tasks]
        lo, hi = counts[name]
        assert lo <= len(spec.class_names) <= hi
        assert len(set(spec.class_names)) == len(spec.class_names)
    assert "sky" in PRESETS["synth-cityscapes"].class_names
    assert isinstance(SYNTHETIC_VERSION, int)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_shapes_and_dtypes(preset):
    n, h, w = 2, 24, 40
    data = render_scenes(preset, n, h, w, seed=3)
    assert set(data) == {"image", *PRESETS[preset].tasks}
    assert data["image"].shape == (n, h, w, 3) and data["image"].dtype == np.uint8
    assert data["seg"].shape == (n, h, w) and data["seg"].dtype == np.uint8
    for task in PRESETS[preset].tasks[1:]:
        assert data[task].shape == (n, TASK_SHAPE[task], h, w)
        assert data[task].dtype == np.float16


@pytest.mark.parametrize("size", [64, 128])
def test_other_resolutions(size):
    data = render_scenes("synth-taskonomy", 1, size, size, seed=0)
    assert data["image"].shape == (1, size, size, 3)
    assert data["edge"].shape == (1, 1, size, size)


def test_empty_render_and_progress_bar():
    data = render_scenes("synth-nyuv2", 0, 16, 16, seed=0, progress=True)
    assert data["image"].shape == (0, 16, 16, 3)


def test_deterministic_from_seed(renders):
    a = _render_cached(renders, "synth-taskonomy", 3, 48)
    b = render_scenes("synth-taskonomy", 3, 48, 48, 0)
    c = render_scenes("synth-taskonomy", 3, 48, 48, 1)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["image"], c["image"])
    assert not np.array_equal(a["depth"], c["depth"])


def test_image_does_not_depend_on_n(renders):
    three = _render_cached(renders, "synth-taskonomy", 3, 48)
    five = render_scenes("synth-taskonomy", 5, 48, 48, 0)
    for key in three:
        np.testing.assert_array_equal(three[key], five[key][:3])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_labels_are_valid(renders, preset):
    data = _render_cached(renders, preset, 12, 48)
    spec = PRESETS[preset]
    seg = data["seg"]
    assert np.all((seg < len(spec.class_names)) | (seg == 255))
    assert np.mean(seg == 255) < 0.05
    depth = data["depth"].astype(np.float32)
    assert np.all(np.isfinite(depth)) and np.all(depth >= 0)
    assert np.mean(depth > 0) > 0.5
    if "sn" in data:
        sn = data["sn"].astype(np.float32)
        norm = np.linalg.norm(sn, axis=1)
        valid = norm > 0
        assert np.all(np.abs(norm[valid] - 1) < 1e-2)
        assert np.all(sn.transpose(0, 2, 3, 1)[~valid] == 0)
        assert valid.mean() > 0.9
    for task in ("keypoint", "edge"):
        if task in data:
            y = data[task].astype(np.float32)
            assert np.all(np.isfinite(y)) and y.min() >= 0 and y.max() <= 1
            assert 0.02 < y.mean() < 0.6
    image = data["image"]
    assert image.std() > 10  # not blank
    if "sky" in spec.class_names:
        sky = seg == spec.class_names.index("sky")
        assert sky.any()
        assert np.all(depth[:, 0][sky] == 0)
        assert np.all(depth[:, 0][~sky] > 0)


def _camera_rays(scene, h: int, w: int) -> np.ndarray:
    f = w / 2 / math.tan(scene.hfov / 2)
    x = (np.arange(w) + 0.5 - w / 2) / f
    y = (np.arange(h) + 0.5 - h / 2) / f
    return np.stack(
        [np.broadcast_to(x[None], (h, w)), np.broadcast_to(y[:, None], (h, w)), np.ones((h, w))]
    )


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_geometry_conventions(preset):
    """Normals face the camera in the OpenCV frame, depth is z-depth, and back-projecting floor
    (or road) pixels with it lands on the plane y = 0; the sky has zero normal and depth."""
    spec = PRESETS[preset]
    make = synthetic._room_scene if spec.scene == "room" else synthetic._street_scene
    ground = spec.class_names.index("floor" if spec.scene == "room" else "road")
    h, w = 40, 48
    for i in range(4):
        scene = make(np.random.default_rng(i), spec)
        _, seg, normal, depth = synthetic._render(scene, h, w)
        rays = _camera_rays(scene, h, w)
        valid = depth > 0
        assert np.all((normal * rays).sum(0)[valid] < 1e-4)
        np.testing.assert_allclose(np.linalg.norm(normal[:, valid], axis=0), 1, atol=1e-4)
        axes = synthetic._camera_axes(scene.yaw, scene.pitch)
        on_ground = seg == ground
        points = np.asarray(scene.camera)[:, None] + axes.T @ (rays * depth)[:, on_ground]
        np.testing.assert_allclose(points[1], 0, atol=1e-3)
        up = np.broadcast_to((axes @ [0.0, 1.0, 0.0])[:, None], (3, on_ground.sum()))
        np.testing.assert_allclose(normal[:, on_ground], up, atol=1e-4)
        if "sky" in spec.class_names:
            sky = seg == spec.class_names.index("sky")
            assert np.all(~valid == sky)
            assert np.all(normal[:, sky] == 0)


def test_load_split_caches(tmp_path, monkeypatch, capsys):
    first = load_split("synth-cityscapes", "val", 3, 32, 32, 7, tmp_path)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith("rendered synth-cityscapes/val: 3 scenes at 32x32 in ")
    path = tmp_path / f"synth-cityscapes-val-n3-32x32-seed7-v{SYNTHETIC_VERSION}.npz"
    assert path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left over

    def no_render(*args, **kwargs):
        raise AssertionError("rendered although cached")

    monkeypatch.setattr(synthetic, "render_scenes", no_render)
    second = load_split("synth-cityscapes", "val", 3, 32, 32, 7, tmp_path)
    assert capsys.readouterr().out == ""
    assert set(second) == set(first)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_splits_have_their_own_seeds():
    train = load_split("synth-nyuv2", "train", 2, 24, 24, 0, None)
    val = load_split("synth-nyuv2", "val", 2, 24, 24, 0, None)
    test = load_split("synth-nyuv2", "test", 2, 24, 24, 0, None)
    assert not np.array_equal(train["image"], val["image"])
    assert not np.array_equal(val["image"], test["image"])
    again = load_split("synth-nyuv2", "val", 2, 24, 24, 0, None)
    np.testing.assert_array_equal(val["depth"], again["depth"])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_class_coverage_and_balance(renders, preset):
    seg = _render_cached(renders, preset, 40, 48)["seg"]
    n_classes = len(PRESETS[preset].class_names)
    fractions = np.bincount(seg.ravel(), minlength=256)[:n_classes] / seg.size
    assert np.count_nonzero(fractions) >= 0.8 * n_classes
    assert fractions.max() < 0.45  # no class dominates


def test_texture_drives_edges_and_keypoints(renders):
    """Inside always-textured classes edges and corners are far denser than inside plain ones."""
    data = _render_cached(renders, "synth-taskonomy", 40, 96)
    names = PRESETS["synth-taskonomy"].class_names
    seg = data["seg"]
    inside = _interior(seg, 5)
    textured = inside & np.isin(seg, [names.index(c) for c in ("rug", "ball")])
    plain = inside & (seg == names.index("tv"))
    assert textured.sum() > 1000 and plain.sum() > 100
    for task in ("edge", "keypoint"):
        y = data[task][:, 0].astype(np.float32)
        assert y[textured].mean() > 5 * y[plain].mean() + 0.05


@pytest.mark.parametrize(
    ("call", "choices"),
    [
        (lambda: render_scenes("synth-kitti", 1, 16, 16, 0), list(PRESETS)),
        (lambda: load_split("nyuv2", "train", 1, 16, 16, 0, None), list(PRESETS)),
        (lambda: load_split("synth-nyuv2", "dev", 1, 16, 16, 0, None), ["train", "val", "test"]),
    ],
)
def test_bad_names_raise(call, choices):
    with pytest.raises(ValueError) as info:
        call()
    for choice in choices:
        assert choice in str(info.value)
