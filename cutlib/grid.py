"""The experiment grid: which runs a profile makes, running them, and one tidy table of results.

A profile's ``grid`` section is a list of *blocks*; each block is a product

    datasets × task selections × methods (each with its protocols) × sparsities × seeds

and the grid is the union of its blocks (the same run listed twice is made once). Seeds come from
the profile's ``seeds`` (default ``[0]``); a block's own ``seeds`` keeps only those of them (a
costly block on fewer seeds); every block also gets, for each of its selections, the dense
reference (the pre-trained model with only the selected heads) and the control (that model
fine-tuned like the pruned ones, nothing pruned), so every table has both rows.

.. code-block:: yaml

    grid:
      - datasets: [synth-nyuv2]
        tasks: [seg+depth]             # task selections, "+"-separated
        methods: {cut: [fair], snip: [fair, paper]}
        sparsities: [0.7, 0.9]
      - datasets: [synth-nyuv2]        # a factorial design: the product of a method's options
        tasks: [seg+depth]
        methods: {cut: [fair]}
        options: {cut: {criterion: [taylor, magnitude], fusion: [vote, union]}}
        sparsities: [0.7, 0.9]

Runs go through the run store (:func:`cutlib.experiments.run`): finished runs are reused, so an
interrupted grid resumes where it stopped. ``jobs > 1`` runs independent runs in parallel
processes: the pre-trained models first (every other run starts from one), then the rest. On a CPU
the last digits of a trained model depend on the number of threads it trained with, so a
parallel grid and a serial grid give identical tables when each run gets the same number of
``threads`` (:func:`run_grid` sets it; by default 1 per run when ``jobs > 1``). A
:data:`StageRunner` makes the two stages elsewhere instead, e.g. as cluster jobs
(:mod:`cutlib.cluster`).

A method that starts from the pre-trained model and trains once
(:attr:`~cutlib.methods.registry.Method.protocol_free`) trains identically under both protocols
(:mod:`cutlib.methods.registry`) unless the profile gives it its own authors' settings under
``paper`` (``baselines.paper_protocol``, :func:`trains_alike`); the grid then makes its run once
and reports it under every protocol the block lists.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from cutlib.convergence import convergence_table
from cutlib.data import dataset_info
from cutlib.experiments import (
    RunConfig,
    pretraining_config,
    resolve,
    run,
    run_directory,
    run_id,
)
from cutlib.io import read_json, results_dir, write_json
from cutlib.methods import CONTROL, DEFAULT_PROTOCOL, DENSE, METHODS, PROTOCOLS, get_method
from cutlib.metrics import delta_mtl
from cutlib.profiles import Profile, load_profile


def trains_alike(method: str, settings: Profile) -> bool:
    """Whether ``method`` trains identically under both protocols with the loaded profile
    ``settings``: it is protocol-free (:attr:`~cutlib.methods.registry.Method.protocol_free`) and
    the profile's ``baselines.paper_protocol`` gives it no settings of its own.

    Example:
        >>> quick = load_profile("quick")
        >>> trains_alike("disparse_pt", quick), trains_alike("snip", quick)
        (True, False)
        >>> trains_alike("disparse_pt", load_profile("paper", "nyuv2"))
        False
    """
    return get_method(method).protocol_free and method not in settings.baselines.paper_protocol


#: The runs every block of a grid gets for each of its task selections and seeds, whatever its
#: methods: the dense pre-trained model (the reference of Δ_MTL) and the control, the same model
#: fine-tuned like the pruned ones with nothing pruned (:mod:`cutlib.methods.control`).
REFERENCES: tuple[str, ...] = (DENSE, CONTROL)

#: Columns that identify a grid cell in :func:`collect`'s table (``task``/``metric`` add the
#: measurement; ``value`` is the number).
CELL_COLUMNS: tuple[str, ...] = (
    "dataset",
    "tasks",
    "method",
    "options",
    "protocol",
    "sparsity",
    "seed",
)


def options_label(options: Iterable[tuple[str, Any]]) -> str:
    """``"fusion=union,min_votes=1"`` (empty without options).

    Example:
        >>> options_label((("fusion", "union"), ("min_votes", 1)))
        'fusion=union,min_votes=1'
    """
    return ",".join(f"{name}={value}" for name, value in options)


@dataclass(frozen=True)
class GridCell:
    """One entry of the grid: a run configuration and the protocol it is reported under (which
    differs from ``config.protocol`` only for a method that trains alike under both,
    :func:`trains_alike`)."""

    config: RunConfig
    protocol: str


def _selection(text: str | Sequence[str]) -> tuple[str, ...]:
    return tuple(text.split("+")) if isinstance(text, str) else tuple(text)


def _check_block(block: Mapping[str, Any], index: int) -> None:
    known = {"datasets", "tasks", "methods", "options", "sparsities", "seeds"}
    unknown = sorted(set(block) - known)
    if unknown:
        raise ValueError(
            f"grid block {index}: unknown key {unknown[0]!r}; "
            f"valid keys: {', '.join(sorted(known))}"
        )
    for key in ("datasets", "methods", "sparsities"):
        if not block.get(key):
            raise ValueError(f"grid block {index}: {key!r} is missing or empty")
    for method, protocols in block["methods"].items():
        if method not in METHODS:
            raise ValueError(
                f"grid block {index}: unknown method {method!r}; "
                f"valid methods: {', '.join(METHODS)}"
            )
        bad = [p for p in protocols or () if p not in PROTOCOLS]
        if not protocols or bad:
            raise ValueError(
                f"grid block {index}: method {method!r} needs protocols from {', '.join(PROTOCOLS)}"
            )
    for method, values in (block.get("options") or {}).items():
        if method not in block["methods"]:
            raise ValueError(
                f"grid block {index}: options for {method!r}, which is not among the block's "
                f"methods ({', '.join(block['methods'])})"
            )
        empty = [name for name, choices in values.items() if not choices]
        if empty:
            raise ValueError(f"grid block {index}: option {method}.{empty[0]} lists no values")


def option_products(
    values: Mapping[str, Sequence[Any]] | None,
) -> list[tuple[tuple[str, Any], ...]]:
    """Every combination of a block's option values for one method, as ``(name, value)`` pairs
    (one empty combination without options).

    Example:
        >>> option_products({"criterion": ["taylor", "magnitude"], "fusion": ["vote", "union"]})[1]
        (('criterion', 'taylor'), ('fusion', 'union'))
        >>> option_products(None)
        [()]
    """
    if not values:
        return [()]
    names = list(values)
    return [tuple(zip(names, combo, strict=True)) for combo in itertools.product(*values.values())]


@dataclass(frozen=True)
class _Place:
    """Where a block's cells are made: one dataset, task selection and seed of a profile."""

    dataset: str
    tasks: tuple[str, ...]
    seed: int
    profile: str
    settings: Profile  #: the profile with the dataset's overrides


