"""Every reference to the documentation resolves: Markdown links (in the docs, the README and the
notebooks) and ``docs/…#anchor`` mentions (in the code, the profiles, the notebooks and the tests)
point to a file that exists and, with an anchor, to a heading in it (GitHub's anchor rules). Nothing
refers to a document outside the repository."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Markdown links, ``[text](target)``; bare mentions of a docs page, ``docs/page.md#anchor``.
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
MENTION = re.compile(r"(?<![\w./-])docs/[\w/.-]+?\.md(?:#[\w-]+)?")
#: Names of the developers' private guidance, which a user's clone does not have (the tests may
#: read the sample data beside the repository, and skip without it).
OUTSIDE = re.compile(r"PAPER_NOTES|DESIGN\.md|DESIGN §")
OUTSIDE_FOLDER = re.compile(r"\.\./shared")


def _sources() -> list[Path]:
    patterns = ("cutlib/**/*.py", "cutlib/**/*.yaml", "notebooks/*.ipynb", "docs/**/*.md")
    found = [p for pattern in patterns for p in ROOT.glob(pattern)]
    found += [ROOT / "README.md", ROOT / "results" / "README.md", ROOT / "data" / "README.md"]
    found += [p for p in ROOT.glob("tests/*.py") if p.name != Path(__file__).name]
    return sorted(p for p in found if p.is_file())


def _text(path: Path) -> str:
    """The text of a file; a notebook's cells, joined."""
    if path.suffix != ".ipynb":
        return path.read_text()
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(cell["source"]) for cell in cells)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens.

    Example:
        >>> slug("The multi-task summary delta MTL"), slug("What is pruned, and how?")
        ('the-multi-task-summary-delta-mtl', 'what-is-pruned-and-how')
    """
    text = re.sub(r"[`*_]{1,2}(.+?)[`*_]{1,2}", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors of a Markdown text's headings (outside code blocks), repeats numbered."""
    found: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6}\s+(.*)", line)):
            base = slug(match.group(1))
            anchor, n = base, 0
            while anchor in found:
                n += 1
                anchor = f"{base}-{n}"
            found.add(anchor)
    return found


def references(path: Path, root: Path = ROOT) -> Iterator[tuple[str, Path, str]]:
    """``(as written, file it points to, anchor or "")`` for every documentation reference of
    ``path``: its Markdown links to local files, and its bare ``docs/`` mentions."""
    text = _text(path)
    links = LINK.findall(text) if path.suffix in (".md", ".ipynb") else []
    for target in links:
        if re.match(r"[a-z]+:", target) or target.startswith("<"):
            continue  # a URL
        file, _, anchor = target.partition("#")
        yield target, (path.parent / file).resolve() if file else path, anchor
    for mention in MENTION.findall(text):
        file, _, anchor = mention.partition("#")
        yield mention, (root / file).resolve(), anchor


def broken(path: Path, root: Path = ROOT) -> list[str]:
    """The references of ``path`` that do not resolve, each with the reason."""
    problems = []
    for written, target, anchor in references(path, root):
        if not target.exists():
            problems.append(f"{written}: no file {target}")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target.read_text()):
            problems.append(f"{written}: no heading #{anchor} in {target.name}")
    return problems


SOURCES = _sources()


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_documentation_reference_resolves(path: Path) -> None:
    assert not broken(path), "; ".join(broken(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_refers_to_documents_outside_the_repository(path: Path) -> None:
    assert not OUTSIDE.findall(_text(path))
    if path.parent.name != "tests":
        assert not OUTSIDE_FOLDER.findall(_text(path))


def test_the_code_refers_to_the_docs() -> None:
    mentions = [m for p in ROOT.glob("cutlib/**/*.py") for m in MENTION.findall(p.read_text())]
    assert len(mentions) > 50


def test_a_planted_broken_reference_is_caught(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Title\n\n## A heading\n\n```\n# not one\n```\n")
    good = "[ok](docs/page.md#a-heading) and docs/page.md#title"
    bad = "[gone](docs/nope.md) and docs/page.md#not-one and [x](docs/page.md#a-headin)"
    (tmp_path / "good.md").write_text(good)
    (tmp_path / "bad.md").write_text(bad)
    assert broken(tmp_path / "good.md", tmp_path) == []
    problems = " ".join(broken(tmp_path / "bad.md", tmp_path))
    assert "docs/nope.md: no file" in problems
    assert "no heading #not-one" in problems and "no heading #a-headin" in problems


def test_the_website_lists_every_page_and_executed_notebook() -> None:
    toc = (ROOT / "book" / "_toc.yml").read_text()
    listed = set(re.findall(r"(?:file|root): (\S+)", toc))
    pages = {p.relative_to(ROOT).with_suffix("").as_posix() for p in ROOT.glob("docs/**/*.md")}
    copies = {
        p.relative_to(ROOT).with_suffix("").as_posix()
        for folder in ("results/executed", "results/study/executed")
        for p in (ROOT / folder).glob("*.ipynb")
    }
    missing = (pages | copies | {"README", "results/README"}) - listed
    assert not missing, f"add to book/_toc.yml: {sorted(missing)}"
    assert not [f for f in listed if not list(ROOT.glob(f + ".*"))], "a page that does not exist"
