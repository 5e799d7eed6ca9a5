"""Efficiency measurement (PAPER_NOTES §8): FLOPs, parameters, file sizes, memory, latency rows.
No timing assertions: speed-ups are never asserted (§8.4)."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from cutlib.efficiency import (
    RUNTIMES,
    efficiency_table,
    file_sizes,
    latency_summary,
    measure_latency,
    merge_latency,
    onnx_exports,
    parameter_summary,
    peak_inference_memory,
)
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


def test_scenenet_flops_sum_and_dropping_a_head(tiny_net: SceneNet) -> None:
    counts = flop_counts(tiny_net, SHAPE)
    assert "" not in counts  # every FLOP is inside a conv
    assert sum(counts.values()) == total_flops(tiny_net, SHAPE)
    head = sum(v for k, v in counts.items() if k.startswith("heads.depth."))
    assert head > 0
    before = total_flops(tiny_net, SHAPE)
    tiny_net.keep_tasks(["seg", "sn"])
    assert total_flops(tiny_net, SHAPE) == before - head


def test_sparse_flops_halve_with_half_the_weights(tiny_net: SceneNet) -> None:
    name = "backbone.stages.0.0.conv1"
    conv = dict(tiny_net.named_modules())[name]
    conv_flops = flop_counts(tiny_net, SHAPE)[name]
    dense = total_flops(tiny_net, SHAPE)
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


def test_efficiency_table_columns(tiny_net: SceneNet, tmp_path: Path) -> None:
    table = efficiency_table({"dense": tiny_net}, (32, 32), tmp_path, onnx=False, progress=False)
    assert table.loc[0, "GFLOP (2/MAC)"] == pytest.approx(total_flops(tiny_net, SHAPE) / 1e9)
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
