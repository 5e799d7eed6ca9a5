"""``cutlib bench``: the bare step really trains, the report has every figure, bad devices are
refused (docs/architecture.md#benchmarking-a-machine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cutlib.bench import VARIANTS, Timing, bare_eval_step, bare_train_step
from cutlib.cli import main
from cutlib.models import SceneNet
from cutlib.tasks import TaskSpec
from cutlib.train import checked_device

SMOKE = [
    "bench",
    "--profile",
    "smoke",
    "--variants",
    "eager",
    "--seconds",
    "0.2",
    "--iterations",
    "3",
]
TASKS = [TaskSpec("seg", "seg", 4, ignore_value=255), TaskSpec("depth", "depth", 1)]


def _net() -> SceneNet:
    torch.manual_seed(0)
    return SceneNet(TASKS, "resnet18", 0.125, 8, (1, 2, 3, 4), dropout=0.0)


def test_timing_summarises_median_and_interquartile_range() -> None:
    # statistics.quantiles (exclusive): positions (n + 1)·p = 2.5 and 7.5 of 1…9 ms
    timing = Timing.of([0.001 * k for k in (9, 1, 8, 2, 7, 3, 6, 4, 5)])
    assert (timing.median_ms, timing.iqr_ms, timing.samples) == (5.0, 5.0, 9)
    with pytest.raises(ValueError, match="no times"):
        Timing.of([])


@pytest.mark.parametrize("variant", ["eager", "channels_last"])
def test_a_bare_step_updates_every_parameter(variant: str) -> None:
    net = _net()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    bare_train_step(net, torch.randn(2, 3, 32, 32), variant)()  # type: ignore[arg-type]
    unchanged = [n for n, p in net.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged, unchanged


def test_a_bare_evaluation_step_changes_nothing() -> None:
    net = _net()
    before = {n: t.clone() for n, t in net.state_dict().items()}
    bare_eval_step(net, torch.randn(2, 3, 32, 32))()
    assert all(torch.equal(t, before[n]) for n, t in net.state_dict().items())  # BN stats too


def test_an_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match=", ".join(VARIANTS)):
        bare_train_step(_net(), torch.randn(1, 3, 32, 32), "fast")  # type: ignore[arg-type]


def test_checked_device_refuses_what_this_machine_lacks() -> None:
    assert checked_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        checked_device("cdua")
    with pytest.raises(ValueError, match="not available"):
        checked_device("cuda:99")


@pytest.mark.slow
def test_bench_reports_bare_and_cutlib_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    assert main([*SMOKE, "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads(out.read_text())
    assert report["shapes"]["tasks"] == ["seg", "sn", "depth"]
    assert report["machine"]["device"] == "cpu"
    bare = report["bare_train_step_ms"]["eager"]
    assert bare["median_ms"] > 0 and bare["samples"] >= 1 and bare["first_ms"] > 0
    steps = report["cutlib_train_step_ms"]
    assert steps["unmasked"] > 0 and steps["masked"] > 0
    amortised = report["cutlib_step_amortised_ms"]
    assert amortised > steps["unmasked"]  # the validation pass adds its share
    rounds = report["overhead_rounds"]
    assert len(rounds) == 3 and all(r > -1 for r in rounds)
    assert report["overhead"] == pytest.approx(sorted(rounds)[1], abs=1e-4)  # their median
