"""Efficiency measurement (docs/method/efficiency.md): FLOPs, parameters, file sizes, memory,
latency rows.
No timing assertions: speed-ups are never asserted (§8.4)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from cutlib.efficiency import (
    DENSE_ALL_HEADS,
    RUNTIMES,
    edge_checks,
    edge_summary_columns,
    edge_table,
    efficiency_table,
    export_summary,
    file_sizes,
    latency_column,
    latency_summary,
    measure_latency,
    merge_latency,
    onnx_exports,
    parameter_summary,
    peak_inference_memory,
    speedup_column,
    variant_label,
)
from cutlib.export import dense_nbytes
from cutlib.models import SceneNet
from cutlib.pruning.flops import flop_counts, sparse_flops, total_flops
from cutlib.pruning.masks import apply_masks, prunable_weights

SHAPE = (1, 3, 32, 32)


def _random_masks(model: SceneNet, density: float, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        w.name: torch.rand(w.weight.shape, generator=generator) < density
        for w in prunable_weights(model)
    }


@pytest.mark.parametrize("bias", [False, True])
def test_conv_flops_match_the_hand_formula(bias: bool) -> None:
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=bias)
    n, h_out, w_out = 2, 8, 8  # 16×16 input, stride 2
    expected = 2 * n * 6 * h_out * w_out * 4 * 3 * 3
    assert flop_counts(conv, (n, 4, 16, 16)) == {"": expected}  # the root is the only leaf
    assert total_flops(conv, (n, 4, 16, 16)) == expected


def test_scenenet_flops_are_its_convs_by_hand_and_a_head_costs_its_own(
    tiny_net: SceneNet, hand_flops: Callable
) -> None:
    """Every conv's count is 2·N·C_out·H_out·W_out·(C_in/g)·k_h·k_w, nothing else counts (BN,
    ReLU, adds, pooling, upsampling), and dropping a head removes exactly its convs' FLOPs."""
    expected = hand_flops(tiny_net, SHAPE)
    assert flop_counts(tiny_net, SHAPE) == expected
    assert total_flops(tiny_net, SHAPE) == sum(expected.values())
    head = sum(v for k, v in expected.items() if k.startswith("heads.depth."))
    assert head > 0
    tiny_net.keep_tasks(["seg", "sn"])
    assert total_flops(tiny_net, SHAPE) == sum(expected.values()) - head


