"""Compact export: sparse file (bitmask + values) round trips and size, ONNX parity, bad input."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

import cutlib
from cutlib.checkpoint import save_model
from cutlib.cli import main
from cutlib.export import (
    SPARSE_FORMAT,
    dense_nbytes,
    export_checkpoint,
    export_onnx,
    load_sparse,
    onnx_parity,
    output_error,
    pack_bits,
    save_sparse,
    unpack_bits,
)
from cutlib.models import SceneNet
from cutlib.pruning.masks import apply_masks, is_masked, prunable_weights
from cutlib.tasks import TaskSpec

# fp16 round-to-nearest: relative error ≤ 2⁻¹¹ for normal numbers; below the normal range the
# absolute error is ≤ 2⁻²⁵, and a non-zero that would underflow is stored as ±2⁻²⁴.
FP16_RTOL = 2.0**-11
FP16_ATOL = 2.0**-24


def _prune_randomly(model: SceneNet, sparsity: float = 0.9, seed: int = 0) -> SceneNet:
    """Zero ``sparsity`` of every prunable weight at random (seeded), in place."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w in prunable_weights(model):
            w.weight.mul_(torch.rand(w.weight.shape, generator=generator) >= sparsity)
    return model


def _with_bn_statistics(model: SceneNet) -> SceneNet:
    """One train-mode forward so BatchNorm buffers are not their defaults."""
    with torch.no_grad():
        model.train()(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    return model.eval()


@pytest.fixture
def pruned(tiny_net: SceneNet) -> SceneNet:
    """``tiny_net`` at 90 % sparsity with non-trivial BN statistics, in eval mode."""
    return _with_bn_statistics(_prune_randomly(tiny_net))


@pytest.fixture
def image() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))


def _outputs(model: SceneNet, image: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return model.eval()(image)


def test_pack_bits_by_hand() -> None:
    mask = torch.tensor([1, 0, 1, 1, 0, 0, 0, 1, 1, 1], dtype=torch.bool)
    packed = pack_bits(mask)
    assert packed.dtype == torch.uint8
    assert packed.tolist() == [0b10110001, 0b11000000]
    assert torch.equal(unpack_bits(packed, 10), mask)


def test_pack_bits_matches_numpy_and_round_trips() -> None:
    mask = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0)) > 0.5
    packed = pack_bits(mask)
    assert packed.tolist() == np.packbits(mask.numpy().reshape(-1)).tolist()
    assert torch.equal(unpack_bits(packed, mask.numel()).view(mask.shape), mask)
    with pytest.raises(ValueError, match="expected 14 packed uint8 bytes"):
        unpack_bits(packed[:-1], mask.numel())


def test_sparse_fp32_round_trip_is_exact(pruned: SceneNet, tmp_path: Path, image) -> None:
    path = save_sparse(pruned, tmp_path / "net.sparse.pt", values="fp32")
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == SPARSE_FORMAT and payload["values"] == "fp32"
    assert payload["tasks"] == ["seg", "sn", "depth"]
    assert payload["weights"]["mask"].dtype == torch.uint8
    back = load_sparse(path)
    original = pruned.state_dict()
    assert back.state_dict().keys() == original.keys()
    for name, value in back.state_dict().items():
        assert torch.equal(value, original[name]), name
    for task, out in _outputs(back, image).items():
        torch.testing.assert_close(out, _outputs(pruned, image)[task], rtol=0, atol=1e-6)


def test_sparse_fp16_round_trip_within_rounding(pruned: SceneNet, tmp_path: Path, image) -> None:
    back = load_sparse(save_sparse(pruned, tmp_path / "net.sparse.pt"))
    original = pruned.state_dict()
    prunable = {w.name for w in prunable_weights(pruned)}
    for name, value in back.state_dict().items():
        if name in prunable:
            assert torch.equal(value != 0, original[name] != 0), f"{name}: mask changed"
            torch.testing.assert_close(value, original[name], rtol=FP16_RTOL, atol=FP16_ATOL)
        else:
            assert torch.equal(value, original[name]), f"{name} is stored dense, exactly"
    # Each weight moves by ≤ 2⁻¹¹ relative; to first order the output error adds up over the
    # ~20 layers of the longest path, so ≤ 20·2⁻¹¹ ≈ 1 % of the output scale.
    for task, ref in _outputs(pruned, image).items():
        error = (_outputs(back, image)[task] - ref).abs().max()
        assert error <= 20 * FP16_RTOL * ref.abs().max(), task


