"""Dynamic sparse training (RigL, DiSparse dynamic): ERK budgets, random masks, the cosine
schedule, and one drop/regrow update checked position by position."""

from __future__ import annotations

import math

import pytest
import torch

from cutlib.models import SceneNet
from cutlib.pruning.dynamic import (
    DynamicSparsity,
    JointGradient,
    UnionOfTaskGradients,
    cosine_drop_fraction,
    deployed_shapes,
    erk_counts,
    random_masks,
)
from cutlib.pruning.masks import apply_masks, masks_of
from cutlib.tasks import TaskSpec

TASKS = (TaskSpec("seg", "seg", 3, ignore_value=255), TaskSpec("depth", "depth", 1))


def test_erk_counts_by_hand() -> None:
    # raw densities (Σn/Πn): a 5/4, b 16/64; ε = 34/21 makes a > 1, so a is dense and b gets 30
    assert erk_counts({"a": torch.Size([4, 1]), "b": torch.Size([8, 8])}, 0.5) == {"a": 4, "b": 30}


@pytest.mark.parametrize("density", [0.05, 0.1, 0.3, 0.5, 0.9])
def test_erk_counts_hit_the_budget_exactly_and_respect_caps(density: float) -> None:
    shapes = {
        "stem": torch.Size([8, 3, 3, 3]),
        "conv": torch.Size([32, 16, 3, 3]),
        "wide": torch.Size([64, 32, 3, 3]),
        "out": torch.Size([3, 32, 1, 1]),
    }
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    counts = erk_counts(shapes, density, power=0.9, dense=["stem"])
    assert sum(counts.values()) == round(density * sum(sizes.values()))
    assert counts["stem"] == sizes["stem"]
    assert all(0 <= counts[n] <= sizes[n] for n in shapes)
    # ERK gives small layers (more inputs + outputs per weight) a higher density
    assert counts["out"] / sizes["out"] >= counts["wide"] / sizes["wide"]


def test_erk_counts_reject_impossible_budgets() -> None:
    shapes = {"a": torch.Size([10, 10]), "b": torch.Size([2])}
    with pytest.raises(ValueError, match="dense layers alone"):
        erk_counts(shapes, 0.1, dense=["a"])
    with pytest.raises(ValueError, match="density must be in"):
        erk_counts(shapes, 0.0)


def test_random_masks_have_exact_counts_and_are_seeded() -> None:
    shapes = {"a": torch.Size([4, 5]), "b": torch.Size([7])}
    counts = {"a": 6, "b": 7}
    first = random_masks(shapes, counts, torch.Generator().manual_seed(1))
    again = random_masks(shapes, counts, torch.Generator().manual_seed(1))
    other = random_masks(shapes, counts, torch.Generator().manual_seed(2))
    assert {n: int(m.sum()) for n, m in first.items()} == counts
    assert first["a"].shape == (4, 5)
    assert all(torch.equal(first[n], again[n]) for n in shapes)
    assert not torch.equal(first["a"], other["a"])


def test_cosine_drop_fraction() -> None:
    assert cosine_drop_fraction(0, 100, 0.3) == pytest.approx(0.3)
    assert cosine_drop_fraction(50, 100, 0.3) == pytest.approx(0.15)
    assert cosine_drop_fraction(100, 100, 0.3) == pytest.approx(0.0)


def _setup(tasks: list[str]) -> tuple[SceneNet, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    net = SceneNet(TASKS, "resnet18", 0.125, 8, (1, 2, 3, 4), dropout=0.0).keep_tasks(tasks)
    shapes = deployed_shapes(net)
    masks = random_masks(shapes, erk_counts(shapes, 0.2), torch.Generator().manual_seed(0))
    apply_masks(net, masks)
    generator = torch.Generator().manual_seed(1)
    batch = {
        "image": torch.randn(2, 3, 16, 16, generator=generator),
        "seg": torch.randint(0, 3, (2, 16, 16), generator=generator),
        "depth": torch.rand(2, 1, 16, 16, generator=generator) + 0.5,
    }
    return net, batch


def _bn_state(net: SceneNet) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items() if "running" in k}


