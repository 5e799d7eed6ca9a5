"""Execute the notebooks in order with papermill (docs/architecture.md#runs-and-the-run-store:
``cutlib reproduce``).

Notebooks ``notebooks/NN_name.ipynb`` run in order, with the working directory ``notebooks/``,
the ``python3`` kernel and a per-cell timeout; each gets the ``profile`` parameter plus any the
user passes. Unknown parameter names are rejected *before* anything runs (papermill itself only
warns). Executed copies go to ``<out>/executed/``; per-notebook and total wall times to
``<out>/timings.json``. The notebooks write their tables and figures under ``<out>`` too: the
default is ``results/`` for the ``quick`` profile (the committed results) and ``results/<profile>/``
for the others, so a smoke run never overwrites them.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cutlib.io import project_root, read_json, write_json

CELL_TIMEOUT_S = 3600
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
        times = _run_all(notebooks, profile, parameters, executed)
    finally:
        if previous_results is None:
            os.environ.pop("CUTLIB_RESULTS", None)
        else:
            os.environ["CUTLIB_RESULTS"] = previous_results
    _record_timings(out / "timings.json", profile, times)
    return times


def _run_all(
    notebooks: Sequence[Path], profile: str, parameters: Mapping[str, Any], executed: Path
) -> dict[str, float]:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    times: dict[str, float] = {}
    for index, path in enumerate(notebooks, 1):
        declared = notebook_parameters(path)
        params = {k: v for k, v in {"profile": profile, **parameters}.items() if k in declared}
        print(f"[{index}/{len(notebooks)}] {path.stem} ...", flush=True)
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
            )
        except PapermillExecutionError as err:
            raise NotebookError(
                f"notebook {path.name} failed in cell {err.exec_count}: {err.ename}: {err.evalue} "
                f"(executed copy: {executed / path.name})"
            ) from err
        times[path.stem] = round(time.perf_counter() - start, 1)
        print(
            f"[{index}/{len(notebooks)}] {path.stem} done in {times[path.stem]:.1f} s", flush=True
        )
    return times


def _record_timings(path: Path, profile: str, times: dict[str, float]) -> None:
    """Merge these notebook times into ``timings.json`` (same profile) and update the total."""
    previous = read_json(path) if path.is_file() else {}
    notebooks = previous.get("notebooks", {}) if previous.get("profile") == profile else {}
    notebooks = dict(sorted({**notebooks, **times}.items()))
    write_json(
        path,
        {"profile": profile, "total_s": round(sum(notebooks.values()), 1), "notebooks": notebooks},
    )
