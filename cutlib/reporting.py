"""Tables and figures in one house style (docs/architecture.md#layers): pandas → CSV + Markdown,
matplotlib/seaborn → PNG + PDF, all under ``results/`` (see :func:`cutlib.io.results_dir`).

Also the pictures every notebook needs: a colour rendering of each kind of dense label, a row of
image + labels per sample, training curves, and predictions next to ground truth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import Tensor, nn

from cutlib.data.transforms import denormalize
from cutlib.io import results_dir
from cutlib.palette import method_label, method_style
from cutlib.tasks import TaskSpec

_KIND_TITLES = {
    "seg": "semantic segmentation",
    "sn": "surface normals",
    "depth": "depth",
    "keypoint": "2-D keypoints",
    "edge": "texture edges",
}


def set_style() -> None:
    """The house style: seaborn's white grid, colour-blind palette, crisp saved figures."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"savefig.dpi": 150, "savefig.bbox": "tight", "figure.dpi": 100})


def save_figure(fig: Figure, name: str) -> list[Path]:
    """Save ``fig`` as ``results/figures/<name>.png`` and ``.pdf``; return the paths. The PDF
    carries no creation date, so an unchanged figure gives an unchanged file."""
    folder = results_dir() / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.{ext}" for ext in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
    return paths


def save_table(
    table: pd.DataFrame,
    name: str,
    floatfmt: str = ".4g",
    markdown: pd.DataFrame | None = None,
) -> list[Path]:
    """Save ``table`` as ``results/tables/<name>.csv`` and ``.md``; return the paths.

    ``markdown``: a formatted version of the table (e.g. ``mean ± std`` strings with the best in
    bold, :mod:`cutlib.comparison`) to write as the Markdown instead of ``table``.
    """
    folder = results_dir() / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    csv, md = folder / f"{name}.csv", folder / f"{name}.md"
    table.to_csv(csv, index=False, float_format=f"%{floatfmt}")
    shown = table if markdown is None else markdown
    md.write_text(shown.to_markdown(index=False, floatfmt=floatfmt) + "\n")
    return [csv, md]


def file_slug(*parts: object) -> str:
    """A file-name part: ``parts`` joined by ``_``, a float (a sparsity) as ``s<percent>``.

    Example:
        >>> file_slug("synth-nyuv2", "seg+depth", 0.9, "fair")
        'synth-nyuv2_seg+depth_s90_fair'
    """
    return "_".join(f"s{p * 100:.0f}" if isinstance(p, float) else str(p) for p in parts)


#: How the surface-normal pictures are coloured, for captions under a normals column.
NORMALS_COLOUR_CODE_SHORT = (
    "colour (R, G, B) = (n + 1) / 2 of the unit\nnormal n, camera frame: x right, y down,\n"
    "z forward; black = invalid"
)


def _class_palette(task: TaskSpec) -> Tensor:
    return torch.tensor(sns.color_palette("tab20", max(task.channels, 2)))


def depth_range(labels: Sequence[Tensor]) -> tuple[float, float]:
    """The (lowest, highest) valid depth (> 0) over ``labels``: one colour scale for a figure."""
    valid = torch.cat([label[label > 0].flatten().float().cpu() for label in labels])
    if valid.numel() == 0:
        return (0.0, 1.0)
    return (float(valid.min()), float(valid.max()))


def _depth_colours(value_range: tuple[float, float]) -> tuple[Normalize, Colormap]:
    """Depth as viridis, near = bright (reversed map), over ``value_range``."""
    return Normalize(*value_range), plt.get_cmap("viridis_r")