@pytest.mark.parametrize("rule_name", ["rigl", "disparse"])
def test_one_update_keeps_counts_and_moves_the_right_positions(rule_name: str) -> None:
    net, batch = _setup(["seg", "depth"])
    specs = list(net.tasks)
    rule = JointGradient(specs) if rule_name == "rigl" else UnionOfTaskGradients(specs)
    names = list(deployed_shapes(net))
    frozen = names[-1]  # a layer the updater is not given must not change
    updater = DynamicSparsity(
        net, names[:-1], rule, every=10, end=100, alpha=0.5,
        regrow="zero" if rule_name == "rigl" else "stale",
    )  # fmt: skip
    before = {n: m.clone() for n, m in masks_of(net).items()}
    stored = {w: m.weight_orig.detach().clone() for w, m in updater.modules.items()}
    bn = _bn_state(net)
    updater(9, batch)  # not an update iteration
    assert updater.updates == 0
    updater(10, batch)
    after = masks_of(net)
    assert updater.updates == 1 and updater.moved > 0
    assert torch.equal(after[frozen], before[frozen])
    for name in names[:-1]:
        assert int(after[name].sum()) == int(before[name].sum()), name
        dropped, grown = before[name] & ~after[name], after[name] & ~before[name]
        assert int(dropped.sum()) == int(grown.sum())
        active = stored[name].abs()[before[name]]
        if dropped.any():  # the dropped ones are the smallest active magnitudes
            assert stored[name].abs()[dropped].max() <= active.sort().values[int(dropped.sum())]
        weight = updater.modules[name].weight_orig.detach()
        if rule_name == "rigl":
            assert (weight[grown] == 0).all()
        else:
            assert torch.equal(weight[grown], stored[name][grown])
    assert all(torch.equal(v, _bn_state(net)[k]) for k, v in bn.items())


def test_updates_stop_at_the_end() -> None:
    net, batch = _setup(["seg"])
    updater = DynamicSparsity(
        net, deployed_shapes(net), JointGradient(list(net.tasks)), every=5, end=20, alpha=0.3
    )
    before = masks_of(net)
    updater(20, batch)
    updater(25, batch)
    assert updater.updates == 0
    assert all(torch.equal(before[n], m) for n, m in masks_of(net).items())


def test_updater_never_touches_an_unselected_head() -> None:
    net, batch = _setup(["seg"])  # the depth head is not deployed
    updater = DynamicSparsity(
        net, deployed_shapes(net), UnionOfTaskGradients(list(net.tasks)), every=1, end=9, alpha=0.5
    )
    updater(1, batch)
    assert updater.updates == 1
    assert not any(name.startswith("heads.depth") for name in updater.modules)
    assert not any(name.startswith("heads.depth") for name in masks_of(net))


def test_disparse_union_on_the_backbone_trimmed_by_normalised_score() -> None:
    rule = UnionOfTaskGradients(list(TASKS))
    rule.owners = {"b": "backbone", "h": "seg"}
    rule.scores = {
        "seg": {"b": torch.tensor([5.0, 4.0, 0.0, 0.0, 0.0]), "h": torch.tensor([1.0, 3.0, 2.0])},
        "depth": {"b": torch.tensor([0.0, 0.0, 0.0, 9.0, 8.0])},
    }
    everything = torch.ones(5, dtype=torch.bool)
    # proposals {0, 1} ∪ {3, 4}; normalised 5/9, 4/9, 9/17, 8/17: keep 0 and 3
    assert rule.select("b", everything, 2).tolist() == [True, False, False, True, False]
    assert rule.select("b", everything, 4).tolist() == [True, True, False, True, True]
    inactive = torch.tensor([True, False, True])  # a head uses its own task's scores only
    assert rule.select("h", inactive, 1).tolist() == [False, False, True]
