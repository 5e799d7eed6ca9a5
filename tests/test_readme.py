"""The README's measured numbers are the committed results: every include block equals its file."""

from __future__ import annotations

from pathlib import Path

from cutlib.io import project_root
from cutlib.readme import main, pages, render, stale_blocks


def test_every_block_of_the_readme_and_the_docs_equals_its_generated_file() -> None:
    root = project_root()
    assert "<!-- include: " in (root / "README.md").read_text(), "the README quotes no result"
    for page in pages(root):
        stale = stale_blocks(page.read_text(), root)
        assert not stale, f"{page.name}: {stale}; run `python -m cutlib.readme`"


def test_the_check_fails_when_a_committed_number_changes(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """Change one number of a committed table: ``--check`` names the block and exits 1."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.md").write_text("| Δ_MTL | -1.60 |\n")
    (tmp_path / "README.md").write_text(
        "<!-- include: results/t.md -->\n| Δ_MTL | -1.60 |\n<!-- /include -->\n"
    )
    (tmp_path / "docs" / "r.md").write_text("no blocks\n")
    monkeypatch.setenv("CUTLIB_ROOT", str(tmp_path))
    assert main(["--check"]) == 0
    (tmp_path / "results" / "t.md").write_text("| Δ_MTL | -1.61 |\n")
    assert main(["--check"]) == 1
    assert "README.md: the block of results/t.md differs" in capsys.readouterr().out
    assert main([]) == 0 and main(["--check"]) == 0  # rewriting fixes it


def test_a_stale_block_is_reported_and_rendering_fixes_it(tmp_path: Path) -> None:
    (tmp_path / "t.md").write_text("| 1.00 |\n")
    stale = "a\n<!-- include: t.md -->\n| 0.99 |\n<!-- /include -->\nb\n"
    assert stale_blocks(stale, tmp_path) == ["t.md"]
    fixed = render(stale, tmp_path)
    assert fixed == "a\n<!-- include: t.md -->\n| 1.00 |\n<!-- /include -->\nb\n"
    assert stale_blocks(fixed, tmp_path) == []
