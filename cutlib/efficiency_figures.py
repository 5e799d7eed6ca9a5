"""The accuracy-against-cost figure of notebook 08 (docs/method/efficiency.md#measuring-latency):
Δ_MTL against the latency under each runtime and against the smallest file each variant ships as.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from cutlib.efficiency import RUNTIME_LABELS, latency_column
from cutlib.palette import method_style

#: The file columns of an edge table the smallest file is chosen from.
FILE_COLUMNS = ("state_dict MB", "sparse fp16 MB")


def plot_accuracy_vs_cost(
    table: pd.DataFrame, method_of: Mapping[str, str], runtimes: Sequence[str], title: str
) -> Figure:
    """One panel per runtime (Δ_MTL against the median latency at batch 1 on 1 thread, bars: IQR)
    and one for the smallest file, every variant of ``table`` (:func:`cutlib.efficiency.edge_table`)
    in its method's colour and marker (``method_of``: variant → method); a method's later variants
    (another sparsity, fewer heads) are hollow. The legend sits below the panels, off the points.
    """
    fig, axes = plt.subplots(
        1, len(runtimes) + 1, figsize=(4 * len(runtimes) + 4, 4.6), sharey=True, squeeze=False
    )
    axes = axes[0]
    smallest = table[list(FILE_COLUMNS)].min(axis=1)
    seen: set[str] = set()
    for (_, row), size in zip(table.iterrows(), smallest, strict=True):
        method = method_of[row["variant"]]
        style = method_style(method) | {"label": row["variant"], "ls": "none"}
        style["fillstyle"] = "none" if method in seen else "full"
        seen.add(method)
        for ax, runtime in zip(axes, runtimes, strict=False):
            ax.errorbar(
                row[latency_column(runtime, 1, 1)],
                row["Δ_MTL % ↑"],
                xerr=row[latency_column(runtime, 1, 1, kind="IQR")] / 2,
                capsize=3,
                **style,
            )
        axes[-1].plot(size, row["Δ_MTL % ↑"], **style)
    for ax, runtime in zip(axes, runtimes, strict=False):
        ax.set_xlabel(f"{RUNTIME_LABELS[runtime]} latency,\nbatch 1, 1 thread (ms)")
        ax.set_xlim(left=0)
    axes[-1].set_xlabel("smallest file (MB)")
    axes[-1].set_xlim(left=0)
    axes[0].set_ylabel("Δ_MTL % (selected tasks)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05 * -(-len(labels) // 3), 1, 1))  # a band per legend row
    return fig