def test_fp16_keeps_tiny_weights_non_zero_and_refuses_overflow(
    pruned: SceneNet, tmp_path: Path
) -> None:
    name = prunable_weights(pruned)[0].name
    weight = pruned.get_parameter(name)
    with torch.no_grad():
        weight.view(-1)[:2] = torch.tensor([1e-9, -1e-9])
    back = load_sparse(save_sparse(pruned, tmp_path / "tiny.pt"))
    assert back.get_parameter(name).view(-1)[:2].tolist() == [2.0**-24, -(2.0**-24)]
    with torch.no_grad():
        weight.view(-1)[0] = 1e5
    with pytest.raises(ValueError, match="values='fp32'"):
        save_sparse(pruned, tmp_path / "big.pt")
    assert not (tmp_path / "big.pt").exists()


def test_size_at_90_percent_is_at_most_an_eighth(tmp_path: Path) -> None:
    tasks = [
        TaskSpec("seg", "seg", 13, ignore_value=255),
        TaskSpec("sn", "sn", 3),
        TaskSpec("depth", "depth", 1),
    ]
    torch.manual_seed(0)
    net = SceneNet(
        tasks, backbone="resnet18", width=0.25, head_channels=32, aspp_rates=(1, 2, 3, 4),
        dropout=0.0,
    )  # fmt: skip
    _prune_randomly(net)
    torch.save(net.state_dict(), tmp_path / "dense.pt")
    dense = (tmp_path / "dense.pt").stat().st_size
    fp16 = save_sparse(net, tmp_path / "fp16.pt").stat().st_size
    fp32 = save_sparse(net, tmp_path / "fp32.pt", values="fp32").stat().st_size
    assert fp16 <= dense / 8, f"fp16 sparse file is {fp16 / dense:.3f} of dense"
    # docs/method/efficiency.md#storage-of-sparse-weights: bitmask + fp32 values ≈ d + 1/32 ≈ 0.131
    # of the weights, plus the dense biases / BN entries and torch.save's per-tensor overhead.
    assert fp32 <= 0.16 * dense, f"fp32 sparse file is {fp32 / dense:.3f} of dense"
    assert abs(dense_nbytes(net) - dense) < 0.01 * dense


