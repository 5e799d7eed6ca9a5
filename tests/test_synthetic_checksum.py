"""Checksums of the synthetic presets' rendered data.

The digests pin the renderer's output, so refactors cannot change the data silently: each is a
SHA-256 over every tensor of every sample (image and every task label) of a small split loaded
through :func:`cutlib.data.load_dataset` without augmentation. A deliberate change of the renderer
must bump ``SYNTHETIC_VERSION`` (:mod:`cutlib.data.synthetic`) and update the digests below.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cutlib.data import load_dataset
from cutlib.profiles import load_profile

#: SHA-256 of the test split (6 scenes at 32x40, seed 0) of each preset.
DIGESTS = {
    "synth-nyuv2": "f89f267f87ad70a03cd4dd7d65d50345fe4f2e66cb70c86bad7ea4043c99527b",
    "synth-cityscapes": "af1f92255cc6ac65dfedb4e04ed7a75207438f1af187b65cd7eac7065881937c",
    "synth-taskonomy": "6d1cc22bc66a51c260ae4dd17c2a25afba4c49fd9273e5b21c7a1a098f3c607d",
}

PROFILE = load_profile("smoke").override(
    {"data": {"resolution": [32, 40], "sizes": {"train": 6, "val": 6, "test": 6}}}
)


def _digest(preset: str, cache: Path) -> str:
    """SHA-256 over the dtype, shape and bytes of every tensor of every sample, keys sorted."""
    data = load_dataset(preset, "test", PROFILE, 0, augment=False, cache=cache)
    sha = hashlib.sha256()
    for index in range(len(data)):
        sample = data[index]
        for key in sorted(sample):
            tensor = sample[key]
            sha.update(f"{index}/{key}/{tensor.dtype}/{tuple(tensor.shape)}".encode())
            sha.update(tensor.contiguous().numpy().tobytes())
    return sha.hexdigest()


@pytest.mark.parametrize("preset", sorted(DIGESTS))
def test_rendered_data_match_their_digest(preset: str, tmp_path: Path) -> None:
    # a fresh cache folder: the split is rendered by the code under test, never read back
    assert _digest(preset, tmp_path) == DIGESTS[preset]
