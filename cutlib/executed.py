"""Executed notebooks fit to commit: what ``cutlib reproduce`` keeps of a papermill run
(docs/architecture.md#executed-notebooks).

papermill stamps every cell with wall-clock times, records the machine's paths and environment,
and the outputs carry memory addresses (``<Styler at 0x7f…>``), absolute paths and the seconds a
run took. None of that is a result; all of it changes from one run to the next, so a committed
copy would differ from a fresh run's for no reason. :func:`scrub` removes it:

- notebook metadata: papermill's times, paths and environment (its parameters stay), and the
  state of the progress-bar widgets;
- cell metadata: the execution and papermill timestamps (a cell's status stays);
- outputs: progress-bar widgets are dropped, memory addresses become ``0x…``, the project root
  becomes ``.``, durations in printed text (``in 117.9 s``) become ``… s``, and what stderr only
  logs (progress bars, torch's timestamped warnings, bare newlines) is dropped.

An executed copy lives in another folder than its notebook (``results/executed/`` against
``notebooks/``), so :func:`relink` rewrites the relative links of its Markdown cells to resolve
from there.

Cells whose output is a measurement of this machine (latency, throughput) are tagged ``volatile``
in the notebook; :func:`differences` compares two executed copies and skips their outputs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cutlib.io import read_json, write_text

VOLATILE_TAG = "volatile"

_WIDGET = "application/vnd.jupyter.widget-view+json"
_NOTEBOOK_KEYS_KEPT = ("parameters", "default_parameters", "version", "exception")
_CELL_PAPERMILL_KEYS_KEPT = ("exception", "status")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
_DURATION = re.compile(r"\b\d+(?:\.\d+)? ?s\b")
_PROGRESS_BAR = re.compile(r"\r[^\r\n]*")
#: A relative Markdown link ``](path)``: not a URL, an anchor or a rooted path.
RELATIVE_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|#|/)([^)\s]+)\)")
_LOG_LINE = re.compile(r"^[WIEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ .*$\n?", re.MULTILINE)


def _text(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value


def scrub_text(text: str, root: str | None = None, *, durations: bool = True) -> str:
    """``text`` without memory addresses, the project root (``root`` → ``.``) and, when
    ``durations``, the seconds printed in it.

    Example:
        >>> scrub_text("<Styler at 0x7f7706708110> saved to /home/me/cutlib/results in 1.7 s",
        ...            "/home/me/cutlib")
        '<Styler at 0x…> saved to ./results in … s'
    """
    text = _ADDRESS.sub("0x…", text)
    if root:
        text = text.replace(root.rstrip("/"), ".")
    if durations:
        text = _DURATION.sub("… s", text)
    return text


def _scrub_output(output: dict[str, Any], root: str | None) -> dict[str, Any] | None:
    """One output, scrubbed; None when nothing of it is left."""
    if _WIDGET in output.get("data", {}):
        return None  # a progress bar: a live widget, with a random id and no result in it
    if output["output_type"] == "stream":
        text = _text(output["text"])
        if output["name"] == "stderr":
            text = _LOG_LINE.sub("", _PROGRESS_BAR.sub("", text))
            if not text.strip():
                return None
        return output | {"text": scrub_text(text, root)}
    if "data" in output and "text/plain" in output["data"]:
        plain = scrub_text(_text(output["data"]["text/plain"]), root, durations=False)
        output = output | {"data": output["data"] | {"text/plain": plain}}
    return output


def _merge_streams(outputs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive stream outputs of the same name as one (their split depends on timing)."""
    merged: list[dict[str, Any]] = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and output["output_type"] == "stream"
            and previous["output_type"] == "stream"
            and previous["name"] == output["name"]
        ):
            merged[-1] = previous | {"text": previous["text"] + output["text"]}
        else:
            merged.append(output)
    return merged


