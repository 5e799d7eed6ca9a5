"""Checksums of the synthetic presets' rendered data.

The digests pin the renderer's output, so refactors cannot change the data silently: each is a
SHA-256 over every tensor of every sample (image and every task label) of a small split loaded
through :func:`cutlib.data.load_dataset` without augmentation. A deliberate change of the renderer
must bump ``SYNTHETIC_VERSION`` (:mod:`cutlib.data.synthetic`) and update the digests below.

Taskonomy's ``edge`` and ``keypoint`` labels are the exception: the renderer filters the grey image
with float32 matrix products, whose last bits depend on the BLAS library numpy ships (a summation
order), and a float16 label flips where the exact value sits on a rounding boundary. They are left
out of the digest and checked instead against a float64 oracle without matrix products (shifted
sums), to float16's rounding.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from pathlib import Path

import numpy as np
import pytest

from cutlib.data import load_dataset
from cutlib.data.synthetic import _preset, render_scenes
from cutlib.data.synthetic.render import _render
from cutlib.data.synthetic.scenes import _room_scene
from cutlib.profiles import load_profile

#: SHA-256 of the test split (6 scenes at 32x40, seed 0) of each preset, BLAS-dependent labels out.
DIGESTS = {
    "synth-nyuv2": "f89f267f87ad70a03cd4dd7d65d50345fe4f2e66cb70c86bad7ea4043c99527b",
    "synth-cityscapes": "af1f92255cc6ac65dfedb4e04ed7a75207438f1af187b65cd7eac7065881937c",
    "synth-taskonomy": "c85ce50684c95691da7f594fda36387239d1b2fd2ed4accb920cdefebebfec4e",
}

#: Labels computed with float32 matrix products (BLAS), checked against the oracle instead.
BLAS_LABELS = ("edge", "keypoint")

#: Half a float16 step just below 1 (2**-12), plus float32's error in the renderer's filters.
FLOAT16_ROUNDING = 3e-4

HEIGHT, WIDTH, SCENES = 32, 40, 6


def _digest(preset: str, cache: Path) -> str:
    """SHA-256 over the dtype, shape and bytes of every tensor but the BLAS-dependent labels of
    every sample, keys sorted."""
    profile = load_profile("smoke").override(
        {
            "data": {
                "resolution": [HEIGHT, WIDTH],
                "sizes": dict.fromkeys(("train", "val", "test"), SCENES),
            }
        }
    )
    data = load_dataset(preset, "test", profile, 0, augment=False, cache=cache)
    sha = hashlib.sha256()
    for index in range(len(data)):
        sample = data[index]
        for key in sorted(set(sample) - set(BLAS_LABELS)):
            tensor = sample[key]
            sha.update(f"{index}/{key}/{tensor.dtype}/{tuple(tensor.shape)}".encode())
            sha.update(tensor.contiguous().numpy().tobytes())
    return sha.hexdigest()


@pytest.mark.parametrize("preset", sorted(DIGESTS))
def test_rendered_data_match_their_digest(preset: str, tmp_path: Path) -> None:
    # a fresh cache folder: the split is rendered by the code under test, never read back
    assert _digest(preset, tmp_path) == DIGESTS[preset]


def _shifted(image: np.ndarray, taps: dict[int, float], axis: int) -> np.ndarray:
    """Σ_k w_k · image shifted by k along ``axis``, borders replicated, in float64."""
    rows = np.arange(image.shape[axis])
    out = np.zeros(image.shape, np.float64)
    for offset, weight in taps.items():
        out += weight * np.take(image, np.clip(rows + offset, 0, len(rows) - 1), axis=axis)
    return out


def _oracle(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge = blur(|Sobel gradient|) / 0.08 and keypoint = blur(sqrt(Shi-Tomasi λ_min)) / 0.05,
    clipped to [0, 1]: the module docstring's definitions, with a Gaussian of σ = 1 over 7 taps."""
    gauss = {k: math.exp(-k * k / 2) for k in range(-3, 4)}
    gauss = {k: w / sum(gauss.values()) for k, w in gauss.items()}
    smooth, diff = {-1: 0.25, 0: 0.5, 1: 0.25}, {-1: -0.5, 1: 0.5}

    def blur(x: np.ndarray) -> np.ndarray:
        return _shifted(_shifted(x, gauss, 0), gauss, 1)

    gx = _shifted(_shifted(grey, smooth, 0), diff, 1)
    gy = _shifted(_shifted(grey, diff, 0), smooth, 1)
    jxx, jyy, jxy = blur(gx * gx), blur(gy * gy), blur(gx * gy)
    smaller = (jxx + jyy) / 2 - np.sqrt(((jxx - jyy) / 2) ** 2 + jxy**2)
    edge = blur(np.hypot(gx, gy)) / 0.08
    keypoint = blur(np.sqrt(np.maximum(smaller, 0.0))) / 0.05
    return np.clip(edge, 0.0, 1.0), np.clip(keypoint, 0.0, 1.0)


def _oracle_gap(labels: dict[str, np.ndarray]) -> float:
    """Largest |label − oracle| over the scenes of ``labels`` (synth-taskonomy, seed 0)."""
    preset, gap = "synth-taskonomy", 0.0
    key = zlib.crc32(preset.encode())
    for i in range(SCENES):
        rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(key, i)))
        rgb = _render(_room_scene(rng, _preset(preset)), HEIGHT, WIDTH)[0].astype(np.float64)
        grey = rgb @ np.array([0.299, 0.587, 0.114])
        expected = dict(zip(BLAS_LABELS, _oracle(grey), strict=True))
        for name in BLAS_LABELS:
            gap = max(
                gap, float(np.abs(labels[name][i, 0].astype(np.float64) - expected[name]).max())
            )
    return gap


def test_edge_and_keypoint_match_an_oracle_without_blas() -> None:
    assert _preset("synth-taskonomy").scene == "room"
    labels = render_scenes("synth-taskonomy", SCENES, HEIGHT, WIDTH, 0)
    assert _oracle_gap(labels) <= FLOAT16_ROUNDING


@pytest.mark.parametrize("planted", ["scale", "shift"])
def test_the_oracle_catches_a_planted_label_error(planted: str) -> None:
    labels = render_scenes("synth-taskonomy", SCENES, HEIGHT, WIDTH, 0)
    edge = labels["edge"].astype(np.float64)
    labels["edge"] = edge * 0.98 if planted == "scale" else np.roll(edge, 1, axis=-1)
    assert _oracle_gap(labels) > FLOAT16_ROUNDING
