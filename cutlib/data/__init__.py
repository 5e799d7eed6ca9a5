"""Datasets: a registry of the multi-task datasets and a single entry point, :func:`load_dataset`.

The embedded default data are procedurally rendered scenes (:mod:`cutlib.data.synthetic`), one
preset per dataset of the paper. The paper's real datasets are read from the AdaShare layout
(:mod:`cutlib.data.real`, one module per dataset) under ``data/<name>/`` or a root the user
gives. All datasets share the sample conventions of docs/architecture.md#data, so losses and metrics
never branch on the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from torch.utils.data import Dataset

from cutlib.data import cityscapes, nyuv2, taskonomy
from cutlib.data.arrays import ArrayDataset
from cutlib.data.real import (
    IndexedDataset,
    Layout,
    default_root,
    read_index,
    split_entries,
    weighted_tasks,
)
from cutlib.data.synthetic import PRESETS, load_split
from cutlib.metrics import MetricConventions, conventions_from_name
from cutlib.profiles import Profile
from cutlib.tasks import TaskSpec

SPLITS = ("train", "val", "test")

#: Loss weights λ_t of the synthetic presets. The paper's NYUv2 weights (seg 1, sn 20, depth 3,
#: docs/method/cut.md#pre-training-the-dense-model) balance losses of similar definitions; keypoint
#: and edge L1 errors on [0, 1]
#: maps are small, so they get larger weights, as in the paper's Taskonomy setting.
SYNTHETIC_LOSS_WEIGHTS = {"seg": 1.0, "sn": 20.0, "depth": 3.0, "keypoint": 20.0, "edge": 20.0}
_CHANNELS = {"sn": 3, "depth": 1, "keypoint": 1, "edge": 1}


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: its name, a description, its tasks in order, ``mirrors``: the
    paper's dataset it is (a real dataset) or stands in for (a synthetic preset), and
    ``depth_unit``: the unit of its depth labels, for colour bars (metres everywhere but
    Cityscapes, whose AdaShare files hold a normalised disparity)."""

    name: str
    description: str
    tasks: tuple[TaskSpec, ...]
    mirrors: str
    depth_unit: str = "m"

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
        preset_name, f"synthetic {preset.scene} scenes mirroring {mirrors}", tuple(specs), mirrors
    )


#: The synthetic presets (rendered on the fly; every notebook's default).
SYNTHETIC_DATASETS: dict[str, DatasetInfo] = {name: _synthetic_info(name) for name in PRESETS}
#: The paper's real datasets, by name: how each is stored and decoded.
REAL_LAYOUTS: dict[str, Layout] = {
    layout.name: layout for layout in (nyuv2.LAYOUT, cityscapes.LAYOUT, taskonomy.LAYOUT)
}
_REAL_DEPTH_UNITS = {"cityscapes": "normalised disparity"}
#: Every dataset, synthetic then real.
DATASETS: dict[str, DatasetInfo] = {
    **SYNTHETIC_DATASETS,
    **{
        n: DatasetInfo(n, layout.description, layout.tasks, n, _REAL_DEPTH_UNITS.get(n, "m"))
        for n, layout in REAL_LAYOUTS.items()
    },
}


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``; ValueError listing the valid names otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


def paper_tasks(name: str) -> tuple[TaskSpec, ...]:
    """The tasks of the paper's dataset that ``name`` is or mirrors (:attr:`DatasetInfo.mirrors`),
    with the paper's class counts (NYUv2 40, Cityscapes 19, Tiny-Taskonomy 17): what the paper's
    model is built for.

    Example:
        >>> [(t.name, t.channels) for t in paper_tasks("synth-cityscapes")]
        [('seg', 19), ('depth', 1)]
    """
    return dataset_info(dataset_info(name).mirrors).tasks