def label_to_rgb(
    task: TaskSpec, label: Tensor, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """An (H, W, 3) RGB picture in [0, 1] of one label map; invalid pixels are black.

    seg: one colour per class; sn: (n + 1) / 2 as RGB (:data:`NORMALS_COLOUR_CODE_SHORT`); depth:
    viridis, near = bright, over ``value_range`` (default: this map's own valid range);
    keypoint / edge: grey levels.
    """
    label = label.detach().float().cpu()
    if task.kind == "seg":
        ids = label.long()
        valid = (ids >= 0) & (ids < task.channels)
        rgb = _class_palette(task)[ids.clamp(0, task.channels - 1)]
        return (rgb * valid[..., None]).numpy()
    if task.kind == "sn":
        valid = label.norm(dim=0) > 0
        return (((label + 1) / 2).clamp(0, 1) * valid).permute(1, 2, 0).numpy()
    values = label[0]
    if task.kind == "depth":
        valid = values > 0
        norm, cmap = _depth_colours(value_range or depth_range([values]))
        rgb = torch.tensor(cmap(norm(values.numpy()).clip(0, 1))[..., :3])
        return (rgb * valid[..., None]).float().numpy()
    valid = (
        values != task.ignore_value
        if task.ignore_value is not None
        else torch.ones_like(values, dtype=torch.bool)
    )
    return (values.clamp(0, 1) * valid)[..., None].expand(-1, -1, 3).numpy()


def prediction_to_label(task: TaskSpec, pred: Tensor, size: tuple[int, int]) -> Tensor:
    """Turn one head output (C, h, w) into a label-like map at ``size`` (bilinear upsampling)."""
    up = F.interpolate(pred[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    if task.kind == "seg":
        return up.argmax(0)
    if task.kind == "sn":
        return F.normalize(up, dim=0)
    return up


def plot_samples(
    samples: Sequence[Mapping[str, Tensor]],
    tasks: Sequence[TaskSpec],
    title: str | None = None,
    normalization: str = "imagenet",
    depth_unit: str = "m",
) -> Figure:
    """One row per sample: the image (shown after undoing ``normalization``, the profile's
    :func:`~cutlib.data.image_normalization`), then every task's label; a key of the
    segmentation classes shown, a colour bar for depth in ``depth_unit`` (one scale for the
    whole figure) and the normals' colour code underneath."""
    cols = 1 + len(tasks)
    fig, axes = plt.subplots(
        len(samples),
        cols,
        figsize=(2.2 * cols, 2.2 * len(samples) + 0.9),
        squeeze=False,
        layout="constrained",
    )
    ranges = {t.name: depth_range([s[t.name] for s in samples]) for t in tasks if t.kind == "depth"}
    for row, sample in zip(axes, samples, strict=True):
        row[0].imshow(denormalize(sample["image"], normalization).permute(1, 2, 0).cpu().numpy())
        for ax, task in zip(row[1:], tasks, strict=True):
            ax.imshow(label_to_rgb(task, sample[task.name], ranges.get(task.name)))
    for ax, name in zip(axes[0], ["image"] + [_KIND_TITLES[t.kind] for t in tasks], strict=True):
        ax.set_title(name, fontsize=9)
    for ax in axes.flat:
        ax.set_axis_off()
    for column, task in enumerate(tasks, start=1):
        if task.kind == "depth":
            norm, cmap = _depth_colours(ranges[task.name])
            bar = fig.colorbar(
                ScalarMappable(norm, cmap), ax=axes[:, column], location="bottom", shrink=0.9
            )
            bar.set_label(f"depth ({depth_unit}); black = invalid", fontsize=8)
    seg = next((t for t in tasks if t.kind == "seg"), None)
    if seg is not None:
        shown = torch.unique(torch.cat([s[seg.name].flatten() for s in samples]))
        palette = _class_palette(seg)
        handles = [
            Patch(color=palette[int(c)].tolist(), label=seg.class_names[int(c)])
            for c in shown
            if 0 <= int(c) < seg.channels and int(c) < len(seg.class_names)
        ]
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=min(len(handles), 7),
            fontsize=8,
            title="classes (black = ignored)",
            title_fontsize=8,
            frameon=False,
        )
    for column, task in enumerate(tasks, start=1):
        if task.kind == "sn":
            bottom = axes[-1, column]
            bottom.set_axis_on()
            bottom.set(xticks=[], yticks=[])
            bottom.grid(False)
            for spine in bottom.spines.values():
                spine.set_visible(False)
            bottom.set_xlabel(NORMALS_COLOUR_CODE_SHORT, fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


@torch.no_grad()
def plot_predictions(
    model: nn.Module,
    samples: Sequence[Mapping[str, Tensor]],
    tasks: Sequence[TaskSpec],
    normalization: str = "imagenet",
) -> Figure:
    """One row per sample: the image (shown after undoing ``normalization``), then ground truth
    and prediction for every task (a predicted depth on its truth's colour scale)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    images = torch.stack([s["image"] for s in samples]).to(device)
    outputs = model(images)
    model.train(was_training)
    cols = 1 + 2 * len(tasks)
    fig, axes = plt.subplots(
        len(samples), cols, figsize=(2.0 * cols, 2.0 * len(samples)), squeeze=False
    )
    for i, (row, sample) in enumerate(zip(axes, samples, strict=True)):
        row[0].imshow(denormalize(sample["image"], normalization).permute(1, 2, 0).cpu().numpy())
        for j, task in enumerate(tasks):
            truth = sample[task.name]
            pred = prediction_to_label(task, outputs[task.name][i], tuple(truth.shape[-2:]))
            scale = depth_range([truth]) if task.kind == "depth" else None
            row[1 + 2 * j].imshow(label_to_rgb(task, truth, scale))
            row[2 + 2 * j].imshow(label_to_rgb(task, pred, scale))
    titles = ["image"] + [f"{t.name} {w}" for t in tasks for w in ("truth", "predicted")]
    for ax, name in zip(axes[0], titles, strict=True):
        ax.set_title(name, fontsize=9)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def plot_history(history: Sequence[Mapping[str, float]], tasks: Sequence[TaskSpec]) -> Figure:
    """Training and validation loss against iterations: the λ-weighted total, then each task."""
    frame = pd.DataFrame(history)
    panels = ["loss"] + [t.name for t in tasks]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8), squeeze=False)
    for ax, key in zip(axes[0], panels, strict=True):
        ax.plot(frame["iteration"], frame[f"train_{key}"], label="train", marker=".")
        ax.plot(frame["iteration"], frame[f"val_{key}"], label="validation", marker=".")
        ax.set_title("λ-weighted total" if key == "loss" else f"{key} loss", fontsize=10)
        ax.set_xlabel("iteration")
    axes[0][0].set_ylabel("loss")
    axes[0][0].legend()
    fig.tight_layout()
    return fig


def metrics_table(
    columns: Mapping[str, Mapping[str, Mapping[str, float]]], tasks: Sequence[TaskSpec]
) -> pd.DataFrame:
    """One row per (task, metric) with an arrow for its direction, one column per model.

    Example:
        >>> # ref = run["reference"]
        >>> # metrics_table({"dense": run["metrics"], "trivial": ref["trivial"]}, tasks)
    """
    rows = []
    for task in tasks:
        for metric, higher in task.metric_directions.items():
            row = {"task": task.name, "metric": f"{metric} {'↑' if higher else '↓'}"}
            row |= {name: values[task.name][metric] for name, values in columns.items()}
            rows.append(row)
    return pd.DataFrame(rows)


def layer_table(model: nn.Module) -> pd.DataFrame:
    """One row per prunable weight of a :class:`~cutlib.models.SceneNet`, in module (depth) order.

    Columns: ``name`` (parameter name, the key of scores and masks), ``owner`` (``"backbone"`` or
    the task), ``group`` (``"stem"``, ``"stage 1"`` … ``"stage 4"`` or ``"head <task>"``), ``label``
    (a short tick label: ``s2.b0.conv1``, ``s2.b0.ds`` for a 1×1 downsample, ``seg.r1.3x3`` for the
    dilated 3×3 conv of a head's ASPP branch of the second rate, ``.1x1`` and ``.out`` for the
    other two convs of a branch), ``kind`` (``conv``, ``downsample``, ``3x3``, ``1x1``, ``out``)
    and ``weights`` (number of entries). Ownership comes from
    :func:`~cutlib.pruning.masks.prunable_weights`; the other columns only label the rows.

    Example:
        >>> from cutlib.models import SceneNet
        >>> from cutlib.tasks import TaskSpec
        >>> net = SceneNet([TaskSpec("depth", "depth", 1)], "resnet18", 0.125, 8, (1, 2, 3, 4))
        >>> layer_table(net)["group"].unique().tolist()
        ['stem', 'stage 1', 'stage 2', 'stage 3', 'stage 4', 'head depth']
    """
    from cutlib.pruning.masks import prunable_weights  # local: reporting stays importable alone

    head_kinds = ("3x3", "1x1", "out")
    rows = []
    branch_position: dict[str, int] = {}
    for w in prunable_weights(model):
        parts = w.name.split(".")[:-1]  # module path without the trailing "weight"
        if w.owner == "backbone" and parts[1] == "stages" and len(parts) >= 5:
            stage, block = int(parts[2]) + 1, parts[3]
            kind = "downsample" if parts[4] == "downsample" else "conv"
            label = f"s{stage}.b{block}.{'ds' if kind == 'downsample' else parts[4]}"
            group = f"stage {stage}"
        elif w.owner == "backbone":
            group, label, kind = parts[1], parts[1], "conv"
        else:
            branch = ".".join(parts[:-1])
            position = branch_position.get(branch, 0)
            branch_position[branch] = position + 1
            kind = head_kinds[position] if position < len(head_kinds) else f"conv{position}"
            rate = parts[3] if len(parts) > 3 else "?"
            group, label = f"head {w.owner}", f"{w.owner}.r{rate}.{kind}"
        rows.append(
            {
                "name": w.name,
                "owner": w.owner,
                "group": group,
                "label": label,
                "kind": kind,
                "weights": w.weight.numel(),
            }
        )
    return pd.DataFrame(rows)


def sub_model_table(model: nn.Module) -> pd.DataFrame:
    """One row per task of a :class:`~cutlib.models.SceneNet`: the prunable weights of the shared
    backbone ``|B|``, of the task's head ``|H_t|`` and of its sub-model ``|Θ_t|`` (counted over
    :func:`~cutlib.pruning.importance.sub_model_weights`, so ``|Θ_t| = |B| + |H_t|`` is a check,
    not a definition), and the head's share of the sub-model.

    Example:
        >>> from cutlib.models import SceneNet
        >>> from cutlib.tasks import TaskSpec
        >>> net = SceneNet([TaskSpec("depth", "depth", 1)], "resnet18", 0.125, 8, (1,))
        >>> sub_model_table(net).to_dict("records")[0]  # doctest: +ELLIPSIS
        {'task': 'depth', 'backbone |B|': 175512, 'head |H_t|': 4680, 'sub-model |Θ_t|': 180192, \
'head share of Θ_t': 0.02597...}
    """
    from cutlib.pruning.importance import sub_model_weights  # local, as in layer_table
    from cutlib.pruning.masks import BACKBONE

    layers = layer_table(model)
    weights = layers.set_index("name")["weights"]
    table = pd.DataFrame(
        [
            {
                "task": t,
                "backbone |B|": int(layers.loc[layers.owner == BACKBONE, "weights"].sum()),
                "head |H_t|": int(layers.loc[layers.owner == t, "weights"].sum()),
                "sub-model |Θ_t|": int(weights.loc[sub_model_weights(model, t)].sum()),
            }
            for t in model.task_names
        ]
    )
    table["head share of Θ_t"] = table["head |H_t|"] / table["sub-model |Θ_t|"]
    return table


def weights_by_group(layer_tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per layer group (stem, stages, heads, in depth order), the prunable weights of each model's
    :func:`layer_table` (one column per model) and, in ``<model> share`` columns, their share of
    that model's total.

    Example:
        >>> a = pd.DataFrame({"group": ["stem", "head t"], "weights": [1, 3]})
        >>> b = pd.DataFrame({"group": ["stem", "head t"], "weights": [2, 2]})
        >>> weights_by_group({"a": a, "b": b}).to_dict("records")[0]
        {'group': 'stem', 'a': 1, 'b': 2, 'a share': 0.25, 'b share': 0.5}
    """
    counts = pd.DataFrame(
        {
            name: table.groupby("group", sort=False)["weights"].sum()
            for name, table in layer_tables.items()
        }
    )
    table = counts.rename_axis("group").reset_index()
    for column in counts:
        table[f"{column} share"] = table[column] / table[column].sum()
    return table


def plot_per_layer(
    values: pd.DataFrame,
    layers: pd.DataFrame,
    ylabel: str,
    *,
    ax: plt.Axes | None = None,
    styles: Mapping[str, Mapping[str, object]] | None = None,
) -> Figure:
    """One line per column of ``values`` (indexed by parameter name) against the layers in depth
    order, with the layer groups (stem, stages, heads) as alternating bands.

    Args:
        values: index = parameter names (a subset of ``layers.name``), one column per series.
        layers: :func:`layer_table` of the model, for the order, tick labels and groups.
        ylabel: the y-axis label.
        ax: draw into this axes instead of a new figure.
        styles: per-column keyword arguments for ``ax.plot`` (e.g. ``{"mean": {"lw": 3}}``; a
            method's :func:`cutlib.palette.method_style`, whose ``label`` replaces the column's).
    """
    rows = layers[layers["name"].isin(values.index)].reset_index(drop=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(rows)), 3.4))
    x = np.arange(len(rows))
    for column in values.columns:
        style = {"marker": ".", "label": column, **((styles or {}).get(column, {}))}
        ax.plot(x, values.loc[rows["name"], column].to_numpy(), **style)
    start = 0
    for i, (group, block) in enumerate(rows.groupby("group", sort=False)):
        end = start + len(block)
        if i % 2:
            ax.axvspan(start - 0.5, end - 0.5, color="0.92", zorder=0)
        middle = (start + end - 1) / 2
        top = ax.get_xaxis_transform()  # x in data units, y in axes units
        ax.text(middle, 1.01, group, ha="center", va="bottom", fontsize=8, transform=top)
        start = end
    ax.set_xticks(x, rows["label"], rotation=90, fontsize=7)
    ax.set_xlim(-0.5, len(rows) - 0.5)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    return ax.figure


