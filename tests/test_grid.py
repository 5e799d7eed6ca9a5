"""The experiment grid: declared cells, resuming without recomputing, parallel = serial, the tidy
table, and `cutlib grid`."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import cutlib.experiments as experiments
import cutlib.grid
from cutlib.cli import main
from cutlib.grid import (
    collect,
    grid_cells,
    pending_runs,
    run_grid,
    worker_devices,
    worker_pool,
)

BLOCKS = [
    {
        "datasets": ["synth-nyuv2"],
        "tasks": ["seg+depth"],
        "methods": {"cut": ["fair", "paper"], "magnitude": ["fair"]},
        "sparsities": [0.9],
    }
]


def test_cells_dedupe_protocol_free_methods_and_include_the_references() -> None:
    cells = grid_cells("smoke", blocks=BLOCKS, seeds=[0])
    shown = [(c.config.method, c.protocol, c.config.protocol) for c in cells]
    assert shown == [
        ("dense", "fair", "fair"),
        ("control", "fair", "fair"),
        ("dense", "paper", "fair"),
        ("control", "paper", "fair"),  # the control trains alike too
        ("cut", "fair", "fair"),
        ("cut", "paper", "fair"),  # CUT trains the same under both: one run, reported twice
        ("magnitude", "fair", "fair"),
    ]
    assert len({c.config for c in cells}) == 4
    configs = pending_runs(cells)
    assert configs[0].tasks == ("seg", "sn", "depth")  # the pre-training comes first
    assert len(configs) == 5


def test_options_give_the_product_of_their_values_and_defaults_are_the_plain_run() -> None:
    factorial = {
        "datasets": ["synth-nyuv2"],
        "tasks": ["seg+depth"],
        "methods": {"cut": ["fair"], "magnitude": ["fair"]},
        "options": {"cut": {"criterion": ["taylor", "magnitude"], "fusion": ["vote", "union"]}},
        "sparsities": [0.7, 0.9],
    }
    cells = grid_cells("smoke", blocks=[factorial, BLOCKS[0]], seeds=[0])
    cut = [(c.config.sparsity, c.config.options) for c in cells if c.config.method == "cut"]
    assert cut[:4] == [
        (0.7, ()),  # taylor + vote: the authors' defaults, i.e. the plain cut run
        (0.7, (("fusion", "union"),)),
        (0.7, (("criterion", "magnitude"),)),
        (0.7, (("criterion", "magnitude"), ("fusion", "union"))),
    ]
    # 2 sparsities × 4 combinations; BLOCKS' fair cut at 0.9 is one of them, its paper cell is new
    assert len(cut) == 8 + 1
    assert sum(c.config.method == "magnitude" for c in cells) == 2  # options only for cut


def test_a_block_with_its_own_seeds_keeps_only_those_of_the_grid() -> None:
    few = {**BLOCKS[0], "methods": {"magnitude": ["fair"]}, "seeds": [1, 7]}
    cells = grid_cells("smoke", blocks=[BLOCKS[0], few], seeds=[0, 1, 2])
    seeds = {m: sorted({c.config.seed for c in cells if c.config.method == m}) for m in ("cut",)}
    assert seeds == {"cut": [0, 1, 2]}
    assert sorted(c.config.seed for c in cells if c.config.method == "magnitude") == [0, 1, 2]
    only = grid_cells("smoke", blocks=[few], seeds=[0, 1, 2])
    assert sorted({c.config.seed for c in only}) == [1]  # seed 7 is not among the grid's


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"datasets": ["synth-nyuv2"], "methods": {"cut": ["fair"]}}, "'sparsities'"),
        ({**BLOCKS[0], "methods": {"nope": ["fair"]}}, "unknown method 'nope'"),
        ({**BLOCKS[0], "methods": {"cut": ["generous"]}}, "needs protocols"),
        ({**BLOCKS[0], "sparsity": [0.9]}, "unknown key 'sparsity'"),
        ({**BLOCKS[0], "datasets": ["mnist"]}, "unknown dataset"),
        ({**BLOCKS[0], "tasks": ["seg+colour"]}, "colour"),
        ({**BLOCKS[0], "sparsities": [1.0]}, "sparsity must be"),
        ({**BLOCKS[0], "options": {"snip": {"x": [1]}}}, "not among the block's methods"),
        ({**BLOCKS[0], "options": {"cut": {"fusion": []}}}, "cut.fusion lists no values"),
        ({**BLOCKS[0], "options": {"cut": {"fusoin": ["vote"]}}}, "valid options: criterion"),
        ({**BLOCKS[0], "options": {"cut": {"fusion": ["nope"]}}}, "vote, union"),
    ],
)
def test_malformed_blocks_are_rejected_with_the_reason(block: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        grid_cells("smoke", blocks=[block], seeds=[0])


def test_every_profile_grid_is_valid() -> None:
    for profile in ("smoke", "quick", "full"):
        assert grid_cells(profile)


@pytest.mark.slow
def test_grid_resumes_and_parallel_equals_serial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = grid_cells("smoke", blocks=BLOCKS, seeds=[0])
    monkeypatch.setenv("CUTLIB_RESULTS", str(tmp_path / "serial"))
    made = run_grid(cells, jobs=1, threads=1, progress=False)
    assert len(made) == 5 and not pending_runs(cells)
    serial = collect(cells)

    executed: list[str] = []
    original = experiments._execute
    monkeypatch.setattr(
        experiments,
        "_execute",
        lambda config, *a: executed.append(config.method) or original(config, *a),
    )
    assert run_grid(cells, jobs=1, threads=1, progress=False) == {}  # nothing is recomputed
    victim = next(c.config for c in cells if c.config.method == "magnitude")
    (tmp_path / "serial" / "runs" / experiments.run_id(victim) / "metrics.json").unlink()
    run_grid(cells, jobs=1, threads=1, progress=False)  # an interrupted grid resumes
    assert executed == ["magnitude"]
    pd.testing.assert_frame_equal(collect(cells), serial)

    monkeypatch.setenv("CUTLIB_RESULTS", str(tmp_path / "parallel"))
    run_grid(cells, jobs=2, threads=1, progress=False)
    pd.testing.assert_frame_equal(collect(cells), serial)

    assert set(serial.columns) >= {"dataset", "tasks", "method", "protocol", "metric", "value"}
    delta = serial[serial.metric == "delta_mtl"].set_index(["method", "protocol"])["value"]
    assert delta["dense", "fair"] == 0.0 and delta["cut", "fair"] == delta["cut", "paper"]
    assert set(serial[serial.method == "cut"].task) == {"seg", "depth", "all"}


def test_grid_cli_dry_run_and_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["grid", "--profile", "smoke", "--out", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "smoke grid:" in out and "runs to make" in out
    assert not (tmp_path / "runs").exists()
    assert main(["grid", "--profile", "huge"]) == 2
    assert "valid profiles" in capsys.readouterr().err
    assert main(["grid", "--profile", "smoke", "--jobs", "0"]) == 2
    assert main(["grid", "--profile", "smoke", "--dataset", "mnist"]) == 2


def _device_after_a_pause() -> str | None:
    """Run in a grid worker: the device it was given, after a pause that keeps it busy, so
    that the tasks submitted together land on different workers."""
    time.sleep(1.0)
    return cutlib.grid._WORKER_DEVICE


def test_worker_devices_spread_a_bare_cuda_over_the_visible_gpus() -> None:
    assert worker_devices("cuda", 4, device_count=2) == ["cuda:0", "cuda:1"] * 2
    assert worker_devices("auto", 3, device_count=3) == ["cuda:0", "cuda:1", "cuda:2"]
    assert worker_devices("cuda", 2, device_count=1) == ["cuda", "cuda"]
    assert worker_devices("auto", 2, device_count=0) == ["auto", "auto"]
    assert worker_devices("cuda:1", 2, device_count=4) == ["cuda:1", "cuda:1"]


def test_each_pool_worker_takes_its_own_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # the parent plans two GPUs
    with worker_pool(2, "cuda") as pool:
        futures = [pool.submit(_device_after_a_pause) for _ in range(2)]
        assert sorted(f.result() for f in futures) == ["cuda:0", "cuda:1"]
    assert cutlib.grid._WORKER_DEVICE is None  # the parent keeps the device it was given


def test_records_are_never_replaced_and_reruns_fill_in_per_layer_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record once exported stays as it is when its run is remade (here: edited in the run
    store, as a re-run on another CPU would change it); ``rerun`` remakes recorded runs, and a
    record without per-layer counts gets the re-run's beside it."""
    from cutlib.grid import LAYERS_FILE, export_records, record_layers, records_dir, run_layers
    from cutlib.io import read_json, write_json

    monkeypatch.setenv("CUTLIB_RESULTS", str(tmp_path))
    cells = grid_cells("smoke", blocks=BLOCKS, seeds=[0])
    run_grid(cells, jobs=1, threads=1, progress=False)
    assert export_records(cells) == 5
    magnitude = next(c.config for c in cells if c.config.method == "magnitude")
    record = records_dir() / experiments.run_id(magnitude) / "metrics.json"
    recorded = read_json(record)
    write_json(record, {k: v for k, v in recorded.items() if k != "layers"})  # an old record
    stored = experiments.run_directory(magnitude) / "metrics.json"
    write_json(stored, recorded | {"delta_mtl": 123.0})
    assert export_records(cells) == 0 and read_json(record)["delta_mtl"] == recorded["delta_mtl"]

    assert record_layers(c.config for c in cells) == 1
    beside = read_json(record.parent / LAYERS_FILE)
    assert beside["layers"] == recorded["layers"] and beside["rerun_delta_mtl"] == 123.0
    assert beside["record_delta_mtl"] == recorded["delta_mtl"]
    from cutlib.findings import rerun_summary
    from cutlib.grid import rerun_differences

    differences = rerun_differences(cells)
    assert list(differences["method"]) == ["magnitude"] and differences["rerun"].item() == 123.0
    summary = rerun_summary(differences).iloc[0]
    assert summary["runs"] == 1 and summary["largest"] == pytest.approx(
        123.0 - recorded["delta_mtl"]
    )
    stored.unlink()
    assert run_layers(magnitude) == recorded["layers"]  # read from beside the record
    assert not pending_runs(cells) and pending_runs(cells, store_only=True) == [magnitude]


def test_grid_cli_keeps_a_sparsity_with_its_references(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["grid", "--profile", "smoke", "--out", str(tmp_path), "--dry-run"]) == 0
    everything = capsys.readouterr().out
    args = ["grid", "--profile", "smoke", "--out", str(tmp_path), "--dry-run"]
    assert main([*args, "--sparsities", "0.9"]) == 0
    at_90 = capsys.readouterr().out
    assert " s=0.5 " in everything and " s=0.5 " not in at_90
    assert "dense" in at_90 and "control" in at_90  # the references stay
    assert main([*args, "--sparsities", "0.33"]) == 2
    assert "no sparsity 0.33; its sparsities: 0.5, 0.9" in capsys.readouterr().err
    assert main([*args, "--sparsities", "most"]) == 2
    assert main([*args, "--rerun"]) == 0
