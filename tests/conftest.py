"""Shared test fixtures. Every test writes runs and results to a temporary folder, never to the
checkout's ``results/``; generated datasets share the project's cache (they are deterministic)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

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
