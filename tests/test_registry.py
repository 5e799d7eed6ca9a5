"""The method registry: a method declared in one place is all the package needs. A toy method,
defined and registered here and nowhere else, runs through ``run``, the grid and its step plan;
the steps it plans are the steps it takes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cutlib.experiments import RunConfig, run
from cutlib.grid import collect, grid_cells, planned_iterations, run_grid
from cutlib.methods import METHODS, Method, MethodResult, RunContext, register, unregister
from cutlib.methods.registry import get_method
from cutlib.pruning.masks import masks_of
from cutlib.pruning.thresholds import Ranking

TOY = "toy_random_rounds"


def toy_random_rounds(ctx: RunContext) -> MethodResult:
    """Random masks on the pre-trained compact model, tightened over the profile's rounds (each
    keeps a random subset of the previous survivors), fine-tuned after each round."""
    model = ctx.pretrained_compact()
    rounds = ctx.spec.method.rounds(ctx.profile)
    alive = masks_of(model)
    for round_ in range(1, rounds + 1):
        keep = (1.0 - ctx.spec.sparsity) ** (round_ / rounds)
        scores = ctx.joint_scores(model, "random")
        masks = {n: s.masked_fill(~alive[n], -1.0) for n, s in scores.items()}
        alive = Ranking(masks).masks(keep)
        result = ctx.train_masked(model, alive, ctx.schedule())
    return result


@pytest.fixture
def toy() -> Iterator[Method]:
    method = register(
        Method(TOY, toy_random_rounds, "pretrained", "a toy, for this test", iterative=True)
    )
    yield method
    unregister(TOY)


def test_registering_twice_under_one_name_is_refused(toy: Method) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(Method(TOY, toy_random_rounds, "scratch", "another"))
    assert register(toy) is toy  # the same declaration again is harmless


def test_unknown_methods_are_named_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown method 'nope'; valid methods: dense"):
        get_method("nope")
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        RunConfig("synth-nyuv2", "nope", profile="smoke").validated()


@pytest.mark.slow
def test_a_method_registered_in_a_test_runs_through_run_and_the_grid(
    toy: Method, shared_results: Path
) -> None:
    assert TOY in METHODS
    block = {
        "datasets": ["synth-nyuv2"],
        "tasks": ["seg+depth"],
        "methods": {TOY: ["fair", "paper"]},
        "sparsities": [0.5],
    }
    cells = grid_cells("smoke", blocks=[block], seeds=[0])
    toys = [c for c in cells if c.config.method == TOY]
    # iterative, so the protocols train differently: one run each
    assert sorted(c.config.protocol for c in toys) == ["fair", "paper"]
    run_grid(cells, progress=False)
    table = collect(cells)
    assert set(table["method"]) == {"dense", "control", TOY}
    for cell in toys:
        record = run(cell.config, progress=False).metrics
        steps = record["details"]["training"]["iterations"]
        assert steps == planned_iterations(cell.config) > 0
        assert record["sparsity"]["achieved"] == pytest.approx(0.5, abs=1e-3)
    fair, paper = sorted(toys, key=lambda c: c.config.protocol)
    assert planned_iterations(paper.config) > planned_iterations(fair.config)
