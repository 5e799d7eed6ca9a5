"""The grid as cluster jobs (``cutlib grid --executor submitit``): through submitit's local
executor it gives the local grid's table to the digit; each job's resources come from the profile,
overridden by the options; requeued jobs resubmit themselves; bad options and a missing submitit
are bad input."""

from __future__ import annotations

import importlib.util
import pickle
import shutil
import sys
from pathlib import Path

import pytest

from cutlib.cli import EXIT_BAD_INPUT, _grid_runner, build_parser, main
from cutlib.cluster import (
    GridJob,
    SubmititRunner,
    cluster_resources,
    executor_parameters,
    log_folder,
)
from cutlib.experiments import RunConfig
from cutlib.grid import RunOptions, grid_cells, pending_runs, run_grid, write_runs_table
from cutlib.profiles import load_profile
from cutlib.profiles.schema import ClusterSettings

needs_submitit = pytest.mark.skipif(
    importlib.util.find_spec("submitit") is None, reason="pip install -e .[cluster]"
)
#: Three runs: the pre-trained model (first job array), then a pruned run and the dense reference.
BLOCK = {
    "datasets": ["synth-nyuv2"],
    "tasks": ["seg+depth"],
    "methods": {"magnitude": ["fair"]},
    "sparsities": [0.9],
}
GRID = ["grid", "--profile", "smoke", "--dry-run"]
SUBMITIT = [*GRID, "--executor", "submitit", "--cluster", "local"]


@pytest.mark.slow
@needs_submitit
def test_submitit_jobs_give_the_local_grid_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = grid_cells("smoke", blocks=[BLOCK], seeds=[0])
    monkeypatch.setenv("CUTLIB_RESULTS", str(tmp_path / "local"))
    run_grid(cells, threads=1, device="cpu", progress=False)
    _, local = write_runs_table(cells)

    monkeypatch.setenv("CUTLIB_RESULTS", str(tmp_path / "jobs"))
    runner = SubmititRunner(ClusterSettings(gpus_per_task=0, time_minutes=5), cluster="local")
    made = run_grid(cells, threads=1, device="cpu", progress=False, runner=runner)
    assert len(made) == 4 and not pending_runs(cells)  # pre-training, dense, control, magnitude
    _, jobs = write_runs_table(cells)
    assert jobs.read_bytes() == local.read_bytes()
    assert log_folder() == tmp_path / "jobs" / "submitit"
    assert len(list(log_folder().glob("*_log.out"))) == 4  # one job per run


def _resources(*options: str) -> ClusterSettings:
    """The resources of ``cutlib grid --executor submitit --cluster local`` with ``options``."""
    runner = _grid_runner(build_parser().parse_args([*SUBMITIT, *options]))
    assert runner is not None and runner.cluster == "local"
    return runner.resources


@needs_submitit
def test_resources_are_the_profile_s_overridden_by_the_options() -> None:
    profile = load_profile("smoke").override(
        {"runtime": {"cluster": {"partition": "gpu", "mem_gb": 32}}}
    )
    resources = cluster_resources(profile.runtime.cluster, time_minutes=30, partition=None)
    assert resources == ClusterSettings(partition="gpu", mem_gb=32, time_minutes=30)
    parameters = executor_parameters(resources)
    assert parameters["timeout_min"] == 30 and parameters["slurm_partition"] == "gpu"
    assert parameters["gpus_per_node"] == 1 and parameters["slurm_account"] is None

    assert _resources() == load_profile("smoke").runtime.cluster == ClusterSettings()
    options = ["--cpus-per-task", "2", "--gpus-per-task", "0", "--array-parallelism", "4"]
    options += ["--partition", "long", "--account", "lab", "--time-minutes", "60", "--mem-gb", "8"]
    assert _resources(*options) == ClusterSettings(
        partition="long",
        time_minutes=60,
        gpus_per_task=0,
        cpus_per_task=2,
        mem_gb=8,
        array_parallelism=4,
        account="lab",
    )
    assert _grid_runner(build_parser().parse_args(GRID)) is None  # --executor local


@needs_submitit
def test_a_requeued_job_resubmits_itself(tmp_path: Path) -> None:
    job = GridJob(tmp_path, RunOptions("cpu", 1, checkpoint_every=50))
    config = RunConfig("synth-nyuv2", "dense", profile="smoke")
    again = job.checkpoint(config)
    assert again.function is job and again.args == (config,)
    copy = pickle.loads(pickle.dumps(job))
    assert (copy.results, copy.options) == (tmp_path, RunOptions("cpu", 1, checkpoint_every=50))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*GRID, "--executor", "slurm"], "invalid choice: 'slurm'"),
        ([*SUBMITIT, "--cluster", "pbs"], "invalid choice: 'pbs'"),
        ([*SUBMITIT, "--jobs", "2"], "--jobs applies to --executor local only"),
        ([*SUBMITIT, "--cpus-per-task", "0"], "--cpus-per-task (runtime.cluster.cpus_per_task)"),
        ([*SUBMITIT, "--time-minutes", "-5"], "--time-minutes"),
        ([*SUBMITIT, "--array-parallelism", "0"], "must be at least 1, got 0"),
        ([*SUBMITIT, "--mem-gb", "0"], "--mem-gb"),
        ([*SUBMITIT, "--gpus-per-task", "-1"], "must be at least 0, got -1"),
        ([*SUBMITIT, "--time-minutes", "ten"], "invalid int value"),
        ([*GRID, "--partition", "gpu"], "--partition applies to --executor submitit only"),
        ([*GRID, "--cluster", "local"], "--cluster applies to --executor submitit only"),
    ],
)
def test_bad_cluster_options_are_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _assert_bad_input([*argv, "--out", str(tmp_path / "out")], message, tmp_path, capsys)


@needs_submitit
@pytest.mark.skipif(shutil.which("srun") is not None, reason="SLURM is here")
def test_slurm_where_there_is_none_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*SUBMITIT, "--cluster", "slurm", "--out", str(tmp_path / "out")]
    _assert_bad_input(argv, "no SLURM here", tmp_path, capsys)


def test_submitit_missing_is_bad_input(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit fails
    argv = [*SUBMITIT, "--out", str(tmp_path / "out")]
    _assert_bad_input(argv, "pip install -e .[cluster]", tmp_path, capsys)


def _assert_bad_input(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))
    assert exit_info.value.code == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], captured.err
    assert not (tmp_path / "out").exists()


@needs_submitit
def test_a_failed_job_ends_the_grid_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from submitit.core.utils import FailedJobError

    def failing(*args: object, **kwargs: object) -> None:
        raise FailedJobError(
            "Job (task=0) failed during processing with trace:\n...\nOSError: disk"
        )

    monkeypatch.setattr("cutlib.grid.run_grid", failing)
    argv = [arg for arg in SUBMITIT if arg != "--dry-run"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cutlib grid: a job failed: OSError: disk (logs: ")
    assert len(err.splitlines()) == 1
