"""The live knobs of notebooks 03 and 04: masks for any setting, the figure, and the widget."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

import cutlib as cl
from cutlib.knobs import MaskExplorer, MaskSetting, explore
from cutlib.models import SceneNet
from cutlib.pruning.masks import prunable_weights


@pytest.fixture
def explorer(tiny_net: SceneNet) -> MaskExplorer:
    layers = cl.reporting.layer_table(tiny_net)
    generator = torch.Generator().manual_seed(0)
    scores = {
        task: {
            w.name: torch.rand(w.weight.shape, generator=generator)
            for w in prunable_weights(tiny_net)
            if w.owner in (cl.BACKBONE, task)
        }
        for task in tiny_net.task_names
    }
    shared = set(layers.name[layers.owner == cl.BACKBONE])
    return MaskExplorer(scores, layers, list(tiny_net.task_names), shared)


def test_union_keeps_a_superset_of_the_vote_and_heads_are_each_tasks_own(
    explorer: MaskExplorer,
) -> None:
    own, vote, needed = explorer.masks(MaskSetting(0.2, "vote", 2))
    _, union, one = explorer.masks(MaskSetting(0.2, "union"))
    assert (needed, one) == (2, 1)
    for name in explorer.masker.shared:
        assert bool((vote[name] <= union[name]).all())
        votes = sum(own[t][name].int() for t in explorer.selected)
        assert torch.equal(vote[name], votes >= 2)
    for task, masks in own.items():
        for name, mask in masks.items():
            if name not in explorer.shared:
                assert torch.equal(vote[name], mask), (task, name)


def test_min_votes_only_moves_the_vote_rule(explorer: MaskExplorer) -> None:
    _, a, _ = explorer.masks(MaskSetting(0.3, "union", 1))
    _, b, _ = explorer.masks(MaskSetting(0.3, "union", 3))
    assert all(torch.equal(a[n], b[n]) for n in a)
    _, one, _ = explorer.masks(MaskSetting(0.3, "vote", 1))
    assert all(torch.equal(a[n], one[n]) for n in a)  # vote ≥ 1 is the union


def test_a_smaller_keep_ratio_gives_a_sparser_model(explorer: MaskExplorer) -> None:
    views = [explorer.draw(MaskSetting(k)) for k in (0.05, 0.2, 0.6)]
    deployed = [v.sparsity["deployed sparsity"] for v in views]
    assert deployed == sorted(deployed, reverse=True) and deployed[0] > deployed[-1]
    view = views[1]
    assert len(view.figure.axes) == 2
    assert f"{view.sparsity['deployed sparsity']:.1%}" in view.figure.axes[0].get_title()
    assert view.summary(MaskSetting(0.2), 2).endswith(
        "votes): " + ", ".join(f"{k} {v:.1%}" for k, v in view.sparsity.items())
    )
    assert view.summary(MaskSetting(0.2), 2, 0.25).endswith("; redrawn in 0.25 s")


def test_the_widget_redraws_and_reports_when_a_knob_moves(tiny_net: SceneNet) -> None:
    pytest.importorskip("ipywidgets")
    layers = cl.reporting.layer_table(tiny_net)
    scores = {
        t: {
            w.name: w.weight.detach().abs()
            for w in prunable_weights(tiny_net)
            if w.owner in (cl.BACKBONE, t)
        }
        for t in tiny_net.task_names
    }
    default, box = explore(scores, layers, list(tiny_net.task_names), MaskSetting(0.1))
    assert default.votes_needed == 2 and default.seconds > 0
    controls, status, _ = box.children
    kappa, rule, votes = controls.children
    assert status.value == "move a knob to redraw"
    rule.value = "union"
    assert votes.disabled and status.value.startswith("κ = 0.100, union (≥ 1 of 3 votes)")
    kappa.value = 0.5
    assert status.value.startswith("κ = 0.500, union")


def test_one_task_cannot_be_fused(tiny_net: SceneNet) -> None:
    with pytest.raises(ValueError, match="at least two"):
        MaskExplorer({}, cl.reporting.layer_table(tiny_net), ["seg"], set())


def test_an_update_in_place_draws_what_a_fresh_figure_draws(explorer: MaskExplorer) -> None:
    live = explorer.draw(MaskSetting(0.4, "union"))
    setting = MaskSetting(0.1, "vote", 3)
    updated, fresh = explorer.update(live, setting), explorer.draw(setting)
    assert updated.figure is live.figure and updated.sparsity == fresh.sparsity
    for mine, theirs in zip(updated.figure.axes[:2], fresh.figure.axes[:2], strict=True):
        assert mine.get_title() == theirs.get_title()
        for a, b in zip(mine.get_lines(), theirs.get_lines(), strict=True):
            assert a.get_label() == b.get_label()
            np.testing.assert_array_equal(a.get_ydata(), b.get_ydata(), a.get_label())
