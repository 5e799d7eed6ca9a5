"""Mixed precision: which precisions exist, where they run, and that the default changes no run."""

from __future__ import annotations

import pytest
import torch

from cutlib.cli import EXIT_BAD_INPUT, main
from cutlib.experiments import RunConfig, full_config, pretraining_config, run_id
from cutlib.train import PRECISIONS, autocast_dtype

SMOKE = RunConfig("synth-nyuv2", "cut", ("seg", "depth"), 0.9, "smoke")


def test_autocast_dtype_per_precision_and_device() -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert [autocast_dtype(p, cuda) for p in PRECISIONS] == [None, torch.bfloat16, torch.float16]
    assert autocast_dtype("fp32", cpu) is None
    for precision in ("bf16", "fp16"):
        with pytest.raises(ValueError, match="CUDA only"):
            autocast_dtype(precision, cpu)
    with pytest.raises(ValueError, match="valid: fp32, bf16, fp16"):
        autocast_dtype("fp8", cuda)


def test_the_default_precision_keeps_run_ids_and_others_get_their_own() -> None:
    default = SMOKE.validated()
    assert "precision" not in full_config(default)["run"]
    bf16 = RunConfig(**{**vars(SMOKE), "precision": "bf16"}).validated()
    assert bf16.precision == "bf16" and run_id(bf16) != run_id(default)
    assert pretraining_config(bf16).precision == "bf16"  # the pre-training trains alike
    with pytest.raises(ValueError, match="unknown precision"):
        RunConfig(**{**vars(SMOKE), "precision": "half"}).validated()


def test_mixed_precision_on_the_cpu_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--dataset", "synth-nyuv2", "--profile", "smoke", "--device", "cpu"]
    assert main([*args, "--precision", "bf16"]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "CUDA only" in error
    with pytest.raises(SystemExit) as exit_status:
        main([*args, "--precision", "fp64"])
    assert exit_status.value.code == EXIT_BAD_INPUT
    assert "'fp32', 'bf16', 'fp16'" in capsys.readouterr().err  # the same as PRECISIONS
