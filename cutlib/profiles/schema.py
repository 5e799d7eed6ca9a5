"""The schema of a profile: typed, validated sections (docs/architecture.md#profiles).

:func:`parse_profile` turns a profile's YAML mapping into a :class:`Profile` of frozen dataclasses,
checking every key on the way: a misspelt or unknown key, a missing required one or a value of the
wrong type stops the load with one line that names the key and the valid ones. Code reads
attributes (``profile.pretrain.lr``), never string keys.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any

from cutlib.train import TrainConfig


class ProfileError(ValueError):
    """A profile with an unknown, missing or ill-typed key."""


@dataclass(frozen=True)
class SplitSizes:
    """Samples per split of a rendered (synthetic) dataset."""

    train: int
    val: int
    test: int


@dataclass(frozen=True)
class DataSettings:
    """How the data is read or rendered (docs/method/data.md#pre-processing-and-augmentation)."""

    resolution: tuple[int, ...]  #: (H, W) of the training crops and of rendered scenes
    sizes: SplitSizes | None = None  #: rendered datasets only
    augment: bool = False  #: random scale, crop and flip of the training split
    eval_resolution: tuple[int, ...] | None = None  #: a real dataset's evaluation size
    normalize: str = "imagenet"  #: image normalisation: ``imagenet`` or ``caffe``
    pad: str = "random"  #: where a real dataset's crop pads: ``random`` or ``centred``
    options: dict[str, str] | None = None  #: a real dataset's label conventions


@dataclass(frozen=True)
class ModelSettings:
    """:class:`cutlib.models.SceneNet`'s size (docs/method/model.md#backbone)."""

    backbone: str
    width: float
    head_channels: int
    aspp_rates: tuple[int, ...]
    dropout: float

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~cutlib.models.SceneNet` after its tasks."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class PretrainSettings(TrainConfig):
    """The dense model's pre-training schedule, and the iteration LTH rewinds to."""

    rewind_iteration: int | None = None


@dataclass(frozen=True)
class ScoringSettings:
    """Importance scoring (docs/method/cut.md#per-task-importance)."""

    batches: int
    batch_size: int
    keep_ratios: dict[float, float] | None = None  #: the authors' κ per nominal sparsity


@dataclass(frozen=True)
class DynamicSettings:
    """Dynamic sparse training (RigL, DiSparse's dynamic variant)."""

    update_every: int  #: ΔT, iterations between mask updates
    end_fraction: float  #: no updates after this fraction of the training
    rigl_drop_fraction: float  #: α of RigL's cosine drop schedule
    disparse_drop_fraction: float  #: DiSparse's PRUNE_RATE
    update_at_start: bool = False  #: one update before the first step, as DiSparse's code does


@dataclass(frozen=True)
class BaselineSettings:
    """The baselines' settings."""

    rounds: int  #: IMP / LTH pruning rounds
    dynamic: DynamicSettings
    keep_ratios: dict[str, dict[float, float]] = field(default_factory=dict)  #: method → κ table
    #: method → the profile sections its own authors' code trains it with (``--protocol paper``)
    paper_protocol: dict[str, dict[str, Any]] = field(default_factory=dict)
    notebook: dict[str, list[str]] = field(default_factory=dict)  #: notebook 06's runs


@dataclass(frozen=True)
class EvalSettings:
    """Evaluation on the test split."""

    batch_size: int
    conventions: str = "standard"  #: ``standard`` or ``reference`` (the authors' metric code)
    #: training batches on which a pruned model's BatchNorm statistics are re-estimated for its
    #: second "before fine-tuning" evaluation (docs/method/metrics.md#before-fine-tuning); 0: none
    bn_batches: int = 20


@dataclass(frozen=True)
class ClaimSettings:
    """Notebook 07's checks of the paper's claims."""

    watershed_margin: float  #: early minus late mean IoU of the task masks
    watershed_kappa: float  #: κ of the task masks compared in the watershed


@dataclass(frozen=True)
class AblationSettings:
    """Notebook 09's ablations of CUT's choices."""

    dataset: str
    tasks: str
    fusion_tasks: str
    sparsity: float
    families: list[str] | None = None  #: default: every family
    criteria: list[str] | None = None  #: compared with Taylor; default: magnitude, random
    batches: list[int] = field(default_factory=list)  #: scoring batches compared with the default


@dataclass(frozen=True)
class LatencySettings:
    """Notebook 08's latency benchmark (docs/method/efficiency.md#measuring-latency)."""

    batch_sizes: list[int]
    threads: list[int]
    min_run_time: float
    repeats: int
    runtimes: list[str]


@dataclass(frozen=True)
class EdgeSettings:
    """Notebook 08: what a device gains."""

    dataset: str
    tasks: str
    unstructured: list[float]
    grid: list[dict[str, Any]]
    latency: LatencySettings


@dataclass(frozen=True)
class ClusterSettings:
    """How ``cutlib grid --executor submitit`` asks a cluster for resources: one job per run,
    submitted as a job array (SLURM on a cluster, submitit's local executor elsewhere)."""

    partition: str | None = None  #: the SLURM partition; ``None``: the cluster's default
    time_minutes: int = 240  #: each job's time limit
    gpus_per_task: int = 1
    cpus_per_task: int = 8  #: the run's threads and its DataLoader workers
    mem_gb: int | None = None  #: memory per job; ``None``: the cluster's default
    array_parallelism: int = 64  #: jobs of the array running at once
    account: str | None = None  #: the SLURM account to charge, if the cluster needs one


@dataclass(frozen=True)
class RuntimeSettings:
    """How a run executes, never what it computes: left out of every run's identity
    (:data:`cutlib.profiles.PLANNING_KEYS`), because no value here changes a result.

    ``workers`` and ``pin_memory`` default by device (:func:`cutlib.loading.loader_settings`): no
    worker processes and no pinned memory on a CPU, where the training step already uses every
    core; worker processes and pinned memory on a GPU, so decoding and augmentation overlap the
    step.
    """

    workers: int | None = None  #: DataLoader worker processes; ``None``: by device
    pin_memory: bool | None = None  #: page-locked batches for fast GPU copies; ``None``: by device
    prefetch: int = 2  #: batches each worker prepares ahead
    checkpoint_every: int = 0  #: iterations between resumable checkpoints; 0: at stage ends only
    cluster: ClusterSettings = field(default_factory=ClusterSettings)


@dataclass(frozen=True)
class Profile:
    """A loaded profile: one run's settings, and what to run and show (grid, notebooks).

    ``name`` and ``dataset`` say where it came from (``dataset`` is ``None`` when no dataset's
    overrides were merged); ``source`` is the validated mapping it was built from, which is what a
    run's identity hashes (:func:`cutlib.profiles.run_settings`).
    """

    description: str
    data: DataSettings
    model: ModelSettings
    pretrain: PretrainSettings
    finetune: TrainConfig
    scoring: ScoringSettings
    baselines: BaselineSettings
    eval: EvalSettings
    loss_weights: dict[str, float] = field(default_factory=dict)  #: λ per task
    seeds: list[int] = field(default_factory=lambda: [0])  #: the grid's seeds
    grid: list[dict[str, Any]] = field(default_factory=list)  #: notebook 07's runs
    claims: ClaimSettings | None = None
    ablations: AblationSettings | None = None
    edge: EdgeSettings | None = None
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    name: str = field(default="", compare=False)
    dataset: str | None = field(default=None, compare=False)
    source: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def override(self, changes: Mapping[str, Any]) -> Profile:
        """A copy with ``changes`` (a nested mapping, like the YAML) deep-merged and validated.

        Example:
            >>> from cutlib.profiles import load_profile
            >>> load_profile("smoke").override({"pretrain": {"lr": 0.01}}).pretrain.lr
            0.01
        """
        return parse_profile(deep_merge(self.source, changes), self.name, self.dataset)


#: Keys of :class:`Profile` that are not read from the YAML.
_ORIGIN = ("name", "dataset", "source")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, nested mappings key by key (copies, never views).

    Example:
        >>> deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}})
        {'a': {'b': 1, 'c': 3}}
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_profile(source: Mapping[str, Any], name: str, dataset: str | None = None) -> Profile:
    """Validate the mapping ``source`` (a profile's YAML, a dataset's overrides merged) and build
    its :class:`Profile`.

    Raises:
        ProfileError: naming the first unknown, missing or ill-typed key and the valid keys.

    Example:
        >>> parse_profile({"description": "x", "pretrian": {}}, "mine")
        Traceback (most recent call last):
        ...
        cutlib.profiles.schema.ProfileError: profile 'mine': unknown key 'pretrian'; valid keys: \
description, data, model, pretrain, finetune, scoring, baselines, eval, loss_weights, seeds, grid, \
claims, ablations, edge, runtime
    """
    where = f"profile {name!r}" + (f" ({dataset})" if dataset else "")
    values = _build(Profile, source, "", where, skip=_ORIGIN)
    return Profile(**values, name=name, dataset=dataset, source=copy.deepcopy(dict(source)))


def _build(
    cls: type, source: Any, path: str, where: str, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The validated field values of dataclass ``cls`` from the mapping ``source`` at ``path``."""
    if not isinstance(source, Mapping):
        raise ProfileError(f"{where}: {path or 'the profile'} must be a mapping, got {source!r}")
    known = [f for f in fields(cls) if f.name not in skip]
    names = [f.name for f in known]
    for key in source:
        if key not in names:
            raise ProfileError(
                f"{where}: unknown key {path + str(key)!r}; valid keys: {', '.join(names)}"
            )
    hints = typing.get_type_hints(cls)
    values = {}
    for f in known:
        if f.name in source:
            values[f.name] = _convert(hints[f.name], source[f.name], path + f.name, where)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ProfileError(f"{where}: missing key {path + f.name!r}")
    return values


def _convert(kind: Any, value: Any, path: str, where: str) -> Any:
    """``value`` checked against the annotation ``kind`` (dataclasses built, tuples made)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, path, where)
    if is_dataclass(kind):
        return kind(**_build(kind, value, path + ".", where))
    expected = origin or kind
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is tuple and isinstance(value, list):
        return tuple(value)
    if expected is Any or (isinstance(value, expected) and not _bool_for_number(expected, value)):
        return value
    raise ProfileError(
        f"{where}: {path!r} must be {getattr(expected, '__name__', expected)}, got {value!r}"
    )


def _bool_for_number(expected: type, value: Any) -> bool:
    return isinstance(value, bool) and expected in (int, float)
