"""Runs: metrics.json and model.pt contracts, caching by configuration, atomic writes,
determinism."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cutlib.experiments as experiments
import cutlib.methods.context as context
import cutlib.methods.dense as dense_method
from cutlib.checkpoint import load_model
from cutlib.experiments import RunConfig, run, run_id
from cutlib.io import write_json
from cutlib.tasks import METRIC_DIRECTIONS

SMOKE = RunConfig("synth-nyuv2", "dense", profile="smoke")


def test_dense_run_writes_the_contract_files(tmp_path: Path) -> None:
    record = run(SMOKE, progress=False, out=tmp_path / "out")
    m = record.metrics
    assert set(m) == {
        "dataset",
        "method",
        "tasks",
        "profile",
        "protocol",
        "seed",
        "sparsity",
        "params",
        "layers",
        "metrics",
        "reference",
        "delta_mtl",
        "details",
        "timings",
    }
    assert m["tasks"] == ["seg", "sn", "depth"] and m["delta_mtl"] == 0.0
    assert set(m["sparsity"]) == {"target", "achieved", "backbone", "heads"}
    assert m["sparsity"]["target"] == 0.0 and m["sparsity"]["achieved"] < 1e-6
    assert m["params"]["dense_total"] == m["params"]["total"] >= m["params"]["nonzero"]
    for task in m["tasks"]:
        kind = task
        assert set(m["metrics"][task]) == set(METRIC_DIRECTIONS[kind])
        assert set(m["reference"]["trivial"][task]) == set(METRIC_DIRECTIONS[kind])
    assert {"data", "pretrain", "evaluate", "total"} <= set(m["timings"])
    payload = torch.load(record.directory / "model.pt", weights_only=True)
    assert {"format_version", "config", "tasks", "state_dict"} <= set(payload)
    assert not any("_orig" in k or "_mask" in k for k in payload["state_dict"])
    rewind = torch.load(record.directory / "rewind.pt", weights_only=True)  # for LTH
    assert rewind["tasks"] == m["tasks"]
    assert any(
        not torch.equal(rewind["state_dict"][k], v) for k, v in payload["state_dict"].items()
    )
    for name in ("metrics.json", "model.pt", "history.json", "config.json"):
        assert (tmp_path / "out" / name).is_file()


def test_task_subset_drops_heads_and_reuses_the_pretrained_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    full = run(SMOKE, progress=False)
    calls = []
    monkeypatch.setattr(dense_method, "pretrain", lambda ctx: calls.append(ctx) or None)
    subset = run(
        RunConfig("synth-nyuv2", "dense", ("seg", "depth"), profile="smoke"), progress=False
    )
    assert not calls, "the cached pre-trained run must be reused"
    assert subset.metrics["tasks"] == ["seg", "depth"]
    assert subset.metrics["metrics"] == {t: full.metrics["metrics"][t] for t in ("seg", "depth")}
    assert subset.metrics["params"]["total"] < subset.metrics["params"]["dense_total"]
    model = load_model(subset.directory / "model.pt")
    assert model.task_names == ("seg", "depth")
    assert set(subset.metrics["sparsity"]["heads"]) == {"seg", "depth"}


def test_finished_runs_are_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    first = run(SMOKE, progress=False)
    monkeypatch.setattr(experiments, "_execute", lambda *a, **k: pytest.fail("recomputed"))
    assert run(SMOKE, progress=False).metrics == first.metrics


def test_interrupted_write_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    with pytest.raises(TypeError):
        write_json(target, {"not json": object()})
    assert list(tmp_path.iterdir()) == []


def test_interrupted_run_leaves_no_metrics(
    monkeypatch: pytest.MonkeyPatch, isolated_results: Path
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(context, "evaluate", crash)
    with pytest.raises(KeyboardInterrupt):
        run(SMOKE, progress=False)
    assert not list(isolated_results.glob("runs/*/metrics.json"))


def test_run_id_depends_on_the_configuration() -> None:
    a = SMOKE.validated()
    assert run_id(a) == run_id(RunConfig("synth-nyuv2", profile="smoke").validated())
    assert run_id(a) != run_id(RunConfig("synth-nyuv2", profile="smoke", seed=1).validated())
    assert run_id(a) != run_id(
        RunConfig("synth-nyuv2", tasks=("seg",), profile="smoke").validated()
    )
    assert run_id(a).startswith("synth-nyuv2-dense-seg+sn+depth-s0-smoke-seed0-")


def test_run_id_ignores_planning_entries_but_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    config = RunConfig("synth-nyuv2", "cut", ("seg", "depth"), 0.9, "smoke").validated()
    original = experiments.load_profile

    def run_id_with(changes: dict) -> str:
        monkeypatch.setattr(
            experiments, "load_profile", lambda *args: original(*args).override(changes)
        )
        experiments.resolve.cache_clear()
        return run_id(config)

    before = run_id(config)
    planning = {
        "grid": {"grid": [{"sparsities": [0.5]}]},
        "seeds": {"seeds": [0, 1, 2, 3]},
        "notebook": {"baselines": {"notebook": {"cut": ["fair", "paper"]}}},
        "description": {"description": "another text"},
    }
    for changes in planning.values():
        assert run_id_with(changes) == before
    assert run_id_with({"finetune": {"iterations": 21}}) != before


def test_same_seed_gives_identical_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = []
    for folder in ("a", "b"):
        monkeypatch.setenv("CUTLIB_RESULTS", str(tmp_path / folder))
        metrics.append(
            json.loads((run(SMOKE, progress=False).directory / "metrics.json").read_text())
        )
    assert metrics[0]["metrics"] == metrics[1]["metrics"]


_RUN_SMOKE = (
    "from cutlib.experiments import RunConfig, run; "
    "run(RunConfig('synth-nyuv2', 'dense', profile='smoke'))"
)
_HOLD_LOCK = (
    "import sys, time; from pathlib import Path; from cutlib.experiments import run_lock; "
    "lock = run_lock(Path(sys.argv[1])); lock.__enter__(); print('locked', flush=True); "
    "time.sleep(600)"
)


def _environment(results: Path) -> dict[str, str]:
    return os.environ | {"CUTLIB_RESULTS": str(results), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_two_processes_train_a_run_once_and_share_it(tmp_path: Path) -> None:
    env = _environment(tmp_path / "results")
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _RUN_SMOKE], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0]
    trained = [out for out in outputs if re.search(r"^finished run \S+ in [\d.]+ s$", out, re.M)]
    reused = [out for out in outputs if "reusing finished run" in out]
    assert len(trained) == 1 and len(reused) == 1, outputs


def test_a_lock_left_by_a_killed_process_is_taken_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "results"
    monkeypatch.setenv("CUTLIB_RESULTS", str(results))
    directory = experiments.run_directory(SMOKE.validated())
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(directory)],
        env=_environment(results),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    record = run(SMOKE, progress=False)  # would wait forever if the dead holder kept the lock
    assert record.directory == directory and (directory / "metrics.json").is_file()
