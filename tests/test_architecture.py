"""The package's architecture, checked on its source (docs/architecture.md#layers):

- imports go one way: no cycle between modules, none between packages (a top-level module counts
  as its own package), imports under ``TYPE_CHECKING`` and inside functions included;
- layers import only downwards: the core (data, models, losses, metrics, training, profiles)
  below the pruning primitives, below the methods, below the experiment machinery, below the CLI
  and the public face;
- a method's name is written in the package only in the module that defines the method (the
  registry is the one list of methods).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutlib.methods import METHODS

PACKAGE = Path(__file__).resolve().parents[1] / "cutlib"

#: Each package or top-level module, by layer (lower layers never import higher ones).
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        (
            "cutlib.io",
            "cutlib.curves",
            "cutlib.tasks",
            "cutlib.losses",
            "cutlib.metrics",
            "cutlib.train",
            "cutlib.loading",
            "cutlib.resume",
            "cutlib.distributed",
            "cutlib.checkpoint",
            "cutlib.trivial",
            "cutlib.profiles",
            "cutlib.version",
            "cutlib.significance",
            "cutlib.models",
            "cutlib.data",
        ),
        0,
    ),
    "cutlib.pruning": 1,
    "cutlib.methods": 2,
    **dict.fromkeys(
        (
            "cutlib.experiments",
            "cutlib.bench",
            "cutlib.throughput",
            "cutlib.grid",
            "cutlib.cluster",
            "cutlib.efficiency",
            "cutlib.export",
            "cutlib.watershed",
            "cutlib.ablations",
            "cutlib.ablation_figures",
            "cutlib.efficiency_figures",
            "cutlib.knobs",
            "cutlib.executed",
            "cutlib.diagram",
            "cutlib.claims",
            "cutlib.comparison",
            "cutlib.comparison_figures",
            "cutlib.factorial",
            "cutlib.allocation",
            "cutlib.convergence",
            "cutlib.findings",
            "cutlib.palette",
            "cutlib.reporting",
        ),
        3,
    ),
    **dict.fromkeys(
        ("cutlib.reproduce", "cutlib.cli", "cutlib.readme", "cutlib.book", "cutlib"), 4
    ),
}

#: Places where a method's name is also another word of the vocabulary, with the reason.
HOMONYMS: dict[tuple[str, str], str] = {
    ("magnitude", "cutlib.pruning.importance"): "a scoring criterion, |w|",
    ("random", "cutlib.pruning.importance"): "a scoring criterion, random scores",
    ("magnitude", "cutlib.methods.disparse_pt"): "DiSparse's |w| criterion",
    ("magnitude", "cutlib.methods.channel_magnitude"): "the |w| criterion of its channels",
    ("magnitude", "cutlib.ablations"): "the criteria CUT is ablated with",
    ("random", "cutlib.ablations"): "the criteria CUT is ablated with",
    ("magnitude", "cutlib.factorial"): "the |w| criterion of the criterion × arbiter factorial",
    ("magnitude", "cutlib.comparison_figures"): "the |w| criterion of the factorial's figure",
    ("random", "cutlib.bench"): "the random criterion of the masked step's masks",
    ("random", "cutlib.data.transforms"): "random padding of a crop",
    ("random", "cutlib.data.real"): "random padding of a crop",
    ("random", "cutlib.data"): "random padding of a crop",
    ("random", "cutlib.profiles.schema"): "random padding of a crop",
    ("dense", "cutlib.experiments"): "metrics.json's dense reference",
    ("dense", "cutlib.grid"): "metrics.json's dense reference",
    ("magnitude", "cutlib.methods.swap"): "the |w| criterion the swap ranks by",
    ("magnitude", "cutlib.findings"): "DiSparse's |w| criterion, in words",
    ("dense", "cutlib.ablations"): "metrics.json's dense reference",
    ("dense", "cutlib.comparison"): "the dense reference's column and legend",
    ("dense", "cutlib.export"): "the dense tensors of a sparse file",
    ("dense", "cutlib.methods.cut_structured"): "the dense model's FLOPs",
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _target(name: str) -> str:
    """The module an import of ``name`` loads (``cutlib.x.y`` may be a name in ``cutlib.x``)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text())
    is_package = MODULES[module].name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        found |= {_target(n) for n in names if n == "cutlib" or n.startswith("cutlib.")}
    found.discard(module)
    return found


def _unit(module: str) -> str:
    """The package a module belongs to (a top-level module is its own)."""
    return ".".join(module.split(".")[:2])


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path, or None (depth-first search)."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


GRAPH = {module: _imports(module) for module in MODULES}


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_modules() -> None:
    assert _cycle(GRAPH) is None, " → ".join(_cycle(GRAPH) or ())


def test_no_import_cycle_between_packages() -> None:
    units: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        units.setdefault(_unit(module), set()).update(_unit(t) for t in targets)
    for unit, targets in units.items():
        targets.discard(unit)
    assert _cycle(units) is None, " → ".join(_cycle(units) or ())


def _edges() -> Iterator[tuple[str, str]]:
    for module, targets in GRAPH.items():
        for target in targets:
            yield module, target


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_has_a_layer(module: str) -> None:
    assert _unit(module) in LAYERS, f"place {_unit(module)} in a layer of LAYERS"


def test_layers_import_only_downwards() -> None:
    upward = [
        f"{source} imports {target}"
        for source, target in _edges()
        if LAYERS[_unit(target)] > LAYERS[_unit(source)]
    ]
    assert not upward, "; ".join(upward)


def _string_constants(path: Path) -> Iterator[str]:
    """Every string literal of a module except docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                yield node.value


def test_a_method_is_named_only_in_its_own_module() -> None:
    elsewhere = [
        f"{name!r} in {module}"
        for module, path in MODULES.items()
        for name in set(_string_constants(path)) & set(METHODS)
        if module != METHODS[name].run.__module__ and (name, module) not in HOMONYMS
    ]
    assert not elsewhere, "; ".join(sorted(elsewhere))
