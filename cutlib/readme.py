"""The README's measured numbers, copied from the committed results so that they cannot go stale
(docs/architecture.md#numbers-in-the-readme).

A block of ``README.md`` between ``<!-- include: PATH -->`` and ``<!-- /include -->`` is the
content of the file ``PATH`` (relative to the repository root, a generated table or text under
``results/``). ``python -m cutlib.readme`` rewrites every block from its file (``make reproduce``
runs it after the notebooks); ``python -m cutlib.readme --check`` exits with status 1, naming the
stale blocks, when a block differs from its file, and a test runs that check.
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


def main(argv: list[str] | None = None) -> int:
    """Rewrite README.md's include blocks, or with ``--check`` only report stale ones."""
    parser = argparse.ArgumentParser(prog="python -m cutlib.readme", description=__doc__)
    parser.add_argument("--check", action="store_true", help="report stale blocks, change nothing")
    args = parser.parse_args(argv)
    root = project_root()
    readme = root / "README.md"
    text = readme.read_text()
    if args.check:
        stale = stale_blocks(text, root)
        for path in stale:
            print(f"README.md: the block of {path} differs from the file")
        return 1 if stale else 0
    readme.write_text(render(text, root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
