"""Live knobs for the read-along (notebooks 03 and 04): a keep-ratio slider and a fusion-rule /
minimum-votes selector that redraw CUT's masks from cached per-task scores.

CUT's steps 4 and 5 (docs/method/cut.md#normalisation-and-per-task-top-k and
#fusing-the-backbone-masks-by-vote) are cheap once the scores exist: each task's global top-κ
mask is a comparison against a precomputed rank, and the vote is a sum. :class:`MaskExplorer`
ranks the scores once and then, for any setting, draws the kept fraction of every layer (each
task's own mask and the fused, deployed one), the per-layer IoU of the task masks in the shared
backbone, and the deployed sparsity. :meth:`MaskExplorer.widget` puts that behind ipywidgets;
each redraw reports its own duration, so a reader (and the browser test) can see it stays under a
second.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from cutlib.methods.cut import NAME as CUT
from cutlib.palette import method_style
from cutlib.pruning.fusion import FUSION_RULES, FusionRule, fuse_masks, vote_threshold
from cutlib.pruning.importance import TaskScores
from cutlib.pruning.masks import BACKBONE, Masks, scope_sparsity
from cutlib.pruning.per_task import CutMasker
from cutlib.reporting import layer_densities, plot_per_layer
from cutlib.watershed import layer_iou

#: The kept fraction axis: logarithmic above this, linear down to 0.
_LINEAR_BELOW = 1e-2
#: Line styles of the tasks' own masks.
_TASK_DASHES: tuple[Any, ...] = (":", "-.", (0, (5, 1)), "--", (0, (1, 3)))


@dataclass(frozen=True)
class MaskSetting:
    """One setting of the knobs: keep ratio κ, fusion rule and the ``vote`` rule's threshold."""

    keep_ratio: float
    rule: FusionRule = "vote"
    min_votes: int = 2


@dataclass(frozen=True)
class MaskView:
    """What one setting gives: the figure, the deployed / backbone / heads sparsity, the votes a
    shared weight needed, and how long computing and drawing took (seconds)."""

    figure: Figure
    sparsity: dict[str, float]
    votes_needed: int
    seconds: float

    def summary(self, setting: MaskSetting, voters: int, seconds: float | None = None) -> str:
        """One line: the setting, the sparsity it achieves and, given ``seconds``, the redraw time
        (left out otherwise, so an executed notebook's copy does not change from run to run)."""
        parts = ", ".join(f"{k} {v:.1%}" for k, v in self.sparsity.items())
        line = f"κ = {setting.keep_ratio:.3f}, {setting.rule} (≥ {self.votes_needed} of {voters} "
        line += f"votes): {parts}"
        return line if seconds is None else f"{line}; redrawn in {seconds:.2f} s"


