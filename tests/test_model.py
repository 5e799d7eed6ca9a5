"""SceneNet: the paper's exact conv-weight counts (docs/method/model.md#parameter-counts), shapes,
heads and configs."""

from __future__ import annotations

import pytest
import torch

from cutlib.models import SceneNet
from cutlib.profiles import load_profile
from cutlib.pruning.masks import parameter_counts, prunable_weights, sparsity_report
from cutlib.tasks import TaskSpec

NYUV2 = (
    TaskSpec("seg", "seg", 40, ignore_value=255),
    TaskSpec("sn", "sn", 3),
    TaskSpec("depth", "depth", 1),
)


def _weights_by_owner(model: SceneNet) -> dict[str, int]:
    counts: dict[str, int] = {}
    for w in prunable_weights(model):
        counts[w.owner] = counts.get(w.owner, 0) + w.weight.numel()
    return counts


def test_paper_profile_matches_reference_conv_weight_counts() -> None:
    with torch.device("meta"):
        model = SceneNet(NYUV2, **load_profile("paper", "nyuv2").model.kwargs())
    counts = _weights_by_owner(model)
    assert counts["backbone"] == 21_267_648
    for task in NYUV2:
        assert counts[task.name] == 23_068_672 + 4096 * task.channels
    assert sum(counts.values()) == 90_653_888
    # Non-prunable: head biases 4·(2048 + C) per head and BN affines
    # (docs/method/model.md#parameter-counts).
    assert sum(p.numel() for p in model.parameters()) == 90_695_664


def test_paper_backbone_pieces() -> None:
    with torch.device("meta"):
        model = SceneNet(NYUV2, "resnet34")
    stem = model.backbone.stem[0].weight.numel()
    shortcuts = sum(
        block.downsample[0].weight.numel()
        for stage in model.backbone.stages
        for block in stage
        if block.downsample is not None
    )
    assert (stem, shortcuts) == (9_408, 172_032)
    assert [stage[0].downsample is not None for stage in model.backbone.stages] == [
        False,
        True,
        True,
        True,
    ]


@pytest.mark.parametrize(
    ("size", "expected"), [((321, 321), (41, 41)), ((224, 224), (29, 29)), ((256, 512), (33, 65))]
)
def test_output_stride_8_with_ceil_mode_pool(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    model = SceneNet([TaskSpec("depth", "depth", 1)], "resnet18", 0.0625, 4, (1, 2, 3, 4))
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, *size))
    assert tuple(out["depth"].shape[-2:]) == expected


def test_forward_returns_one_output_per_task(tiny_net: SceneNet) -> None:
    out = tiny_net(torch.randn(2, 3, 32, 32))
    assert list(out) == ["seg", "sn", "depth"]
    # 32 → 16 (stem conv) → 9 (ceil-mode pool) → 5 (stage 2), as in the reference network
    assert [tuple(v.shape) for v in out.values()] == [(2, 5, 5, 5), (2, 3, 5, 5), (2, 1, 5, 5)]


def test_keep_tasks_removes_heads_and_leaves_kept_outputs_unchanged(tiny_net: SceneNet) -> None:
    tiny_net.eval()
    x = torch.randn(2, 3, 32, 32)
    before = tiny_net(x)
    total_before = parameter_counts(tiny_net)["total"]
    tiny_net.keep_tasks(["seg", "depth"])
    after = tiny_net(x)
    assert list(after) == ["seg", "depth"] and tiny_net.task_names == ("seg", "depth")
    assert not any(k.startswith("heads.sn.") for k in tiny_net.state_dict())
    assert torch.equal(before["seg"], after["seg"]) and torch.equal(before["depth"], after["depth"])
    assert parameter_counts(tiny_net)["total"] < total_before
    with pytest.raises(ValueError, match="this model has: seg, depth"):
        tiny_net.keep_tasks(["sn"])


def test_config_round_trip(tiny_net: SceneNet) -> None:
    clone = SceneNet.from_config(tiny_net.config())
    clone.load_state_dict(tiny_net.state_dict())
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(clone.eval()(x)["sn"], tiny_net.eval()(x)["sn"])
    assert clone.tasks == tiny_net.tasks


def test_unknown_backbone_names_choices() -> None:
    with pytest.raises(ValueError, match="resnet18, resnet34"):
        SceneNet(NYUV2, backbone="vgg")


def test_ownership_comes_from_module_tree(tiny_net: SceneNet) -> None:
    weights = prunable_weights(tiny_net)
    assert {w.owner for w in weights} == {"backbone", "seg", "sn", "depth"}
    assert all(w.name.startswith(("backbone.", f"heads.{w.owner}.")) for w in weights)
    assert all(w.name.endswith(".weight") for w in weights)
    params = dict(tiny_net.named_parameters())
    assert all(params[w.name] is w.weight for w in weights)


def test_sparsity_report_counts_exact_zeros(tiny_net: SceneNet) -> None:
    with torch.no_grad():
        for w in prunable_weights(tiny_net):
            if w.owner == "sn":
                w.weight.zero_()
    report = sparsity_report(tiny_net)
    assert report["heads"]["sn"] == 1.0 and report["heads"]["seg"] == 0.0
    assert report["backbone"] == 0.0
    head = sum(w.weight.numel() for w in prunable_weights(tiny_net) if w.owner == "sn")
    total = sum(w.weight.numel() for w in prunable_weights(tiny_net))
    assert report["achieved"] == pytest.approx(head / total)
