"""Prunable weights and their owners, installed masks through Adam with weight decay, folding,
and sparsity / parameter accounting."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from cutlib.models import SceneNet
from cutlib.pruning.masks import (
    apply_masks,
    density,
    fold_masks,
    is_masked,
    masks_of,
    parameter_counts,
    prunable_weights,
    scope_sparsity,
    sparsity_report,
    weights_by_owner,
)
from cutlib.tasks import TaskSpec
from cutlib.train import TrainConfig, train

TASKS = (TaskSpec("seg", "seg", 3, ignore_value=255), TaskSpec("depth", "depth", 1))


def _net(seed: int = 0) -> SceneNet:
    torch.manual_seed(seed)
    return SceneNet(TASKS, "resnet18", 0.125, 8, (1, 2, 3, 4), dropout=0.0)


def _random_masks(net: SceneNet, keep: float = 0.3, seed: int = 0) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        w.name: torch.rand(w.weight.shape, generator=generator) < keep
        for w in prunable_weights(net)
    }


def _samples(n: int = 4, size: int = 16) -> list[dict[str, Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [
        {
            "image": torch.randn(3, size, size, generator=generator),
            "seg": torch.randint(0, 3, (size, size), generator=generator),
            "depth": torch.rand(1, size, size, generator=generator) + 0.5,
        }
        for _ in range(n)
    ]


def test_prunable_weights_cover_every_conv_with_its_owner() -> None:
    net = _net()
    weights = prunable_weights(net)
    names = [w.name for w in weights]
    convs = {f"{n}.weight": m for n, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    assert len(names) == len(set(names))
    assert set(names) == set(convs)
    # resnet18: stem + 2 convs in each of 8 blocks + 3 downsample shortcuts; 4 × 3 convs per head
    assert len(names) == 1 + 16 + 3 + 2 * 12
    assert "backbone.stem.0.weight" in names
    assert "backbone.stages.1.0.downsample.0.weight" in names
    assert "backbone.stages.3.0.downsample.0.weight" in names
    assert "heads.seg.branches.0.0.weight" in names and "heads.depth.branches.3.6.weight" in names
    params = dict(net.named_parameters())
    for w in weights:
        assert w.module is convs[w.name]
        assert w.weight is params[w.name]
        expected = "backbone" if w.name.startswith("backbone.") else w.name.split(".")[1]
        assert w.owner == expected
    assert {w.owner for w in weights} == {"backbone", "seg", "depth"}


def test_prunable_weights_follow_dropped_heads() -> None:
    net = _net().keep_tasks(["depth"])
    assert {w.owner for w in prunable_weights(net)} == {"backbone", "depth"}
    assert not any(w.name.startswith("heads.seg.") for w in prunable_weights(net))


def test_masked_weights_stay_zero_through_adam_with_weight_decay() -> None:
    net = _net()
    masks = _random_masks(net)
    apply_masks(net, masks)
    modules = {w.name: w.module for w in prunable_weights(net)}
    orig_before = {n: m.weight_orig.detach().clone() for n, m in modules.items()}
    config = TrainConfig(iterations=4, batch_size=2, lr=1e-2, weight_decay=0.1, eval_every=2)
    samples = _samples()
    train(net, TASKS, samples, samples[:2], config, device="cpu", progress=False)
    net.train()
    net(torch.randn(2, 3, 16, 16))  # recompute the effective weights after the last step
    moved = 0
    for name, module in modules.items():
        assert is_masked(module)
        assert torch.equal(module.weight_mask.bool(), masks[name])
        assert (module.weight[~masks[name]] == 0).all(), name
        moved += int((module.weight_orig != orig_before[name]).any())
        # weight decay does move the hidden weight_orig of pruned entries: masking must win
    assert moved == len(modules), "the optimiser did not update every weight_orig"
    assert any(
        (m.weight_orig[~masks[n]] != orig_before[n][~masks[n]]).any() for n, m in modules.items()
    )

    net.eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before_fold = net(x)
    fold_masks(net)
    state = net.state_dict()
    assert not any("_orig" in k or "_mask" in k for k in state)
    for name, mask in masks.items():
        assert not is_masked(modules[name])
        assert isinstance(modules[name].weight, nn.Parameter)
        assert (state[name][~mask] == 0).all(), name
        assert (state[name][mask] != 0).all(), name
    with torch.no_grad():
        after_fold = net(x)
    for task in before_fold:
        assert torch.equal(before_fold[task], after_fold[task])


def test_apply_masks_zeroes_the_effective_weight_immediately() -> None:
    net = _net()
    mask = torch.zeros_like(net.backbone.stem[0].weight, dtype=torch.bool)
    mask[0] = True
    original = net.backbone.stem[0].weight.detach().clone()
    apply_masks(net, {"backbone.stem.0.weight": mask})
    weight = net.backbone.stem[0].weight
    assert (weight[1:] == 0).all() and torch.equal(weight[0], original[0])
    assert not is_masked(net.backbone.stages[0][0].conv1)


def test_masks_compose_when_applied_twice() -> None:
    net = _net()
    first, second = _random_masks(net, 0.6, seed=1), _random_masks(net, 0.6, seed=2)
    apply_masks(net, first)
    apply_masks(net, second)
    for name, mask in masks_of(net).items():
        assert torch.equal(mask, first[name] & second[name])


def test_masks_of_reads_installed_masks_else_nonzeros() -> None:
    net = _net()
    with torch.no_grad():
        net.heads.depth.branches[0][0].weight[0].zero_()
    dense = masks_of(net)
    assert not dense["heads.depth.branches.0.0.weight"][0].any()
    assert dense["heads.depth.branches.0.0.weight"][1:].all()
    masks = _random_masks(net)
    apply_masks(net, masks)
    assert all(torch.equal(m, masks[n]) for n, m in masks_of(net).items())
    assert density(masks_of(net)) == pytest.approx(
        sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    )


def test_parameter_counts_honour_installed_masks() -> None:
    net = _net()
    dense = parameter_counts(net)
    params = list(net.parameters())
    assert dense["total"] == sum(p.numel() for p in params)
    assert dense["nonzero"] == sum(int((p != 0).sum()) for p in params)
    masks = _random_masks(net, 0.25)
    for w in prunable_weights(net):
        assert (w.weight != 0).all()  # so every pruned entry removes one non-zero
    pruned = sum(int((~m).sum()) for m in masks.values())
    apply_masks(net, masks)
    masked = parameter_counts(net)
    assert masked == {"total": dense["total"], "nonzero": dense["nonzero"] - pruned}
    fold_masks(net)
    assert parameter_counts(net) == masked


def test_sparsity_report_on_a_hand_built_mask() -> None:
    net = _net()
    weights = {w.name: w for w in prunable_weights(net)}
    sizes = {owner: 0 for owner in ("backbone", "seg", "depth")}
    for w in weights.values():
        sizes[w.owner] += w.weight.numel()
    stem = "backbone.stem.0.weight"  # 8 × 3 × 7 × 7: prune all of it
    seg_first = "heads.seg.branches.0.0.weight"  # prune the first half of its output channels
    seg_mask = torch.ones_like(weights[seg_first].weight, dtype=torch.bool)
    seg_mask[: seg_mask.shape[0] // 2] = False
    masks = {stem: torch.zeros_like(weights[stem].weight, dtype=torch.bool), seg_first: seg_mask}
    apply_masks(net, masks)
    stem_zeros, seg_zeros = weights[stem].weight.numel(), weights[seg_first].weight.numel() // 2
    assert stem_zeros == 8 * 3 * 7 * 7
    expected = {
        "achieved": (stem_zeros + seg_zeros) / sum(sizes.values()),
        "backbone": stem_zeros / sizes["backbone"],
        "heads": {"seg": seg_zeros / sizes["seg"], "depth": 0.0},
    }
    for report in (sparsity_report(net), sparsity_report(fold_masks(net))):
        assert report["achieved"] == pytest.approx(expected["achieved"], abs=1e-12)
        assert report["backbone"] == pytest.approx(expected["backbone"], abs=1e-12)
        assert report["heads"] == pytest.approx(expected["heads"], abs=1e-12)
        assert list(report["heads"]) == ["seg", "depth"]


def test_apply_masks_rejects_unknown_names_and_wrong_shapes() -> None:
    net = _net()
    with pytest.raises(KeyError, match="backbone.nope.weight"):
        apply_masks(net, {"backbone.nope.weight": torch.ones(1, dtype=torch.bool)})
    bn = "backbone.stem.1.weight"  # a BatchNorm weight is not prunable
    with pytest.raises(KeyError, match="backbone.stem.1.weight"):
        apply_masks(net, {bn: torch.ones_like(net.backbone.stem[1].weight, dtype=torch.bool)})
    bias = "heads.seg.branches.0.0.bias"
    with pytest.raises(KeyError, match="bias"):
        apply_masks(net, {bias: torch.ones(8, dtype=torch.bool)})
    with pytest.raises(ValueError, match="has shape"):
        apply_masks(net, {"backbone.stem.0.weight": torch.ones(8, 3, 7, dtype=torch.bool)})
    with pytest.raises(ValueError, match="has shape"):
        apply_masks(net, {"backbone.stem.0.weight": torch.ones(3, 8, 7, 7, dtype=torch.bool)})
    assert not any(is_masked(m) for m in net.modules())


def test_weights_by_owner_counts_each_head_by_hand() -> None:
    counts = weights_by_owner(_net())
    assert list(counts) == ["backbone", "seg", "depth"]
    # a head of width 0.125 (64 input channels), 8 channels, 4 branches of 3×3 64→8, 1×1 8→8,
    # 1×1 8→C: 4 · (4608 + 64 + 8·C)
    assert counts["seg"] == 4 * (4608 + 64 + 8 * 3) and counts["depth"] == 4 * (4608 + 64 + 8)
    assert sum(counts.values()) == sum(w.weight.numel() for w in prunable_weights(_net()))
    assert list(weights_by_owner(_net().keep_tasks(["depth"]))) == ["backbone", "depth"]


def test_scope_sparsity_splits_shared_from_head_weights() -> None:
    masks = {
        "b1": torch.tensor([True, False, False, False]),
        "b2": torch.tensor([False, False, False, False]),
        "h": torch.tensor([True, True, True, False]),
    }
    assert scope_sparsity(masks, {"b1", "b2"}) == {
        "deployed sparsity": 1 - 4 / 12,
        "backbone sparsity": 1 - 1 / 8,
        "heads sparsity": 1 - 3 / 4,
    }
    assert scope_sparsity(masks, set())["backbone sparsity"] == 0.0  # no shared weight