def plot_mask_grids(
    panels: Mapping[str, Mapping[str, Tensor]],
    rows: Sequence[tuple[str, Sequence[str]]],
    *,
    columns: int = 32,
    seed: int = 0,
) -> Figure:
    """Masks drawn as grids of kept (grey) and pruned (white) circles, one panel per mask set,
    in the style of CUT's overview figure (docs/method/cut.md#the-pipeline-at-a-glance).

    Each row is one layer (or several weights shown together, e.g. the same conv of all four ASPP
    branches). It shows ``columns`` weight positions drawn at random (seeded, the same positions
    in every panel), stratified on the last panel's mask so that its filled share matches its
    kept fraction, and ordered so that positions kept in more panels come first; the percentage
    at the right of a row is the kept fraction over *all* the row's weights (a caption says so).
    A panel without the row's weights (another task's head) leaves it blank.

    Args:
        panels: panel title → masks (parameter name → bool keep-mask).
        rows: ``(row label, [parameter names])`` from top to bottom.
        columns: positions drawn per row.
        seed: seeds the choice of positions.
    """
    generator = torch.Generator().manual_seed(seed)
    titles = list(panels)
    size = (2.9 * len(titles) + 1.2, 0.24 * len(rows) + 0.9)
    fig, axes = plt.subplots(1, len(titles), figsize=size, sharey=True, squeeze=False)
    for r, (_, names) in enumerate(rows):
        present = [t for t in titles if all(n in panels[t] for n in names)]
        if not present:
            continue
        flat = {t: torch.cat([panels[t][n].reshape(-1).cpu() for n in names]) for t in present}
        picks = _stratified_picks(flat[present[-1]], columns, generator)
        kept = torch.stack([flat[t][picks] for t in present]).numpy()
        order = np.lexsort(kept[::-1] * -1)  # kept-in-first-panel first, then the next panel…
        for i, title in enumerate(present):
            ax = axes[0][titles.index(title)]
            row_kept = kept[i][order]
            xs = np.arange(len(row_kept))
            colours = np.where(row_kept, "0.45", "white")
            ax.scatter(xs, np.full(len(xs), r), s=22, c=colours, edgecolors="0.6", linewidths=0.5)
            share = float(flat[title].float().mean())
            ax.text(len(xs) + 0.5, r, f"{share:.0%}", va="center", fontsize=7)
    for ax, title in zip(axes[0], titles, strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlim(-1, columns + 4)
        ax.set_xticks([])
        ax.grid(False)
        for side in ax.spines.values():
            side.set_visible(False)
    axes[0][0].set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=7)
    axes[0][0].set_ylim(len(rows) - 0.5, -0.5)
    fig.text(
        0.5,
        0,
        f"Circles: {columns} weights of each row, the same ones in every panel, drawn so that the "
        "last panel's filled share matches its percentage; percentages: kept fraction of all "
        "the row's weights.",
        ha="center",
        va="top",
        fontsize=7,
        color="0.3",
    )
    fig.tight_layout()
    return fig