def _config(place: _Place, method: str, sparsity: float, **fields: Any) -> RunConfig:
    return RunConfig(
        place.dataset, method, place.tasks, sparsity, place.profile, place.seed, **fields
    ).validated()


def _reference_cells(block: Mapping[str, Any], place: _Place) -> list[GridCell]:
    """The dense model and the control of ``place``, under each protocol of ``block``."""
    protocols = sorted({p for ps in block["methods"].values() for p in ps})
    cells = []
    for protocol, method in itertools.product(protocols, REFERENCES):
        trained = DEFAULT_PROTOCOL if trains_alike(method, place.settings) else protocol
        cells.append(GridCell(_config(place, method, 0.0, protocol=trained), protocol))
    return cells


def _method_cells(block: Mapping[str, Any], place: _Place) -> list[GridCell]:
    """Every method × sparsity × option combination × protocol of ``block`` at ``place``."""
    cells = []
    for method, method_protocols in block["methods"].items():
        alike = trains_alike(method, place.settings)
        combos = option_products((block.get("options") or {}).get(method))
        for sparsity, options in itertools.product(block["sparsities"], combos):
            for protocol in method_protocols:
                trained = DEFAULT_PROTOCOL if alike else protocol
                config = _config(place, method, sparsity, protocol=trained, options=options)
                cells.append(GridCell(config, protocol))
    return cells


