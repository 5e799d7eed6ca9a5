"""Experiments: run configurations, run ids, and the run store (DESIGN §6).

One run = one (dataset, method, tasks, sparsity, profile, seed). It is identified by a hash of its
*full* configuration (including the resolved profile and the code's data version), stored under
``results/runs/<id>/`` and reused when asked for again. ``metrics.json`` is written last and
atomically, so its presence means the run finished; an interrupted run is simply redone.

Every method starts from the dense pre-trained multi-task model, which is itself a cached run: the
``dense`` method on all tasks of the dataset.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

import cutlib
from cutlib.checkpoint import load_model, save_model
from cutlib.context import DEFAULT_PROTOCOL, PROTOCOLS, RunContext
from cutlib.data import REAL_LAYOUTS, dataset_info, dataset_tasks, load_dataset
from cutlib.data.real import default_root, read_index
from cutlib.data.synthetic import SYNTHETIC_VERSION
from cutlib.io import read_json, results_dir, write_json
from cutlib.methods import DENSE, METHOD_OPTIONS, METHODS, pretrain
from cutlib.metrics import delta_mtl
from cutlib.models import SceneNet
from cutlib.profiles import (
    DEFAULT_PROFILE,
    check_profile_name,
    load_profile,
    method_settings,
    paper_protocol_methods,
    run_settings,
)
from cutlib.pruning.importance import BNMode, TaskScores, scoring_batches, task_importance
from cutlib.pruning.masks import fold_masks, parameter_counts, sparsity_report
from cutlib.tasks import select_tasks
from cutlib.train import TrainConfig, resolve_device
from cutlib.trivial import ConstantPredictor, fit_constants


@dataclass(frozen=True)
class RunConfig:
    """What one run is. ``tasks=None`` means all tasks of the dataset; ``sparsity=None`` the
    method's default (0 for ``dense``, 0.9 for pruning methods); ``options`` are the method's
    ``(name, value)`` options (e.g. ``(("fusion", "union"),)`` for CUT); ``protocol`` the training
    budget (``fair`` or ``paper``, :mod:`cutlib.context`); ``data_root`` the folder of a real
    dataset (``None``: ``data/<dataset>/``)."""

    dataset: str
    method: str = DENSE
    tasks: tuple[str, ...] | None = None
    sparsity: float | None = None
    profile: str = DEFAULT_PROFILE
    seed: int = 0
    options: tuple[tuple[str, Any], ...] = ()
    protocol: str = DEFAULT_PROTOCOL
    data_root: str | None = None

    def validated(self) -> RunConfig:
        """Check every field and return a normalised copy (tasks in dataset order, sparsity set).

        Raises:
            ValueError: with one line naming the valid choices, for an unknown dataset, method,
                task, profile or protocol, or a sparsity outside [0, 1).
            cutlib.data.real.DataError: a real dataset that is missing or malformed (the
                message says how to get it); ValueError for a data root given to a synthetic
                dataset.
        """
        info = dataset_info(self.dataset)
        data_root = self.data_root
        if self.dataset in REAL_LAYOUTS:
            folder = Path(data_root) if data_root else default_root(self.dataset)
            read_index(REAL_LAYOUTS[self.dataset], folder)  # present and well-formed, or stop
            data_root = str(folder.resolve()) if data_root else None
        elif data_root is not None:
            raise ValueError(f"{self.dataset} is rendered, not read: it takes no data root")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; valid methods: {', '.join(METHODS)}")
        tasks = tuple(t.name for t in select_tasks(info.tasks, self.tasks))
        check_profile_name(self.profile)
        settings = load_profile(self.profile, self.dataset)
        unknown = set(paper_protocol_methods(settings)) - set(METHODS)
        if unknown:
            raise ValueError(
                f"profile {self.profile!r}: baselines.paper_protocol names an unknown method "
                f"{sorted(unknown)[0]!r}; valid methods: {', '.join(METHODS)}"
            )
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"unknown protocol {self.protocol!r}; valid protocols: {', '.join(PROTOCOLS)}"
            )
        sparsity = self.sparsity
        if sparsity is None:
            sparsity = 0.0 if self.method == DENSE else 0.9
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be a fraction in [0, 1), got {sparsity}")
        if self.method == DENSE and sparsity != 0.0:
            raise ValueError("the dense method prunes nothing: leave --sparsity out or set it to 0")
        options = tuple(sorted(dict(self.options).items()))
        checked = replace(
            self,
            tasks=tasks,
            sparsity=float(sparsity),
            seed=int(self.seed),
            options=options,
            data_root=data_root,
        )
        parsed = checked.method_options()
        if parsed is not None:  # an option set to its default is the same run as no option
            default = type(parsed)()
            options = tuple((k, v) for k, v in options if getattr(default, k) != v)
        return replace(checked, options=options)

    def method_options(self) -> Any:
        """The method's parsed options (e.g. :class:`~cutlib.pruning.cut.CutOptions`).

        Raises:
            ValueError: for an option the method does not have or a value it does not accept.
        """
        parser = METHOD_OPTIONS.get(self.method)
        if parser is None:
            if self.options:
                raise ValueError(f"method {self.method!r} takes no options")
            return None
        return parser(dict(self.options))

    @property
    def is_pretraining(self) -> bool:
        """True for the dense run on all tasks: the pre-trained model every method starts from."""
        return self.method == DENSE and self.tasks == dataset_info(self.dataset).task_names


def full_config(config: RunConfig) -> dict[str, Any]:
    """Everything that determines a run's result; its hash is the run id. The method's options
    are included as resolved (defaults filled in), so changing a default makes new runs."""
    options = config.method_options()
    run = asdict(config)
    if run["data_root"] is None:  # the default data: the same ids as before the option existed
        del run["data_root"]
    return {
        "run": run,
        "method_options": None if options is None else asdict(options),
        "profile": run_settings(load_profile(config.profile, config.dataset)),
        "versions": {"cutlib": cutlib.__version__, "synthetic_data": SYNTHETIC_VERSION},
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


def pretrained_run(
    config: RunConfig, device: str | torch.device = "auto", progress: bool = True
) -> Path:
    """The run folder of the dense pre-trained model for ``config``'s dataset, profile and seed,
    training it first if it is not in the run store."""
    info = dataset_info(config.dataset)
    dense = RunConfig(
        config.dataset,
        DENSE,
        info.task_names,
        0.0,
        config.profile,
        config.seed,
        data_root=config.data_root,
    )
    return run(dense, device=device, progress=progress).directory


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
    over the profile's scoring batches, exactly as a ``cut`` run computes them."""
    settings = load_profile(profile, dataset)
    specs = select_tasks(dataset_tasks(dataset, settings), tasks)
    run_dir = pretrained_run(RunConfig(dataset, profile=profile, seed=seed), device, False)
    model = load_model(run_dir / "model.pt", resolve_device(device))
    scoring = settings["scoring"]
    train_split = load_dataset(dataset, "train", settings, seed)
    batches = scoring_batches(train_split, scoring["batch_size"], scoring["batches"], seed)
    align = TrainConfig.from_profile(settings["finetune"]).align
    scores = task_importance(
        model, batches, specs, "taylor", bn_mode=bn_mode, align=align, seed=seed
    )
    return model, scores


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
) -> RunRecord:
    """Run one experiment, or reuse it from the run store, and return its record.

    Writes ``metrics.json``, ``model.pt``, ``history.json`` and ``config.json`` to
    ``results/runs/<id>/`` (and copies them to ``out`` when given).

    Example:
        >>> # record = run(RunConfig("synth-nyuv2", "dense", profile="smoke"))
        >>> # record.metrics["metrics"]["seg"]["mIoU"]
    """
    config = config.validated()
    directory = run_directory(config)
    if not (directory / "metrics.json").is_file():
        _execute(config, directory, resolve_device(device), progress)
    elif progress:
        print(f"reusing finished run {directory.name}")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("metrics.json", "model.pt", "history.json", "config.json"):
            if (directory / name).is_file():
                shutil.copy2(directory / name, out / name)
    return RunRecord(directory, read_json(directory / "metrics.json"))


