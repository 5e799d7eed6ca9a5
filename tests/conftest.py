"""Shared test fixtures. Every test writes runs and results to a temporary folder, never to the
checkout's ``results/``; generated datasets share the project's cache (they are deterministic)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from cutlib.experiments import resolve
from cutlib.models import SceneNet
from cutlib.tasks import TaskSpec

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True)
def isolated_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``results_dir()`` at a fresh temporary folder for each test."""
    results = tmp_path / "results"
    monkeypatch.setenv("CUTLIB_RESULTS", str(results))
    return results


@pytest.fixture(scope="session")
def session_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder shared by the whole session: the smoke pre-training is made once there."""
    return tmp_path_factory.mktemp("session") / "results"


@pytest.fixture
def shared_results(session_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``results_dir()`` at :func:`session_store`, for tests that only add runs to it."""
    monkeypatch.setenv("CUTLIB_RESULTS", str(session_store))
    return session_store


@pytest.fixture(autouse=True)
def fresh_resolutions() -> Iterator[None]:
    """Forget the run configurations resolved during a test (they are cached per process), so a
    test that patches a profile or registers a method leaves nothing behind."""
    yield
    resolve.cache_clear()


def _outcome(directory: Path) -> dict:
    """What a run's folder holds that must not depend on how it was executed: everything but
    wall times."""
    metrics = json.loads((directory / "metrics.json").read_text())
    details = {k: v for k, v in metrics["details"].items() if not k.endswith("seconds")}
    weights = {
        path.name: torch.load(path, weights_only=True)["state_dict"]
        for path in sorted(directory.glob("*.pt"))
    }
    return {
        "record": {k: metrics[k] for k in ("metrics", "delta_mtl", "sparsity", "params")},
        "details": details,
        "history": json.loads((directory / "history.json").read_text()),
        "weights": weights,
    }


@pytest.fixture
def assert_same_runs() -> Callable[[Path, Path], None]:
    """Assert that two run folders hold the same run: metrics, details (times aside), history and
    every tensor of their weight files."""

    def same(first: Path, second: Path) -> None:
        a, b = _outcome(first), _outcome(second)
        assert a["record"] == b["record"]
        assert a["details"] == b["details"]
        assert a["history"] == b["history"]
        assert a["weights"].keys() == b["weights"].keys()
        for name, state in a["weights"].items():
            assert all(torch.equal(state[k], b["weights"][name][k]) for k in state), name

    return same


@pytest.fixture
def three_tasks() -> tuple[TaskSpec, ...]:
    """A seg / sn / depth task set like NYUv2's."""
    return (
        TaskSpec("seg", "seg", 5, ignore_value=255),
        TaskSpec("sn", "sn", 3, loss_weight=2.0),
        TaskSpec("depth", "depth", 1),
    )


@pytest.fixture
def tiny_net(three_tasks: tuple[TaskSpec, ...]) -> SceneNet:
    """A tiny SceneNet, seeded."""
    torch.manual_seed(0)
    return SceneNet(three_tasks, "resnet18", width=0.125, head_channels=8, aspp_rates=(1, 2, 3, 4))


def conv_flops_by_hand(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """FLOPs of every ``Conv2d`` of ``model`` (by module name) from first principles,
    2·N·C_out·H_out·W_out·(C_in/g)·k_h·k_w: the kernel from the weight's shape, the output size
    read by forward hooks on a zero input in eval mode (nothing else of the pass is used)."""
    convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    assert not any(isinstance(m, nn.Linear) for m in model.modules())  # SceneNet has none
    outputs: dict[str, torch.Size] = {}

    def record(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
            assert name not in outputs  # every conv runs once
            outputs[name] = output.shape

        return hook

    hooks = [conv.register_forward_hook(record(name)) for name, conv in convs.items()]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(input_shape))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    flops = {}
    for name, conv in convs.items():
        n, c_out, h_out, w_out = outputs[name]
        _, c_in_per_group, k_h, k_w = conv.weight.shape
        flops[name] = 2 * n * c_out * h_out * w_out * c_in_per_group * k_h * k_w
    return flops


@pytest.fixture
def hand_flops() -> Callable[[nn.Module, tuple[int, ...]], dict[str, int]]:
    """:func:`conv_flops_by_hand`, the independent oracle of the FLOP counter's tests."""
    return conv_flops_by_hand