def scrub(notebook: dict[str, Any], root: str | Path | None = None) -> dict[str, Any]:
    """A copy of an executed ``notebook`` (nbformat JSON) without what changes from run to run
    (see the module docstring). ``root``: the project root to write as ``.``."""
    root_text = str(root) if root is not None else None
    metadata = {k: v for k, v in notebook.get("metadata", {}).items() if k != "widgets"}
    if "papermill" in metadata:
        metadata["papermill"] = {
            k: v for k, v in metadata["papermill"].items() if k in _NOTEBOOK_KEYS_KEPT
        }
    cells = []
    for cell in notebook["cells"]:
        cell = dict(cell)
        cell_meta = {k: v for k, v in cell.get("metadata", {}).items() if k != "execution"}
        if "papermill" in cell_meta:
            cell_meta["papermill"] = {
                k: v for k, v in cell_meta["papermill"].items() if k in _CELL_PAPERMILL_KEYS_KEPT
            }
        cell["metadata"] = cell_meta
        if cell["cell_type"] == "code":
            outputs = (_scrub_output(o, root_text) for o in cell.get("outputs", []))
            cell["outputs"] = _merge_streams(o for o in outputs if o is not None)
        cells.append(cell)
    return notebook | {"metadata": metadata, "cells": cells}


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Where two executed copies of one notebook differ: a line per cell whose source or
    outputs differ, outputs of ``volatile``-tagged cells excepted. Empty when they match."""
    found = []
    if len(a["cells"]) != len(b["cells"]):
        return [f"{len(a['cells'])} cells against {len(b['cells'])}"]
    for index, (left, right) in enumerate(zip(a["cells"], b["cells"], strict=True)):
        if _text(left["source"]) != _text(right["source"]):
            found.append(f"cell {index}: source differs")
        elif VOLATILE_TAG in left.get("metadata", {}).get("tags", []):
            continue
        elif left.get("outputs", []) != right.get("outputs", []):
            found.append(f"cell {index}: outputs differ")
    return found


def stale_cells(executed: dict[str, Any], source: dict[str, Any]) -> list[int]:
    """Indices of the cells of an executed copy whose source no longer matches the notebook it
    came from (papermill's injected-parameters cell is not in the source and is skipped)."""
    cells = [
        c
        for c in executed["cells"]
        if "injected-parameters" not in c.get("metadata", {}).get("tags", [])
    ]
    if len(cells) != len(source["cells"]):
        return list(range(max(len(cells), len(source["cells"]))))
    return [
        index
        for index, (ran, now) in enumerate(zip(cells, source["cells"], strict=True))
        if _text(ran["source"]) != _text(now["source"])
    ]


def relink(notebook: dict[str, Any], source: Path, target: Path) -> dict[str, Any]:
    """A copy of ``notebook`` whose Markdown cells' relative links, written for a notebook in
    folder ``source``, resolve from folder ``target`` instead (absolute URLs, anchors and
    rooted paths are left alone).

    Example:
        >>> cell = {"cell_type": "markdown", "source": "[m](../docs/m.md#a), [w](https://x.org)"}
        >>> root = Path("/repo")
        >>> relink({"cells": [cell]}, root / "notebooks", root / "results" / "executed")[
        ...     "cells"][0]["source"]
        '[m](../../docs/m.md#a), [w](https://x.org)'
    """

    def move(match: re.Match[str]) -> str:
        path, hash_, anchor = match.group(1).partition("#")
        moved = Path(os.path.relpath(source / path, target)).as_posix()
        return f"]({moved}{hash_}{anchor})"

    cells = [
        cell | {"source": RELATIVE_LINK.sub(move, _text(cell["source"]))}
        if cell["cell_type"] == "markdown"
        else cell
        for cell in notebook["cells"]
    ]
    return notebook | {"cells": cells}


def write_notebook(path: Path, notebook: dict[str, Any]) -> None:
    """Write ``notebook`` as Jupyter does (sorted keys, one-space indent, UTF-8), atomically."""
    write_text(path, json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def scrub_file(path: Path, root: str | Path | None = None, links_from: Path | None = None) -> None:
    """:func:`scrub` the executed notebook at ``path`` in place; given ``links_from``, the folder
    of the notebook it was executed from, also :func:`relink` it to ``path``'s folder."""
    notebook = scrub(read_json(path), root)
    if links_from is not None:
        notebook = relink(notebook, Path(links_from).resolve(), Path(path).resolve().parent)
    write_notebook(path, notebook)
