"""The pipeline diagram: CUT's steps from the pre-trained multi-task model to the compact model,
with the notebook that shows each (docs/method/cut.md#the-pipeline-at-a-glance)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

#: (title, what happens, notebook) for each box, in order.
PIPELINE_STEPS: tuple[tuple[str, str, str], ...] = (
    ("pre-trained\nmulti-task model", "shared backbone $\\mathcal{B}$\n+ one head per task", "01"),
    ("1 · decompose", "one sub-model per task\n$\\Theta_t=\\mathcal{B}\\cup\\mathcal{H}_t$", "02"),
    ("2 · select", "keep the tasks $S$\nthe device needs", "02"),
    ("3 · score", "importance per weight, per task\non the frozen weights", "03"),
    ("4 · fuse", "top-κ mask per task;\nvote of ≥ 2 tasks on $\\mathcal{B}$", "04"),
    ("5 · fine-tune", "the surviving weights,\nmasks fixed", "05"),
    ("compact model", "backbone + selected heads,\nthe requested share zero", "05, 08"),
)


def plot_pipeline(steps: Sequence[tuple[str, str, str]] = PIPELINE_STEPS) -> Figure:
    """CUT as a row of boxes joined by arrows, each with its step, what it does and the notebook
    that shows it; the first and last boxes (the input and the output models) are shaded."""
    width, gap = 2.3, 0.45
    fig, ax = plt.subplots(figsize=(len(steps) * (width + gap) * 0.78, 2.4))
    for index, (title, body, notebook) in enumerate(steps):
        left = index * (width + gap)
        end = index in (0, len(steps) - 1)
        ax.add_patch(
            FancyBboxPatch(
                (left, 0),
                width,
                2,
                boxstyle="round,pad=0.05,rounding_size=0.15",
                facecolor="0.88" if end else "white",
                edgecolor="0.3",
            )
        )
        ax.text(left + width / 2, 1.55, title, ha="center", va="center", fontsize=9, weight="bold")
        ax.text(left + width / 2, 0.75, body, ha="center", va="center", fontsize=7.5)
        label = f"notebook {notebook}"
        ax.text(left + width / 2, -0.3, label, ha="center", fontsize=7, color="0.4")
        if index:
            ax.annotate(
                "",
                xy=(left - 0.03, 1),
                xytext=(left - gap + 0.03, 1),
                arrowprops={"arrowstyle": "-|>", "color": "0.3"},
            )
    ax.set_xlim(-0.2, len(steps) * (width + gap) - gap + 0.2)
    ax.set_ylim(-0.55, 2.2)
    ax.set_axis_off()
    fig.tight_layout()
    return fig
