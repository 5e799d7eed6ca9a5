"""Notebook cells stay short: no code cell is longer than 25 lines unless it only draws a figure.

A code cell *only draws a figure* when all of these hold (checked on its syntax tree):

1. its first line is the comment ``# figure`` (the reader is told);
2. it calls ``save_figure`` (it makes a figure);
3. it calls none of ``save_table``, ``display`` and ``print`` (it shows or writes nothing else);
4. it defines no function or class, and no later cell reads a name it binds unless that later
   cell binds the name itself (nothing it computes is used beyond the figure).

Every cell marked ``# figure`` must satisfy the rule, whatever its length, so the marker never
hides a computation. The logic behind a long cell belongs in the library, where it is tested.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
MAX_LINES = 25
MARKER = "# figure"
FIGURE_CALL = "save_figure"
OTHER_OUTPUTS = frozenset({"save_table", "display", "print"})


def _tree(source: str) -> ast.Module:
    """The cell's syntax tree, IPython magics turned into Python first."""
    return ast.parse(TransformerManager().transform_cell(source))


def _called(tree: ast.AST) -> set[str]:
    """Names of the functions a tree calls: ``f(…)`` and ``….f(…)`` both give ``f``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                names.add(func.id)
            elif isinstance(func, ast.Attribute):
                names.add(func.attr)
    return names


def _bound(tree: ast.AST) -> set[str]:
    """Names a tree binds: assignment, loop and ``with`` targets, imports, definitions."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _read(tree: ast.AST) -> set[str]:
    """Names a tree reads."""
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def figure_problems(source: str, later: list[str]) -> list[str]:
    """Why the code cell ``source`` does not only draw a figure (empty when it does); ``later``
    holds the sources of the code cells after it."""
    tree = _tree(source)
    problems = []
    if source.splitlines()[0].strip() != MARKER:
        problems.append(f"its first line is not {MARKER!r}")
    called = _called(tree)
    if FIGURE_CALL not in called:
        problems.append(f"it does not call {FIGURE_CALL}")
    if called & OTHER_OUTPUTS:
        problems.append(f"it calls {', '.join(sorted(called & OTHER_OUTPUTS))}")
    definitions = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    if any(isinstance(node, definitions) for node in ast.walk(tree)):
        problems.append("it defines a function or class")
    bound = _bound(tree)
    for cell in later:
        later_tree = _tree(cell)
        leaked = (_read(later_tree) - _bound(later_tree)) & bound
        if leaked:
            problems.append(f"a later cell reads {', '.join(sorted(leaked))}")
    return problems


def cell_problems(notebook: nbformat.NotebookNode) -> list[str]:
    """Every code cell of ``notebook`` over the length limit that does not only draw a figure,
    and every cell marked as a figure that is not one."""
    code = [(i, c.source) for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    problems = []
    for position, (index, source) in enumerate(code):
        lines = len(source.splitlines())
        if lines <= MAX_LINES and not source.startswith(MARKER):
            continue
        why = figure_problems(source, [later for _, later in code[position + 1 :]])
        if why:
            first = source.splitlines()[0]
            problems.append(f"cell {index} ({lines} lines, {first!r}): {'; '.join(why)}")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_code_cells_are_short_unless_they_only_draw_a_figure(path: Path) -> None:
    problems = cell_problems(nbformat.read(path, as_version=4))
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def _notebook(*sources: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def test_the_rule_flags_long_cells_that_compute() -> None:
    long_table = "\n".join(f"x{i} = {i}" for i in range(30))
    assert cell_problems(_notebook(long_table, "print(x1)")) == [
        "cell 0 (30 lines, 'x0 = 0'): its first line is not '# figure'; "
        "it does not call save_figure; a later cell reads x1"
    ]
    drawing = "\n".join(
        [MARKER, "fig, ax = plt.subplots()"]
        + [f"ax.plot([{i}])" for i in range(26)]
        + ["cl.save_figure(fig, 'f')", "plt.show()"]
    )
    assert cell_problems(_notebook(drawing, "fig = 1\nprint(fig)")) == []
    assert cell_problems(_notebook(drawing, "print(ax)")) == [
        "cell 0 (30 lines, '# figure'): a later cell reads ax"
    ]
    assert "it calls print" in cell_problems(_notebook(drawing + "\nprint(1)"))[0]
    assert "defines a function" in cell_problems(_notebook(MARKER + "\ndef f(): save_figure()"))[0]
