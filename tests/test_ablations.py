"""Notebook 09's ablations: the variants, coinciding fusion rules trained once, the table rows;
CUT's ``scoring_batches`` option."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import cutlib.ablations
from cutlib.ablations import (
    FAMILIES,
    ablation_cells,
    ablation_row,
    ablation_table,
    fusion_mask_groups,
    variants,
)
from cutlib.experiments import RunConfig, RunRecord, run
from cutlib.methods.cut import CutOptions
from cutlib.profiles.schema import AblationSettings

SECTION = AblationSettings("synth-nyuv2", "seg+depth", "seg+sn+depth", 0.9, batches=[1, 4, 50])


def test_variants_change_one_option_each_and_start_with_the_authors_choice() -> None:
    found = variants(SECTION, default_batches=4)
    families = list(dict.fromkeys(v.family for v in found))
    assert families == list(FAMILIES)
    for family in families:
        first = next(v for v in found if v.family == family)
        assert first.options == (), family  # the authors' (default) choice first
    assert all(len(v.options) <= 1 for v in found)
    batches = [v.options for v in found if v.family == "scoring batches"]
    assert batches == [(), (("scoring_batches", 1),), (("scoring_batches", 50),)]  # 4 = default
    assert {v.tasks for v in found if v.family == "fusion rule"} == {("seg", "sn", "depth")}
    for v in found:  # every variant is a valid cut run
        v.config("synth-nyuv2", 0.9, "smoke", 0).validated()


def test_a_profile_chooses_the_families_and_criteria() -> None:
    section = replace(SECTION, families=["criterion", "keep ratio κ"], criteria=["random"])
    found = variants(section, default_batches=4)
    assert [(v.family, v.options) for v in found] == [
        ("criterion", ()),
        ("criterion", (("criterion", "random"),)),
        ("keep ratio κ", ()),
        ("keep ratio κ", (("keep_ratio", "table"),)),
    ]
    with pytest.raises(ValueError, match="unknown ablation family 'bn'; valid families: fusion"):
        variants(replace(SECTION, families=["bn"]), default_batches=4)


def test_scoring_batches_option_is_validated() -> None:
    assert CutOptions(scoring_batches=3).scoring_batches == 3
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="scoring_batches"):
            CutOptions(scoring_batches=bad)


@pytest.mark.slow
def test_coinciding_fusion_rules_are_trained_once() -> None:
    fusion = [v for v in variants(SECTION, 4) if v.family == "fusion rule"]
    same = fusion_mask_groups(fusion, "synth-nyuv2", 0.9, "smoke")
    # with three tasks: union = vote ≥ 1, intersection = vote ≥ 3, majority = vote ≥ 2
    assert same["union"] == "vote ≥ 1" and same["intersection"] == "vote ≥ 3"
    assert same["majority"] == "vote ≥ 2 (authors)"
    assert len(set(same.values())) == 3
    cells = ablation_cells(fusion, "synth-nyuv2", 0.9, "smoke", 0, skip=same)
    assert len(cells) == 3


@pytest.mark.slow
def test_ablation_row_reads_before_and_after_fine_tuning() -> None:
    variant = next(v for v in variants(SECTION, 4) if v.options == (("scoring_batches", 1),))
    record = run(variant.config("synth-nyuv2", 0.9, "smoke", 0), progress=False).metrics
    row = ablation_row(variant, record, variant.label)
    assert row["same masks as"] == "" and row["Δ_MTL % ↑"] == record["delta_mtl"]
    assert set(row) >= {"Δ_MTL before fine-tuning % ↑", "seg mIoU ↑", "depth abs_err ↓", "κ"}
    default = run(RunConfig("synth-nyuv2", "cut", ("seg", "depth"), 0.9, "smoke"), progress=False)
    assert default.metrics["details"]["keep_ratio"] != record["details"]["keep_ratio"]


def test_ablation_table_reads_each_variants_run_or_the_one_with_the_same_masks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = [v for v in variants(SECTION, 4) if v.family == "fusion rule"][:3]
    assert [v.label for v in chosen] == ["vote ≥ 2 (authors)", "vote ≥ 1", "vote ≥ 3"]
    read = []

    def fake_run(config: RunConfig, progress: bool) -> RunRecord:
        read.append(config.options)
        delta = -float(dict(config.options).get("min_votes", 2))  # Δ_MTL tells the runs apart
        metrics = {"seg": {"mIoU": 0.5}, "sn": {"angle_mean": 30.0}, "depth": {"abs_err": 0.4}}
        record = {
            "dataset": config.dataset,
            "tasks": list(config.tasks),
            "sparsity": {"achieved": 0.9},
            "delta_mtl": delta,
            "metrics": metrics,
            "reference": {"dense": metrics},
            "details": {"keep_ratio": 0.1, "metrics_before_finetune": metrics},
        }
        return RunRecord(tmp_path, record)

    monkeypatch.setattr(cutlib.ablations, "run", fake_run)
    same = {"vote ≥ 3": "vote ≥ 1"}  # pretend vote ≥ 3 gave the masks of vote ≥ 1
    table = ablation_table(chosen, same, "synth-nyuv2", 0.9, "smoke", 0)
    assert read == [(), (("min_votes", 1),), (("min_votes", 1),)]
    assert list(table["variant"]) == ["vote ≥ 2 (authors)", "vote ≥ 1", "vote ≥ 3"]
    assert list(table["same masks as"]) == ["", "", "vote ≥ 1"]
    assert list(table["Δ_MTL % ↑"]) == [-2.0, -1.0, -1.0]
    assert list(table["Δ_MTL before fine-tuning % ↑"]) == [0.0, 0.0, 0.0]