def _stratified_picks(reference: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``count`` positions of a flat bool mask drawn at random, as many kept ones as the mask's
    kept fraction calls for (rounded), so that a row of circles shows that fraction."""
    count = min(count, reference.numel())
    kept, pruned = reference.nonzero().flatten(), (~reference).nonzero().flatten()
    n_kept = min(round(count * kept.numel() / reference.numel()), kept.numel())
    n_kept = max(n_kept, count - pruned.numel())
    draw = [
        positions[torch.randperm(positions.numel(), generator=generator)[:n]]
        for positions, n in ((kept, n_kept), (pruned, count - n_kept))
    ]
    return torch.cat(draw)


def mask_grid_rows(layers: pd.DataFrame, tasks: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The rows of :func:`plot_mask_grids` for CUT's overview figure, from a :func:`layer_table`:
    one per backbone layer (with its tick label), then, for each of ``tasks``, one per kind of
    head conv, gathering that conv of all the head's ASPP branches (``"seg head 3x3"``).

    Example:
        >>> layers = pd.DataFrame({"name": ["b", "h1", "h2", "h3"], "label": ["stem", *"   "],
        ...     "owner": ["backbone", *"ttt"], "kind": ["conv", "3x3", "out", "3x3"]})
        >>> mask_grid_rows(layers, ["t"])
        [('stem', ['b']), ('t head 3x3', ['h1', 'h3']), ('t head out', ['h2'])]
    """
    from cutlib.pruning.masks import BACKBONE  # local, as in layer_table

    backbone = layers[layers["owner"] == BACKBONE]
    rows = [
        (label, [name]) for label, name in zip(backbone["label"], backbone["name"], strict=True)
    ]
    for task in tasks:
        head = layers[layers["owner"] == task]
        rows += [
            (f"{task} head {kind}", list(head["name"][head["kind"] == kind]))
            for kind in head["kind"].unique()
        ]
    return rows


def layer_densities(masks: Mapping[str, Mapping[str, Tensor]]) -> pd.DataFrame:
    """The kept fraction of every layer (index: parameter name) of every mask set (one column per
    set); a layer missing from a set is NaN.

    Example:
        >>> kept = torch.tensor([True, False])
        >>> layer_densities({"a": {"w": kept}, "b": {"w": kept | True}})
             a    b
        w  0.5  1.0
    """
    return pd.DataFrame(
        {
            name: {n: float(m.float().mean()) for n, m in sets.items()}
            for name, sets in masks.items()
        }
    )


def mask_agreement(masks: Mapping[str, Mapping[str, Tensor]], reference: str) -> pd.DataFrame:
    """Layer by layer (index = parameter name): the kept fraction of every mask set (one column
    per set) and, for every other set, the IoU of its kept positions with ``reference``'s
    (columns ``"IoU with <reference>: <set>"``). Layers missing from a set are NaN.

    Example:
        >>> a = {"w": torch.tensor([True, True, False, False])}
        >>> b = {"w": torch.tensor([True, False, True, False])}
        >>> mask_agreement({"a": a, "b": b}, "a").round(3).to_dict("records")
        [{'a': 0.5, 'b': 0.5, 'IoU with a: b': 0.333}]
    """
    ref = masks[reference]
    frame = layer_densities(masks)
    for name, sets in masks.items():
        if name == reference:
            continue
        frame[f"IoU with {reference}: {name}"] = pd.Series(
            {
                n: float((m & ref[n]).sum()) / max(float((m | ref[n]).sum()), 1.0)
                for n, m in sets.items()
                if n in ref
            }
        )
    return frame


def plot_mask_comparison(
    masks: Mapping[str, Mapping[str, Tensor]], layers: pd.DataFrame, title: str
) -> Figure:
    """Two methods' mask sets layer by layer (``masks``: method name → masks, the reference
    first): the kept fraction of each in its method's style (left axis, logarithmic) and the IoU
    of their kept positions (dotted grey, right axis), from :func:`mask_agreement`, in the layer
    order of ``layers`` (:func:`layer_table`)."""
    reference, other = masks
    frame = mask_agreement(masks, reference)
    fig, ax = plt.subplots(figsize=(13, 3.2))
    styles = {reference: {**method_style(reference), "lw": 2.5}, other: method_style(other)}
    plot_per_layer(frame[[reference, other]], layers, "kept fraction", ax=ax, styles=styles)
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, bbox_to_anchor=(1.07, 1), loc="upper left")  # clear of the right axis
    twin = ax.twinx()
    iou = frame[f"IoU with {reference}: {other}"].reindex(layers["name"]).to_numpy()
    label = f"IoU with {method_label(reference)}"
    twin.plot(range(len(iou)), iou, ls=":", color="0.35", marker="", label=label)
    twin.set_ylim(0, 1.05)
    twin.set_ylabel(label, color="0.35")
    twin.grid(False)
    ax.set_title(title, pad=18)
    fig.tight_layout()
    return fig