def grid_cells(
    profile: str,
    *,
    blocks: Sequence[Mapping[str, Any]] | None = None,
    seeds: Sequence[int] | None = None,
    datasets: Iterable[str] | None = None,
) -> list[GridCell]:
    """The cells of ``profile``'s grid (or of ``blocks``), validated, without repeats, the
    references of every block first: for each of its task selections and seeds, the dense model
    and the control (:data:`REFERENCES`).

    Args:
        profile: the profile whose ``grid`` and ``seeds`` to use, and the profile of every run.
        blocks: grid blocks to use instead of the profile's.
        seeds: seeds to use instead of the profile's ``seeds``.
        datasets: keep only the blocks' cells on these datasets.

    Raises:
        ValueError: for a malformed block, an unknown dataset, task, method or protocol, or a
            sparsity outside [0, 1), naming the valid choices.

    Example:
        >>> cells = grid_cells("smoke", blocks=[{"datasets": ["synth-nyuv2"], "tasks": ["seg+sn"],
        ...     "methods": {"cut": ["fair", "paper"]}, "sparsities": [0.5]}], seeds=[0])
        >>> [(c.config.method, c.protocol, c.config.protocol)
        ...  for c in cells]  # doctest: +NORMALIZE_WHITESPACE
        [('dense', 'fair', 'fair'), ('control', 'fair', 'fair'), ('dense', 'paper', 'fair'),
         ('control', 'paper', 'fair'), ('cut', 'fair', 'fair'), ('cut', 'paper', 'fair')]
    """
    settings = load_profile(profile)
    blocks = settings.grid if blocks is None else blocks
    seeds = list(settings.seeds if seeds is None else seeds)
    wanted = set(datasets) if datasets is not None else None
    reference_cells: list[GridCell] = []
    cells: list[GridCell] = []
    for index, block in enumerate(blocks):
        _check_block(block, index)
        for dataset in block["datasets"]:
            info = dataset_info(dataset)
            if wanted is not None and dataset not in wanted:
                continue
            selections = [_selection(t) for t in block.get("tasks") or [info.task_names]]
            block_seeds = [s for s in seeds if s in block.get("seeds", seeds)]
            for tasks, seed in itertools.product(selections, block_seeds):
                place = _Place(dataset, tasks, seed, profile, load_profile(profile, dataset))
                reference_cells += _reference_cells(block, place)
                cells += _method_cells(block, place)
    others = [c for c in cells if c.config.method not in REFERENCES]
    return list(dict.fromkeys(reference_cells + others))


def planned_iterations(config: RunConfig) -> int:
    """The optimiser steps a run will take, as its method declares them
    (:meth:`~cutlib.methods.registry.Method.planned_steps`, under the method's own settings for
    the run's protocol; the pre-training's for the pre-training run). A test checks these against
    the steps every method records in ``metrics.json``.

    Example:
        >>> planned_iterations(RunConfig("synth-nyuv2", "snip", profile="smoke"))
        50
    """
    return resolve(config.validated()).planned_steps


def _unique_configs(cells: Iterable[GridCell]) -> list[RunConfig]:
    return list(dict.fromkeys(c.config for c in cells))


#: The files of a run that make its record: enough to rebuild every table and figure of a grid
#: (metrics and training histories), without the weights.
RECORD_FILES: tuple[str, ...] = ("config.json", "metrics.json", "history.json")


def records_dir() -> Path:
    """Where committed run records live: ``<results>/records/<run id>/`` (:data:`RECORD_FILES`)."""
    return results_dir() / "records"


def run_file(config: RunConfig, name: str = "metrics.json") -> Path:
    """``name`` of the run ``config``: from the run store if it is there, else from its record
    (:func:`records_dir`); the run store's path when neither has it."""
    stored = run_directory(config) / name
    if stored.is_file():
        return stored
    recorded = records_dir() / run_id(config) / name
    return recorded if recorded.is_file() else stored


def export_records(cells: Iterable[GridCell]) -> int:
    """Copy the :data:`RECORD_FILES` of every finished run of ``cells`` from the run store into
    :func:`records_dir`, so that its tables can be rebuilt where the run store (with the
    weights) is absent, with the pre-trained models' records; returns how many runs were
    exported. A record once written is never replaced: a run remade later (a pre-trained model
    retrained on another machine for a run added to a study) keeps the committed record of its
    run id, and the new runs carry their own reference in their ``metrics.json``."""
    exported = 0
    first, then = _stages(list(cells))
    for config in first + then:
        source = run_directory(config)
        target = records_dir() / run_id(config)
        if not (source / "metrics.json").is_file() or (target / "metrics.json").is_file():
            continue
        target.mkdir(parents=True, exist_ok=True)
        for name in RECORD_FILES:
            if (source / name).is_file():
                (target / name).write_bytes((source / name).read_bytes())
        exported += 1
    return exported


