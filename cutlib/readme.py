"""The measured numbers of the README and the docs, copied from the committed results so that
they cannot go stale (docs/architecture.md#numbers-in-the-readme).

A block of a page (``README.md`` or a Markdown file under ``docs/``) between
``<!-- include: PATH -->`` and ``<!-- /include -->`` is the content of the file ``PATH``
(relative to the repository root, a generated table or text under ``results/``).
``python -m cutlib.readme`` rewrites every block from its file (``make reproduce`` runs it after
the notebooks); ``python -m cutlib.readme --check`` exits with status 1, naming the stale blocks,
when a block differs from its file, and a test runs that check.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from cutlib.io import project_root

BLOCK = re.compile(r"(<!-- include: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- /include -->)", re.S)


def render(text: str, root: Path) -> str:
    """``text`` with every include block replaced by its file's content.

    Raises:
        FileNotFoundError: naming a block whose file does not exist.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = (root / "t.md").write_text("| a |\\n")
        >>> render("x\\n<!-- include: t.md -->\\nold\\n<!-- /include -->\\n", root)
        'x\\n<!-- include: t.md -->\\n| a |\\n<!-- /include -->\\n'
    """

    def replace(match: re.Match[str]) -> str:
        path = root / match["path"]
        if not path.is_file():
            raise FileNotFoundError(f"README block includes {match['path']}, which does not exist")
        body = path.read_text()
        return match.group(1) + body + ("" if body.endswith("\n") else "\n") + match.group(4)

    return BLOCK.sub(replace, text)


def stale_blocks(text: str, root: Path) -> list[str]:
    """The paths of the include blocks of ``text`` that differ from their files."""
    rendered = {m["path"]: m["body"] for m in BLOCK.finditer(render(text, root))}
    return [m["path"] for m in BLOCK.finditer(text) if m["body"] != rendered[m["path"]]]


def pages(root: Path) -> list[Path]:
    """The pages that may hold include blocks: ``README.md`` and the Markdown files of ``docs/``."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    """Rewrite the include blocks of every page, or with ``--check`` only report stale ones."""
    parser = argparse.ArgumentParser(prog="python -m cutlib.readme", description=__doc__)
    parser.add_argument("--check", action="store_true", help="report stale blocks, change nothing")
    args = parser.parse_args(argv)
    root = project_root()
    stale = []
    for page in pages(root):
        text = page.read_text()
        if args.check:
            stale += [
                f"{page.relative_to(root)}: the block of {p}" for p in stale_blocks(text, root)
            ]
        elif BLOCK.search(text):
            page.write_text(render(text, root))
    for line in stale:
        print(f"{line} differs from the file")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
