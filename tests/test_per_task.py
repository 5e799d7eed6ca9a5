"""The fusion rules compared at the same deployed sparsity (:func:`plan_rules`), on hand-made
scores."""

from __future__ import annotations

import torch

from cutlib.pruning.fusion import FUSION_RULES
from cutlib.pruning.per_task import CutMasker, plan_cut, plan_rules

SCORES = {  # two tasks, a shared layer "b" of 4 weights, a head of 2 weights each
    "a": {"b": torch.tensor([3.0, 2, 1, 0]), "ha": torch.tensor([1.5, 0])},
    "c": {"b": torch.tensor([0.0, 2, 1, 3]), "hc": torch.tensor([1.5, 0])},
}


def test_plan_rules_calibrates_each_rule_on_its_own() -> None:
    plans = plan_rules(SCORES, ["a", "c"], {"b"}, 0.5)
    assert list(plans) == list(FUSION_RULES)
    for rule, plan in plans.items():
        expected = plan_cut(CutMasker(SCORES, ["a", "c"], {"b"}, rule), 0.5)
        assert plan.keep_ratio == expected.keep_ratio and plan.sparsity == expected.sparsity
    # with two tasks the vote (≥ 2) and the majority are the intersection
    for rule in ("vote", "majority"):
        assert all(torch.equal(plans[rule].masks[n], plans["intersection"].masks[n]) for n in "b")
    # 4 of the 8 weights are to stay. The intersection gets there with each task's top 4 of its
    # 6 (a: b0 b1 ha0 b2, c: b3 b1 hc0 b2): b1, b2 and both heads' first weight. The union cannot:
    # each task's top 3 (a: b0 b1 ha0, c: b3 b1 hc0) keep b0, b1, b3 and both heads (5 of 8),
    # its top 2 only b0, b1, b3 (3 of 8); the bisection ends at the former.
    assert plans["union"].masks["b"].tolist() == [True, True, False, True]
    assert plans["intersection"].masks["b"].tolist() == [False, True, True, False]
    assert plans["intersection"].masks["ha"].tolist() == [True, False]
    assert plans["intersection"].keep_ratio > plans["union"].keep_ratio
    assert (plans["intersection"].sparsity, plans["union"].sparsity) == (0.5, 3 / 8)


def test_plan_rules_takes_a_subset_of_the_rules() -> None:
    assert list(plan_rules(SCORES, ["a"], {"b"}, 0.5, ["union"])) == ["union"]