def _is_finished(config: RunConfig, store_only: bool = False) -> bool:
    """Whether ``config``'s run is in the run store (or, unless ``store_only``, recorded)."""
    if store_only:
        return (run_directory(config) / "metrics.json").is_file()
    return run_file(config).is_file()


#: The device this worker process was given by :func:`_claim_device` (``None`` in the parent).
_WORKER_DEVICE: str | None = None


def worker_devices(device: str, jobs: int, device_count: int | None = None) -> list[str]:
    """The device of each of ``jobs`` grid workers.

    A bare ``cuda`` (or ``auto`` on a machine with CUDA) and more than one visible GPU: the
    workers go round-robin over them, ``cuda:0, cuda:1, …, cuda:0, …``, so ``jobs = k × GPUs``
    puts ``k`` runs on each GPU at a time. Anything else (``cpu``, ``mps``, ``cuda:1``, one
    GPU): every worker gets ``device``. ``device_count``: the visible GPUs (default: CUDA's).

    Example:
        >>> worker_devices("cuda", 5, device_count=2)
        ['cuda:0', 'cuda:1', 'cuda:0', 'cuda:1', 'cuda:0']
        >>> worker_devices("cuda:1", 2, device_count=2), worker_devices("cpu", 2, device_count=2)
        (['cuda:1', 'cuda:1'], ['cpu', 'cpu'])
    """
    count = torch.cuda.device_count() if device_count is None else device_count
    bare_cuda = device == "cuda" or (device == "auto" and count > 0)
    if not bare_cuda or count < 2:
        return [device] * jobs
    return [f"cuda:{index % count}" for index in range(jobs)]


def _claim_device(devices: Any) -> None:
    """Pool initializer: this worker takes the next device of the queue for all its runs."""
    global _WORKER_DEVICE
    _WORKER_DEVICE = devices.get()


def worker_pool(jobs: int, device: str) -> ProcessPoolExecutor:
    """``jobs`` spawned worker processes, each with its device of :func:`worker_devices`."""
    context = multiprocessing.get_context("spawn")
    devices = context.Queue()
    for assigned in worker_devices(device, jobs):
        devices.put(assigned)
    return ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_claim_device, initargs=(devices,)
    )


@dataclass(frozen=True)
class RunOptions:
    """How each run of a grid is made, never what it computes: the device, the CPU threads
    (``None``: PyTorch's default), the TensorBoard folder, the DataLoader workers and the
    checkpoint interval (``None``: the profile's ``runtime`` section)."""

    device: str = "auto"
    threads: int | None = None
    log_dir: Path | None = None
    workers: int | None = None
    checkpoint_every: int | None = None


def _run_quietly(config: RunConfig, options: RunOptions) -> tuple[RunConfig, float]:
    """Make one run (in a worker process or in this one) with ``options``, on the worker's own
    device if :func:`worker_pool` gave it one."""
    device = _WORKER_DEVICE or options.device
    previous = torch.get_num_threads()
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    start = time.perf_counter()
    try:
        run(
            config,
            device=device,
            progress=False,
            log_dir=options.log_dir,
            workers=options.workers,
            checkpoint_every=options.checkpoint_every,
        )
    finally:
        torch.set_num_threads(previous)
    return config, time.perf_counter() - start


#: Makes one stage of a grid's runs (:func:`run_grid`): called with the stage's runs and the
#: :class:`RunOptions` (threads ``None``: the runner's default), it yields each run with its wall
#: seconds as it finishes. :func:`run_grid` makes the stages in this process (or a worker pool)
#: unless given another, such as :class:`cutlib.cluster.SubmititRunner`.
StageRunner = Callable[[Sequence[RunConfig], RunOptions], Iterable[tuple[RunConfig, float]]]


def _in_this_process(
    stage: Sequence[RunConfig], options: RunOptions
) -> Iterator[tuple[RunConfig, float]]:
    """The :data:`StageRunner` of a serial grid: the runs one after the other, in this process."""
    for config in stage:
        yield _run_quietly(config, options)


def _pretraining_of(config: RunConfig) -> RunConfig:
    return pretraining_config(config).validated()


