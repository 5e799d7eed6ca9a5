"""Reporting helpers that compute numbers: per-layer mask agreement and the runs table."""

from __future__ import annotations

import math

import pytest
import torch

from cutlib.reporting import mask_agreement, runs_table
from cutlib.tasks import TaskSpec


def test_mask_agreement_densities_and_iou_by_hand() -> None:
    ref = {"a": torch.tensor([True, True, False, False]), "b": torch.tensor([True, False])}
    other = {"a": torch.tensor([True, False, True, False]), "b": torch.tensor([False, False])}
    frame = mask_agreement({"ref": ref, "other": other}, "ref")
    assert frame.loc["a", "ref"] == 0.5 and frame.loc["b", "other"] == 0.0
    assert frame.loc["a", "IoU with ref: other"] == pytest.approx(1 / 3)  # {0} / {0, 1, 2}
    assert frame.loc["b", "IoU with ref: other"] == 0.0
    assert "IoU with ref: ref" not in frame


def test_mask_agreement_leaves_missing_layers_empty() -> None:
    ref = {"a": torch.tensor([True]), "head": torch.tensor([True, False])}
    other = {"a": torch.tensor([True])}
    frame = mask_agreement({"ref": ref, "other": other}, "ref")
    assert math.isnan(frame.loc["head", "other"])
    assert frame.loc["a", "IoU with ref: other"] == 1.0


def test_runs_table_has_one_row_per_run_with_the_first_metric_of_each_task() -> None:
    specs = [TaskSpec("seg", "seg", 3, ignore_value=255), TaskSpec("depth", "depth", 1)]
    record = {
        "method": "snip",
        "protocol": "fair",
        "sparsity": {"achieved": 0.9},
        "delta_mtl": -3.5,
        "metrics": {"seg": {"mIoU": 0.4, "pixel_acc": 0.7}, "depth": {"abs_err": 0.5}},
        "details": {
            "training": {
                "protocol": "fair",
                "start": "scratch",
                "iterations": 60,
                "iterations_since_initialisation": 60,
            }
        },
        "timings": {"total": 12.0},
    }
    table = runs_table([record, record | {"method": "random"}], specs)
    assert list(table.method) == ["snip", "random"]
    assert table.loc[0, "seg mIoU ↑"] == 0.4 and table.loc[0, "depth abs_err ↓"] == 0.5
    assert table.loc[0, "steps since init"] == 60 and table.loc[0, "start"] == "scratch"
