"""Project paths and atomic file writes (docs/architecture.md#runs-and-the-run-store: an interrupted
run never leaves a half file)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def project_root() -> Path:
    """Where ``data/`` and ``results/`` live.

    ``$CUTLIB_ROOT`` if set; else the checkout that holds this package (an editable install);
    else the current directory.
    """
    env = os.environ.get("CUTLIB_ROOT")
    if env:
        return Path(env).resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout
    return Path.cwd().resolve()


def results_dir() -> Path:
    """Where runs, tables and figures go: ``$CUTLIB_RESULTS`` if set, else ``<root>/results``.

    ``cutlib reproduce --out DIR`` sets ``$CUTLIB_RESULTS`` for the notebooks it runs.
    """
    env = os.environ.get("CUTLIB_RESULTS")
    return Path(env).resolve() if env else project_root() / "results"


def cache_dir() -> Path:
    """Generated (git-ignored) datasets: ``$CUTLIB_CACHE`` if set, else ``<root>/data/cache``."""
    env = os.environ.get("CUTLIB_CACHE")
    return Path(env).resolve() if env else project_root() / "data" / "cache"


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (temp file in the same folder, then rename)."""
    _atomic_write(
        path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    )


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8), atomically."""
    _atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` atomically."""
    _atomic_write(path, lambda tmp: torch.save(obj, tmp))