def _stages(cells: Sequence[GridCell]) -> tuple[list[RunConfig], list[RunConfig]]:
    """Every run the cells need, in two stages: the pre-trained models (cells or not), then the
    runs that start from one, long ones first (that keeps parallel workers busy)."""
    configs = _unique_configs(cells)
    pretraining = list(dict.fromkeys(_pretraining_of(c) for c in configs))
    later = [c for c in configs if c not in set(pretraining)]
    later.sort(key=planned_iterations, reverse=True)
    return pretraining, later


def _pending_stages(
    cells: Sequence[GridCell], store_only: bool = False
) -> tuple[list[RunConfig], list[RunConfig]]:
    """The unfinished runs of :func:`_stages` (``store_only``: recorded runs count as unfinished,
    to be re-run)."""
    first, then = _stages(cells)
    return (
        [c for c in first if not _is_finished(c, store_only)],
        [c for c in then if not _is_finished(c, store_only)],
    )


def complete_seeds(cells: Sequence[GridCell]) -> list[int]:
    """The seeds all of whose cells have finished runs (in the run store or as records), with
    their pre-trained models: the seeds a partial study can report without mixing in half-done
    ones."""
    seeds = sorted({cell.config.seed for cell in cells})
    first, then = _stages(cells)
    unfinished = {config.seed for config in first + then if not _is_finished(config)}
    return [seed for seed in seeds if seed not in unfinished]


def pending_runs(cells: Sequence[GridCell], store_only: bool = False) -> list[RunConfig]:
    """The runs :func:`run_grid` would make now, in its order (pre-trained models first)."""
    first, then = _pending_stages(cells, store_only)
    return first + then


def run_grid(
    cells: Sequence[GridCell],
    *,
    jobs: int = 1,
    threads: int | None = None,
    device: str = "auto",
    progress: bool = True,
    log_dir: Path | None = None,
    runner: StageRunner | None = None,
    workers: int | None = None,
    checkpoint_every: int | None = None,
    rerun: bool = False,
) -> dict[str, float]:
    """Make every run of ``cells`` that is not in the run store yet (nor, unless ``rerun``,
    in the run records).

    Args:
        cells: from :func:`grid_cells`.
        jobs: parallel worker processes (1: in this process).
        threads: CPU threads per run; default: PyTorch's default when ``jobs == 1``, else 1
            (the runner's default with ``runner``).
        device: ``auto``, ``cpu``, ``cuda``…; with ``jobs > 1`` and several GPUs, a bare
            ``cuda`` spreads the workers over them (:func:`worker_devices`).
        progress: a tqdm bar over the optimiser steps the runs will take
            (:func:`planned_iterations`), so its estimate of the time left weighs a long
            from-scratch run more than a short fine-tuning.
        log_dir: each run made now logs its training curves there for TensorBoard.
        runner: makes each stage instead of this process (:data:`StageRunner`); ``jobs`` must
            then be 1.
        workers, checkpoint_every: DataLoader workers and checkpoint interval of each run
            (``None``: the profile's ``runtime`` section).
        rerun: make the recorded runs again in the run store (their weights are not recorded),
            e.g. to read what the records lack (:func:`record_layers`).

    Returns:
        Wall seconds of each run made now, by run id (reused runs are absent).

    Raises:
        ValueError: for ``jobs`` or ``threads`` below 1, or ``jobs > 1`` with a ``runner``.
    """
    if jobs < 1 or (threads is not None and threads < 1):
        raise ValueError(f"jobs and threads must be at least 1, got jobs={jobs}, threads={threads}")
    if runner is not None and jobs > 1:
        raise ValueError(f"a runner makes the runs itself: jobs must be 1, got {jobs}")
    if threads is None and jobs > 1:
        threads = 1
    options = RunOptions(device, threads, log_dir, workers, checkpoint_every)
    first, then = _pending_stages(cells, rerun)
    stages = (first, then)
    todo = len(first) + len(then)
    done = sum(len(stage) for stage in _stages(cells)) - todo
    if progress and done:
        print(f"{done} of {todo + done} runs already in the run store, reused")
    steps = {c: planned_iterations(c) + 1 for stage in stages for c in stage}  # +1: evaluation
    bar = tqdm(
        total=sum(steps.values()), desc="grid", unit="step", unit_scale=True, disable=not progress
    )
    seconds: dict[str, float] = {}

    def finished(config: RunConfig, wall: float) -> None:
        seconds[run_id(config)] = round(wall, 1)
        bar.set_postfix_str(
            f"run {len(seconds)}/{todo}: {config.method} {config.sparsity:g} {config.protocol}, "
            f"{wall:.0f} s"
        )
        bar.update(steps[config])

    try:
        if jobs == 1:
            for stage in stages:
                for result in (runner or _in_this_process)(stage, options):
                    finished(*result)
            return seconds
        with worker_pool(jobs, device) as pool:
            for stage in stages:
                futures = [pool.submit(_run_quietly, c, options) for c in stage]
                for future in as_completed(futures):
                    finished(*future.result())
    finally:
        bar.close()
    return seconds