def test_installed_masks_are_folded_on_a_copy(tiny_net: SceneNet, tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(3)
    masks = {
        w.name: torch.rand(w.weight.shape, generator=generator) > 0.9
        for w in prunable_weights(tiny_net)
    }
    apply_masks(tiny_net, masks)
    before = {k: v.clone() for k, v in tiny_net.state_dict().items()}
    effective = {w.name: w.weight.detach().clone() for w in prunable_weights(tiny_net)}
    back = load_sparse(save_sparse(tiny_net, tmp_path / "masked.pt", values="fp32"))
    for name, weight in effective.items():
        assert torch.equal(back.get_parameter(name), weight), name
    after = tiny_net.state_dict()
    assert after.keys() == before.keys() and any(k.endswith("weight_mask") for k in after)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert all(is_masked(w.module) for w in prunable_weights(tiny_net))


def test_onnx_export_two_heads_matches_torch(
    tiny_net: SceneNet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    model = _with_bn_statistics(_prune_randomly(tiny_net)).keep_tasks(["seg", "depth"])
    save_model(model, tmp_path / "model.pt")
    out = tmp_path / "model.onnx"
    argv = ["export", "--checkpoint", str(tmp_path / "model.pt"), "--format", "onnx"]
    assert main([*argv, "--out", str(out), "--input-size", "32x48"]) == 0
    assert str(out) in capsys.readouterr().out
    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["image"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert [o.name for o in graph.output] == ["seg", "depth"]
    assert not any(node.metadata_props for node in graph.node)  # no stack traces, no paths
    assert str(Path(cutlib.__file__).parent).encode() not in out.read_bytes()
    again = export_onnx(model, tmp_path / "elsewhere" / "again.onnx", (32, 48))
    assert again.read_bytes() == out.read_bytes()  # the same model, the same bytes
    batch = torch.randn(3, 3, 32, 48, generator=torch.Generator().manual_seed(4))
    diffs = onnx_parity(model, out, batch)
    assert list(diffs) == ["seg", "depth"]
    assert max(diffs.values()) <= 1e-4, diffs


def test_cli_sparse_export_reports_size_and_ratio(
    pruned: SceneNet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_model(pruned, tmp_path / "model.pt")
    out = tmp_path / "exports" / "model.sparse.pt"
    argv = ["export", "--checkpoint", str(tmp_path / "model.pt"), "--format", "sparse"]
    assert main([*argv, "--out", str(out), "--values", "fp32"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "of the dense state_dict" in printed
    assert load_sparse(out).task_names == ("seg", "sn", "depth")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A valid model.pt, one of another format_version, a non-cutlib torch file, garbage, and a
    sparse export of another format_version (written once for the module)."""
    tmp_path = tmp_path_factory.mktemp("bad_files")
    torch.manual_seed(0)
    net = SceneNet([TaskSpec("depth", "depth", 1)], "resnet18", 0.125, 8, (1, 2, 3, 4))
    save_model(net, tmp_path / "model.pt")
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.save({**payload, "format_version": 999}, tmp_path / "v999.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    (tmp_path / "garbage.pt").write_text("not a checkpoint")
    sparse = torch.load(save_sparse(net, tmp_path / "net.sparse.pt"), weights_only=True)
    torch.save({**sparse, "format_version": 999}, tmp_path / "sparse-v999.pt")
    return {
        "model": tmp_path / "model.pt",
        "v999": tmp_path / "v999.pt",
        "other": tmp_path / "other.pt",
        "garbage": tmp_path / "garbage.pt",
        "missing": tmp_path / "missing.pt",
        "sparse-v999": tmp_path / "sparse-v999.pt",
    }


@pytest.mark.parametrize(
    ("checkpoint", "fmt", "values", "error", "message"),
    [
        ("model", "zip", "fp16", ValueError, "unknown format 'zip'; valid formats: sparse, onnx"),
        ("model", "sparse", "int8", ValueError, "valid values: fp16, fp32"),
        ("missing", "sparse", "fp16", FileNotFoundError, "no checkpoint at"),
        ("v999", "sparse", "fp16", ValueError, "format_version 999"),
        ("other", "sparse", "fp16", ValueError, "not a cutlib model.pt"),
        ("garbage", "sparse", "fp16", ValueError, "not a readable cutlib model.pt"),
    ],
)
def test_export_checkpoint_bad_input(
    bad_files: dict[str, Path], tmp_path: Path, checkpoint, fmt, values, error, message
) -> None:
    out = tmp_path / "out.pt"
    with pytest.raises(error, match=message):
        export_checkpoint(bad_files[checkpoint], fmt, out, values=values)
    assert not out.exists()


def test_load_sparse_bad_input(bad_files: dict[str, Path]) -> None:
    with pytest.raises(FileNotFoundError, match="no sparse export at"):
        load_sparse(bad_files["missing"])
    with pytest.raises(ValueError, match="not a cutlib sparse export; make one with"):
        load_sparse(bad_files["model"])
    with pytest.raises(ValueError, match="not a readable sparse export"):
        load_sparse(bad_files["garbage"])
    with pytest.raises(ValueError, match="format_version 999; this cutlib reads 1: re-export"):
        load_sparse(bad_files["sparse-v999"])


@pytest.mark.parametrize(
    ("checkpoint", "extra", "message"),
    [
        ("model", ["--format", "zip"], "valid formats: sparse, onnx"),
        ("missing", ["--format", "sparse"], "no checkpoint at"),
        ("v999", ["--format", "sparse"], "format_version 999"),
        ("other", ["--format", "sparse"], "not a cutlib model.pt"),
        ("garbage", ["--format", "sparse"], "not a readable cutlib model.pt"),
        ("model", ["--format", "sparse", "--values", "int8"], "valid values: fp16, fp32"),
        ("model", ["--format", "onnx", "--input-size", "96"], "expected HxW"),
        ("model", ["--format", "onnx", "--input-size", "0x96"], "expected HxW"),
        ("model", ["--format", "onnx", "--values", "fp32"], "--values applies to"),
        ("model", ["--format", "sparse", "--input-size", "8x8"], "--input-size applies to"),
        ("model", [], "the following arguments are required: --format"),
    ],
)
def test_cli_export_bad_input_is_one_line_and_exit_2(
    bad_files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    checkpoint: str,
    extra: list[str],
    message: str,
) -> None:
    out = tmp_path / "out.file"
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(
            main(["export", "--checkpoint", str(bad_files[checkpoint]), "--out", str(out), *extra])
        )
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert message in lines[0]
    assert captured.out == ""
    assert not out.exists(), "bad input must not write anything"


def test_missing_onnx_packages_say_what_to_install(
    tiny_net: SceneNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(ImportError, match="pip install onnx onnxscript onnxruntime"):
        onnx_parity(tiny_net, tmp_path / "model.onnx", torch.zeros(1, 3, 32, 32))


def test_output_error_is_the_largest_difference_of_any_task(
    pruned: SceneNet, image: torch.Tensor
) -> None:
    assert output_error(pruned, pruned, image) == 0.0
    shifted = copy.deepcopy(pruned)
    with torch.no_grad():
        shifted.heads["depth"].branches[0][6].bias += 0.5  # every depth output moves by 0.5
    assert output_error(pruned, shifted, image) == pytest.approx(0.5, abs=1e-5)
    assert output_error(shifted, pruned, image) == pytest.approx(0.5, abs=1e-5)
