"""Execute the notebooks in order with papermill (docs/architecture.md#runs-and-the-run-store:
``cutlib reproduce``).

Notebooks ``notebooks/NN_name.ipynb`` run in order, with the working directory ``notebooks/``,
the ``python3`` kernel and a per-cell timeout; each gets the ``profile`` parameter plus any the
user passes. Unknown parameter names are rejected *before* anything runs (papermill itself only
warns). Executed copies go to ``<out>/executed/``; per-notebook and total wall times to
``<out>/timings.json``, with a breakdown of each notebook's time (:func:`notebook_breakdown`). The
notebooks write their tables and figures under ``<out>`` too: the
default is ``results/`` for the ``quick`` profile (the committed results) and ``results/<profile>/``
for the others, so a smoke run never overwrites them.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cutlib.executed import scrub_file
from cutlib.io import project_root, read_json, write_json

CELL_TIMEOUT_S = 3600
# The kernel logs only errors: not, once per notebook, that its local sockets are unencrypted.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
_NOTEBOOK = re.compile(r"^(\d\d)_[A-Za-z0-9_]+\.ipynb$")


class NotebookError(RuntimeError):
    """A notebook failed while executing; the message names the notebook and the cell."""


def notebooks_dir() -> Path:
    """``<root>/notebooks``."""
    return project_root() / "notebooks"


def list_notebooks(only: Sequence[str] | None = None) -> list[Path]:
    """The ``NN_*.ipynb`` notebooks in order; ``only`` keeps those whose number is listed.

    Raises:
        ValueError: for a number in ``only`` with no notebook, naming the valid numbers.
    """
    found = sorted(p for p in notebooks_dir().glob("*.ipynb") if _NOTEBOOK.match(p.name))
    if only is None:
        return found
    numbers = {p.name[:2]: p for p in found}
    unknown = [n for n in only if n not in numbers]
    if unknown:
        raise ValueError(f"no notebook {unknown[0]!r}; valid notebooks: {', '.join(numbers)}")
    return [numbers[n] for n in sorted(set(only))]


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The parameters declared in a notebook's ``parameters`` cell, with types and defaults."""
    import papermill

    return papermill.inspect_notebook(str(path))


def check_dataset_present(name: str) -> None:
    """Raise unless ``name`` is a dataset, and, for a real one, present and indexed under
    ``data/<name>/`` (the notebooks read it from there).

    Raises:
        ValueError: an unknown dataset.
        cutlib.data.real.DataError: a real dataset that is missing, with how to get it.
    """
    from cutlib.data import REAL_LAYOUTS, dataset_info
    from cutlib.data.real import default_root, read_index

    dataset_info(name)
    if name in REAL_LAYOUTS:
        read_index(REAL_LAYOUTS[name], default_root(name))


def check_parameters(notebooks: Sequence[Path], parameters: Mapping[str, Any]) -> None:
    """Raise ValueError, listing the valid names, for a parameter no notebook declares."""
    declared: set[str] = set()
    for path in notebooks:
        declared |= set(notebook_parameters(path))
    unknown = sorted(set(parameters) - declared)
    if unknown:
        raise ValueError(
            f"unknown notebook parameter {unknown[0]!r}; "
            f"valid parameters: {', '.join(sorted(declared))}"
        )


def default_out(profile: str) -> Path:
    """``results/`` for the default ``quick`` profile, ``results/<profile>/`` otherwise."""
    root = project_root() / "results"
    return root if profile == "quick" else root / profile