def cell_columns(cell: GridCell) -> dict[str, Any]:
    """The :data:`CELL_COLUMNS` of one cell, as every tidy table of the grid writes them."""
    config = cell.config
    return {
        "dataset": config.dataset,
        "tasks": "+".join(config.tasks or ()),
        "method": config.method,
        "options": options_label(config.options),
        "protocol": cell.protocol,
        "sparsity": config.sparsity,
        "seed": config.seed,
    }


def collect(cells: Sequence[GridCell]) -> pd.DataFrame:
    """The grid's results as one tidy table: one row per (cell, task, metric), plus one row per
    cell with ``task = "all"``, ``metric = "delta_mtl"`` (Δ_MTL in percent against the dense
    model), read from the runs' ``metrics.json`` (in the run store, else in the run records).

    Columns: :data:`CELL_COLUMNS`, ``achieved_sparsity``, ``steps_since_init``, ``task``,
    ``metric``, ``higher_is_better``, ``value``. Wall times stay out (they are in each run's
    ``timings``), so the table reproduces to the digit.

    Raises:
        FileNotFoundError: naming the first run that has not been made (run :func:`run_grid`).
    """
    rows = []
    for cell in cells:
        config = cell.config
        path = run_file(config)
        if not path.is_file():
            raise FileNotFoundError(f"run {run_id(config)} is not in the run store: run the grid")
        record = read_json(path)
        training = record.get("details", {}).get("training", {})
        base = cell_columns(cell) | {
            "achieved_sparsity": record["sparsity"]["achieved"],
            "steps_since_init": training.get("iterations_since_initialisation"),
        }
        specs = {t.name: t for t in dataset_info(config.dataset).tasks}  # metric directions
        for task, values in record["metrics"].items():
            directions = specs[task].metric_directions
            for metric, value in values.items():
                rows.append(
                    base
                    | {
                        "task": task,
                        "metric": metric,
                        "higher_is_better": directions[metric],
                        "value": value,
                    }
                )
        rows.append(
            base
            | {
                "task": "all",
                "metric": "delta_mtl",
                "higher_is_better": True,
                "value": record["delta_mtl"],
            }
        )
    table = pd.DataFrame(rows)
    if not table.empty:  # dense runs have no training record
        table["steps_since_init"] = table["steps_since_init"].astype("Int64")
    return table


def collect_before(cells: Sequence[GridCell]) -> pd.DataFrame:
    """Δ_MTL of every pruned cell's compact model *before* fine-tuning, as its run recorded it:
    with the pre-training's BatchNorm statistics (``stale``) and, where the run re-estimated
    them on training batches (:meth:`~cutlib.methods.context.RunContext.
    before_finetune_recalibrated`), with those (``recalibrated``). Columns: the cell's
    (:data:`CELL_COLUMNS`), ``statistics`` and ``value``; cells without such metrics (the
    references, the methods that train from scratch) are left out."""
    rows = []
    for cell in cells:
        config = cell.config
        record = read_json(run_file(config))
        details = record.get("details", {})
        dense = record["reference"]["dense"]
        directions = {t.name: t.metric_directions for t in dataset_info(config.dataset).tasks}
        base = cell_columns(cell)
        for statistics, key in BEFORE_FINETUNE.items():
            if key in details and config.sparsity > 0:
                value = delta_mtl(details[key], dense, directions)
                rows.append(base | {"statistics": statistics, "value": value})
    return pd.DataFrame(rows, columns=[*CELL_COLUMNS, "statistics", "value"])


