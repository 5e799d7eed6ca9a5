"""Dynamic sparse training (RigL, DiSparse dynamic): ERK budgets, random masks, the cosine
schedule and the update iterations, one drop/regrow update checked position by position, the
union arbiter, constant non-zero counts through training, and both methods end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cutlib.checkpoint import load_model
from cutlib.experiments import RunConfig, run
from cutlib.losses import multitask_loss
from cutlib.methods.disparse_dynamic import STEM
from cutlib.models import SceneNet
from cutlib.pruning.dynamic import (
    DynamicSparsity,
    JointGradient,
    UnionOfTaskGradients,
    cosine_drop_fraction,
    deployed_shapes,
    erk_counts,
    random_masks,
    update_iterations,
)
from cutlib.pruning.masks import apply_masks, masks_of, prunable_weights
from cutlib.tasks import TaskSpec
from cutlib.train import TrainConfig

TASKS = (TaskSpec("seg", "seg", 3, ignore_value=255), TaskSpec("depth", "depth", 1))


# --- budgets and schedules ---------------------------------------------------------------------


def test_erk_counts_by_hand() -> None:
    # raw densities (Σn/Πn): a 5/4, b 16/64; ε = 34/21 makes a > 1, so a is dense and b gets 30
    assert erk_counts({"a": torch.Size([4, 1]), "b": torch.Size([8, 8])}, 0.5) == {"a": 4, "b": 30}
    # power 0.9 and a rounding remainder: raw a = (4/4)^0.9 = 1, b = (6/8)^0.9; 6 = ε(4 + 8·b)
    # gives a 2.36, b 3.64: floors 2 + 3, the remaining weight goes to the larger fraction (b)
    counts = erk_counts({"a": torch.Size([2, 2]), "b": torch.Size([2, 4])}, 0.5, power=0.9)
    assert counts == {"a": 2, "b": 4}


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


def test_update_iterations_avoid_evaluations() -> None:
    assert update_iterations(5, 37) == [5, 10, 15, 20, 25, 30, 35]
    assert update_iterations(5, 37, {15, 30, 45, 50}) == [5, 10, 14, 20, 25, 29, 35]
    assert update_iterations(1, 4, {1, 2, 3}) == []  # nothing left between evaluations
    # DiSparse's code also updates at iteration 0, before the first step
    assert update_iterations(5, 37, {15, 30}, at_start=True) == [0, 5, 10, 14, 20, 25, 29, 35]
    assert update_iterations(5, 0, at_start=True) == []  # no updates at all with T_end = 0
    schedule = TrainConfig(iterations=50, batch_size=8, lr=1e-3, eval_every=15)
    assert schedule.evaluation_iterations() == {15, 30, 45, 50}


# --- one update on a tiny SceneNet -------------------------------------------------------------


def _setup(tasks: list[str], density: float = 0.2) -> tuple[SceneNet, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    net = SceneNet(TASKS, "resnet18", 0.125, 8, (1, 2, 3, 4), dropout=0.0).keep_tasks(tasks)
    shapes = deployed_shapes(net)
    masks = random_masks(shapes, erk_counts(shapes, density), torch.Generator().manual_seed(0))
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


def _counts(masks: dict[str, torch.Tensor]) -> dict[str, int]:
    return {n: int(m.sum()) for n, m in masks.items()}


@pytest.mark.parametrize("rule", [JointGradient, UnionOfTaskGradients])
def test_one_update_keeps_counts_and_moves_the_right_positions(rule: type) -> None:
    net, batch = _setup(["seg", "depth"])
    names = list(deployed_shapes(net))
    frozen = names[-1]  # a layer the updater is not given must not change
    regrow = "zero" if rule is JointGradient else "stale"
    updater = DynamicSparsity(
        net, names[:-1], rule(list(net.tasks)), every=10, end=100, alpha=0.5, regrow=regrow
    )
    before = {n: m.clone() for n, m in masks_of(net).items()}
    stored = {w: m.weight_orig.detach().clone() for w, m in updater.modules.items()}
    bn = _bn_state(net)
    updater(9, batch)  # not an update iteration
    assert updater.updates == 0
    updater(10, batch)
    after = masks_of(net)
    assert updater.updates == 1 and updater.moved > 0
    assert torch.equal(after[frozen], before[frozen])
    moved = 0
    for name in names[:-1]:
        assert int(after[name].sum()) == int(before[name].sum()), name
        dropped, grown = before[name] & ~after[name], after[name] & ~before[name]
        n = math.floor(cosine_drop_fraction(10, 100, 0.5) * int(before[name].sum()))
        assert int(dropped.sum()) == int(grown.sum()) == min(n, int((~before[name]).sum()))
        moved += int(dropped.sum())
        active = stored[name].abs()[before[name]]
        if dropped.any():  # the dropped ones are the smallest active magnitudes
            assert stored[name].abs()[dropped].max() <= active.sort().values[int(dropped.sum())]
        weight = updater.modules[name].weight_orig.detach()
        if regrow == "zero":
            assert (weight[grown] == 0).all()
        else:
            assert torch.equal(weight[grown], stored[name][grown])
    assert moved == updater.moved  # so no just-dropped weight was grown again
    assert all(torch.equal(v, _bn_state(net)[k]) for k, v in bn.items())
    assert all(p.grad is None for p in net.parameters())


def test_rigl_grows_the_largest_joint_gradients() -> None:
    net, batch = _setup(["seg", "depth"])
    rule = JointGradient(list(net.tasks))
    updater = DynamicSparsity(net, deployed_shapes(net), rule, every=1, end=10, alpha=0.3)
    before = masks_of(net)
    updater(1, batch)
    after = masks_of(net)
    for name, score in rule.scores.items():
        grown = after[name] & ~before[name]
        left_out = ~before[name] & ~grown
        if grown.any() and left_out.any():  # no candidate left out scores above a grown one
            assert score[grown].min() >= score[left_out].max(), name


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
    assert updater.updates == 1 and updater.moved > 0
    assert "depth" not in updater.rule.scores
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
    # n = 4 takes the whole union of the two proposals ({0, 1} ∪ {3, 4}), never position 2
    assert rule.select("b", everything, 4).tolist() == [True, True, False, True, True]
    # only inactive positions are proposed: 3 is active, so depth proposes 4 (and 2)
    candidates = torch.tensor([True, True, True, False, True])
    assert rule.select("b", candidates, 1).tolist() == [True, False, False, False, False]
    assert rule.select("b", candidates, 2).tolist() == [True, False, False, False, True]
    inactive = torch.tensor([True, False, True])  # a head uses its own task's scores only
    assert rule.select("h", inactive, 1).tolist() == [False, False, True]


@pytest.mark.parametrize("rule", [JointGradient, UnionOfTaskGradients])
def test_counts_stay_constant_through_training(rule: type) -> None:
    """Adam steps with weight decay and updates in between: every mask keeps its count, and at
    the evaluation iterations every kept weight is non-zero (``weight_orig ⊙ mask``, what a
    checkpoint folds), so a checkpoint has exactly the ERK count."""
    net, batch = _setup(["seg", "depth"], density=0.1)
    specs = list(net.tasks)
    regrow = "zero" if rule is JointGradient else "stale"
    evaluations = {4, 8}
    updater = DynamicSparsity(
        net, deployed_shapes(net), rule(specs), every=2, end=9, alpha=0.5,
        regrow=regrow, evaluations=evaluations,
    )  # fmt: skip
    assert sorted(updater.iterations) == [2, 3, 6, 7]
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
    budget = _counts(masks_of(net))
    weights = prunable_weights(net)
    for iteration in range(1, 10):
        loss = multitask_loss(specs, net(batch["image"]), batch)[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        updater(iteration, batch)
        assert _counts(masks_of(net)) == budget, iteration
        if iteration in evaluations:
            kept = {w.name: w.module.weight_orig * w.module.weight_mask for w in weights}
            assert {n: int(w.ne(0).sum()) for n, w in kept.items()} == budget, iteration
    assert updater.updates == 4


# --- end to end --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rigl", "disparse_dynamic"])
def test_dynamic_methods_end_to_end(method: str, shared_results: Path) -> None:
    record = run(RunConfig("synth-nyuv2", method, ("seg", "depth"), 0.9, "smoke"), progress=False)
    model = load_model(record.directory / "model.pt")
    assert sorted(model.heads) == ["depth", "seg"] and "sn" not in model.heads
    weights = {w.name: w.weight.detach() for w in prunable_weights(model)}
    total = sum(w.numel() for w in weights.values())
    nonzero = sum(int(w.ne(0).sum()) for w in weights.values())
    assert nonzero == round(0.1 * total)  # exactly the ERK budget, after all the updates
    assert abs(1 - nonzero / total - 0.9) <= 0.001
    details = record.metrics["details"]
    assert details["mask_updates"] > 0 and details["weights_regrown"] > 0
    if method == "disparse_dynamic":
        assert bool(weights[STEM].ne(0).all())
        assert details["erk_dense_layers"][0] == STEM


def test_an_update_at_start_moves_weights_before_any_training() -> None:
    net, batch = _setup(["seg", "depth"], density=0.1)
    budget = _counts(masks_of(net))
    before = masks_of(net)
    updater = DynamicSparsity(
        net, deployed_shapes(net), UnionOfTaskGradients(list(net.tasks)), every=5, end=20,
        alpha=0.5, regrow="stale", at_start=True,
    )  # fmt: skip
    updater(0, batch)
    assert updater.updates == 1 and updater.moved > 0
    after = masks_of(net)
    assert _counts(after) == budget and any(not torch.equal(before[n], after[n]) for n in after)
