"""Datasets: a registry of the multi-task datasets and a single entry point, :func:`load_dataset`.

The embedded default data are procedurally rendered scenes (:mod:`cutlib.data.synthetic`), one
preset per dataset of the paper. All datasets share the sample conventions of DESIGN §3, so losses
and metrics never branch on the dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cutlib.data.arrays import ArrayDataset
from cutlib.data.synthetic import PRESETS, load_split
from cutlib.tasks import TaskSpec

SPLITS = ("train", "val", "test")

#: Loss weights λ_t of the synthetic presets. The paper's NYUv2 weights (seg 1, sn 20, depth 3,
#: PAPER_NOTES §1.12) balance losses of similar definitions; keypoint and edge L1 errors on [0, 1]
#: maps are small, so they get larger weights, as in the paper's Taskonomy setting.
SYNTHETIC_LOSS_WEIGHTS = {"seg": 1.0, "sn": 20.0, "depth": 3.0, "keypoint": 20.0, "edge": 20.0}
_CHANNELS = {"sn": 3, "depth": 1, "keypoint": 1, "edge": 1}


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: its name, what it mirrors, and its tasks in order."""

    name: str
    description: str
    tasks: tuple[TaskSpec, ...]

    @property
    def task_names(self) -> tuple[str, ...]:
        """The task names, in dataset order."""
        return tuple(t.name for t in self.tasks)


def _synthetic_info(preset_name: str) -> DatasetInfo:
    preset = PRESETS[preset_name]
    specs = []
    for kind in preset.tasks:
        if kind == "seg":
            spec = TaskSpec(
                "seg",
                "seg",
                len(preset.class_names),
                SYNTHETIC_LOSS_WEIGHTS["seg"],
                255,
                tuple(preset.class_names),
            )
        else:
            spec = TaskSpec(kind, kind, _CHANNELS[kind], SYNTHETIC_LOSS_WEIGHTS[kind])
        specs.append(spec)
    mirrors = preset_name.removeprefix("synth-")
    return DatasetInfo(
        preset_name, f"synthetic {preset.scene} scenes mirroring {mirrors}", tuple(specs)
    )


DATASETS: dict[str, DatasetInfo] = {name: _synthetic_info(name) for name in PRESETS}


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``; ValueError listing the valid names otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


def dataset_tasks(name: str, profile: Mapping[str, Any] | None = None) -> tuple[TaskSpec, ...]:
    """The tasks of dataset ``name``, with the profile's ``loss_weights`` overrides applied."""
    weights = (profile or {}).get("loss_weights") or {}
    return tuple(
        replace(t, loss_weight=float(weights[t.name])) if t.name in weights else t
        for t in dataset_info(name).tasks
    )


def load_dataset(
    name: str,
    split: str,
    profile: Mapping[str, Any],
    seed: int,
    *,
    augment: bool | None = None,
    cache: Path | None = None,
) -> ArrayDataset:
    """Load split ``split`` of dataset ``name`` at the profile's size, rendering it if needed.

    Args:
        name: a registered dataset (see :data:`DATASETS`).
        split: ``"train"``, ``"val"`` or ``"test"``.
        profile: a loaded profile (:func:`cutlib.profiles.load_profile`); its ``data`` section sets
            the resolution and split sizes.
        seed: the data seed: the same seed gives the same scenes.
        augment: training augmentation; by default on for ``train`` when the profile enables it.
        cache: folder for generated data (default: ``data/cache`` of the project).
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    from cutlib.io import cache_dir  # local import: keeps the registry importable on its own

    data_cfg = profile["data"]
    height, width = data_cfg["resolution"]
    size = int(data_cfg["sizes"][split])
    arrays = load_split(name, split, size, height, width, seed, cache or cache_dir())
    if augment is None:
        augment = split == "train" and bool(data_cfg.get("augment", False))
    return ArrayDataset(arrays, info.tasks, augment)