def convergence_by_seed(cells: Sequence[GridCell]) -> pd.DataFrame:
    """The convergence check (:func:`cutlib.convergence.convergence`) of the pre-training of
    every dataset and seed of ``cells``, from its recorded validation curve: a ``dataset``
    column, then :func:`cutlib.convergence.convergence_table`'s."""
    histories: dict[str, dict[int, list[dict[str, float]]]] = {}
    for config in dict.fromkeys(_pretraining_of(c.config) for c in cells):
        history = read_json(run_file(config, "history.json"))
        histories.setdefault(config.dataset, {})[config.seed] = history
    tables = [
        convergence_table(by_seed).assign(dataset=dataset) for dataset, by_seed in histories.items()
    ]
    table = pd.concat(tables, ignore_index=True)
    return table[["dataset", *[c for c in table.columns if c != "dataset"]]]


#: The two "before fine-tuning" evaluations a run records, by the BatchNorm statistics used.
BEFORE_FINETUNE = {
    "stale": "metrics_before_finetune",
    "recalibrated": "metrics_before_finetune_bn",
}


#: Beside a run record made before ``metrics.json`` carried per-layer counts: those counts, from
#: a re-run of the same configuration (:func:`record_layers`).
LAYERS_FILE = "layers.json"


def run_layers(config: RunConfig) -> dict[str, list[int]] | None:
    """The per-layer ``[kept, weights]`` of a finished run: from its ``metrics.json``, else from
    the :data:`LAYERS_FILE` beside its record, else ``None``."""
    layers = read_json(run_file(config)).get("layers")
    if layers is None and (path := records_dir() / run_id(config) / LAYERS_FILE).is_file():
        layers = read_json(path)["layers"]
    return layers


def collect_layers(cells: Sequence[GridCell]) -> pd.DataFrame:
    """One row per (cell, prunable weight) of the cells whose runs record their layers: the
    cell's columns (:data:`CELL_COLUMNS`), ``name``, ``kept`` and ``weights``. Cells without
    per-layer counts are left out."""
    rows = []
    for cell in cells:
        config = cell.config
        layers = run_layers(config)
        if layers is None:
            continue
        base = cell_columns(cell)
        rows += [base | {"name": n, "kept": k, "weights": w} for n, (k, w) in layers.items()]
    return pd.DataFrame(rows, columns=[*CELL_COLUMNS, "name", "kept", "weights"])


def rerun_differences(cells: Sequence[GridCell]) -> pd.DataFrame:
    """For each cell whose record has a :data:`LAYERS_FILE` (a re-run of it, made later, maybe on
    another CPU): the cell's columns, the recorded Δ_MTL (``record``) and the re-run's
    (``rerun``). How far a re-run lands from its record says how far runs made on different
    machines can be compared (empty when no record was re-run)."""
    rows = []
    for cell in dict.fromkeys(cells):
        path = records_dir() / run_id(cell.config) / LAYERS_FILE
        if path.is_file():
            found = read_json(path)
            rows.append(
                cell_columns(cell)
                | {"record": found["record_delta_mtl"], "rerun": found["rerun_delta_mtl"]}
            )
    return pd.DataFrame(rows, columns=[*CELL_COLUMNS, "record", "rerun"])


def record_layers(configs: Iterable[RunConfig]) -> int:
    """For each run of ``configs`` whose record lacks per-layer counts and whose re-run is in the
    run store (made by ``cutlib grid --rerun``), write the re-run's counts as the record's
    :data:`LAYERS_FILE`, with both runs' Δ_MTL (the re-run may differ in its last digits on
    another CPU); returns how many were written."""
    written = 0
    for config in configs:
        record = records_dir() / run_id(config)
        rerun = run_directory(config) / "metrics.json"
        if not (record / "metrics.json").is_file() or not rerun.is_file():
            continue
        if "layers" in read_json(record / "metrics.json"):
            continue
        made = read_json(rerun)
        write_json(
            record / LAYERS_FILE,
            {
                "layers": made["layers"],
                "rerun_delta_mtl": made["delta_mtl"],
                "record_delta_mtl": read_json(record / "metrics.json")["delta_mtl"],
            },
        )
        written += 1
    return written


def write_runs_table(cells: Sequence[GridCell]) -> tuple[pd.DataFrame, Path]:
    """:func:`collect` the cells and write the table to ``results/tables/runs.csv``."""
    table = collect(cells)
    path = results_dir() / "tables" / "runs.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return table, path
