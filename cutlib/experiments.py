"""Experiments: run configurations, run ids, and the run store
(docs/architecture.md#runs-and-the-run-store).

One run = one (dataset, method, tasks, sparsity, profile, seed). Its configuration is resolved once
(:func:`resolve`: validated, its profile loaded and typed, its method and options looked up) into a
:class:`~cutlib.methods.spec.RunSpec` that the run carries from here to ``metrics.json``. It is
identified by a hash of its *full* configuration (including the resolved profile and the code's
data version), stored under ``results/runs/<id>/`` and reused when asked for again.
``metrics.json`` is written last and atomically, so its presence means the run finished; an
interrupted run is simply redone.

Every method starts from the dense pre-trained multi-task model, which is itself a cached run: the
``dense`` method on all tasks of the dataset.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

import cutlib.distributed as distributed
from cutlib.checkpoint import save_model
from cutlib.curves import TensorBoardCurves
from cutlib.data import REAL_LAYOUTS, dataset_info, dataset_tasks
from cutlib.data.real import default_root, read_index
from cutlib.data.synthetic import SYNTHETIC_VERSION
from cutlib.io import read_json, results_dir, write_json
from cutlib.loading import loader_settings
from cutlib.methods import (
    DEFAULT_PROTOCOL,
    DENSE,
    METHODS,
    PROTOCOLS,
    RunContext,
    RunSpec,
    get_method,
)
from cutlib.methods.cut import NAME as CUT
from cutlib.methods.cut import plan_compact
from cutlib.metrics import delta_mtl
from cutlib.models import SceneNet
from cutlib.profiles import (
    DEFAULT_PROFILE,
    check_profile_name,
    load_profile,
    method_settings,
    run_settings,
)
from cutlib.pruning.importance import BNMode, TaskScores
from cutlib.pruning.masks import (
    apply_masks,
    fold_masks,
    kept_by_layer,
    parameter_counts,
    sparsity_report,
)
from cutlib.resume import RunCheckpoints
from cutlib.tasks import select_tasks
from cutlib.train import autocast_dtype, check_precision, resolve_device
from cutlib.trivial import ConstantPredictor, fit_constants
from cutlib.version import __version__


@dataclass(frozen=True)
class RunConfig:
    """What one run is. ``tasks=None`` means all tasks of the dataset; ``sparsity=None`` the
    method's default (0 for ``dense``, 0.9 for pruning methods); ``options`` are the method's
    ``(name, value)`` options (e.g. ``(("fusion", "union"),)`` for CUT); ``protocol`` the training
    budget (``fair`` or ``paper``, :mod:`cutlib.context`); ``data_root`` the folder of a real
    dataset (``None``: ``data/<dataset>/``); ``precision`` ``fp32``, or ``bf16`` / ``fp16``
    mixed precision on CUDA (:func:`cutlib.train.autocast_dtype`)."""

    dataset: str
    method: str = DENSE
    tasks: tuple[str, ...] | None = None
    sparsity: float | None = None
    profile: str = DEFAULT_PROFILE
    seed: int = 0
    options: tuple[tuple[str, Any], ...] = ()
    protocol: str = DEFAULT_PROTOCOL
    data_root: str | None = None
    precision: str = "fp32"

    def validated(self) -> RunConfig:
        """Check every field and return a normalised copy (tasks in dataset order, sparsity set,
        options at their defaults dropped: an option set to its default is the same run as no
        option). See :func:`resolve` for what is checked.
        """
        spec = resolve(self)
        options = spec.options
        pairs = () if options is None else _non_default_options(options)
        return RunConfig(
            spec.dataset,
            spec.method.name,
            spec.tasks,
            spec.sparsity,
            spec.profile.name,
            spec.seed,
            pairs,
            spec.protocol,
            spec.data_root,
            spec.precision,
        )

    def method_options(self) -> Any:
        """The method's parsed options (e.g. :class:`~cutlib.methods.cut.CutOptions`).

        Raises:
            ValueError: for an option the method does not have or a value it does not accept.
        """
        return get_method(self.method).parse_options(dict(self.options))

    @property
    def is_pretraining(self) -> bool:
        """True for the dense run on all tasks: the pre-trained model every method starts from."""
        return self.method == DENSE and self.tasks == dataset_info(self.dataset).task_names


def _non_default_options(options: Any) -> tuple[tuple[str, Any], ...]:
    default = type(options)()
    pairs = ((f.name, getattr(options, f.name)) for f in fields(options))
    return tuple(sorted((k, v) for k, v in pairs if getattr(default, k) != v))


@functools.cache
def resolve(config: RunConfig) -> RunSpec:
    """Validate ``config`` and resolve it, once per process, into the
    :class:`~cutlib.methods.spec.RunSpec` a run carries: the method, its parsed options, the typed
    profile and the settings the method trains with, the dataset's tasks as the run trains them
    (:func:`cutlib.data.dataset_tasks`: loss and class weights).

    Raises:
        ValueError: with one line naming the valid choices, for an unknown dataset, method,
            task, profile, protocol or method option, or a sparsity outside [0, 1).
        cutlib.data.real.DataError: a real dataset that is missing or malformed (the
            message says how to get it); ValueError for a data root given to a synthetic
            dataset.
        cutlib.profiles.ProfileError: a profile with an unknown, missing or ill-typed key.
    """
    info = dataset_info(config.dataset)
    data_root = config.data_root
    if config.dataset in REAL_LAYOUTS:
        folder = Path(data_root) if data_root else default_root(config.dataset)
        read_index(REAL_LAYOUTS[config.dataset], folder)  # present and well-formed, or stop
        data_root = str(folder.resolve()) if data_root else None
    elif data_root is not None:
        raise ValueError(f"{config.dataset} is rendered, not read: it takes no data root")
    method = get_method(config.method)
    check_precision(config.precision)
    tasks = tuple(t.name for t in select_tasks(info.tasks, config.tasks))
    check_profile_name(config.profile)
    profile = load_profile(config.profile, config.dataset)
    unknown = set(profile.baselines.paper_protocol) - set(METHODS)
    if unknown:
        raise ValueError(
            f"profile {config.profile!r}: baselines.paper_protocol names an unknown method "
            f"{sorted(unknown)[0]!r}; valid methods: {', '.join(METHODS)}"
        )
    if config.protocol not in PROTOCOLS:
        raise ValueError(
            f"unknown protocol {config.protocol!r}; valid protocols: {', '.join(PROTOCOLS)}"
        )
    sparsity = config.sparsity
    if sparsity is None:
        sparsity = 0.9 if method.prunes else 0.0
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be a fraction in [0, 1), got {sparsity}")
    if not method.prunes and sparsity != 0.0:
        raise ValueError(
            f"the {method.name} method prunes nothing: leave --sparsity out or set it to 0"
        )
    settings = method_settings(profile, method.name, config.protocol)
    all_tasks = dataset_tasks(config.dataset, settings, data_root)
    return RunSpec(
        dataset=config.dataset,
        method=method,
        tasks=tasks,
        sparsity=float(sparsity),
        seed=int(config.seed),
        protocol=config.protocol,
        options=method.parse_options(dict(config.options)),
        profile=profile,
        settings=settings,
        all_tasks=all_tasks,
        selected=select_tasks(all_tasks, tasks),
        data_root=data_root,
        is_pretraining=method.name == DENSE and tasks == info.task_names,
        precision=config.precision,
    )


def full_config(config: RunConfig) -> dict[str, Any]:
    """Everything that determines a run's result; its hash is the run id. The method's options
    are included as resolved (defaults filled in), so changing a default makes new runs. A run
    trained by several processes (:mod:`cutlib.distributed`) has the number in its identity: its
    batches are split, so its last digits differ from a one-process run's."""
    spec = resolve(config)
    options = spec.options
    run = asdict(config)
    if run["data_root"] is None:  # the default data: the same ids as before the option existed
        del run["data_root"]
    if run["precision"] == "fp32":  # likewise for the default precision
        del run["precision"]
    if distributed.world_size() > 1:  # several processes train it (torchrun): other digits
        run["processes"] = distributed.world_size()
    return {
        "run": run,
        "method_options": None if options is None else asdict(options),
        "profile": run_settings(spec.profile),
        "versions": {"cutlib": __version__, "synthetic_data": SYNTHETIC_VERSION},
    }


