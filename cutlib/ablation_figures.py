"""The ablation figure of notebook 09: CUT's choices changed one at a time
(:mod:`cutlib.ablations` makes the runs and the table).

Δ_MTL before fine-tuning (the pruned pre-trained weights as they are) and after it differ by an
order of magnitude at high sparsity, so each gets its own panel and its own axis; rules that give
the very same masks (with two or three tasks, the union is the vote ≥ 1) are one bar, labelled
with every name they go by.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from cutlib.ablations import distinct_variants
from cutlib.methods.cut import NAME as CUT
from cutlib.palette import method_style

BEFORE = "Δ_MTL before fine-tuning % ↑"
AFTER = "Δ_MTL % ↑"


def plot_ablations(table: pd.DataFrame, title: str) -> Figure:
    """Δ_MTL of each distinct variant before (left) and after (right) fine-tuning, one row of
    panels per family, every bar labelled with its value; 0 is the dense model. ``title`` should
    say that every variant is CUT with one choice changed (the bars are in CUT's colour)."""
    kept = distinct_variants(table)
    families = list(dict.fromkeys(kept["family"]))
    heights = [int((kept["family"] == f).sum()) for f in families]
    fig, axes = plt.subplots(
        len(families),
        2,
        figsize=(10, 0.45 * len(kept) + 0.6 * len(families) + 1.2),
        sharex="col",
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    colour = method_style(CUT)["color"]  # every variant is CUT with one change
    for row, family in zip(axes, families, strict=True):
        block = kept[kept["family"] == family]
        for ax, column in zip(row, (BEFORE, AFTER), strict=True):
            bars = ax.barh(block["variant"], block[column], color=colour)
            ax.bar_label(bars, [f" {v:+.2f} " for v in block[column]], fontsize=8)
            ax.axvline(0, color="black", lw=1)
            ax.invert_yaxis()
            ax.margins(x=0.18)
        row[0].set_title(family, fontsize=9, loc="left")
        row[1].set_yticklabels([])
    axes[0][0].set_title("before fine-tuning", fontsize=10)
    axes[0][1].set_title("after fine-tuning", fontsize=10)
    axes[-1][0].set_xlabel("Δ_MTL against the dense model, %")
    axes[-1][1].set_xlabel("Δ_MTL against the dense model, % (higher is better)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
