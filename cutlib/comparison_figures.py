"""The figures that compare methods (docs/architecture.md#figures), from the grid's tidy table
(:func:`cutlib.grid.collect`) or a table of runs.

Every method is drawn in its own colour and marker (:mod:`cutlib.palette`); a value over several
seeds is their mean with its 95 % Student-t interval (:func:`cutlib.significance.mean_ci`), a band
on a curve and a bar on a point; a comparison with CUT is the paired difference per seed
(:func:`cutlib.significance.paired_comparison`). The methods that keep the pre-trained weights
(CUT and the other pre-trained pruners) and the others (trained from scratch or rewound) are drawn
in separate rows: the others are often tens of points lower, and on a shared axis they would flatten
the one-point gaps between the pre-trained pruners that the comparison is about.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cutlib.comparison import DELTA, REFERENCE_ROWS, column_label, paired_differences
from cutlib.methods import CONTROL, DENSE, get_method
from cutlib.methods.cut import NAME as CUT
from cutlib.palette import DENSE_LINE, method_label, method_style
from cutlib.significance import mean_ci

#: Row titles of the two families of methods.
FAMILIES = ("from the pre-trained weights", "from scratch or rewound")


def families(methods: Sequence[str]) -> list[list[str]]:
    """``methods`` split into those that keep the pre-trained weights and the others (either may
    be empty), each in the given order.

    Example:
        >>> families(["snip", "cut", "magnitude", "lth"])
        [['cut', 'magnitude'], ['snip', 'lth']]
    """
    keeps = [m for m in methods if get_method(m).keeps_pretrained_weights]
    return [keeps, [m for m in methods if m not in keeps]]


def _rows(methods: Sequence[str]) -> list[tuple[str, list[str]]]:
    return [(title, ms) for title, ms in zip(FAMILIES, families(methods), strict=True) if ms]


def _percent_axis(ax: Axes, sparsities: Sequence[float]) -> None:
    """Sparsity on a logit axis (ticks at the sparsities drawn, as percentages): 90, 95 and 98 %
    sit apart instead of crowding at the right end, where the methods differ most."""
    ax.set_xlabel("sparsity (logit scale)")
    shown = sorted(s for s in set(sparsities) if 0.0 < s < 1.0)
    if shown:
        ax.set_xscale("logit")
        ax.set_xticks(shown, [f"{s:.0%}" for s in shown], fontsize=8)
        ax.xaxis.set_minor_locator(plt.NullLocator())


def _wide_range_axis(ax: Axes, values: Sequence[float], linear_up_to: float = 2.0) -> None:
    """A symmetric-log y axis (linear within ±``linear_up_to``) when the values span more than
    20 points, so a one-point gap near 0 and a collapse of a hundred points at 98 % both show."""
    finite = [v for v in values if np.isfinite(v)]
    if finite and max(finite) - min(finite) > 20:
        ax.set_yscale("symlog", linthresh=linear_up_to)
        steps = [m * 10**k for k in range(4) for m in (1, 3)]
        ticks = [0.0, *steps, *(-t for t in steps)]
        low, high = min(finite), max(finite)
        ax.set_yticks(sorted(t for t in ticks if low - 1 <= t <= high + 1 or t == 0.0))
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:+g}" if v else "0"))
        ax.yaxis.set_minor_locator(plt.NullLocator())


def _legend_right(ax: Axes) -> None:
    ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")


def _mean_curve(values: pd.DataFrame) -> pd.DataFrame:
    """Per sparsity: the mean over seeds of ``value`` and its 95 % interval (NaN for one seed)."""
    rows = []
    for sparsity, block in values.groupby("sparsity", sort=True):
        estimate = mean_ci(list(block["value"]))
        rows.append({"sparsity": sparsity, "mean": estimate.mean})
        rows[-1] |= {"low": estimate.low, "high": estimate.high}
    return pd.DataFrame(rows)


def plot_against_sparsity(
    runs: pd.DataFrame,
    dataset: str,
    tasks: str,
    protocol: str,
    metrics: Sequence[tuple[str, str]],
) -> Figure:
    """Δ_MTL and each given (task, metric) against sparsity: one curve per method in its style,
    the mean over seeds with its 95 % interval as a band (none with a single seed), the dense
    model's mean as a dashed line and the control's (nothing pruned, fine-tuned like the others)
    as a line in its style with its interval as a horizontal band; one row per family of methods
    (module docstring).
    """
    chosen = runs[
        (runs["dataset"] == dataset) & (runs["tasks"] == tasks) & (runs["protocol"] == protocol)
    ]
    if "options" in chosen:
        chosen = chosen[chosen["options"].fillna("") == ""]
    methods = sorted(set(chosen["method"]) - set(REFERENCE_ROWS))
    rows = _rows(methods)
    if not rows:
        raise ValueError(f"no pruned runs of {dataset} / {tasks} / {protocol} to plot")
    panels = [DELTA, *metrics]
    fig, axes = plt.subplots(
        len(rows), len(panels), figsize=(5.0 * len(panels), 3.6 * len(rows)), squeeze=False
    )
    for row_axes, (family, members) in zip(axes, rows, strict=True):
        for ax, (task, metric) in zip(row_axes, panels, strict=True):
            values = chosen[(chosen["task"] == task) & (chosen["metric"] == metric)]
            higher = bool(values["higher_is_better"].iloc[0]) if len(values) else True
            for method in members:
                curve = _mean_curve(values[values["method"] == method])
                style = method_style(method)
                ax.plot(curve["sparsity"], curve["mean"], **style)
                ax.fill_between(
                    curve["sparsity"], curve["low"], curve["high"], color=style["color"], alpha=0.2
                )
            dense = values[values["method"] == DENSE]["value"]
            if (task, metric) == DELTA or len(dense):
                level = 0.0 if (task, metric) == DELTA else float(dense.mean())
                ax.axhline(level, **DENSE_LINE, label=method_label(DENSE))
            _control_band(ax, values[values["method"] == CONTROL]["value"])
            ax.set_title(f"{column_label(task, metric, higher)} · {family}", fontsize=9)
            _percent_axis(ax, values["sparsity"])
            if (task, metric) == DELTA:
                _wide_range_axis(ax, values[values["method"].isin(members)]["value"])
        _legend_right(row_axes[-1])
    seeds = chosen["seed"].nunique()
    band = "mean and 95 % CI over" if seeds > 1 else "single"
    fig.suptitle(f"{dataset}, {tasks}, {protocol} protocol ({band} seed{'s' * (seeds > 1)})")
    fig.tight_layout()
    return fig


def _control_band(ax: Axes, values: pd.Series) -> None:
    """The control's mean over seeds as a horizontal line in its style, its 95 % interval as a
    band across the axes (nothing without control runs)."""
    if values.empty:
        return
    estimate = mean_ci(list(values))
    style = method_style(CONTROL)
    ax.axhline(estimate.mean, color=style["color"], lw=1.2, ls="-.", label=style["label"])
    if estimate.n > 1:
        ax.axhspan(estimate.low, estimate.high, color=style["color"], alpha=0.12, lw=0)


def plot_differences(
    runs: pd.DataFrame,
    dataset: str,
    tasks: str,
    protocol: str,
    reference: str = CUT,
) -> Figure:
    """Δ_MTL of each method minus ``reference``'s, paired by seed, against sparsity: one curve
    per method in its style through the mean differences, their 95 % intervals as a band (none
    for a single seed), one panel per family of methods; below 0, the method is worse than
    ``reference``. With the control as ``reference`` (it prunes nothing, so one run serves every
    sparsity), this is what pruning costs at an equal training budget."""
    differences = paired_differences(runs, dataset, tasks, protocol, reference)
    if differences.empty:
        raise ValueError(f"no method shares a sparsity and a seed with {reference!r} to compare")
    methods = sorted(set(differences["method"]))
    rows = _rows(methods)
    fig, axes = plt.subplots(1, len(rows), figsize=(7.0 * len(rows), 4.0), squeeze=False)
    for ax, (family, members) in zip(axes[0], rows, strict=True):
        for method in members:
            block = differences[differences["method"] == method].sort_values("sparsity")
            style = method_style(method)
            ax.plot(block["sparsity"], block["difference"], **style)
            ax.fill_between(
                block["sparsity"], block["low"], block["high"], color=style["color"], alpha=0.2
            )
        ax.axhline(0.0, **DENSE_LINE)
        ax.set_ylabel(f"Δ_MTL minus {reference}'s (points)")
        ax.set_title(family, fontsize=9)
        _percent_axis(ax, differences["sparsity"])
        block = differences[differences["method"].isin(members)]
        _wide_range_axis(ax, [*block["low"], *block["high"], *block["difference"]])
        _legend_right(ax)
    seeds = int(differences["seeds"].max())
    detail = f"paired by seed, mean and 95 % CI over {seeds} seeds" if seeds > 1 else "one seed"
    fig.suptitle(f"{dataset}, {tasks}, {protocol}: each method minus {reference} ({detail})")
    fig.tight_layout()
    return fig


def plot_method_bars(
    table: pd.DataFrame, value: str, *, panel: str = "protocol", title: str = ""
) -> Figure:
    """A horizontal bar per row of ``table`` (columns ``method``, ``value`` and ``panel``), in the
    method's colour, labelled with its value; one panel per value of ``panel`` (the protocols:
    two training budgets are never ranked together), best first within each."""
    groups = list(table.groupby(panel, sort=True))
    fig, axes = plt.subplots(
        1,
        len(groups),
        figsize=(5.2 * len(groups), 0.42 * table.groupby(panel).size().max() + 1.4),
        squeeze=False,
    )
    for ax, (name, block) in zip(axes[0], groups, strict=True):
        block = block.sort_values(value, ascending=True)
        styles = [method_style(m) for m in block["method"]]
        bars = ax.barh(
            [s["label"] for s in styles], block[value], color=[s["color"] for s in styles]
        )
        ax.bar_label(bars, [f" {v:+.2f} " for v in block[value]], fontsize=8)
        ax.axvline(0.0, **DENSE_LINE)
        ax.margins(x=0.25)
        ax.set_xlabel(value)
        ax.set_title(f"{panel}: {name}", fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_factorial(table: pd.DataFrame) -> Figure:
    """The criterion × arbiter factorial (:func:`cutlib.factorial.factorial_table`): Δ_MTL
    against the fusion rule, one line per criterion (Taylor in CUT's style, |w| in grey), the
    mean over seeds with its 95 % interval, one panel per sparsity. Parallel lines: the two
    choices act independently; the vertical gap between the lines is the criterion's effect, the
    slope of a line the arbiter's."""
    sparsities = sorted(set(table["sparsity"]))
    fig, axes = plt.subplots(
        1, len(sparsities), figsize=(4.0 * len(sparsities), 3.4), squeeze=False, sharey=False
    )
    cut = method_style(CUT)
    styles = {
        "taylor": cut | {"label": f"Taylor |w·∂L/∂w| ({cut['label']}'s)"},
        "magnitude": {"color": "0.45", "marker": "s", "label": "magnitude |w|"},
    }
    present = set(table["fusion"])
    fusions = [f for f in ("vote", "union", "intersection") if f in present]
    for ax, sparsity in zip(axes[0], sparsities, strict=True):
        block = table[np.isclose(table["sparsity"], sparsity)]
        for criterion, style in styles.items():
            rows = block[block["criterion"] == criterion].set_index("fusion").reindex(fusions)
            x = np.arange(len(fusions))
            ax.errorbar(
                x,
                rows["Δ_MTL"],
                yerr=[rows["Δ_MTL"] - rows["low"], rows["high"] - rows["Δ_MTL"]],
                capsize=3,
                **style,
            )
        names = {"vote": "vote (CUT)", "union": "union (DiSparse)", "intersection": "intersection"}
        ax.set_xticks(range(len(fusions)), [names[f] for f in fusions])
        ax.set_xlim(-0.4, len(fusions) - 0.6)
        ax.set_title(f"{sparsity:.0%} sparsity", fontsize=10)
        ax.set_ylabel("Δ_MTL % ↑")
    _legend_right(axes[0][-1])
    seeds = int(table["seeds"].max())
    fig.suptitle(f"criterion × arbiter (mean and 95 % CI over {seeds} seeds)")
    fig.tight_layout()
    return fig
