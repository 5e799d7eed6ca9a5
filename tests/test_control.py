"""The control (the pre-trained model fine-tuned like the pruned ones, nothing pruned), the
BatchNorm re-estimation before fine-tuning, the per-layer counts in a run's record, and the
allocation-swap ablation's masks, on the smoke profile."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from cutlib.experiments import RunConfig, pretraining_config, resolve, run
from cutlib.grid import grid_cells
from cutlib.methods import CONTROL
from cutlib.methods.context import RunContext
from cutlib.profiles import load_profile
from cutlib.train import reestimate_batchnorm

SMOKE = "smoke"
PAIR = ("seg", "depth")


def _run(method: str, sparsity: float | None = None, **kwargs: object) -> dict:
    config = RunConfig("synth-nyuv2", method, PAIR, sparsity, SMOKE, 0, **kwargs)  # type: ignore
    return run(config, progress=False).metrics


def test_the_control_prunes_nothing_and_fine_tunes_like_the_pruned_models(
    shared_results: Path,
) -> None:
    control, cut = _run(CONTROL), _run("cut", 0.9)
    assert control["sparsity"]["target"] == 0.0 and control["sparsity"]["achieved"] == 0.0
    finetune = load_profile(SMOKE).finetune.iterations
    assert control["details"]["training"]["iterations"] == finetune
    assert cut["details"]["training"]["iterations"] == finetune
    assert control["details"]["training"]["start"] == "pretrained"
    assert all(kept == total for kept, total in control["layers"].values())
    assert control["delta_mtl"] != 0.0  # it trained: the smoke model is far from converged


def test_the_control_refuses_a_sparsity() -> None:
    with pytest.raises(ValueError, match="control method prunes nothing"):
        RunConfig("synth-nyuv2", CONTROL, PAIR, 0.5, SMOKE).validated()
    assert RunConfig("synth-nyuv2", CONTROL, PAIR, profile=SMOKE).validated().sparsity == 0.0


def test_every_grid_block_gets_the_dense_model_and_the_control() -> None:
    blocks = [
        {"datasets": ["synth-nyuv2"], "tasks": ["seg+sn", "seg+depth"]}
        | {"methods": {"snip": ["paper"]}, "sparsities": [0.5]}
    ]
    cells = grid_cells(SMOKE, blocks=blocks, seeds=[0])
    references = {(c.config.method, c.config.tasks, c.protocol) for c in cells[:4]}
    assert references == {
        (m, t, "paper") for m in ("dense", CONTROL) for t in (("seg", "sn"), PAIR)
    }
    assert all(c.config.protocol == "fair" for c in cells[:4])  # trained once, reported as paper


def test_records_carry_per_layer_counts_that_add_up(shared_results: Path) -> None:
    metrics = _run("magnitude", 0.9)
    layers = metrics["layers"]
    kept = sum(k for k, _ in layers.values())
    total = sum(n for _, n in layers.values())
    assert 1 - kept / total == pytest.approx(metrics["sparsity"]["achieved"])
    assert all(name.startswith(("backbone.", "heads.seg.", "heads.depth.")) for name in layers)


def test_batchnorm_reestimation_is_the_mean_of_batch_statistics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2))
    weight = model[0].weight.detach().clone()
    batches = [{"image": torch.randn(4, 1, 3, 3) * (i + 1) + i} for i in range(3)]
    reestimate_batchnorm(model, batches, torch.device("cpu"))
    with torch.no_grad():
        outputs = [model[0](b["image"]) for b in batches]
    means = torch.stack([o.mean(dim=(0, 2, 3)) for o in outputs]).mean(0)
    variances = torch.stack([o.var(dim=(0, 2, 3), unbiased=True) for o in outputs]).mean(0)
    assert torch.allclose(model[1].running_mean, means, atol=1e-6)
    assert torch.allclose(model[1].running_var, variances, atol=1e-5)
    assert torch.equal(model[0].weight, weight) and not model.training
    assert model[1].momentum == 0.1  # restored


def test_the_reestimation_does_not_change_the_run(shared_results: Path) -> None:
    """The fine-tuned model is that of the same method run without the re-estimation: it works on
    a copy, and the training seeds its own generators. Planted check: the re-estimated metrics
    differ from the stale ones, so the copy really was re-estimated."""
    config = RunConfig("synth-nyuv2", "cut", PAIR, 0.9, SMOKE, 0).validated()
    pretrained = run(pretraining_config(config), progress=False).directory
    models = {}
    for batches in (20, 0):
        spec = resolve(config)
        spec = replace(spec, settings=spec.settings.override({"eval": {"bn_batches": batches}}))
        result = spec.method.run(RunContext(spec, torch.device("cpu"), False, pretrained))
        models[batches] = (result.model.state_dict(), result.details)
    (with_bn, details), (without, plain) = models[20], models[0]
    assert details["metrics_before_finetune_bn"] != details["metrics_before_finetune"]
    assert "metrics_before_finetune_bn" not in plain
    assert with_bn.keys() == without.keys()
    assert all(torch.equal(with_bn[k], without[k]) for k in with_bn)


def test_the_swaps_take_one_method_s_counts_and_the_other_s_choice(shared_results: Path) -> None:
    magnitude, cut = _run("magnitude", 0.9), _run("cut", 0.9)
    taylor_swap, magnitude_swap = _run("swap_taylor", 0.9), _run("swap_magnitude", 0.9)

    def counts(metrics: dict) -> dict[str, int]:
        return {name: kept for name, (kept, _) in metrics["layers"].items()}

    assert counts(taylor_swap) == counts(magnitude)
    assert counts(magnitude_swap) == counts(cut)
    assert counts(taylor_swap) != counts(cut)
    assert taylor_swap["metrics"] != magnitude["metrics"]  # other weights within the layers