def test_sparse_flops_halve_with_half_the_weights(tiny_net: SceneNet, hand_flops: Callable) -> None:
    name = "backbone.stages.0.0.conv1"
    conv = dict(tiny_net.named_modules())[name]
    by_hand = hand_flops(tiny_net, SHAPE)
    conv_flops, dense = by_hand[name], sum(by_hand.values())
    assert sparse_flops(tiny_net, SHAPE) == dense  # random init has no zeros
    mask = torch.zeros(conv.weight.numel(), dtype=torch.bool)
    mask[torch.randperm(mask.numel())[: mask.numel() // 2]] = True
    apply_masks(tiny_net, {f"{name}.weight": mask.view_as(conv.weight)})
    assert total_flops(tiny_net, SHAPE) == dense  # shape-based: masked zeros do not count
    assert sparse_flops(tiny_net, SHAPE) == dense - conv_flops // 2


def test_parameter_summary_counts_zeros_and_masks_once(tiny_net: SceneNet) -> None:
    base = parameter_summary(tiny_net)
    assert base["total"] == sum(p.numel() for p in tiny_net.parameters())
    assert base["prunable_total"] == sum(w.weight.numel() for w in prunable_weights(tiny_net))
    with torch.no_grad():
        tiny_net.backbone.stem[0].weight.view(-1)[:7] = 0
    zeroed = parameter_summary(tiny_net)
    assert zeroed["total"] == base["total"]
    assert zeroed["nonzero"] == base["nonzero"] - 7
    assert zeroed["prunable_nonzero"] == base["prunable_nonzero"] - 7

    masks = _random_masks(tiny_net, 0.3)
    apply_masks(tiny_net, masks)
    masked = parameter_summary(tiny_net)
    assert masked["total"] == base["total"]  # weight_orig is not counted next to weight
    assert masked["prunable_total"] == base["prunable_total"]
    kept = sum(
        int((m & (w.module.weight_orig != 0)).sum())
        for m, w in zip(masks.values(), prunable_weights(tiny_net), strict=True)
    )
    assert masked["prunable_nonzero"] == kept
    assert (
        masked["nonzero"] - masked["prunable_nonzero"] == base["nonzero"] - base["prunable_nonzero"]
    )


def test_file_sizes_at_90_percent_sparsity(tiny_net: SceneNet, tmp_path: Path) -> None:
    apply_masks(tiny_net, _random_masks(tiny_net, 0.1))
    sizes = file_sizes(tiny_net, tmp_path)  # no input size: no ONNX export
    n_params = parameter_summary(tiny_net)["total"]
    n_buffers = sum(b.numel() for n, b in tiny_net.named_buffers() if not n.endswith("_mask"))
    n_tensors = len(tiny_net.state_dict())
    raw = sizes["state_dict"]
    assert 4 * n_params <= raw <= 8 * (n_params + n_buffers) + 1500 * n_tensors
    assert sizes["state_dict_reparam"] is not None and sizes["state_dict_reparam"] > raw
    assert sizes["state_dict_gzip"] < raw
    assert sizes["sparse_fp16"] < sizes["sparse_fp32"] < raw
    assert (tmp_path / "state_dict.pt").is_file()
    assert sizes["onnx"] is None


def test_file_sizes_onnx_plumbing(
    tiny_net: SceneNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real exporter takes seconds and is tested with cutlib.export; here only the plumbing.
    import cutlib.export

    def fake_export(model: SceneNet, path: Path, input_size: tuple[int, int]) -> Path:
        assert input_size == (32, 32)
        assert not any(hasattr(m, "weight_mask") for m in model.modules())  # masks folded
        path.write_bytes(b"x" * 123)
        return path

    apply_masks(tiny_net, _random_masks(tiny_net, 0.5))
    monkeypatch.setattr(cutlib.export, "export_onnx", fake_export)
    assert file_sizes(tiny_net, tmp_path, input_size=(32, 32))["onnx"] == 123

    def missing(model: SceneNet, path: Path, input_size: tuple[int, int]) -> Path:
        raise ImportError("ONNX export needs onnxscript: pip install onnx onnxscript onnxruntime")

    monkeypatch.setattr(cutlib.export, "export_onnx", missing)
    assert file_sizes(tiny_net, tmp_path, input_size=(32, 32))["onnx"] is None


def test_peak_memory_of_hand_computable_graphs() -> None:
    x = torch.randn(2, 3, 16, 16)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    out = 2 * 8 * 16 * 16 * 4
    assert peak_inference_memory(conv, x) == out
    chain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 4, 1))
    assert peak_inference_memory(chain, x) == out + out // 2  # both outputs alive at conv 2
    # The allocator also sees kernel workspaces and reorders, never less than the tensors.
    assert peak_inference_memory(conv, x, method="allocator") >= out
    with pytest.raises(ValueError, match="unknown method"):
        peak_inference_memory(conv, x, method="rss")  # type: ignore[arg-type]


class _RecordsMode(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.seen: set[tuple[bool, bool]] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.add((torch.is_inference_mode_enabled(), self.training))
        return self.conv(x)


def test_measure_latency_rows_and_summary() -> None:
    variants = {"a": _RecordsMode(), "b": nn.Sequential(nn.Conv2d(3, 2, 1))}
    df = measure_latency(
        variants,
        (8, 8),
        batch_sizes=(1, 2),
        threads=(1,),
        min_run_time=0.01,
        repeats=2,
        progress=False,
    )
    assert len(df) == 2 * 1 * 2 * 2
    assert set(df.columns) >= {
        "variant",
        "runtime",
        "threads",
        "batch",
        "repeat",
        "median_ms",
        "iqr_ms",
        "mean_ms",
        "n_runs",
        "times_ms",
    }
    assert (df["median_ms"] > 0).all() and (df["n_runs"] >= df["times_ms"].map(len)).all()
    assert list(df["variant"][:2]) == ["a", "b"]  # interleaved
    assert variants["a"].seen == {(True, False)}  # timed under inference mode, in eval mode
    assert variants["a"].training  # the caller's mode is restored
    summary = latency_summary(df)
    assert len(summary) == 4 and (summary["n_repeats"] == 2).all()


def test_latency_summary_definitions() -> None:
    df = pd.DataFrame(
        {
            "variant": ["a", "a", "a"],
            "runtime": ["torch"] * 3,
            "threads": [1, 1, 1],
            "batch": [1, 1, 1],
            "repeat": [0, 1, 2],
            "median_ms": [2.0, 3.0, 10.0],
            "n_blocks": [2, 2, 1],
            "n_runs": [4, 4, 2],
            "times_ms": [[1.0, 3.0], [2.0, 4.0], [10.0]],
        }
    )
    row = latency_summary(df).iloc[0]
    assert row["median_ms"] == 3.0  # median of the repeats' medians
    assert row["iqr_ms"] == pytest.approx(4.0 - 2.0)  # pooled samples 1, 2, 3, 4, 10
    assert row["repeat_range_ms"] == 8.0
    assert (row["n_repeats"], row["n_blocks"], row["n_runs"]) == (3, 5, 10)


def test_efficiency_table_columns(tiny_net: SceneNet, tmp_path: Path, hand_flops: Callable) -> None:
    table = efficiency_table({"dense": tiny_net}, (32, 32), tmp_path, onnx=False, progress=False)
    gflop = sum(hand_flops(tiny_net, SHAPE).values()) / 1e9
    assert table.loc[0, "GFLOP (2/MAC)"] == pytest.approx(gflop, rel=1e-12)
    assert pd.isna(table.loc[0, "ONNX MB"])
    assert pd.isna(table.loc[0, "state_dict with masks MB"])
    summary = latency_summary(
        measure_latency({"dense": tiny_net}, (32, 32), (1,), (1,), 0.01, 1, progress=False)
    )
    merged = merge_latency(table, summary)
    assert merged.loc[0, "PyTorch latency ms (batch 1, 1 thr)"] > 0
    assert "PyTorch IQR ms (batch 1, 1 thr)" in merged


def test_latency_runtimes_are_interleaved(tiny_net: SceneNet) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    variants = {"a": tiny_net, "b": copy.deepcopy(tiny_net).keep_tasks(tiny_net.task_names[:1])}
    df = measure_latency(
        variants, (32, 32), (1,), (1, 2), 0.01, 1, progress=False, runtimes=RUNTIMES
    )
    assert len(df) == 2 * 3 * 2
    first = df[df["threads"] == 1]
    assert list(zip(first["runtime"], first["variant"], strict=True)) == [
        (runtime, variant) for runtime in RUNTIMES for variant in ("a", "b")
    ]
    assert (df["median_ms"] > 0).all()
    assert next(tiny_net.parameters()).is_contiguous()  # the channels-last run used a copy
    merged = merge_latency(pd.DataFrame({"variant": ["a", "b"]}), latency_summary(df))
    assert list(merged.columns[1:5]) == [
        "PyTorch latency ms (batch 1, 1 thr)",
        "PyTorch IQR ms (batch 1, 1 thr)",
        "PyTorch latency ms (batch 1, 2 thr)",
        "PyTorch IQR ms (batch 1, 2 thr)",
    ]
    assert merged["PyTorch NHWC latency ms (batch 1, 1 thr)"].notna().all()
    assert merged["ORT latency ms (batch 1, 2 thr)"].notna().all()


def test_latency_times_the_efficiency_tables_onnx_exports(
    tiny_net: SceneNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    variants = {"dense, all": tiny_net, "one head": copy.deepcopy(tiny_net).keep_tasks(["seg"])}
    table = efficiency_table(variants, (32, 32), tmp_path, progress=False)
    exports = onnx_exports(tmp_path, variants)
    assert set(exports) == set(variants)
    assert table["ONNX MB"].tolist() == [exports[n].stat().st_size / 1e6 for n in variants]
    assert onnx_exports(tmp_path / "elsewhere", variants) == {}

    def no_second_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr("cutlib.export.export_onnx", no_second_export)
    df = measure_latency(
        variants,
        (32, 32),
        (1,),
        (1,),
        0.01,
        1,
        progress=False,
        runtimes=("onnxruntime",),
        onnx_files=exports,
    )
    assert (df["median_ms"] > 0).all()
    with pytest.raises(AssertionError, match="exported again"):  # without them it exports
        measure_latency(
            variants, (32, 32), (1,), (1,), 0.01, 1, progress=False, runtimes=("onnxruntime",)
        )


def test_measure_latency_rejects_bad_runtimes(tiny_net: SceneNet) -> None:
    with pytest.raises(ValueError, match="unknown runtime 'tflite'"):
        measure_latency({"a": tiny_net}, (8, 8), runtimes=("tflite",), progress=False)
    with pytest.raises(TypeError, match="needs SceneNet"):
        measure_latency({"a": nn.Conv2d(3, 2, 1)}, (8, 8), runtimes=("onnxruntime",))


def test_variant_labels_and_column_names() -> None:
    assert variant_label("CUT", "cut", 0.9) == "CUT 90% (unstructured)"
    assert variant_label("structured CUT", "cut_structured", 0.5) == "structured CUT −50% FLOPs"
    assert variant_label("CM", "channel_magnitude", 0.25) == "CM −25% FLOPs"  # FLOPs removed
    assert variant_label("SNIP", "snip", 0.5) == "SNIP 50% (unstructured)"  # zero weights
    assert speedup_column("torch") == "PyTorch speed-up (batch 1, 1 thr)"
    columns = edge_summary_columns(["torch", "onnxruntime"])
    assert columns[0] == "variant" and columns[-1] == "PyTorch latency ms (batch 1, 2 thr)"
    assert columns[-5:-1] == [
        "PyTorch latency ms (batch 1, 1 thr)",
        "PyTorch speed-up (batch 1, 1 thr)",
        "ORT latency ms (batch 1, 1 thr)",
        "ORT speed-up (batch 1, 1 thr)",
    ]


def test_edge_table_joins_latency_quality_and_speed_ups() -> None:
    costs = pd.DataFrame({"variant": [DENSE_ALL_HEADS, "small"], "GFLOP (2/MAC)": [2.0, 0.5]})
    latency = pd.DataFrame(
        {
            "variant": [DENSE_ALL_HEADS, "small"],
            "runtime": ["torch", "torch"],
            "threads": [1, 1],
            "batch": [1, 1],
            "median_ms": [10.0, 4.0],
            "iqr_ms": [1.0, 0.5],
        }
    )
    variants = {DENSE_ALL_HEADS: nn.Linear(2, 2), "small": nn.Linear(1, 1)}  # 6 and 2 parameters
    table = edge_table(costs, latency, variants, {"small": -1.5}, ["torch"])
    assert list(table.columns) == [
        "variant",
        "GFLOP (2/MAC)",
        "PyTorch latency ms (batch 1, 1 thr)",
        "PyTorch IQR ms (batch 1, 1 thr)",
        "Δ_MTL % ↑",
        "params vs dense all heads",
        "PyTorch speed-up (batch 1, 1 thr)",
    ]
    assert list(table["Δ_MTL % ↑"]) == [0.0, -1.5]  # a dense variant has no Δ_MTL of its own
    assert list(table["params vs dense all heads"]) == [1.0, 2 / 6]
    assert list(table["PyTorch speed-up (batch 1, 1 thr)"]) == [1.0, 2.5]


def test_export_summary_against_both_dense_state_dicts(tiny_net: SceneNet, tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(b"x" * 3000)
    compact = copy.deepcopy(tiny_net).keep_tasks(["depth"])
    row = export_summary("sparse, fp16 values", path, 0.25, compact, tiny_net)
    assert row == {
        "export": "sparse, fp16 values",
        "MB": 0.003,
        "÷ dense state_dict (same heads)": 3000 / dense_nbytes(compact),
        "÷ dense state_dict (all heads)": 3000 / dense_nbytes(tiny_net),
        "max |output error|": 0.25,
    }
    assert row["÷ dense state_dict (same heads)"] > row["÷ dense state_dict (all heads)"]


def test_edge_checks_verdicts_from_hand_made_tables() -> None:
    torch_b1, ort_b1 = latency_column("torch", 1, 1), latency_column("onnxruntime", 1, 1)
    table = pd.DataFrame(
        {
            "variant": [
                DENSE_ALL_HEADS,
                "dense, seg+depth heads",
                "CUT 90% (unstructured)",
                "structured CUT −50% FLOPs",
                "structured CUT −75% FLOPs",
            ],
            "Δ_MTL % ↑": [0.0, 0.0, -1.0, -0.5, -2.0],
            torch_b1: [10.0, 8.0, 10.0, 6.0, 4.0],
            ort_b1: [9.0, 7.0, 9.0, 6.0, 5.0],
        }
    )
    for runtime, column in [("torch", torch_b1), ("onnxruntime", ort_b1)]:
        table[speedup_column(runtime)] = table[column].iloc[0] / table[column]
    exports = pd.DataFrame(
        {
            "export": ["sparse, fp32 values", "sparse, fp16 values"],
            "÷ dense state_dict (same heads)": [0.2, 0.1],
        }
    )
    runtimes = ["torch", "onnxruntime"]
    sparsest, same_heads = "CUT 90% (unstructured)", "dense, seg+depth heads"
    checks = edge_checks(table, exports, runtimes, sparsest, same_heads, "structured CUT")
    assert checks.to_dict("records") == [
        {
            "check": "CUT 90% (unstructured): sparse fp16 file ≤ 1/8 of the dense state_dict "
            "(same heads)",
            "measured": "0.100",
            "holds": "yes",
        },
        {
            "check": "structured CUT −75% FLOPs: ≥ 2× faster than dense all heads "
            "(PyTorch, batch 1, 1 thread)",
            "measured": "2.50× at Δ_MTL -2.00 %",
            "holds": "yes",
        },
        {
            "check": "structured CUT −75% FLOPs: ≥ 2× faster than dense all heads "
            "(ORT, batch 1, 1 thread)",
            "measured": "1.80× at Δ_MTL -2.00 %",
            "holds": "no",
        },
        {
            "check": "unstructured CUT runs no faster than the dense model with the same heads "
            "(PyTorch)",
            "measured": "0.80×",
            "holds": "(a measurement)",
        },
    ]
