"""The paper's real datasets in the AdaShare layout (docs/method/data.md): where they live, their
index file and splits, a map-style dataset that decodes and augments them, and the layout check
behind ``cutlib data check``.

Each dataset is described by a :class:`Layout` (its module, e.g. :mod:`cutlib.data.nyuv2`,
defines the index file, the on-disk fields, how to read and validate each file, and how to turn
the decoded arrays into a sample in the conventions of docs/architecture.md#data). Everything else
is shared.

Splits: the index file has ``train`` and ``test`` (and possibly ``val``). The reference code selects
its models on the test split (docs/method/metrics.md#quirks-before-comparing-numbers, item 8); we
select on validation, so without a ``val`` list a seeded :data:`VAL_FRACTION` of ``train`` (at least
one sample, and never all of them) is held out as ``val``.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from cutlib.data.transforms import real_transform, unwrap
from cutlib.tasks import TaskSpec

#: Fraction of the training entries held out for validation when the index has no ``val``.
VAL_FRACTION = 0.1


@dataclass(frozen=True)
class FileProblem:
    """One problem of a dataset folder: the file (or folder) and what is wrong."""

    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class DataError(ValueError):
    """A dataset that is missing or malformed (:attr:`problem`): the message says what is
    expected where, and how to get it (``cutlib data``)."""

    def __init__(self, problem: FileProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True)
class Layout:
    """How a real dataset is stored and decoded.

    Args:
        name: the registry name (``nyuv2`` …).
        description: one line for ``cutlib data info``.
        tasks: the tasks, in dataset order.
        index_file: the json index, relative to the root: ``{"train": [entry, …], "test": …}``,
            each entry a list of paths relative to the root, one per ``fields``.
        fields: what each position of an entry holds (``image``, then labels).
        native_size: (H, W) of the stored images: the reference scale of the random scaling and
            the default evaluation size.
        read: field → function reading one file into an array (no interpretation yet).
        validate: field → function returning what is wrong with a read array, or ``None``.
        to_sample: the decoded arrays of one entry (and the options) → sample tensors (tv_tensors:
            an ``Image``, ``IgnoreValueMask``, ``SurfaceNormals`` or ``Mask`` per task).
        download: how to get the data (printed by ``cutlib data`` and every missing-data error).
        options: the dataset's decoding options and their defaults (e.g. NYUv2's ``normals``).
        class_weights_file: a file under the root with the seg loss's per-class weights (C,),
            read when the option ``seg_weights`` is ``prior`` (Taskonomy's
            ``semseg_prior_factor.npy``); ``None`` when the dataset has none.
        reference_metrics: the decoding options → the fields of
            :data:`cutlib.metrics.REFERENCE` (the reference evaluation code on NYUv2) that the
            reference code sets otherwise on this dataset (e.g. Taskonomy's true normal angles).
    """

    name: str
    description: str
    tasks: tuple[TaskSpec, ...]
    index_file: str
    fields: tuple[str, ...]
    native_size: tuple[int, int]
    read: Mapping[str, Callable[[Path], np.ndarray]]
    validate: Mapping[str, Callable[[np.ndarray], str | None]]
    to_sample: Callable[[Mapping[str, np.ndarray], Mapping[str, Any]], dict[str, Tensor]]
    download: str
    options: Mapping[str, Any] = field(default_factory=dict)
    class_weights_file: str | None = None
    reference_metrics: Callable[[Mapping[str, Any]], dict[str, Any]] = lambda options: {}

    def resolved_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """The decoding options with the defaults filled in.

        Raises:
            ValueError: for an option the dataset does not have, naming the valid ones.
        """
        unknown = sorted(set(options or {}) - set(self.options))
        if unknown:
            valid = ", ".join(self.options) or "none"
            raise ValueError(f"{self.name}: unknown data option {unknown[0]!r}; valid: {valid}")
        return {**self.options, **(options or {})}


def numbered_seg_task(classes: int, ignore: int = 255) -> TaskSpec:
    """The segmentation task of a real dataset whose files carry no class names: ``class 0`` …

    Example:
        >>> numbered_seg_task(19).class_names[-1]
        'class 18'
    """
    names = tuple(f"class {i}" for i in range(classes))
    return TaskSpec("seg", "seg", classes, 1.0, ignore, names)


def default_root(name: str) -> Path:
    """``data/<name>/`` of the project (or of the working directory for an installed package)."""
    from cutlib.io import project_root

    return project_root() / "data" / name


def read_index(layout: Layout, root: Path) -> dict[str, list[list[str]]]:
    """The index of ``layout`` under ``root``, with its ``train`` and ``test`` lists checked
    (parsed once per version of the file: runs, splits and the grid all ask for it).

    Raises:
        DataError: the root or the index file is missing, or the index is malformed.
    """
    if not root.is_dir():
        problem = f"missing (the folder does not exist): no {layout.name} dataset here. "
        raise DataError(FileProblem(root, problem + layout.download))
    path = root / layout.index_file
    if not path.is_file():
        raise DataError(FileProblem(path, f"missing (the index file). {layout.download}"))
    stat = path.stat()  # a new version of the file is parsed anew
    return _parsed_index(path, stat.st_mtime_ns, stat.st_size, layout.fields)


@functools.lru_cache(maxsize=8)
def _parsed_index(path: Path, mtime_ns: int, size: int, fields: tuple[str, ...]) -> dict:
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(FileProblem(path, f"not a readable json index ({err})")) from err
    if not isinstance(index, dict):
        raise DataError(FileProblem(path, "expected a json object with 'train' and 'test' lists"))
    for split in ("train", "test"):
        entries = index.get(split)
        if not isinstance(entries, list) or not entries:
            raise DataError(FileProblem(path, f"expected a non-empty '{split}' list of entries"))
    for split, entries in index.items():
        for entry in entries:
            if not isinstance(entry, list) or len(entry) != len(fields):
                problem = (
                    f"every '{split}' entry must be a list of {len(fields)} paths "
                    f"({', '.join(fields)}); found {entry!r}"
                )
                raise DataError(FileProblem(path, problem))
    return index


def split_entries(index: Mapping[str, list[list[str]]], split: str, seed: int) -> list[list[str]]:
    """The entries of ``split`` (``train``, ``val`` or ``test``); without a ``val`` list, a seeded
    :data:`VAL_FRACTION` of ``train`` is ``val`` and the rest ``train``.

    Example:
        >>> index = {"train": [[str(i)] for i in range(10)], "test": [["t"]]}
        >>> len(split_entries(index, "train", 0)), len(split_entries(index, "val", 0))
        (9, 1)
    """
    if split == "test" or "val" in index:
        return list(index[split])
    train = list(index["train"])
    held = max(1, round(VAL_FRACTION * len(train))) if len(train) > 1 else 0
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    val_ids = set(order[:held])
    if split == "val":
        return [e for i, e in enumerate(train) if i in val_ids] or train
    return [e for i, e in enumerate(train) if i not in val_ids]


class IndexedDataset(Dataset):
    """Samples ``{"image": (3,H,W) float, <task>: label}`` (docs/architecture.md#data) read from the
    files of an index, decoded by ``layout`` and augmented by
    :func:`~cutlib.data.transforms.real_transform`.

    Args:
        layout: the dataset's layout.
        root: its root folder.
        entries: the index entries of the split.
        tasks: the tasks to return.
        train: training augmentation (random scale, flip, crop to ``crop``) or evaluation.
        crop: the training crop (H, W).
        eval_size: the evaluation size (H, W); default the stored size.
        options: decoding options of the layout (defaults filled in).
        normalization: the image normalisation (:data:`~cutlib.data.transforms.NORMALIZATIONS`).
        padding: how a scaled-down training image is padded to the crop
            (:data:`~cutlib.data.transforms.PADDINGS`).
    """

    def __init__(
        self,
        layout: Layout,
        root: Path,
        entries: Sequence[Sequence[str]],
        tasks: Sequence[TaskSpec],
        *,
        train: bool,
        crop: tuple[int, int],
        eval_size: tuple[int, int] | None = None,
        options: Mapping[str, Any] | None = None,
        normalization: str = "imagenet",
        padding: str = "random",
    ) -> None:
        self.layout = layout
        self.root = root
        self.entries = [list(e) for e in entries]
        self.tasks = tuple(tasks)
        self.options = layout.resolved_options(options)
        self.transform = real_transform(
            train,
            crop,
            layout.native_size,
            eval_size,
            normalization=normalization,
            padding=padding,
        )
        self._seg_keys = tuple(t.name for t in self.tasks if t.kind == "seg")
        #: the fields read for a sample: the image and the files of these tasks only
        self._fields = {"image", *(t.name for t in self.tasks)}

    def __len__(self) -> int:
        return len(self.entries)

    def read(self, index: int) -> dict[str, np.ndarray]:
        """The raw arrays of entry ``index``: the image and the files of this dataset's tasks."""
        paths = zip(self.layout.fields, self.entries[index], strict=True)
        return {f: self.layout.read[f](self.root / p) for f, p in paths if f in self._fields}

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        sample = self.layout.to_sample(self.read(index), self.options)
        return unwrap(self.transform(sample), self._seg_keys)


#: Values of the ``seg_weights`` option of a layout with a class weights file.
SEG_WEIGHTS: tuple[str, ...] = ("prior", "none")


def weighted_tasks(
    layout: Layout, tasks: Sequence[TaskSpec], root: Path, options: Mapping[str, Any] | None
) -> tuple[TaskSpec, ...]:
    """``tasks`` with the seg task weighted by the layout's class weights file under ``root``
    when it has one and the option ``seg_weights`` is ``prior`` (its default); else unchanged.

    Raises:
        DataError: the file is missing or malformed.
        ValueError: an unknown option or ``seg_weights`` value.
    """
    resolved = layout.resolved_options(options)
    if layout.class_weights_file is None:
        return tuple(tasks)
    choice = resolved["seg_weights"]
    if choice not in SEG_WEIGHTS:
        raise ValueError(f"unknown seg_weights {choice!r}; valid: {', '.join(SEG_WEIGHTS)}")
    if choice == "none":
        return tuple(tasks)
    weights = read_class_weights(layout, root)
    return tuple(replace(t, class_weights=weights) if t.kind == "seg" else t for t in tasks)


def read_class_weights(layout: Layout, root: Path) -> tuple[float, ...]:
    """The seg loss's per-class weights of ``layout`` (its ``class_weights_file`` under ``root``):
    one finite, non-negative number per class of its seg task, not all zero.

    Raises:
        DataError: the file is missing or malformed.
    """
    assert layout.class_weights_file is not None, f"{layout.name} has no class weights file"
    classes = next(t.channels for t in layout.tasks if t.kind == "seg")
    path = root / layout.class_weights_file
    if not path.is_file():
        problem = (
            f"missing (the seg loss's class weights; the reference code reads them, so they are "
            f"on by default: set the data option seg_weights: none to train without them). "
            f"{layout.download}"
        )
        raise DataError(FileProblem(path, problem))
    try:
        weights = read_npy(path)
    except (OSError, ValueError) as err:
        raise DataError(FileProblem(path, f"unreadable class weights ({err})")) from err
    wrong = expect(weights, (classes,), ["float32", "float64"], "one weight per seg class")
    usable = wrong is None and np.isfinite(weights).all() and (weights >= 0).all()
    if wrong is None and not (usable and weights.any()):
        wrong = "class weights must be finite, non-negative and not all zero"
    if wrong:
        raise DataError(FileProblem(path, wrong))
    return tuple(float(w) for w in weights)


def check_layout(
    layout: Layout, root: Path, samples: int = 8, seed: int = 0
) -> tuple[list[FileProblem], dict[str, int]]:
    """Validate a dataset folder: the index, that every file it names exists, and, for up to
    ``samples`` entries per split (seeded choice), that each file reads with the expected shape,
    dtype and values (``layout.validate``). A file is reported once, with its first problem.

    Returns:
        The problems (empty when the layout is valid) and the number of entries per split.
    """
    try:
        index = read_index(layout, root)
    except DataError as err:
        return [err.problem], {}
    problems: dict[Path, FileProblem] = {}  # one line per file, the first problem found
    if layout.class_weights_file is not None:
        try:
            read_class_weights(layout, root)
        except DataError as err:
            problems[err.problem.path] = err.problem
    decoded: set[Path] = set()
    sizes = {split: len(entries) for split, entries in index.items()}
    rng = random.Random(seed)
    for split, entries in index.items():
        for entry in entries:
            for name, rel in zip(layout.fields, entry, strict=True):
                path = root / rel
                if path not in problems and not path.is_file():
                    problems[path] = FileProblem(path, f"missing ({split} {name} file)")
        checked = rng.sample(range(len(entries)), min(samples, len(entries)))
        for i in checked:
            for name, rel in zip(layout.fields, entries[i], strict=True):
                path = root / rel
                if path in problems or path in decoded:
                    continue
                decoded.add(path)
                try:
                    array = layout.read[name](path)
                except Exception as err:  # any decoder failure is a problem of that file
                    problems[path] = FileProblem(path, f"unreadable {name} file ({err})")
                    continue
                wrong = layout.validate[name](array)
                if wrong:
                    problems[path] = FileProblem(path, wrong)
    return list(problems.values()), sizes


def expect(
    array: np.ndarray,
    shape: tuple[int | None, ...],
    dtypes: Sequence[str],
    what: str,
) -> str | None:
    """``None`` if ``array`` has the ``shape`` (``None`` = any length) and one of ``dtypes``;
    otherwise what is wrong, saying what was expected.

    Example:
        >>> expect(np.zeros((2, 3), np.float64), (2, None), ["float32"], "depth")
        'wrong dtype float64 (expected depth as float32)'
    """
    expected = "×".join("any" if s is None else str(s) for s in shape)
    if array.ndim != len(shape) or any(
        s is not None and a != s for a, s in zip(array.shape, shape, strict=True)
    ):
        found = "×".join(str(s) for s in array.shape)
        return f"wrong shape {found} (expected {what} of shape {expected})"
    if str(array.dtype) not in dtypes:
        return f"wrong dtype {array.dtype} (expected {what} as {' or '.join(dtypes)})"
    return None


def read_png(path: Path) -> np.ndarray:
    """A PNG as stored: (H, W) for one channel, (H, W, C) otherwise (RGB order, uint8, or uint16
    for 16-bit files), read with Pillow."""
    with Image.open(path) as image:
        array = np.array(image)  # a writable copy
    return (
        array.astype(np.uint16) if array.dtype.kind in "iu" and array.dtype.itemsize > 1 else array
    )


def read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` array (no pickles: nothing in a data file is executed)."""
    return np.load(path, allow_pickle=False)


def as_tensor(array: np.ndarray) -> Tensor:
    """A tensor over a (contiguous copy of a) numpy array."""
    return torch.from_numpy(np.ascontiguousarray(array))
