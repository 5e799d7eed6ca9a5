"""One colour and marker per method, defined once (each method's registration, read through
``cutlib.palette``), and every plotting function of the package drawing methods in them.

Every ``plot_*`` function of the package is either drawn here on constructed inputs, with each
coloured artist checked against the palette, or listed in ``NOT_METHOD_FIGURES`` with the reason
it draws no method: a new plotting function fails this test until it is one or the other.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
from matplotlib.collections import Collection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

import cutlib as cl
from cutlib.methods import METHODS
from cutlib.palette import method_colours, method_label, method_style

#: Plotting functions that draw no method, with the reason.
NOT_METHOD_FIGURES: dict[str, str] = {
    "reporting.plot_samples": "images and labels of a dataset",
    "reporting.plot_predictions": "one model's predictions",
    "reporting.plot_history": "one run's training curves",
    "reporting.plot_per_layer": "generic per-layer lines; callers pass method styles",
    "reporting.plot_mask_grids": "kept/pruned dots of one model's masks",
    "diagram.plot_pipeline": "boxes and arrows of CUT's steps",
}


def _plot_functions() -> set[str]:
    found = set()
    modules = ("reporting", "comparison", "comparison_figures", "efficiency", "watershed")
    modules += ("ablation_figures", "efficiency_figures", "diagram", "allocation")
    for module in modules:
        for name, obj in vars(getattr(cl, module)).items():
            if name.startswith("plot_") and inspect.isfunction(obj):
                if obj.__module__ == f"cutlib.{module}":
                    found.add(f"{module}.{name}")
    return found


def _tidy(methods: dict[str, list[float]], sparsities=(0.7, 0.9)) -> pd.DataFrame:
    rows = []
    for method, per_seed in methods.items():
        for sparsity in (0.0,) if method == "dense" else sparsities:
            for seed, value in enumerate(per_seed):
                for task, metric, higher, v in (
                    ("all", "delta_mtl", True, value - 10 * sparsity),
                    ("seg", "mIoU", True, 0.4 + value / 100),
                ):
                    rows.append(
                        {"dataset": "d", "tasks": "seg+depth", "method": method, "options": ""}
                        | {"protocol": "fair", "sparsity": sparsity, "seed": seed, "task": task}
                        | {"metric": metric, "higher_is_better": higher, "value": v}
                    )
    return pd.DataFrame(rows)


RUNS = _tidy(
    {
        "dense": [0.0, 0.0, 0.0],
        "cut": [1.0, 1.5, 0.8],
        "disparse_pt": [0.5, 1.2, 0.9],
        "magnitude": [0.2, 0.1, 0.4],
        "snip": [-20.0, -22.0, -19.0],
        "lth": [-12.0, -11.0, -13.0],
    }
)
DRAWN = ["cut", "disparse_pt", "magnitude", "snip", "lth"]


def _layers_and_masks() -> tuple[pd.DataFrame, dict[str, dict[str, torch.Tensor]]]:
    torch.manual_seed(0)
    model = cl.SceneNet(cl.dataset_tasks("synth-nyuv2"), **cl.load_profile("smoke").model.kwargs())
    layers = cl.reporting.layer_table(model)
    weights = {w.name: w.weight for w in cl.prunable_weights(model)}
    masks = {
        method: {n: torch.rand_like(w) < keep for n, w in weights.items()}
        for method, keep in (("cut", 0.3), ("snip", 0.1))
    }
    return layers, masks


def _mask_comparison() -> Figure:
    layers, masks = _layers_and_masks()
    return cl.reporting.plot_mask_comparison(masks, layers, "test")


def _ablations() -> Figure:
    table = pd.DataFrame(
        {
            "family": ["fusion rule"] * 3 + ["keep ratio κ"] * 2,
            "variant": ["vote ≥ 2", "vote ≥ 1", "union", "calibrated", "table"],
            "same masks as": ["", "", "vote ≥ 1", "", ""],
            "Δ_MTL before fine-tuning % ↑": [-80.0, -66.0, -66.0, -73.0, -76.0],
            "Δ_MTL % ↑": [-3.8, -3.4, -3.4, -3.0, -3.1],
        }
    )
    return cl.ablation_figures.plot_ablations(table, "CUT, one choice at a time")


def _accuracy_vs_cost() -> Figure:
    runtimes = ["torch", "onnxruntime"]
    row = {
        cl.efficiency.latency_column(r, 1, 1, kind): 1.0
        for r in runtimes
        for kind in ("latency", "IQR")
    }
    table = pd.DataFrame(
        [
            row | {"variant": v, "Δ_MTL % ↑": d, "state_dict MB": 2.0, "sparse fp16 MB": s}
            for v, d, s in (
                ("dense, all heads", 0.0, 3.0),
                ("CUT 90% (unstructured)", -3.0, 0.4),
                ("structured CUT −75% FLOPs", -9.0, 0.5),
            )
        ]
    )
    method_of = dict(zip(table["variant"], ["dense", "cut", "cut_structured"], strict=True))
    return cl.efficiency_figures.plot_accuracy_vs_cost(table, method_of, runtimes, "test")


def _allocation() -> Figure:
    rows = [
        {"method": m, "options": "", "sparsity": s, "seed": seed, "group": g, "kept": k}
        for m in ("cut", "magnitude")
        for s in (0.9, 0.95)
        for seed in (0, 1)
        for g, k in (("stem", 0.5), ("stage 4", 0.01 if m == "cut" else 0.08), ("heads", 0.1))
    ]
    return cl.allocation.plot_allocation(pd.DataFrame(rows), [0.9, 0.95], "test")


#: Method figures: how to draw each on constructed inputs, and the methods it must show.
METHOD_FIGURES: dict[str, tuple[Callable[[], Figure], list[str]]] = {
    "comparison_figures.plot_against_sparsity": (
        lambda: cl.comparison_figures.plot_against_sparsity(
            RUNS, "d", "seg+depth", "fair", [("seg", "mIoU")]
        ),
        DRAWN,
    ),
    "comparison_figures.plot_differences": (
        lambda: cl.comparison_figures.plot_differences(RUNS, "d", "seg+depth", "fair"),
        [m for m in DRAWN if m != "cut"],
    ),
    "comparison_figures.plot_method_bars": (
        lambda: cl.comparison_figures.plot_method_bars(
            pd.DataFrame(
                {
                    "method": DRAWN + DRAWN[:2],
                    "value": [1.0, -1.0, 0.5, -20.0, -10.0, 2.0, 1.0],
                    "protocol": ["fair"] * 5 + ["paper"] * 2,
                }
            ),
            "value",
        ),
        DRAWN,
    ),
    "reporting.plot_mask_comparison": (_mask_comparison, ["cut", "snip"]),
    "allocation.plot_allocation": (_allocation, ["cut", "magnitude"]),
    "ablation_figures.plot_ablations": (_ablations, ["cut"]),
    "efficiency_figures.plot_accuracy_vs_cost": (
        _accuracy_vs_cost,
        ["cut", "cut_structured"],  # dense is black, which the colour check leaves out
    ),
    "comparison_figures.plot_factorial": (
        lambda: cl.comparison_figures.plot_factorial(
            pd.DataFrame(
                [
                    {"sparsity": s, "criterion": c, "fusion": f, "seeds": 3}
                    | {"Δ_MTL": v, "low": v - 1, "high": v + 1}
                    for s in (0.7, 0.9)
                    for (c, f), v in {
                        ("taylor", "vote"): 1.0,
                        ("taylor", "union"): 0.5,
                        ("magnitude", "vote"): 0.0,
                        ("magnitude", "union"): 0.0,
                    }.items()
                ]
            )
        ),
        ["cut"],
    ),
}


def _is_grey(rgba: tuple[float, ...]) -> bool:
    r, g, b, _ = rgba
    return max(r, g, b) - min(r, g, b) < 1e-6


def _colours(fig: Figure) -> list[tuple[float, float, float]]:
    """The RGB of every coloured line, collection and patch of ``fig`` (axes backgrounds and
    legend frames excluded)."""
    found = []
    for ax in fig.axes:
        for artist in ax.get_children():
            if isinstance(artist, Line2D):
                colours = [artist.get_color()]
            elif isinstance(artist, Collection):
                colours = [*artist.get_facecolors(), *artist.get_edgecolors()]
            elif isinstance(artist, Patch) and artist is not ax.patch:
                colours = [artist.get_facecolor()]
            else:
                continue
            for colour in colours:
                rgba = to_rgba(colour)
                if rgba[3] > 0 and not _is_grey(rgba):
                    found.append(rgba[:3])
    return found


def test_every_method_has_its_own_colour_marker_and_label() -> None:
    package = [n for n, m in METHODS.items() if m.run.__module__.startswith("cutlib.methods.")]
    styles = {name: method_style(name) for name in package}
    for key in ("color", "marker", "label"):
        values = [style[key] for style in styles.values()]
        assert len(set(values)) == len(values), f"two methods share a {key}: {styles}"
    assert method_colours(["cut"]) == {"cut": METHODS["cut"].colour}
    assert method_label("disparse_pt") == "DiSparse (pre-trained)"
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        method_style("nope")


def test_every_plotting_function_is_checked_or_declared_free_of_methods() -> None:
    assert _plot_functions() == set(METHOD_FIGURES) | set(NOT_METHOD_FIGURES)


@pytest.mark.parametrize("name", sorted(METHOD_FIGURES))
def test_method_figures_draw_each_method_in_its_palette_colour(name: str) -> None:
    draw, methods = METHOD_FIGURES[name]
    fig = draw()
    try:
        used = set(_colours(fig))
        palette = {m: to_rgba(METHODS[m].colour)[:3] for m in methods}
        missing = [m for m, rgb in palette.items() if rgb not in used]
        assert not missing, f"{name} does not draw {missing} in their palette colours"
        foreign = used - set(palette.values())
        assert not foreign, f"{name} uses colours outside the palette: {sorted(foreign)}"
        labels = {t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().texts}
        labels |= {t.get_text() for legend in fig.legends for t in legend.texts}
        labels |= {t.get_text() for ax in fig.axes for t in ax.get_yticklabels()}
        labels.add(fig.get_suptitle())
        unnamed = [m for m in methods if not any(method_label(m) in text for text in labels)]
        assert not unnamed, f"{name}: {unnamed} not named in a legend, on an axis or in the title"
    finally:
        plt.close(fig)