def run_context(
    config: RunConfig, device: torch.device, progress: bool, pretrained: Path | None
) -> RunContext:
    """The context a run of ``config`` hands its method: the profile as that method trains with
    it under the run's protocol (:func:`cutlib.profiles.method_settings`) and the dataset's tasks
    as the run trains them (:func:`cutlib.data.dataset_tasks`: loss and class weights)."""
    profile = method_settings(
        load_profile(config.profile, config.dataset), config.method, config.protocol
    )
    all_tasks = dataset_tasks(config.dataset, profile, config.data_root)
    selected = select_tasks(all_tasks, config.tasks)
    return RunContext(config, profile, all_tasks, selected, device, progress, pretrained)


def _execute(config: RunConfig, directory: Path, device: torch.device, progress: bool) -> None:
    start = time.perf_counter()
    pretrained = None if config.is_pretraining else pretrained_run(config, device, progress)
    ctx = run_context(config, device, progress, pretrained)
    task_names = config.tasks or ()
    result = pretrain(ctx) if pretrained is None else METHODS[config.method](ctx)
    fold_masks(result.model)  # pruned weights become plain zeros before counting and saving

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
        "metrics": metrics,
        "reference": {"dense": dense_metrics, "trivial": trivial},
        "delta_mtl": delta_mtl(metrics, dense_metrics, directions),
        "details": result.details | {"training": ctx.training_record()},
        "timings": {k: round(v, 3) for k, v in ctx.timings.items()},
    }
    write_json(directory / "config.json", full_config(config))
    write_json(directory / "history.json", result.history)
    save_model(result.model, directory / "model.pt")
    for name, model in result.artifacts.items():
        save_model(fold_masks(model), directory / f"{name}.pt")
    write_json(directory / "metrics.json", record)  # last: its presence marks a finished run
    if progress:
        print(f"finished run {directory.name} in {ctx.timings['total']:.1f} s")
