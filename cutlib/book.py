"""Build the companion website, a Jupyter Book 1.x, from the repository root.

The configuration is ``book/_config.yml`` and the table of contents ``book/_toc.yml``: the README
as the landing page, the documentation, the results pages and the executed notebooks of
``results/executed/`` (written by ``make reproduce``). The build reads committed files only,
executes no notebook and gives a site that loads nothing from the network (MathJax 3 is copied
into it), so it can be read offline. Broken links are warnings, not errors. This module is also
a small Sphinx extension of the book (:func:`setup`).

Usage::

    python -m cutlib.book [--out build/book]

The site's entry page is then ``build/book/index.html``; Sphinx keeps its caches beside the site,
in ``build/.doctrees`` and ``build/jupyter_execute`` (the notebooks' output images).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "book" / "_config.yml"
TOC = ROOT / "book" / "_toc.yml"


def build(out: Path) -> int:
    """Build the HTML site into ``out``, its caches into ``out``'s siblings ``.doctrees`` and
    ``jupyter_execute``; Sphinx's exit status."""
    try:
        from jupyter_book.sphinx import build_sphinx
    except ImportError as error:
        raise SystemExit("cutlib.book needs jupyter-book: pip install -e '.[book]'") from error
    result = build_sphinx(
        ROOT,
        out,
        noconfig=True,
        path_config=str(CONFIG),
        confoverrides={"external_toc_path": TOC.as_posix(), "latex_individualpages": False},
        doctreedir=out.parent / ".doctrees",
    )
    return result if isinstance(result, int) else 1


def _drop_repeated_scripts(
    app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """Keep each of a page's scripts once: sphinx-thebe 0.3 adds its settings twice under
    Sphinx 7.4, which the browser reports as an error (``THEBE_JS_URL`` declared twice)."""
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    unique = []
    for script in context.get("script_files", []):
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Any) -> dict[str, bool]:
    """The book's Sphinx extension (``book/_config.yml``): each of a page's scripts once."""
    app.connect("html-page-context", _drop_repeated_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str] | None = None) -> int:
    """Command line: build the website, print where it went and how long it took."""
    parser = argparse.ArgumentParser(
        prog="python -m cutlib.book", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("build/book"), help="the site's folder")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    print(f"building the website from {CONFIG.relative_to(ROOT)} into {args.out}")
    start = time.perf_counter()
    status = build(out)
    wall = time.perf_counter() - start
    if status == 0:
        print(f"website built in {wall:.1f} s: open {args.out / 'index.html'}")
    else:
        print(f"website build failed after {wall:.1f} s (Sphinx status {status})")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
