"""Tables and figures in one house style (DESIGN §2): pandas → CSV + Markdown, matplotlib/seaborn
→ PNG + PDF, all under ``results/`` (see :func:`cutlib.io.results_dir`).

Also the pictures every notebook needs: a colour rendering of each kind of dense label, a row of
image + labels per sample, training curves, and predictions next to ground truth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from cutlib.data.transforms import denormalize
from cutlib.io import results_dir
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
    """Save ``fig`` as ``results/figures/<name>.png`` and ``.pdf``; return the paths."""
    folder = results_dir() / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.{ext}" for ext in ("png", "pdf")]
    for path in paths:
        fig.savefig(path)
    return paths


def save_table(table: pd.DataFrame, name: str, floatfmt: str = ".4g") -> list[Path]:
    """Save ``table`` as ``results/tables/<name>.csv`` and ``.md``; return the paths."""
    folder = results_dir() / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    csv, md = folder / f"{name}.csv", folder / f"{name}.md"
    table.to_csv(csv, index=False, float_format=f"%{floatfmt}")
    md.write_text(table.to_markdown(index=False, floatfmt=floatfmt) + "\n")
    return [csv, md]


def label_to_rgb(task: TaskSpec, label: Tensor) -> np.ndarray:
    """An (H, W, 3) RGB picture in [0, 1] of one label map; invalid pixels are black.

    seg: one colour per class; sn: (n + 1) / 2 as RGB; depth: viridis, near = bright;
    keypoint / edge: grey levels.
    """
    label = label.detach().float().cpu()
    if task.kind == "seg":
        palette = torch.tensor(sns.color_palette("tab20", max(task.channels, 2)))
        ids = label.long()
        valid = (ids >= 0) & (ids < task.channels)
        rgb = palette[ids.clamp(0, task.channels - 1)]
        return (rgb * valid[..., None]).numpy()
    if task.kind == "sn":
        valid = label.norm(dim=0) > 0
        return (((label + 1) / 2).clamp(0, 1) * valid).permute(1, 2, 0).numpy()
    values = label[0]
    if task.kind == "depth":
        valid = values > 0
        lo, hi = (values[valid].min(), values[valid].max()) if valid.any() else (0.0, 1.0)
        scaled = 1 - (values - lo) / max(float(hi - lo), 1e-6)
        rgb = torch.tensor(plt.get_cmap("viridis")(scaled.clamp(0, 1).numpy())[..., :3])
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
    samples: Sequence[Mapping[str, Tensor]], tasks: Sequence[TaskSpec], title: str | None = None
) -> Figure:
    """One row per sample: the image, then every task's label."""
    cols = 1 + len(tasks)
    fig, axes = plt.subplots(
        len(samples), cols, figsize=(2.2 * cols, 2.2 * len(samples)), squeeze=False
    )
    for row, sample in zip(axes, samples, strict=True):
        row[0].imshow(denormalize(sample["image"]).permute(1, 2, 0).cpu().numpy())
        for ax, task in zip(row[1:], tasks, strict=True):
            ax.imshow(label_to_rgb(task, sample[task.name]))
    for ax, name in zip(axes[0], ["image"] + [_KIND_TITLES[t.kind] for t in tasks], strict=True):
        ax.set_title(name, fontsize=9)
    for ax in axes.flat:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@torch.no_grad()
def plot_predictions(
    model: nn.Module, samples: Sequence[Mapping[str, Tensor]], tasks: Sequence[TaskSpec]
) -> Figure:
    """One row per sample: the image, then ground truth and prediction for every task."""
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
        row[0].imshow(denormalize(sample["image"]).permute(1, 2, 0).cpu().numpy())
        for j, task in enumerate(tasks):
            truth = sample[task.name]
            pred = prediction_to_label(task, outputs[task.name][i], tuple(truth.shape[-2:]))
            row[1 + 2 * j].imshow(label_to_rgb(task, truth))
            row[2 + 2 * j].imshow(label_to_rgb(task, pred))
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
        ax.set_yscale("log")
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