def reproduce(
    profile: str,
    *,
    only: Sequence[str] | None = None,
    out: Path | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Run the notebooks for ``profile`` and return their wall times in seconds.

    Each notebook receives ``profile`` and those of ``parameters`` it declares.

    Raises:
        ValueError: bad notebook numbers or parameter names (nothing is run).
        NotebookError: a notebook failed; the message names the notebook, the cell and the error.
    """
    notebooks = list_notebooks(only)
    parameters = dict(parameters or {})
    check_parameters(notebooks, parameters)
    out = (Path(out) if out is not None else default_out(profile)).resolve()
    executed = out / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    previous_results = os.environ.get("CUTLIB_RESULTS")
    os.environ["CUTLIB_RESULTS"] = str(out)  # the kernels inherit it: see cutlib.io.results_dir
    try:
        breakdown = _run_all(notebooks, profile, parameters, executed, out / "runs")
    finally:
        if previous_results is None:
            os.environ.pop("CUTLIB_RESULTS", None)
        else:
            os.environ["CUTLIB_RESULTS"] = previous_results
    _record_timings(out / "timings.json", profile, breakdown)
    return {name: entry["wall_s"] for name, entry in breakdown.items()}


def notebook_breakdown(executed: Path, wall_s: float, runs: Iterable[Path]) -> dict[str, Any]:
    """Where an executed notebook's wall time went: its code cells (papermill's per-cell
    durations), the rest (kernel start-up, papermill's reading and writing), its slowest cell, and
    the summed stage timings (``metrics.json``'s ``timings``: data, training, validation,
    evaluation…) of the ``runs`` it trained, whose sum exceeds the wall time when runs were made
    in parallel.
    """
    cells = [
        cell["metadata"].get("papermill", {}).get("duration") or 0.0
        for cell in read_json(executed)["cells"]
        if cell["cell_type"] == "code"
    ]
    stages: Counter[str] = Counter()
    trained = 0
    for metrics in runs:
        stages.update(read_json(metrics).get("timings", {}))
        trained += 1
    return {
        "wall_s": wall_s,
        "cells_s": round(sum(cells), 1),
        "startup_and_io_s": round(wall_s - sum(cells), 1),
        "slowest_cell_s": round(max(cells, default=0.0), 1),
        "runs_trained": trained,
        "run_stages_s": {stage: round(seconds, 1) for stage, seconds in stages.items()},
    }


def _finished_runs(runs: Path) -> set[Path]:
    return set(runs.glob("*/metrics.json"))


def _links_from(notebook: Path, executed: Path) -> Path | None:
    """The folder to relink an executed copy's Markdown links from: the notebook's, when the copy
    is inside the project (relative links then resolve); ``None`` (leave them) elsewhere."""
    inside = executed.resolve().is_relative_to(project_root())
    return notebook.parent if inside else None


def _run_all(
    notebooks: Sequence[Path],
    profile: str,
    parameters: Mapping[str, Any],
    executed: Path,
    runs: Path,
) -> dict[str, dict[str, Any]]:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    breakdown: dict[str, dict[str, Any]] = {}
    for index, path in enumerate(notebooks, 1):
        declared = notebook_parameters(path)
        params = {k: v for k, v in {"profile": profile, **parameters}.items() if k in declared}
        print(f"[{index}/{len(notebooks)}] {path.stem} ...", flush=True)
        runs_before = _finished_runs(runs)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(path),
                str(executed / path.name),
                parameters=params,
                kernel_name="python3",
                cwd=str(path.parent),
                execution_timeout=CELL_TIMEOUT_S,
                progress_bar=False,
                extra_arguments=KERNEL_ARGUMENTS,
            )
        except PapermillExecutionError as err:
            raise NotebookError(
                f"notebook {path.name} failed in cell {err.exec_count}: {err.ename}: {err.evalue} "
                f"(executed copy: {executed / path.name})"
            ) from err
        wall = round(time.perf_counter() - start, 1)
        new_runs = sorted(_finished_runs(runs) - runs_before)
        breakdown[path.stem] = notebook_breakdown(executed / path.name, wall, new_runs)
        scrub_file(executed / path.name, project_root(), links_from=_links_from(path, executed))
        print(f"[{index}/{len(notebooks)}] {path.stem} done in {wall:.1f} s", flush=True)
    return breakdown


def _record_timings(path: Path, profile: str, breakdown: dict[str, dict[str, Any]]) -> None:
    """Merge these notebooks' times and breakdowns into ``timings.json`` (same profile) and
    update the total."""
    previous = read_json(path) if path.is_file() else {}
    same = previous.get("profile") == profile
    notebooks = previous.get("notebooks", {}) if same else {}
    notebooks = dict(
        sorted({**notebooks, **{k: v["wall_s"] for k, v in breakdown.items()}}.items())
    )
    details = dict(sorted({**(previous.get("breakdown", {}) if same else {}), **breakdown}.items()))
    record = {
        "profile": profile,
        "total_s": round(sum(notebooks.values()), 1),
        "notebooks": notebooks,
        "breakdown": details,
    }
    write_json(path, record)
    path.with_suffix(".md").write_text(timings_markdown(record) + "\n")


def timings_markdown(record: dict[str, Any]) -> str:
    """``timings.md``: the wall time of each notebook with its slowest cell and the runs it
    trained, and the total, from a ``timings.json`` record (the README includes it).

    Example:
        >>> print(timings_markdown({"profile": "quick", "total_s": 30.0,
        ...     "notebooks": {"00_a": 10.0, "01_b": 20.0},
        ...     "breakdown": {"01_b": {"slowest_cell_s": 15.0, "runs_trained": 1}}}))
        | notebook   | wall (s)   | slowest cell (s)   | runs trained   |
        |:-----------|:-----------|:-------------------|:---------------|
        | 00_a       | 10.0       |                    |                |
        | 01_b       | 20.0       | 15.0               | 1              |
        | total      | 30.0       |                    |                |
    """
    rows = [
        [name, f"{wall:.1f}"]
        + [
            f"{record['breakdown'][name]['slowest_cell_s']:.1f}",
            str(record["breakdown"][name]["runs_trained"]),
        ]
        if name in record.get("breakdown", {})
        else [name, f"{wall:.1f}", "", ""]
        for name, wall in record["notebooks"].items()
    ]
    rows.append(["total", f"{record['total_s']:.1f}", "", ""])
    header = ["notebook", "wall (s)", "slowest cell (s)", "runs trained"]
    return pd.DataFrame(rows, columns=header).to_markdown(index=False, disable_numparse=True)