class MaskExplorer:
    """CUT's masks for any setting, drawn from cached scores.

    Args:
        scores: per-task scores over each task's sub-model
            (:func:`cutlib.experiments.pretrained_task_scores`).
        layers: :func:`cutlib.reporting.layer_table` of the scored model.
        selected: the tasks that vote (and keep their heads); two or more, for the IoU.
        shared: names of the shared (backbone) weights.
    """

    def __init__(
        self,
        scores: TaskScores,
        layers: pd.DataFrame,
        selected: Sequence[str],
        shared: Collection[str],
    ) -> None:
        if len(selected) < 2:
            raise ValueError("the mask explorer needs at least two selected tasks to fuse")
        self.masker = CutMasker(scores, selected, shared)
        self.layers = layers
        self.selected = list(selected)
        self.shared = set(shared)

    def masks(self, setting: MaskSetting) -> tuple[dict[str, Masks], Masks, int]:
        """Each selected task's own mask, the deployed model's masks (fused backbone, own
        heads) and the votes a shared weight needs, at ``setting``."""
        threshold = vote_threshold(setting.rule, len(self.selected), setting.min_votes)
        own = self.masker.task_masks(setting.keep_ratio)
        backbone = fuse_masks(
            {t: {n: m[n] for n in self.masker.shared} for t, m in own.items()},
            setting.rule,
            setting.min_votes,
        )
        heads = {n: m for masks in own.values() for n, m in masks.items() if n not in self.shared}
        return own, backbone | heads, threshold

    def draw(self, setting: MaskSetting) -> MaskView:
        """The figure of ``setting``: (a) kept fraction per layer, each task's own mask and the
        fused deployed mask; (b) per backbone layer, the mean pairwise IoU of the task masks
        against chance."""
        start = time.perf_counter()
        own, deployed, threshold = self.masks(setting)
        sparsity = scope_sparsity(deployed, self.shared)
        figure = Figure(figsize=(11, 5.6), layout="constrained")
        kept_ax, iou_ax = figure.subplots(2, 1)
        densities = layer_densities(
            {f"{task}'s own mask": masks for task, masks in own.items()}
            | {"deployed (fused)": deployed}
        )
        cut = method_style(CUT)
        styles: dict[str, dict[str, Any]] = {  # the tasks' own masks in greys, CUT's in colour
            f"{task}'s own mask": {"color": "0.45", "lw": 1.2, "marker": "", "ls": dashes}
            for task, dashes in zip(self.selected, itertools.cycle(_TASK_DASHES))
        }
        styles["deployed (fused)"] = {"lw": 3, "color": cut["color"], "marker": cut["marker"]}
        plot_per_layer(densities, self.layers, "kept fraction", ax=kept_ax, styles=styles)
        kept_ax.set_yscale("symlog", linthresh=_LINEAR_BELOW)
        kept_ax.set_ylim(0, 1.05)
        kept_ax.set_title(
            f"(a) κ = {setting.keep_ratio:.3f}, {setting.rule} (≥ {threshold} of "
            f"{len(self.selected)}): deployed sparsity {sparsity['deployed sparsity']:.1%}",
            pad=18,
        )
        iou = layer_iou(own, self.layers).set_index("name")
        plot_per_layer(
            iou[["mean pairwise", "chance (mean pairwise)"]],
            self.layers,
            "IoU of the task masks",
            ax=iou_ax,
            styles={
                "mean pairwise": {"lw": 3, "color": "black"},
                "chance (mean pairwise)": {"ls": ":", "color": "0.5", "marker": ""},
            },
        )
        iou_ax.set_ylim(0, 1)
        iou_ax.set_title("(b) agreement of the task masks in the shared backbone", pad=18)
        return MaskView(figure, sparsity, threshold, time.perf_counter() - start)

    def widget(self, initial: MaskSetting) -> Any:
        """A κ slider (logarithmic), a rule selector and a minimum-votes slider above an output
        area; every change redraws (:meth:`draw`, then the PNG rendering) and reports the setting,
        the sparsity and the whole redraw time in a label. Nothing is drawn until a knob moves."""
        import ipywidgets as widgets
        from IPython.display import display

        kappa = widgets.FloatLogSlider(
            value=initial.keep_ratio,
            base=10,
            min=-2.5,
            max=0,
            step=0.05,
            description="κ",
            readout_format=".3f",
            continuous_update=False,
        )
        rule = widgets.Dropdown(options=list(FUSION_RULES), value=initial.rule, description="rule")
        votes = widgets.IntSlider(
            value=initial.min_votes,
            min=1,
            max=len(self.selected),
            description="min votes",
            continuous_update=False,
        )
        status = widgets.Label("move a knob to redraw")
        status.add_class("cutlib-knob-status")
        output = widgets.Output()

        def redraw(_: object = None) -> None:
            start = time.perf_counter()
            votes.disabled = rule.value != "vote"
            setting = MaskSetting(kappa.value, rule.value, votes.value)
            view = self.draw(setting)
            with output:
                output.clear_output(wait=True)
                display(view.figure)  # renders the PNG here, so it is inside the timing
            status.value = view.summary(setting, len(self.selected), time.perf_counter() - start)

        for control in (kappa, rule, votes):
            control.observe(redraw, names="value")
        votes.disabled = initial.rule != "vote"
        return widgets.VBox([widgets.HBox([kappa, rule, votes]), status, output])


def explore(
    scores: TaskScores,
    layers: pd.DataFrame,
    selected: Sequence[str],
    initial: MaskSetting,
    shared: Collection[str] | None = None,
) -> tuple[MaskView, Any]:
    """The default setting drawn once (a static figure that an executed notebook keeps) and the
    live widget below it; ``shared`` defaults to the backbone weights of ``layers``."""
    names = set(layers.name[layers.owner == BACKBONE]) if shared is None else set(shared)
    explorer = MaskExplorer(scores, layers, selected, names)
    return explorer.draw(initial), explorer.widget(initial)