def dataset_tasks(
    name: str, profile: Profile | None = None, root: Path | str | None = None
) -> tuple[TaskSpec, ...]:
    """The tasks of dataset ``name`` as a run trains them: the profile's ``loss_weights``
    overrides applied and, for a real dataset whose loss weighs its classes (Taskonomy), the class
    weights read from its folder ``root`` (default ``data/<name>/``) unless the profile's data
    options turn them off. (For the metric directions alone, :func:`dataset_info` reads nothing.)

    Raises:
        cutlib.data.real.DataError: a class weights file that is missing or malformed.
    """
    weights = profile.loss_weights if profile is not None else {}
    tasks = tuple(
        replace(t, loss_weight=float(weights[t.name])) if t.name in weights else t
        for t in dataset_info(name).tasks
    )
    if name not in REAL_LAYOUTS:
        return tasks
    folder = Path(root) if root is not None else default_root(name)
    options = profile.data.options if profile is not None else None
    return weighted_tasks(REAL_LAYOUTS[name], tasks, folder, options)


def metric_conventions(dataset: str, profile: Profile) -> MetricConventions:
    """The metric conventions of the profile's ``eval.conventions`` for ``dataset``.

    ``standard`` is the same everywhere. ``reference`` is the reference evaluation code as it
    treats that dataset (:data:`cutlib.metrics.REFERENCE` with the layout's
    ``reference_metrics``): normals in colour space on NYUv2 only, Cityscapes' void pixels wrong
    in pixel accuracy, Taskonomy's means per test batch. A synthetic preset is treated as the
    dataset it mirrors.

    Example:
        >>> from cutlib.profiles import load_profile
        >>> reference = load_profile("smoke").override({"eval": {"conventions": "reference"}})
        >>> metric_conventions("synth-taskonomy", reference).normals
        'unit'
    """
    name = profile.eval.conventions
    conventions = conventions_from_name(name)
    if name != "reference":
        return conventions
    layout = REAL_LAYOUTS[dataset_info(dataset).mirrors]
    options = profile.data.options if dataset in REAL_LAYOUTS else None
    return replace(conventions, **layout.reference_metrics(layout.resolved_options(options)))


def load_dataset(
    name: str,
    split: str,
    profile: Profile,
    seed: int,
    *,
    augment: bool | None = None,
    cache: Path | None = None,
    root: Path | str | None = None,
) -> Dataset:
    """Load split ``split`` of dataset ``name``: rendered at the profile's size for a synthetic
    preset, read from disk for a real dataset.

    Args:
        name: a registered dataset (see :data:`DATASETS`).
        split: ``"train"``, ``"val"`` or ``"test"``.
        profile: a loaded profile (:func:`cutlib.profiles.load_profile`). Its ``data`` section sets
            the resolution (the training crop of a real dataset), the split sizes of a
            synthetic one and the image ``normalize``-ation (``imagenet`` or ``caffe``,
            :mod:`cutlib.data.transforms`); a real one also reads ``eval_resolution`` (default:
            as stored), ``pad`` (``random`` or ``centred``) and ``options`` (decoding options,
            e.g. NYUv2's ``normals``).
        seed: the data seed: the same seed gives the same scenes, and the same validation split
            of a real dataset.
        augment: training augmentation; by default on for ``train`` when the profile enables it.
        cache: folder for generated data (default: ``data/cache`` of the project).
        root: a real dataset's folder (default ``data/<name>/``).

    Raises:
        ValueError: an unknown dataset or split.
        cutlib.data.real.DataError: a real dataset that is missing or malformed.
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    data = profile.data
    if augment is None:
        augment = split == "train" and data.augment
    normalization = data.normalize
    if name in REAL_LAYOUTS:
        layout = REAL_LAYOUTS[name]
        folder = Path(root) if root is not None else default_root(name)
        entries = split_entries(read_index(layout, folder), split, seed)
        return IndexedDataset(
            layout,
            folder,
            entries,
            info.tasks,
            train=augment,
            crop=data.resolution,
            eval_size=data.eval_resolution,
            options=data.options,
            normalization=normalization,
            padding=data.pad,
        )
    from cutlib.io import cache_dir  # local import: keeps the registry importable on its own

    if data.sizes is None:
        raise ValueError(f"profile {profile.name!r} sets no data.sizes to render {name} with")
    height, width = data.resolution
    size = getattr(data.sizes, split)
    arrays = load_split(name, split, size, height, width, seed, cache or cache_dir())
    return ArrayDataset(arrays, info.tasks, augment, normalization)
