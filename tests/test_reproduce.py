"""`cutlib reproduce`: every notebook runs end to end on the smoke profile through papermill."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from cutlib.cli import main
from cutlib.executed import scrub
from cutlib.io import project_root
from cutlib.reproduce import list_notebooks, notebook_breakdown, notebook_parameters

#: Each synth-nyuv2 task's main metric and whether higher is better.
MAIN_METRICS = {"seg": ("mIoU", True), "sn": ("angle_mean", False), "depth": ("abs_err", False)}
#: How close calibration brings a run to its target sparsity (0.02 points); the global top-k
#: methods are exact to one weight.
CALIBRATION_TOLERANCE = 2e-4


def test_every_notebook_declares_typed_parameters_and_opens_with_prose() -> None:
    notebooks = list_notebooks()
    numbers = [p.name[:2] for p in notebooks]
    assert numbers == sorted(set(numbers)) and set(numbers) <= {f"{i:02d}" for i in range(10)}
    assert numbers[:9] == [f"{i:02d}" for i in range(9)]
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        assert nb.cells[0].cell_type == "markdown" and "Runtime" in nb.cells[0].source, path.name
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one parameters cell"
        params = notebook_parameters(path)
        assert "profile" in params, path.name
        for name, spec in params.items():
            assert spec["inferred_type_name"] != "None", f"{path.name}: {name} has no type"
            assert spec["help"], f"{path.name}: {name} has no comment"


@pytest.mark.slow
def test_smoke_reproduce_runs_every_notebook(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "smoke"
    assert main(["reproduce", "--profile", "smoke", "--out", str(out)]) == 0
    names = [p.stem for p in list_notebooks()]
    captured = capfd.readouterr()  # file descriptors: the kernels' own output included
    printed = captured.out
    for index, name in enumerate(names, 1):
        assert f"[{index}/{len(names)}] {name} done in" in printed
        executed = json.loads((out / "executed" / f"{name}.ipynb").read_text())
        assert scrub(executed) == executed, f"{name}: the executed copy is not scrubbed"
        assert str(project_root()) not in json.dumps(executed, ensure_ascii=False), name
    overview = json.loads((out / "executed" / "00_overview.ipynb").read_text())
    markdown = "".join(
        "".join(c["source"]) for c in overview["cells"] if c["cell_type"] == "markdown"
    )
    assert "](../docs/" in markdown  # a copy outside the project keeps the notebook's links
    assert "without encryption" not in captured.out + captured.err  # the kernels log errors only
    timings = json.loads((out / "timings.json").read_text())
    assert timings["profile"] == "smoke" and set(timings["notebooks"]) == set(names)
    breakdown = timings["breakdown"]
    assert set(breakdown) == set(names)
    assert breakdown["01_pretrain"]["runs_trained"] == 1  # the dense pre-training
    assert "pretrain" in breakdown["01_pretrain"]["run_stages_s"]
    made = sum(entry["runs_trained"] for entry in breakdown.values())
    assert made == len(list((out / "runs").glob("*/metrics.json")))  # each run counted once
    assert list((out / "figures").glob("*.png")) and list((out / "tables").glob("*.md"))
    tables = {p.name for p in (out / "tables").iterdir()}
    figures = {p.name for p in (out / "figures").iterdir()}
    for name in (
        "runs.csv",
        "claims.md",
        "07_dense_synth-nyuv2.md",
        "07_watershed.md",
        "07_convergence.md",
        "07_control.md",
        "07_before_finetuning.md",
        "07_scoring_batches.md",
        "07_answer.md",
        "07_reading.md",
        "08_edge.md",
        "08_export.md",
        "08_checks.md",
        "08_structured_runs.csv",
    ):
        assert name in tables, name
    for prefix in ("07_main_", "07_delta_mtl_", "07_selections_", "07_claims", "09_ablations"):
        assert any(t.startswith(prefix) and t.endswith(".md") for t in tables), prefix
    for prefix in ("07_vs_control_", "07_allocation_", "07_swap_"):
        assert any(t.startswith(prefix) and t.endswith(".md") for t in tables), prefix
    for prefix in ("07_against_sparsity_", "07_watershed", "07_density_cut_vs_disparse"):
        assert any(f.startswith(prefix) and f.endswith(".png") for f in figures), prefix
    for prefix in ("07_vs_control_", "07_allocation_"):
        assert any(f.startswith(prefix) and f.endswith(".png") for f in figures), prefix
    for name in ("07_overview_from_run", "08_accuracy_vs_cost", "09_ablations", "09_fusion_rules"):
        assert {f"{name}.png", f"{name}.pdf"} <= figures, name

    _check_dense_beats_trivial(out / "tables" / "01_dense_vs_trivial_synth-nyuv2.csv")
    _check_dense_beats_trivial(out / "tables" / "07_dense_synth-nyuv2.csv")
    _check_runs(out / "tables" / "runs.csv")


def _check_dense_beats_trivial(path: Path) -> None:
    """The pre-trained model beats the best constant predictor on every task's main metric (true
    on the smoke profile by a wide margin: about 0.11 against 0.03 mIoU, 37° against 59°, 0.9
    against 1.1 absolute depth error)."""
    table = pd.read_csv(path)
    metric = table["metric"].str.split().str[0]  # "mIoU ↑" → "mIoU"
    for task, (name, higher) in MAIN_METRICS.items():
        row = table[(table["task"] == task) & (metric == name)]
        assert len(row) == 1, (path.name, task, name)
        dense, trivial = float(row["dense"].iloc[0]), float(row["trivial"].iloc[0])
        assert dense > trivial if higher else dense < trivial, (path.name, task, dense, trivial)


def _check_runs(path: Path) -> None:
    """The grid's tidy table: one row per run, task and metric; every run of the smoke grid is
    there with its main metrics, and every deployed model has the sparsity it was asked for."""
    runs = pd.read_csv(path, keep_default_na=False)
    key = ["dataset", "tasks", "method", "options", "protocol", "sparsity", "seed"]
    assert set(key) | {"achieved_sparsity", "task", "metric", "value"} <= set(runs.columns)
    assert {"dense", "cut", "magnitude", "disparse_pt", "snip"} <= set(runs["method"])
    assert set(runs["seed"]) == {0, 1}  # the smoke profile's seeds
    for config, rows in runs.groupby(key):
        run = dict(zip(key, config, strict=True))
        assert rows["achieved_sparsity"].nunique() == 1, run
        achieved = float(rows["achieved_sparsity"].iloc[0])
        assert abs(achieved - float(run["sparsity"])) <= CALIBRATION_TOLERANCE, (run, achieved)
        for task in str(run["tasks"]).split("+"):
            name = MAIN_METRICS[task][0]
            value = rows.loc[(rows["task"] == task) & (rows["metric"] == name), "value"]
            assert len(value) == 1 and pd.notna(value.iloc[0]), (run, task, name)


def test_a_notebooks_breakdown_adds_its_cells_and_its_runs_stages(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# title")]
    for duration in (1.5, 7.25, None):  # a cell that never ran has no duration
        cell = nbformat.v4.new_code_cell("pass")
        cell.metadata["papermill"] = {"duration": duration}
        notebook.cells.append(cell)
    executed = tmp_path / "nb.ipynb"
    nbformat.write(notebook, executed)
    runs = []
    for name, timings in {"a": {"data": 1.0, "finetune": 30.0}, "b": {"finetune": 12.5}}.items():
        (tmp_path / name).mkdir()
        runs.append(tmp_path / name / "metrics.json")
        runs[-1].write_text(json.dumps({"timings": timings}))
    assert notebook_breakdown(executed, 12.0, runs) == {
        "wall_s": 12.0,
        "cells_s": 8.8,  # 1.5 + 7.25, rounded
        "startup_and_io_s": 3.2,  # 12 − 8.75, rounded
        "slowest_cell_s": 7.2,  # round(7.25, 1): banker's rounding
        "runs_trained": 2,
        "run_stages_s": {"data": 1.0, "finetune": 42.5},
    }
