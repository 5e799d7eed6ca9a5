"""Repository hygiene: lint-clean code and notebooks committed without outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--quiet", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_notebooks_are_stripped() -> None:
    notebooks = sorted(str(p) for p in (ROOT / "notebooks").glob("*.ipynb"))
    result = subprocess.run(
        [sys.executable, "-m", "nbstripout", "--verify", *notebooks], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
