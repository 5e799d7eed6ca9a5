"""The grid as cluster jobs (``cutlib grid --executor submitit``;
docs/usage.md#a-slurm-cluster).

:class:`SubmititRunner` makes each stage of :func:`cutlib.grid.run_grid` as one job array through
submitit, one job per pending run: the pre-trained models first, and once they are all made, the
runs that start from them. It submits to SLURM on a cluster, or to submitit's local executor
(processes on this machine). Each job's resources come from the profile's ``runtime.cluster``
section (:class:`~cutlib.profiles.schema.ClusterSettings`), overridable from the command line
(:func:`cluster_resources`).

Every job makes its run as a serial grid does (:class:`GridJob`), in the run store of the results
folder that submitted it, which on a cluster must be on a filesystem all the nodes share: finished
runs are reused, and the run's lock keeps two jobs from training the same run. A job that SLURM
pre-empts or that reaches its time limit is requeued (:meth:`GridJob.checkpoint`), and its run
resumes from its last checkpoint (every ``runtime.checkpoint_every`` iterations; with 0, only
finished training stages are kept, and the stage in progress starts again). submitit is optional
(``pip install -e .[cluster]``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cutlib.io import results_dir
from cutlib.profiles.schema import ClusterSettings

if TYPE_CHECKING:
    from submitit.helpers import DelayedSubmission

    from cutlib.experiments import RunConfig
    from cutlib.grid import RunOptions

#: ``cutlib grid --executor``: ``local`` runs on this machine (``--jobs``), ``submitit`` as jobs.
EXECUTORS: tuple[str, ...] = ("local", "submitit")
#: ``cutlib grid --cluster``: where submitit's jobs go (``auto``: SLURM if it is there, else local).
CLUSTERS: tuple[str, ...] = ("auto", "local", "slurm")

#: The command-line type and help of each :class:`~cutlib.profiles.schema.ClusterSettings` field
#: (the option is :func:`option_name`).
RESOURCE_OPTIONS: dict[str, tuple[type, str]] = {
    "partition": (str, "SLURM partition"),
    "time_minutes": (int, "time limit of each job, in minutes"),
    "gpus_per_task": (int, "GPUs per job (0: none)"),
    "cpus_per_task": (int, "CPU cores per job, and each run's threads unless --threads"),
    "mem_gb": (int, "memory per job, in GB"),
    "array_parallelism": (int, "jobs of an array running at once (SLURM)"),
    "account": (str, "SLURM account to charge"),
}

#: Seconds between two looks at the jobs of a stage.
POLL_SECONDS = 1.0


def option_name(field: str) -> str:
    """The command-line option of a setting.

    Example:
        >>> option_name("time_minutes")
        '--time-minutes'
    """
    return "--" + field.replace("_", "-")


def check_available() -> None:
    """Raise ValueError (bad input) if submitit is not installed."""
    if importlib.util.find_spec("submitit") is None:
        raise ValueError("--executor submitit needs submitit: pip install -e .[cluster]")


def cluster_resources(settings: ClusterSettings, **overrides: Any) -> ClusterSettings:
    """``settings`` (a profile's ``runtime.cluster``) with the ``overrides`` that are not ``None``.

    Raises:
        ValueError: a count below 1 (GPUs below 0), naming its option.

    Example:
        >>> cluster_resources(ClusterSettings(), partition="gpu", time_minutes=None).partition
        'gpu'
        >>> cluster_resources(ClusterSettings(), cpus_per_task=0)
        Traceback (most recent call last):
        ...
        ValueError: --cpus-per-task (runtime.cluster.cpus_per_task) must be at least 1, got 0
    """
    resources = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    for field in fields(resources):
        value = getattr(resources, field.name)
        least = 0 if field.name == "gpus_per_task" else 1
        if isinstance(value, int) and value < least:
            raise ValueError(
                f"{option_name(field.name)} (runtime.cluster.{field.name}) must be at least "
                f"{least}, got {value}"
            )
    return resources


def executor_parameters(resources: ClusterSettings) -> dict[str, Any]:
    """The keyword arguments of ``submitit.AutoExecutor.update_parameters`` for ``resources``: one
    task per job; the ``slurm_`` ones apply on SLURM only; ``None`` leaves the cluster's default.

    Example:
        >>> parameters = executor_parameters(ClusterSettings(partition="gpu", gpus_per_task=0))
        >>> parameters["slurm_partition"], parameters["gpus_per_node"]
        ('gpu', None)
    """
    return {
        "name": "cutlib-grid",
        "timeout_min": resources.time_minutes,
        "tasks_per_node": 1,
        "gpus_per_node": resources.gpus_per_task or None,  # 0: ask for no GPU at all
        "cpus_per_task": resources.cpus_per_task,
        "mem_gb": resources.mem_gb,
        "slurm_partition": resources.partition,
        "slurm_account": resources.account,
        "slurm_array_parallelism": resources.array_parallelism,
    }


def resolve_cluster(cluster: str) -> str:
    """``local`` or ``slurm``: ``auto`` is SLURM where its ``srun`` is found, else local.

    Raises:
        ValueError: an unknown name, a missing submitit, or ``slurm`` where there is no SLURM.
    """
    if cluster not in CLUSTERS:
        raise ValueError(f"unknown cluster {cluster!r}; valid: {', '.join(CLUSTERS)}")
    check_available()
    import submitit

    on_slurm = submitit.SlurmExecutor.affinity() > 0
    if cluster == "slurm" and not on_slurm:
        raise ValueError("--cluster slurm: no SLURM here (no srun); valid here: auto, local")
    if cluster == "auto":
        return "slurm" if on_slurm else "local"
    return cluster


def log_folder() -> Path:
    """Where the jobs' logs, pickled calls and results go: ``<results>/submitit/``."""
    return results_dir() / "submitit"


class GridJob:
    """One run of the grid as a submitit job, made as a serial grid makes it (run store, run lock,
    reuse of a finished run) in the results folder ``results``, with ``options``.

    submitit calls :meth:`checkpoint` when SLURM pre-empts the job or its time limit nears, and
    requeues the job it returns."""

    def __init__(self, results: Path, options: RunOptions) -> None:
        self.results = results
        self.options = options

    def __call__(self, config: RunConfig) -> tuple[RunConfig, float]:
        """Make the run ``config`` (or reuse it); the run and its wall seconds."""
        from cutlib.grid import _run_quietly  # here: the CLI reads this module without pandas

        os.environ["CUTLIB_RESULTS"] = str(self.results)
        return _run_quietly(config, self.options)

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """The same job again, to requeue: its run resumes from the run's last checkpoint."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


class SubmititRunner:
    """A :data:`cutlib.grid.StageRunner` that submits each stage as one job array of
    :class:`GridJob` with ``resources`` (:func:`cluster_resources`) to ``cluster``
    (:data:`CLUSTERS`) and yields each run as its job finishes. Each run gets ``threads`` CPU
    threads, by default the job's ``cpus_per_task``; the jobs' logs go to :func:`log_folder`.

    Raises:
        ValueError: as :func:`resolve_cluster`.
    """

    def __init__(self, resources: ClusterSettings, cluster: str = "auto") -> None:
        self.resources = resources
        self.cluster = resolve_cluster(cluster)

    def __call__(
        self, stage: Sequence[RunConfig], options: RunOptions
    ) -> Iterator[tuple[RunConfig, float]]:
        """Submit the runs of ``stage``, wait for them, and yield each with its wall seconds.

        Raises:
            submitit.core.utils.FailedJobError: a job failed (its log is in :func:`log_folder`).
        """
        if not stage:
            return
        import submitit

        executor = submitit.AutoExecutor(folder=log_folder(), cluster=self.cluster)
        executor.update_parameters(**executor_parameters(self.resources))
        threads = self.resources.cpus_per_task if options.threads is None else options.threads
        log_dir = options.log_dir.resolve() if options.log_dir else None
        job = GridJob(results_dir(), replace(options, threads=threads, log_dir=log_dir))
        jobs = executor.map_array(job, stage)
        for done in submitit.helpers.as_completed(jobs, poll_frequency=POLL_SECONDS):
            yield done.result()
