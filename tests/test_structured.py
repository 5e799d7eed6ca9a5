"""Structured pruning: channel groups honour every coupling of SceneNet (residual stages, ASPP
branches, fixed task outputs), removal is exact, FLOP accounting matches a hand count of the
slimmed convs, and ``cut_structured`` / ``channel_magnitude`` remove the requested fraction of
FLOPs end to end."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cutlib.checkpoint import load_model, save_model
from cutlib.experiments import RunConfig, run
from cutlib.grid import planned_iterations
from cutlib.methods.cut_structured import METHOD, StructuredCutOptions
from cutlib.models import SceneNet
from cutlib.models.channels import channel_groups, channel_scores, remove_channels
from cutlib.pruning.channel_masks import ChannelMasker, ConvFlops
from cutlib.pruning.flops import total_flops
from cutlib.pruning.masks import apply_masks

INPUT = (2, 3, 64, 64)


def _random_keep(model: SceneNet, fraction: float, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    keep = {}
    for group in channel_groups(model):
        mask = torch.rand(group.size, generator=generator) < fraction
        mask[0] = True
        keep[group.name] = mask
    return keep


def test_keeping_every_channel_changes_nothing(tiny_net: SceneNet) -> None:
    tiny_net.eval()
    x = torch.randn(INPUT)
    before = tiny_net(x)
    keep = {g.name: torch.ones(g.size, dtype=torch.bool) for g in channel_groups(tiny_net)}
    after = remove_channels(tiny_net, keep)(x)
    assert all(torch.equal(before[t], after[t]) for t in before)


def test_removal_keeps_output_shapes_and_shrinks_every_group(tiny_net: SceneNet) -> None:
    tiny_net.eval()
    x = torch.randn(INPUT)
    shapes = {t: y.shape for t, y in tiny_net(x).items()}
    params = sum(p.numel() for p in tiny_net.parameters())
    keep = _random_keep(tiny_net, 0.5)
    remove_channels(tiny_net, keep)
    assert {t: y.shape for t, y in tiny_net(x).items()} == shapes
    assert sum(p.numel() for p in tiny_net.parameters()) < params
    sizes = {g.name: g.size for g in channel_groups(tiny_net)}
    assert sizes == {name: int(mask.sum()) for name, mask in keep.items()}
    assert tiny_net.channels == sizes


def test_removing_a_channel_equals_zeroing_it_in_every_consumer(tiny_net: SceneNet) -> None:
    """Exactness: removing channels of an inner group gives the same outputs as zeroing the
    consumers' input slices (the removed channel's value no longer reaches anything)."""
    tiny_net.eval()
    group = next(g for g in channel_groups(tiny_net) if g.name == "heads.seg.branches.1.0")
    keep = torch.ones(group.size, dtype=torch.bool)
    keep[[1, 4]] = False
    x = torch.randn(INPUT)
    with torch.no_grad():
        for consumer in group.consumers:
            tiny_net.get_submodule(consumer).weight[:, ~keep] = 0
    zeroed = tiny_net(x)
    removed = remove_channels(tiny_net, {group.name: keep})(x)
    assert all(torch.allclose(zeroed[t], removed[t], atol=1e-6) for t in zeroed)


def test_residual_stage_groups_tie_shortcuts_and_second_convs(tiny_net: SceneNet) -> None:
    groups = {g.name: g for g in channel_groups(tiny_net)}
    stage = groups["backbone.stages.1.0.downsample.0"]
    assert stage.producers == (
        "backbone.stages.1.0.downsample.0",
        "backbone.stages.1.0.conv2",
        "backbone.stages.1.1.conv2",
    )
    last = groups["backbone.stages.3.0.downsample.0"]
    heads_first = [c for c in last.consumers if c.startswith("heads.")]
    assert len(heads_first) == 3 * 4  # every branch of every head reads the backbone output
    task_outputs = {f"heads.{t}.branches.{b}.6" for t in tiny_net.heads for b in range(4)}
    assert not task_outputs & {p for g in groups.values() for p in g.producers}


def test_slimmed_model_round_trips_through_model_pt(tiny_net: SceneNet, tmp_path: Path) -> None:
    tiny_net.eval()
    remove_channels(tiny_net, _random_keep(tiny_net, 0.4, seed=3))
    tiny_net.keep_tasks(["seg", "depth"])
    assert not any(name.startswith("heads.sn.") for name in tiny_net.channels)
    save_model(tiny_net, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt").eval()
    x = torch.randn(INPUT)
    assert all(torch.equal(tiny_net(x)[t], loaded(x)[t]) for t in ("seg", "depth"))


def test_removal_refuses_bad_requests(tiny_net: SceneNet) -> None:
    group = channel_groups(tiny_net)[0]
    with pytest.raises(KeyError, match="no channel group"):
        remove_channels(tiny_net, {"backbone.nowhere": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="boolean mask"):
        remove_channels(tiny_net, {group.name: torch.ones(group.size + 1, dtype=torch.bool)})
    with pytest.raises(ValueError, match="every channel"):
        remove_channels(tiny_net, {group.name: torch.zeros(group.size, dtype=torch.bool)})
    weight = "backbone.stem.0.weight"
    apply_masks(tiny_net, {weight: torch.ones_like(tiny_net.backbone.stem[0].weight).bool()})
    with pytest.raises(ValueError, match="fold"):
        remove_channels(tiny_net, {group.name: torch.ones(group.size, dtype=torch.bool)})


def test_channel_scores_average_the_weights_a_channel_removes() -> None:
    from cutlib.models.channels import ChannelGroup

    group = ChannelGroup("p", "backbone", ("p",), (), ("c",), 2)
    scores = {
        "p.weight": torch.tensor([[[[1.0]], [[3.0]]], [[[0.0]], [[2.0]]]]),  # (2 out, 2 in, 1, 1)
        "c.weight": torch.tensor([[[[4.0]], [[6.0]]]]),  # (1 out, 2 in)
    }
    # channel 0: producer filter (1 + 3) + consumer slice 4, over 3 weights; channel 1: (0+2+6)/3
    assert torch.allclose(channel_scores([group], scores)["p"], torch.tensor([8 / 3, 8 / 3]))
    # divided by a given per-channel cost (e.g. FLOPs) instead of the weight count
    cost = {"p": 4.0}
    assert torch.allclose(channel_scores([group], scores, cost)["p"], torch.tensor([2.0, 2.0]))
    # a task whose scores do not cover the consumer is judged by the producer alone
    assert torch.allclose(
        channel_scores([group], {"p.weight": scores["p.weight"]})["p"], torch.tensor([2.0, 1.0])
    )


def test_flop_accounting_predicts_the_conv_flops_after_removal(
    tiny_net: SceneNet, hand_flops: Callable
) -> None:
    """ConvFlops' total is the conv FLOPs counted by hand, and its prediction for a channel mask is
    the hand count of the network with those channels physically removed."""
    tiny_net.keep_tasks(["seg", "depth"])
    accounting = ConvFlops(tiny_net, INPUT)
    assert accounting.total == sum(hand_flops(tiny_net, INPUT).values())
    keep = _random_keep(tiny_net, 0.5, seed=1)
    predicted = accounting.kept(keep)
    remove_channels(tiny_net, keep)
    assert predicted == pytest.approx(sum(hand_flops(tiny_net, INPUT).values()), rel=1e-9)


def test_removing_one_channel_saves_its_per_channel_flops(
    tiny_net: SceneNet, hand_flops: Callable
) -> None:
    """Removing one channel of a group (backbone or head) saves exactly the FLOPs
    ``per_channel`` charges it: the hand count before minus the hand count of the network with
    that channel physically removed."""
    per_channel = ConvFlops(tiny_net, INPUT).per_channel()
    dense = sum(hand_flops(tiny_net, INPUT).values())
    groups = channel_groups(tiny_net)
    picked = groups[:4] + [g for g in groups if g.owner != "backbone"][:2]
    assert {g.owner for g in picked} > {"backbone"}
    for group in picked:
        keep = torch.ones(group.size, dtype=torch.bool)
        keep[0] = False
        slim = remove_channels(copy.deepcopy(tiny_net), {group.name: keep})
        saved = dense - sum(hand_flops(slim, INPUT).values())
        assert saved == pytest.approx(per_channel[group.name], rel=1e-9), group.name


def test_channel_masker_votes_on_backbone_groups_and_keeps_one_channel_each() -> None:
    scores = {
        "seg": {"b": torch.tensor([3.0, 2, 1, 0]), "hs": torch.tensor([1.5, 0])},
        "depth": {"b": torch.tensor([0.0, 2, 1, 3]), "hd": torch.tensor([0.0, 1.5])},
    }
    masker = ChannelMasker(scores, {"b"}, "vote", 2)
    masks = masker(0.5)  # each task keeps its top 3 of 6 channels; only channel 1 of b in both
    assert masks["b"].tolist() == [False, True, False, False]
    tiny = masker(0.0)  # nothing kept by the ranking: every group still keeps its best channel
    assert [int(m.sum()) for m in tiny.values()] == [1, 1, 1]


def test_channel_masker_rounds_every_group_up_with_its_next_best_channels() -> None:
    generator = torch.Generator().manual_seed(0)
    scores = {
        task: {name: torch.rand(size, generator=generator) for name, size in sizes.items()}
        for task, sizes in {
            "seg": {"b1": 20, "b2": 6, "hs": 11},
            "depth": {"b1": 20, "b2": 6, "hd": 9},
        }.items()
    }
    plain = ChannelMasker(scores, {"b1", "b2"}, "vote", 2)
    rounded = ChannelMasker(scores, {"b1", "b2"}, "vote", 2, round_to=8)
    previous = None
    for keep in (0.0, 0.1, 0.3, 0.5, 0.8, 1.0):
        before, after = plain(keep), rounded(keep)
        for name, mask in after.items():
            kept, size = int(mask.sum()), mask.numel()
            assert kept % 8 == 0 or kept == size  # a multiple of 8, or the whole group
            assert bool((before[name] <= mask).all())  # rounding only adds channels
            assert kept - int(before[name].sum()) < 8
            if previous is not None:  # counts (so FLOPs) monotone in κ, as bisection needs
                assert int(previous[name].sum()) <= kept
        previous = after
    summed = scores["seg"]["b1"] + scores["depth"]["b1"]
    best_eight = set(torch.topk(summed, 8).indices.tolist())
    assert set(torch.nonzero(rounded(0.0)["b1"]).flatten().tolist()) == best_eight


def test_structured_options_reject_the_weight_keep_ratio_table() -> None:
    with pytest.raises(ValueError, match="no keep-ratio table"):
        StructuredCutOptions(keep_ratio="table")
    with pytest.raises(ValueError, match="channel_cost"):
        StructuredCutOptions(channel_cost="latency")
    with pytest.raises(ValueError, match="round_to"):
        StructuredCutOptions(round_to=0)
    with pytest.raises(ValueError, match="unknown option"):
        METHOD.parse_options({"sparsity": 0.5})


@pytest.mark.slow
@pytest.mark.parametrize("method", ["cut_structured", "channel_magnitude"])
def test_structured_methods_remove_the_requested_flops(method: str) -> None:
    config = RunConfig("synth-nyuv2", method, ("seg", "depth"), 0.6, "smoke")
    record = run(config, progress=False)
    model = load_model(record.directory / "model.pt")
    dense = load_model(record.directory.parent / _dense_run(record.directory.parent))
    dense.keep_tasks(["seg", "depth"])
    resolution = (1, 3, 48, 48)  # the smoke profile's
    removed = 1 - total_flops(model, resolution) / total_flops(dense, resolution)
    assert abs(removed - 0.6) < 0.03
    # the plan's prediction of the removed FLOPs is exact (ConvFlops), not an estimate
    assert record.metrics["details"]["flops"]["removed_fraction"] == pytest.approx(
        removed, abs=1e-9
    )
    assert record.metrics["params"]["total"] < record.metrics["params"]["dense_total"]
    assert model.task_names == ("seg", "depth")
    x = torch.zeros(resolution)
    assert {t: y.shape[1:] for t, y in model.eval()(x).items()} == {
        t: y.shape[1:] for t, y in dense.eval()(x).items()
    }
    steps = record.metrics["details"]["training"]["iterations"]
    assert steps == planned_iterations(config.validated())


def _dense_run(runs: Path) -> Path:
    (folder,) = [p for p in runs.iterdir() if "-dense-seg+sn+depth-" in p.name]
    return folder / "model.pt"
