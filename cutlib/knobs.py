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

import io
import itertools
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import PIL.Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cutlib.methods.cut import NAME as CUT
from cutlib.palette import method_style
from cutlib.pruning.fusion import FUSION_RULES, FusionRule, vote_threshold
from cutlib.pruning.importance import TaskScores
from cutlib.pruning.masks import BACKBONE, Masks, scope_sparsity
from cutlib.pruning.per_task import CutMasker
from cutlib.reporting import layer_densities, plot_per_layer
from cutlib.watershed import layer_iou

#: The kept fraction axis: logarithmic above this, linear down to 0.
_LINEAR_BELOW = 1e-2
#: The fused mask's series, and the IoU series with their styles.
_DEPLOYED = "deployed (fused)"
_IOU_STYLES: dict[str, dict[str, Any]] = {
    "mean pairwise": {"lw": 3, "color": "black"},
    "chance (mean pairwise)": {"ls": ":", "color": "0.5", "marker": ""},
}
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


class _LiveCanvas:
    """A figure laid out and rendered once; afterwards only its lines and axes titles are drawn
    again over the saved background (blitting), so a redraw costs milliseconds, not the
    half-second a full render of every tick label takes."""

    def __init__(self, figure: Figure) -> None:
        self.canvas = FigureCanvasAgg(figure)
        self.canvas.draw()  # the layout engine places everything once …
        figure.set_layout_engine("none")  # … and the layout stays
        self.moving = [(ax, artist) for ax in figure.axes for artist in (*ax.get_lines(), ax.title)]
        for _, artist in self.moving:
            artist.set_animated(True)  # left out of the background
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(figure.bbox)

    def png(self) -> bytes:
        """The figure as it is now, as PNG bytes."""
        self.canvas.restore_region(self.background)
        for ax, artist in self.moving:
            ax.draw_artist(artist)
        width, height = self.canvas.get_width_height()
        picture = PIL.Image.frombuffer("RGBA", (width, height), self.canvas.buffer_rgba())
        buffer = io.BytesIO()
        picture.save(buffer, format="png")
        return buffer.getvalue()


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
        return own, self.masker.deploy(own, setting.rule, setting.min_votes), threshold

    def _curves(
        self, setting: MaskSetting
    ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float], int]:
        """Per layer, the kept fraction of each own mask and of the deployed one; per backbone
        layer, the IoU curves; the sparsity; the votes needed."""
        own, deployed, threshold = self.masks(setting)
        densities = layer_densities(
            {f"{task}'s own mask": masks for task, masks in own.items()} | {_DEPLOYED: deployed}
        )
        iou = layer_iou(own, self.layers).set_index("name")[list(_IOU_STYLES)]
        return densities, iou, scope_sparsity(deployed, self.shared), threshold

    def _title(self, setting: MaskSetting, threshold: int, sparsity: dict[str, float]) -> str:
        return (
            f"(a) κ = {setting.keep_ratio:.3f}, {setting.rule} (≥ {threshold} of "
            f"{len(self.selected)}): deployed sparsity {sparsity['deployed sparsity']:.1%}"
        )

    def draw(self, setting: MaskSetting) -> MaskView:
        """The figure of ``setting``: (a) kept fraction per layer, each task's own mask and the
        fused deployed mask; (b) per backbone layer, the mean pairwise IoU of the task masks
        against chance."""
        start = time.perf_counter()
        densities, iou, sparsity, threshold = self._curves(setting)
        figure = Figure(figsize=(11, 5.6), layout="constrained")
        kept_ax, iou_ax = figure.subplots(2, 1)
        cut = method_style(CUT)
        styles: dict[str, dict[str, Any]] = {  # the tasks' own masks in greys, CUT's in colour
            f"{task}'s own mask": {"color": "0.45", "lw": 1.2, "marker": "", "ls": dashes}
            for task, dashes in zip(self.selected, itertools.cycle(_TASK_DASHES))
        }
        styles[_DEPLOYED] = {"lw": 3, "color": cut["color"], "marker": cut["marker"]}
        plot_per_layer(densities, self.layers, "kept fraction", ax=kept_ax, styles=styles)
        kept_ax.set_yscale("symlog", linthresh=_LINEAR_BELOW)
        kept_ax.set_ylim(0, 1.05)
        kept_ax.set_title(self._title(setting, threshold, sparsity), pad=18)
        plot_per_layer(iou, self.layers, "IoU of the task masks", ax=iou_ax, styles=_IOU_STYLES)
        iou_ax.set_ylim(0, 1)
        iou_ax.set_title("(b) agreement of the task masks in the shared backbone", pad=18)
        return MaskView(figure, sparsity, threshold, time.perf_counter() - start)

    def update(self, view: MaskView, setting: MaskSetting) -> MaskView:
        """``view``'s figure redrawn for ``setting`` in place: only the curves and the title
        change (axes, ticks and layout stay), which is what makes a live redraw fast."""
        start = time.perf_counter()
        densities, iou, sparsity, threshold = self._curves(setting)
        kept_ax, iou_ax = view.figure.axes[:2]
        for ax, values in ((kept_ax, densities), (iou_ax, iou)):
            order = self.layers.name[self.layers.name.isin(values.index)]
            for line in ax.get_lines():
                line.set_ydata(values.loc[order, line.get_label()].to_numpy())
        kept_ax.set_title(self._title(setting, threshold, sparsity), pad=18)
        return MaskView(view.figure, sparsity, threshold, time.perf_counter() - start)

    def widget(self, initial: MaskSetting) -> Any:
        """A κ slider (logarithmic), a rule selector and a minimum-votes slider above an output
        area; every change redraws (:meth:`update` of one figure laid out once, then its PNG
        rendering) and reports the setting, the sparsity and the whole redraw time in a label.
        Nothing is shown until a knob moves."""
        import ipywidgets as widgets
        from IPython.display import Image, display

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
        live = self.draw(initial)
        canvas = _LiveCanvas(live.figure)

        def redraw(_: object = None) -> None:
            start = time.perf_counter()
            votes.disabled = rule.value != "vote"
            setting = MaskSetting(kappa.value, rule.value, votes.value)
            view = self.update(live, setting)
            png = canvas.png()  # rendered here, so inside the timing
            with output:
                output.clear_output(wait=True)
                display(Image(png))
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
