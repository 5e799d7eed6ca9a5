"""The committed executed notebooks (docs/architecture.md#executed-notebooks): one per notebook,
current with its source cell by cell, without errors, scrubbed, and within the size budget."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cutlib.executed import RELATIVE_LINK, relink, scrub, stale_cells
from cutlib.io import read_json

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Executed copy → the notebook it was executed from: every notebook on ``quick``, and notebook
#: 07 of each multi-seed study.
COPIES = {ROOT / "results" / "executed" / n.name: n for n in NOTEBOOKS} | {
    ROOT / "results" / study / "executed" / "07_results.ipynb": ROOT
    / "notebooks"
    / "07_results.ipynb"
    for study in ("study", "regime")
}
BUDGET_BYTES = 15 * 2**20
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:home|Users|tmp|root|private|var/folders)/")


@pytest.mark.parametrize("copy", list(COPIES), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_each_notebook_has_a_current_clean_executed_copy(copy: Path) -> None:
    assert copy.is_file(), f"{copy.relative_to(ROOT)} is missing: run `make reproduce`"
    executed = read_json(copy)
    source = COPIES[copy]
    stale = stale_cells(executed, relink(read_json(source), source.parent, copy.parent))
    assert not stale, f"cells {stale} changed since the copy was executed: run `make reproduce`"
    errors = [
        output.get("ename")
        for cell in executed["cells"]
        for output in cell.get("outputs", [])
        if output["output_type"] == "error"
    ]
    assert not errors, errors
    assert scrub(executed) == executed, "the copy is not scrubbed"
    text = copy.read_text()
    assert str(ROOT) not in text and not MACHINE_PATH.search(text), "a machine path in the copy"


def test_executed_copies_fit_the_size_budget() -> None:
    total = sum(copy.stat().st_size for copy in COPIES if copy.is_file())
    assert total <= BUDGET_BYTES, f"{total / 2**20:.1f} MB of executed copies (budget 15 MB)"


@pytest.mark.parametrize("copy", list(COPIES), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_the_links_of_an_executed_copy_resolve_from_its_folder(copy: Path) -> None:
    if not copy.is_file():
        pytest.skip(f"{copy.name} is missing (the test above fails for it)")
    markdown = "".join(
        "".join(cell["source"])
        for cell in read_json(copy)["cells"]
        if cell["cell_type"] == "markdown"
    )
    targets = [t.split("#")[0] for t in RELATIVE_LINK.findall(markdown)]
    broken = [t for t in targets if t and not (copy.parent / t).exists()]
    assert not broken, broken
