"""The README's measured numbers are the committed results: every include block equals its file."""

from __future__ import annotations

from pathlib import Path

from cutlib.io import project_root
from cutlib.readme import render, stale_blocks


def test_every_readme_block_equals_its_generated_file() -> None:
    root = project_root()
    text = (root / "README.md").read_text()
    assert "<!-- include: " in text, "the README quotes no generated result"
    assert not stale_blocks(text, root), "run `python -m cutlib.readme` after `make reproduce`"


def test_a_stale_block_is_reported_and_rendering_fixes_it(tmp_path: Path) -> None:
    (tmp_path / "t.md").write_text("| 1.00 |\n")
    stale = "a\n<!-- include: t.md -->\n| 0.99 |\n<!-- /include -->\nb\n"
    assert stale_blocks(stale, tmp_path) == ["t.md"]
    fixed = render(stale, tmp_path)
    assert fixed == "a\n<!-- include: t.md -->\n| 1.00 |\n<!-- /include -->\nb\n"
    assert stale_blocks(fixed, tmp_path) == []
