"""Texture edge and keypoint labels: Taskonomy-style edge and keypoint-saliency maps of the
clean grey image, computed with separable filters."""

from __future__ import annotations

import math

import numpy as np

_EDGE_SCALE = 0.08  # blurred gradient magnitude (grey in [0, 1] per pixel) giving edge = 1
_KEYPOINT_SCALE = 0.05  # blurred sqrt corner response that maps to keypoint = 1


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
