"""``cutlib throughput``: the model at full size, the input pipeline per number of workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cutlib.cli import EXIT_BAD_INPUT, main
from cutlib.throughput import summary_table, throughput


def test_a_small_report_has_every_measure() -> None:
    report = throughput(
        "smoke",
        "synth-nyuv2",
        torch.device("cpu"),
        workers=(0, 1),
        input_batches=2,
        steps=2,
        min_run_time=0.01,
    )
    assert report["model"]["crop"] == [48, 48] and report["model"]["batch_size"] == 8
    assert report["model"]["parameters"] > 0
    assert report["bare_train_step_ms"]["fp32"]["median_ms"] > 0
    assert set(report["input"]) == {"0", "1"}
    assert all(rate["samples_per_s"] > 0 for rate in report["input"].values())
    assert set(report["cutlib_train_step_ms"]) == {"0 workers, fp32", "1 worker, fp32"}
    table = summary_table({"smoke": report})
    assert "input pipeline, 1 worker " in table and "cutlib step, 0 workers, fp32" in table


def test_the_command_writes_its_report_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "scale" / "smoke.json"
    argv = ["throughput", "--profile", "smoke", "--dataset", "synth-nyuv2", "--device", "cpu"]
    assert (
        main([*argv, "--workers", "0", "--batches", "1", "--seconds", "0.01", "--out", str(out)])
        == 0
    )
    assert json.loads(out.read_text())["input"]["0"]["batch_ms"] > 0
    assert "bare training step, fp32" in (out.parent / "summary.md").read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--precisions", "bf16"], "bf16 mixed precision runs on CUDA only"),
        (["--workers", "0,-1"], "must be 0 or more"),
        (["--dataset", "nyuv3"], "unknown dataset 'nyuv3'"),
        (["--profile", "huge"], "unknown profile 'huge'"),
        (["--dataset", "nyuv2", "--data-root", "/nonexistent/nyuv2"], "no nyuv2 dataset here"),
    ],
)
def test_bad_input_is_one_line(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["throughput", "--profile", "smoke", "--dataset", "synth-nyuv2", "--device", "cpu"]
    try:
        code = main([*argv, *extra])
    except SystemExit as exit_:  # argparse's own checks
        code = exit_.code
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
