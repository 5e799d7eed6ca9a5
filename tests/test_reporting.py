"""Reporting helpers that compute numbers: per-layer mask agreement and densities, the runs
table, the sub-model and layer-group tables, score summaries, zeros per scope, file names."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

import cutlib as cl
from cutlib.models import SceneNet
from cutlib.pruning.masks import prunable_weights
from cutlib.reporting import (
    file_slug,
    layer_densities,
    layer_table,
    mask_agreement,
    mask_grid_rows,
    plot_mask_comparison,
    plot_mask_grids,
    runs_table,
    score_samples,
    score_summary,
    sparsity_table,
    sub_model_table,
    weights_by_group,
)
from cutlib.tasks import TaskSpec

T, F = True, False


def test_mask_agreement_densities_and_iou_by_hand() -> None:
    ref = {"a": torch.tensor([True, True, False, False]), "b": torch.tensor([True, False])}
    other = {"a": torch.tensor([True, False, True, False]), "b": torch.tensor([False, False])}
    frame = mask_agreement({"ref": ref, "other": other}, "ref")
    assert frame.loc["a", "ref"] == 0.5 and frame.loc["b", "other"] == 0.0
    assert frame.loc["a", "IoU with ref: other"] == pytest.approx(1 / 3)  # {0} / {0, 1, 2}
    assert frame.loc["b", "IoU with ref: other"] == 0.0
    assert "IoU with ref: ref" not in frame


def test_mask_agreement_leaves_missing_layers_empty() -> None:
    ref = {"a": torch.tensor([True]), "head": torch.tensor([True, False])}
    other = {"a": torch.tensor([True])}
    frame = mask_agreement({"ref": ref, "other": other}, "ref")
    assert math.isnan(frame.loc["head", "other"])
    assert frame.loc["a", "IoU with ref: other"] == 1.0


def test_runs_table_has_one_row_per_run_with_the_first_metric_of_each_task() -> None:
    specs = [TaskSpec("seg", "seg", 3, ignore_value=255), TaskSpec("depth", "depth", 1)]
    record = {
        "method": "snip",
        "protocol": "fair",
        "sparsity": {"achieved": 0.9},
        "delta_mtl": -3.5,
        "metrics": {"seg": {"mIoU": 0.4, "pixel_acc": 0.7}, "depth": {"abs_err": 0.5}},
        "details": {
            "training": {
                "protocol": "fair",
                "start": "scratch",
                "iterations": 60,
                "iterations_since_initialisation": 60,
            }
        },
        "timings": {"total": 12.0},
    }
    table = runs_table([record, record | {"method": "random"}], specs)
    assert list(table.method) == ["snip", "random"]
    assert table.loc[0, "seg mIoU ↑"] == 0.4 and table.loc[0, "depth abs_err ↓"] == 0.5
    assert table.loc[0, "steps since init"] == 60 and table.loc[0, "start"] == "scratch"


def test_file_slug_writes_sparsities_as_percent() -> None:
    assert file_slug("synth-nyuv2", "seg+depth", 0.9) == "synth-nyuv2_seg+depth_s90"
    assert file_slug("d", 0.05, "paper") == "d_s5_paper"
    assert file_slug(3) == "3"  # an int is not a sparsity


def test_sub_model_table_is_backbone_plus_own_head(tiny_net: SceneNet) -> None:
    table = sub_model_table(tiny_net).set_index("task")
    assert list(table.index) == ["seg", "sn", "depth"]
    # a head of 8 channels on 64 features: 4 branches of 3×3 64→8, 1×1 8→8, 1×1 8→C
    heads = {"seg": 4 * (4608 + 64 + 8 * 5), "sn": 4 * (4608 + 64 + 8 * 3), "depth": 4 * 4680}
    assert table["head |H_t|"].to_dict() == heads
    backbone = table["backbone |B|"].iloc[0]
    assert (table["backbone |B|"] == backbone).all()
    assert (table["sub-model |Θ_t|"] == backbone + table["head |H_t|"]).all()
    assert table.loc["depth", "head share of Θ_t"] == pytest.approx(4 * 4680 / (backbone + 18720))


def test_weights_by_group_counts_and_shares_per_model() -> None:
    small = pd.DataFrame(
        {"group": ["stem", "stage 1", "stage 1", "head t"], "weights": [1, 2, 3, 4]}
    )
    large = pd.DataFrame({"group": ["stem", "stage 1", "head t"], "weights": [10, 10, 80]})
    table = weights_by_group({"small": small, "large": large})
    assert list(table.columns) == ["group", "small", "large", "small share", "large share"]
    assert list(table.group) == ["stem", "stage 1", "head t"]  # depth order kept
    assert list(table.small) == [1, 5, 4] and list(table["small share"]) == [0.1, 0.5, 0.4]
    assert list(table["large share"]) == [0.1, 0.1, 0.8]


def test_layer_densities_one_column_per_mask_set() -> None:
    frame = layer_densities(
        {
            "a": {"w": torch.tensor([T, F, F, F]), "v": torch.tensor([T, T])},
            "b": {"w": torch.tensor([T, T, F, F])},
        }
    )
    assert frame.loc["w", "a"] == 0.25 and frame.loc["v", "a"] == 1.0 and frame.loc["w", "b"] == 0.5
    assert math.isnan(frame.loc["v", "b"])


def test_mask_grid_rows_backbone_layers_then_head_convs_by_kind() -> None:
    layers = pd.DataFrame(
        {
            "name": ["b1", "b2", "s1", "s2", "s3", "s4", "d1"],
            "owner": ["backbone", "backbone", "seg", "seg", "seg", "seg", "depth"],
            "label": ["stem", "s1.b0.conv1", "x", "x", "x", "x", "x"],
            "kind": ["conv", "conv", "3x3", "out", "3x3", "out", "3x3"],
        }
    )
    assert mask_grid_rows(layers, ["seg"]) == [
        ("stem", ["b1"]),
        ("s1.b0.conv1", ["b2"]),
        ("seg head 3x3", ["s1", "s3"]),
        ("seg head out", ["s2", "s4"]),
    ]
    assert mask_grid_rows(layers, [])[-1] == ("s1.b0.conv1", ["b2"])


def test_plot_mask_comparison_draws_both_sets_and_their_iou(tiny_net: SceneNet) -> None:
    layers = layer_table(tiny_net)
    weights = {w.name: w.weight for w in prunable_weights(tiny_net)}
    ref = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    other = {n: torch.arange(w.numel()).reshape(w.shape) % 2 == 0 for n, w in weights.items()}
    fig = plot_mask_comparison({"cut": ref, "snip": other}, layers, "title")  # method names
    ax, twin = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["CUT", "SNIP"]  # their labels
    assert ax.get_title() == "title" and twin.get_ylabel() == "IoU with CUT"
    iou = twin.get_lines()[0].get_ydata()
    assert len(iou) == len(layers) and iou[0] == pytest.approx(0.5, abs=0.02)  # half kept


def _scores() -> tuple[dict[str, dict[str, torch.Tensor]], pd.DataFrame]:
    layers = pd.DataFrame(
        {"name": ["stem", "conv", "ha", "hb"], "group": ["stem", "stage 1", "head a", "head b"]}
    )
    scores = {
        "a": {
            "stem": torch.tensor([1.0, 0.0]),
            "conv": torch.tensor([2.0, 3.0, 0.0, 0.0]),
            "ha": torch.tensor([4.0, 10.0]),
        },
        "b": {"stem": torch.tensor([5.0, 5.0]), "conv": torch.zeros(4), "hb": torch.tensor([10.0])},
    }
    return scores, layers


def test_score_summary_shares_per_task_and_group_by_hand() -> None:
    scores, layers = _scores()
    summary = score_summary(scores, layers).set_index(["task", "group"])
    assert list(summary.index) == [
        ("a", "stem"), ("a", "stage 1"), ("a", "own head"),
        ("b", "stem"), ("b", "stage 1"), ("b", "own head"),
    ]  # fmt: skip
    a = summary.loc["a"]
    assert list(a["weights"]) == [2, 4, 2]
    assert list(a["share of weights"]) == [0.25, 0.5, 0.25]
    assert list(a["share of score"]) == [1 / 20, 5 / 20, 14 / 20]
    assert list(a["zero scores"]) == [0.5, 0.5, 0.0]
    b = summary.loc["b"]
    assert list(b["share of score"]) == [0.5, 0.0, 0.5] and b.loc["stage 1", "zero scores"] == 1.0


def test_score_samples_draw_at_most_size_positive_scores_seeded() -> None:
    scores, layers = _scores()
    samples = score_samples(scores, layers, size=1, seed=3)
    assert samples.groupby(["task", "group"], sort=False).size().le(1).all()
    everything = score_samples(scores, layers, size=10)
    a_head = everything[(everything.task == "a") & (everything.group == "own head")]
    assert sorted(a_head["log10 score"]) == pytest.approx([math.log10(4), 1.0])
    assert (everything.group == "stage 1").sum() == 2  # a's 2.0 and 3.0; zeros are dropped
    pd.testing.assert_frame_equal(samples, score_samples(scores, layers, size=1, seed=3))


def test_sparsity_table_counts_exact_zeros_per_scope(tiny_net: SceneNet) -> None:
    net = tiny_net.keep_tasks(["seg", "depth"])
    with torch.no_grad():
        net.backbone.stem[0].weight.zero_()
        net.heads["depth"].branches[0][6].weight.zero_()  # 8 weights of a 1×1 8→1 conv
    table = sparsity_table(net)
    assert list(table.scope) == ["backbone", "head seg", "head depth", "deployed model"]
    stem = net.backbone.stem[0].weight.numel()
    assert list(table.zeros) == [stem, 0, 8, stem + 8]
    assert table.weights.iloc[-1] == table.weights.iloc[:-1].sum()
    assert table.sparsity.iloc[2] == 8 / (4 * 4680)


@pytest.mark.parametrize("density", [0.0, 0.04, 0.15, 0.5, 0.97, 1.0])
def test_mask_grid_rows_show_the_last_panels_kept_fraction(density: float) -> None:
    """The circles of the last panel are filled in the proportion its percentage states (to the
    nearest circle), whatever the draw; the other panels show the same positions."""
    generator = torch.Generator().manual_seed(1)
    fused = torch.rand(5000, generator=generator) < density
    own = fused | (torch.rand(5000, generator=generator) < 0.3)
    fig = plot_mask_grids({"own": {"w": own}, "fused": {"w": fused}}, [("w", ["w"])], columns=28)
    try:
        filled = []
        for ax in fig.axes:
            (dots,) = ax.collections
            filled.append(sum(c[0] < 0.9 for c in dots.get_facecolors()))
        assert filled[1] == round(28 * float(fused.float().mean()))
        assert filled[0] >= filled[1]  # own ⊇ fused, at the same positions
    finally:
        plt.close(fig)


def test_depth_range_spans_valid_depths_of_every_map() -> None:
    maps = [torch.tensor([[[0.0, 2.0], [3.0, 0.0]]]), torch.tensor([[[1.5, 0.0], [4.0, 5.0]]])]
    assert cl.reporting.depth_range(maps) == (1.5, 5.0)
    assert cl.reporting.depth_range([torch.zeros(1, 2, 2)]) == (0.0, 1.0)


def test_depth_picture_on_a_shared_scale_is_black_where_invalid() -> None:
    depth = TaskSpec("depth", "depth", 1)
    label = torch.tensor([[[0.0, 2.0, 4.0]]])
    rgb = cl.reporting.label_to_rgb(depth, label, value_range=(2.0, 4.0))
    assert rgb[0, 0].tolist() == [0.0, 0.0, 0.0]
    viridis = plt.get_cmap("viridis")
    assert np.allclose(rgb[0, 1], viridis(1.0)[:3], atol=1e-6)  # nearest = brightest
    assert np.allclose(rgb[0, 2], viridis(0.0)[:3], atol=1e-6)
    wider = cl.reporting.label_to_rgb(depth, label, value_range=(2.0, 6.0))
    assert not np.allclose(wider[0, 2], rgb[0, 2])


def test_plot_samples_has_a_class_key_a_depth_bar_and_the_normals_code() -> None:
    info = cl.SYNTHETIC_DATASETS["synth-nyuv2"]
    seg = torch.full((8, 8), 255, dtype=torch.long)
    seg[:4] = 0
    seg[4:, :4] = 2
    sample = {
        "image": torch.zeros(3, 8, 8),
        "seg": seg,
        "sn": torch.ones(3, 8, 8) / 3**0.5,
        "depth": torch.linspace(1, 3, 64).reshape(1, 8, 8),
    }
    fig = cl.reporting.plot_samples([sample], info.tasks, depth_unit="m")
    (legend,) = fig.legends
    names = info.tasks[0].class_names
    assert [t.get_text() for t in legend.get_texts()] == [names[0], names[2]]
    labels = [ax.get_xlabel() for ax in fig.axes]
    assert any(label.startswith("depth (m)") for label in labels)
    assert cl.reporting.NORMALS_COLOUR_CODE_SHORT in labels
    plt.close(fig)