def _scores_by_group(
    scores: Mapping[str, Mapping[str, Tensor]], layers: pd.DataFrame
) -> dict[str, dict[str, Tensor]]:
    """task → layer group → the task's scores of that group, flattened; a task's own head is the
    group ``own head``."""
    group_of = dict(zip(layers["name"], layers["group"], strict=True))
    grouped: dict[str, dict[str, Tensor]] = {}
    for task, per_weight in scores.items():
        parts: dict[str, list[Tensor]] = {}
        for name, s in per_weight.items():
            group = "own head" if group_of[name].startswith("head") else group_of[name]
            parts.setdefault(group, []).append(s.reshape(-1))
        grouped[task] = {group: torch.cat(flat) for group, flat in parts.items()}
    return grouped


def score_summary(scores: Mapping[str, Mapping[str, Tensor]], layers: pd.DataFrame) -> pd.DataFrame:
    """Where each task's importance lies: one row per (task, layer group of its sub-model, a task's
    head being ``own head``) with the group's ``weights``, its ``share of weights`` and
    ``share of score`` in the task's sub-model, and the fraction of ``zero scores``.

    Args:
        scores: task → parameter name → scores (:func:`~cutlib.pruning.importance.task_importance`).
        layers: :func:`layer_table` of the model, for the groups.

    Example:
        >>> layers = pd.DataFrame({"name": ["b", "h"], "group": ["stem", "head t"]})
        >>> scores = {"t": {"b": torch.tensor([0.0, 1.0, 2.0]), "h": torch.tensor([1.0])}}
        >>> score_summary(scores, layers).to_dict("records")[1]
        {'task': 't', 'group': 'own head', 'weights': 1, 'share of weights': 0.25, \
'share of score': 0.25, 'zero scores': 0.0}
    """
    rows = []
    for task, groups in _scores_by_group(scores, layers).items():
        total = sum(float(s.sum()) for s in scores[task].values())
        count = sum(s.numel() for s in scores[task].values())
        rows += [
            {
                "task": task,
                "group": group,
                "weights": flat.numel(),
                "share of weights": flat.numel() / count,
                "share of score": float(flat.sum()) / total,
                "zero scores": float((flat == 0).float().mean()),
            }
            for group, flat in groups.items()
        ]
    return pd.DataFrame(rows)


