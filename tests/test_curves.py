"""Live training curves for TensorBoard: what a run logs, and --log-dir as bad input without
TensorBoard."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cutlib.cli import EXIT_BAD_INPUT, main
from cutlib.curves import TensorBoardCurves
from cutlib.experiments import RunConfig, run
from cutlib.io import read_json

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)


def _scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(directory))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_each_history_entry_becomes_scalars_at_its_iteration(tmp_path: Path) -> None:
    curves = TensorBoardCurves(tmp_path)
    curves("finetune", {"iteration": 10, "lr": 0.001, "train_loss": 2.0, "val_loss": 2.5})
    curves("finetune", {"iteration": 20, "lr": 0.0005, "train_loss": 1.5, "val_loss": 2.25})
    curves.close()
    scalars = _scalars(tmp_path)
    assert set(scalars) == {"finetune/lr", "finetune/train_loss", "finetune/val_loss"}
    assert scalars["finetune/val_loss"] == [(10, 2.5), (20, 2.25)]


@pytest.mark.slow
def test_a_run_logs_its_history(isolated_results: Path, tmp_path: Path) -> None:
    record = run(RunConfig("synth-nyuv2", "dense", profile="smoke"), log_dir=tmp_path)
    history = read_json(record.directory / "history.json")
    scalars = _scalars(tmp_path / record.directory.name)
    assert [step for step, _ in scalars["pretrain/val_loss"]] == [h["iteration"] for h in history]
    logged = [value for _, value in scalars["pretrain/val_seg"]]
    assert logged == pytest.approx([h["val_seg"] for h in history], rel=1e-6)


def test_log_dir_without_tensorboard_is_bad_input(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "tensorboard" else found(n, *a)
    )
    args = ["run", "--dataset", "synth-nyuv2", "--profile", "smoke", "--log-dir", str(tmp_path)]
    assert main(args) == EXIT_BAD_INPUT
    assert "pip install tensorboard" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