def run_id(config: RunConfig) -> str:
    """Readable, unique run id.

    ``<dataset>-<method>-<tasks>-s<sparsity>-<profile>-seed<seed>-<hash of full_config>``.
    """
    canonical = json.dumps(full_config(config), sort_keys=True, default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
    tasks = "+".join(config.tasks or ("all",))
    return (
        f"{config.dataset}-{config.method}-{tasks}-s{config.sparsity:g}-{config.profile}"
        f"-seed{config.seed}-{digest}"
    )


def run_directory(config: RunConfig) -> Path:
    """Where a (validated) run lives in the run store: ``results/runs/<run id>/``; its
    ``metrics.json`` exists once the run has finished."""
    return results_dir() / "runs" / run_id(config)


def check_processes(config: RunConfig) -> None:
    """Check that the batches of ``config``'s run (its pre-training's too) can be shared equally
    among the processes training it (:mod:`cutlib.distributed`; one process: nothing to check).

    Raises:
        ValueError: naming the first batch size the number of processes does not divide.
    """
    processes = distributed.world_size()
    spec = resolve(config)
    sizes = {
        "pretrain": spec.profile.pretrain.batch_size,
        "finetune": spec.settings.finetune.batch_size,
        "scoring": spec.settings.scoring.batch_size,
    }
    for section, size in sizes.items():
        if size % processes:
            raise ValueError(
                f"{section}.batch_size {size} of profile {config.profile!r} cannot be shared "
                f"equally among {processes} processes: use a number of processes that divides it"
            )


def pretraining_config(config: RunConfig) -> RunConfig:
    """The dense pre-training run that ``config``'s run starts from: the same dataset, profile,
    seed and data, every task, no pruning."""
    info = dataset_info(config.dataset)
    return RunConfig(
        config.dataset,
        DENSE,
        info.task_names,
        0.0,
        config.profile,
        config.seed,
        data_root=config.data_root,
        precision=config.precision,
    )


def pretrained_run(
    config: RunConfig, device: str | torch.device = "auto", progress: bool = True
) -> Path:
    """The run folder of the dense pre-trained model for ``config``'s dataset, profile and seed
    (:func:`pretraining_config`), training it first if it is not in the run store."""
    return run(pretraining_config(config), device=device, progress=progress).directory


def pretrained_task_scores(
    dataset: str,
    profile: str,
    tasks: Sequence[str] | None = None,
    *,
    seed: int = 0,
    bn_mode: BNMode = "train",
    device: str | torch.device = "auto",
) -> tuple[SceneNet, TaskScores]:
    """The dense pre-trained model of ``dataset`` (all heads; trained first if it is not in the
    run store) and the per-task Taylor scores of ``tasks`` (default: all) on its frozen weights,
    over the profile's scoring batches, by the very code a ``cut`` run scores with
    (:meth:`~cutlib.methods.context.RunContext.task_scores`)."""
    config = RunConfig(dataset, DENSE, tuple(tasks) if tasks else None, 0.0, profile, seed)
    pretrained = pretrained_run(config, device, False)
    ctx = RunContext(resolve(config.validated()), resolve_device(device), False, pretrained)
    model = ctx.load_pretrained()
    return model, ctx.task_scores(model, "taylor", bn_mode)


def compact_before_finetuning(
    dataset: str,
    profile: str,
    tasks: Sequence[str],
    sparsity: float,
    *,
    fusion: str = "vote",
    seed: int = 0,
    device: str | torch.device = "auto",
    reestimate_batchnorm: bool = True,
) -> tuple[float, dict[str, dict[str, float]]]:
    """CUT's compact model of ``tasks`` at ``sparsity`` with ``fusion`` *before* fine-tuning:
    the κ it needed and its test metrics, by the very steps a ``cut`` run takes
    (:func:`cutlib.methods.cut.plan_compact`), without training (a few seconds on the quick
    profile). With ``reestimate_batchnorm`` (the default) the metrics are those of the compact
    model with its BatchNorm statistics re-estimated on the profile's ``eval.bn_batches``
    training batches, as a run records them (``metrics_before_finetune_bn``); without it, or
    with ``eval.bn_batches`` 0, with the dense model's statistics. The pre-trained model is
    trained first if it is not in the run store."""
    config = RunConfig(
        dataset, CUT, tuple(tasks), sparsity, profile, seed, options=(("fusion", fusion),)
    )
    pretrained = pretrained_run(config, device, False)
    ctx = RunContext(resolve(config.validated()), resolve_device(device), False, pretrained)
    model, plan = plan_compact(ctx)
    apply_masks(model, plan.masks)
    recalibrated = ctx.before_finetune_recalibrated(model) if reestimate_batchnorm else {}
    metrics = recalibrated.get("metrics_before_finetune_bn") or ctx.test_metrics(model)
    return plan.keep_ratio, metrics


@dataclass(frozen=True)
class RunRecord:
    """A finished run: its folder and the content of its ``metrics.json``."""

    directory: Path
    metrics: dict[str, Any]


def _trivial_metrics(ctx: RunContext) -> dict:
    """Metrics of the best constant predictor fitted on the training split (no augmentation)."""
    loader = DataLoader(ctx.dataset("train", augment=False), batch_size=256)
    constants = fit_constants(ctx.all_tasks, loader)
    return ctx.test_metrics(ConstantPredictor(ctx.all_tasks, constants), ctx.all_tasks)


def _restrict(metrics: dict[str, dict[str, float]], tasks: tuple[str, ...]) -> dict:
    return {t: metrics[t] for t in tasks}


def run(
    config: RunConfig,
    *,
    out: Path | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
    log_dir: Path | None = None,
    workers: int | None = None,
    checkpoint_every: int | None = None,
) -> RunRecord:
    """Run one experiment, or reuse it from the run store, and return its record.

    Writes ``metrics.json``, ``model.pt``, ``history.json`` and ``config.json`` to
    ``results/runs/<id>/`` (and copies them to ``out`` when given). With ``log_dir``, a run
    trained now logs its training curves to ``<log_dir>/<id>/`` for TensorBoard
    (:mod:`cutlib.curves`). ``workers`` (DataLoader worker processes) and ``checkpoint_every``
    (iterations between resumable checkpoints) override the profile's ``runtime`` section; neither
    changes the result. A run interrupted earlier resumes from its checkpoints
    (:mod:`cutlib.resume`); the pre-trained model it needs is made with the same settings.

    Example:
        >>> # record = run(RunConfig("synth-nyuv2", "dense", profile="smoke"))
        >>> # record.metrics["metrics"]["seg"]["mIoU"]
    """
    config = config.validated()
    device = resolve_device(device)
    autocast_dtype(config.precision, device)  # mixed precision needs CUDA
    directory = run_directory(config)
    finished = directory / "metrics.json"
    if not finished.is_file():
        with run_lock(directory, progress):
            # not finished by the process we may have waited for
            if distributed.agreed(not finished.is_file()):
                execution = Execution(device, progress, log_dir, workers, checkpoint_every)
                _execute(config, resolve(config), directory, execution)
                return _copied(RunRecord(directory, read_json(finished)), out)
    if progress:
        print(f"reusing finished run {directory.name}")
    return _copied(RunRecord(directory, read_json(finished)), out)


@dataclass(frozen=True)
class Execution:
    """How :func:`run` executes a run (its arguments besides the configuration): never what the
    run computes."""

    device: torch.device
    progress: bool = True
    log_dir: Path | None = None
    workers: int | None = None
    checkpoint_every: int | None = None

    def context(self, spec: RunSpec, directory: Path, pretrained: Path | None) -> RunContext:
        """The method's context for the run in ``directory``: its loader settings and
        checkpoints from the profile's ``runtime`` section unless overridden here."""
        runtime = spec.profile.runtime
        ctx = RunContext(spec, self.device, self.progress, pretrained)
        workers = runtime.workers if self.workers is None else self.workers
        ctx.loader = loader_settings(self.device, workers, runtime.pin_memory, runtime.prefetch)
        every = runtime.checkpoint_every if self.checkpoint_every is None else self.checkpoint_every
        ctx.checkpoints = RunCheckpoints(directory, every, distributed.is_writer())
        return ctx


def _copied(record: RunRecord, out: Path | None) -> RunRecord:
    """``record``, its files copied to ``out`` first when given."""
    directory = record.directory
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("metrics.json", "model.pt", "history.json", "config.json"):
            if (directory / name).is_file():
                shutil.copy2(directory / name, out / name)
    return record


#: Seconds between two attempts to take a run's lock held by another process.
LOCK_POLL_SECONDS = 1.0


@contextmanager
def run_lock(directory: Path, progress: bool = False) -> Iterator[None]:
    """Hold the lock of the run in ``directory`` (``<run>/.lock``) while training it.

    A POSIX record lock (``fcntl.lockf``, which NFS shares between machines): a second process
    that needs the same run, a grid job on another node or another notebook, waits for the first
    and then reuses its result instead of training the run twice. The operating system releases
    the lock when its holder dies, so a killed process never leaves the run locked. Of the
    processes of a torchrun run (:mod:`cutlib.distributed`), rank 0 takes the lock; while it
    waits, it tells the others at every attempt, so that a long wait never runs into the process
    group's timeout.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as handle:

        def taken() -> bool:
            if not distributed.is_writer():
                return distributed.agreed(False)
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return distributed.agreed(False)
            return distributed.agreed(True)

        if not taken():
            if progress:
                print(f"run {directory.name} is being trained by another process; waiting")
            while not taken():
                time.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            if distributed.is_writer():
                fcntl.lockf(handle, fcntl.LOCK_UN)


def _execute(config: RunConfig, spec: RunSpec, directory: Path, execution: Execution) -> None:
    start = time.perf_counter()
    pretrained = None
    if not spec.is_pretraining:
        pretrained = run(
            pretraining_config(config),
            device=execution.device,
            progress=execution.progress,
            log_dir=execution.log_dir,
            workers=execution.workers,
            checkpoint_every=execution.checkpoint_every,
        ).directory
    ctx = execution.context(spec, directory, pretrained)
    assert ctx.checkpoints is not None
    if execution.progress and ctx.checkpoints.resumable():
        print(f"resuming run {directory.name} from its checkpoints")
    task_names = spec.tasks
    log_dir = execution.log_dir
    curves = None if log_dir is None else TensorBoardCurves(Path(log_dir) / directory.name)
    ctx.curves = curves
    try:
        result = spec.method.run(ctx)
    finally:
        if curves is not None:
            curves.close()
    fold_masks(result.model)  # pruned weights become plain zeros before counting and saving
    if distributed.active():
        processes = {"count": distributed.world_size(), **distributed.ranks_agree(result.model)}
        result.details["processes"] = processes

    eval_start = time.perf_counter()
    metrics = ctx.test_metrics(result.model)
    if pretrained is None:
        dense_metrics, trivial = metrics, _trivial_metrics(ctx)
        dense_total = parameter_counts(result.model)["total"]
    else:
        dense_record = read_json(pretrained / "metrics.json")
        dense_metrics = _restrict(dense_record["metrics"], task_names)
        trivial = _restrict(dense_record["reference"]["trivial"], task_names)
        dense_total = dense_record["params"]["dense_total"]
    ctx.timings["evaluate"] = time.perf_counter() - eval_start
    ctx.timings["total"] = time.perf_counter() - start

    directions = {t.name: t.metric_directions for t in ctx.tasks}
    record = {
        "dataset": config.dataset,
        "method": config.method,
        "tasks": list(task_names),
        "profile": config.profile,
        "protocol": config.protocol,
        "seed": config.seed,
        "sparsity": {"target": config.sparsity, **sparsity_report(result.model)},
        "params": {"dense_total": dense_total, **parameter_counts(result.model)},
        "layers": kept_by_layer(result.model),
        "metrics": metrics,
        "reference": {"dense": dense_metrics, "trivial": trivial},
        "delta_mtl": delta_mtl(metrics, dense_metrics, directions),
        "details": result.details | {"training": ctx.training_record()},
        "timings": {k: round(v, 3) for k, v in ctx.timings.items()},
    }
    if distributed.is_writer():
        write_json(directory / "config.json", full_config(config))
        write_json(directory / "history.json", result.history)
        save_model(result.model, directory / "model.pt")
        for name, model in result.artifacts.items():
            save_model(fold_masks(model), directory / f"{name}.pt")
        write_json(directory / "metrics.json", record)  # last: its presence marks a finished run
        ctx.checkpoints.clear()
    distributed.barrier()  # the other processes read these files next
    if execution.progress:
        print(f"finished run {directory.name} in {ctx.timings['total']:.1f} s")