def score_samples(
    scores: Mapping[str, Mapping[str, Tensor]],
    layers: pd.DataFrame,
    size: int = 3000,
    seed: int = 0,
) -> pd.DataFrame:
    """For a box plot of :func:`score_summary`'s groups: per (task, group), ``log10 score`` of at
    most ``size`` of its scores drawn at random (seeded), the positive ones only.

    Example:
        >>> layers = pd.DataFrame({"name": ["b"], "group": ["stem"]})
        >>> samples = score_samples({"t": {"b": torch.tensor([0.0, 10, 100])}}, layers, size=3)
        >>> sorted(samples["log10 score"])
        [1.0, 2.0]
    """
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for task, groups in _scores_by_group(scores, layers).items():
        for group, flat in groups.items():
            pick = flat[torch.randperm(flat.numel(), generator=generator)[:size]]
            pick = pick[pick > 0]
            samples.append(
                pd.DataFrame({"task": task, "group": group, "log10 score": pick.log10()})
            )
    return pd.concat(samples)


def sparsity_table(model: nn.Module) -> pd.DataFrame:
    """The exact zeros among the prunable weights of a :class:`~cutlib.models.SceneNet`: one row
    per scope (``backbone``, then ``head <task>`` for each head it has) and a last row for the
    whole ``deployed model``, with ``weights``, ``zeros`` and their fraction ``sparsity``.

    Example:
        >>> from cutlib.models import SceneNet
        >>> from cutlib.tasks import TaskSpec
        >>> net = SceneNet([TaskSpec("depth", "depth", 1)], "resnet18", 0.125, 8, (1,))
        >>> _ = net.heads["depth"].branches[0][6].weight.data.zero_()  # the 8 weights of .out
        >>> sparsity_table(net)[["scope", "zeros"]].values.tolist()
        [['backbone', 0], ['head depth', 8], ['deployed model', 8]]
    """
    from cutlib.pruning.masks import BACKBONE, prunable_weights  # local, as in layer_table

    weights = prunable_weights(model)
    rows = []
    for scope in [BACKBONE, *model.task_names]:
        tensors = [w.weight for w in weights if w.owner == scope]
        rows.append(
            {
                "scope": scope if scope == BACKBONE else f"head {scope}",
                "weights": sum(t.numel() for t in tensors),
                "zeros": sum(int((t == 0).sum()) for t in tensors),
            }
        )
    table = pd.DataFrame(rows)
    table.loc[len(table)] = ["deployed model", table["weights"].sum(), table["zeros"].sum()]
    table["sparsity"] = table["zeros"] / table["weights"]
    return table


def runs_table(records: Sequence[Mapping[str, Any]], tasks: Sequence[TaskSpec]) -> pd.DataFrame:
    """One row per run (``metrics.json`` contents): method, protocol, where training started, the
    optimiser steps since random initialisation, the achieved sparsity, Δ_MTL and each task's
    first metric (with its direction). Wall times stay out, so the table is reproducible to the
    digit; they are in each run's ``timings``."""
    rows = []
    for record in records:
        training = record["details"].get("training", {})
        row = {
            "method": record["method"],
            "protocol": training.get("protocol", record.get("protocol")),
            "start": training.get("start"),
            "steps since init": training.get("iterations_since_initialisation"),
            "sparsity": record["sparsity"]["achieved"],
            "Δ_MTL % ↑": record["delta_mtl"],
        }
        for task in tasks:
            metric, higher = next(iter(task.metric_directions.items()))
            row[f"{task.name} {metric} {'↑' if higher else '↓'}"] = record["metrics"][task.name][
                metric
            ]
        rows.append(row)
    return pd.DataFrame(rows)
