"""Where each method spends its budget: layer groups from parameter names, kept fractions by
group (by hand), the allocation table, and the scoring-only check on a tiny network."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cutlib import allocation
from cutlib.data import dataset_info, load_dataset
from cutlib.models import SceneNet
from cutlib.profiles import load_profile
from cutlib.pruning.importance import scoring_batches


def _layers() -> pd.DataFrame:
    rows = []
    for method, seed, kept in (
        ("cut", 0, (9, 1, 30)),
        ("cut", 1, (7, 3, 30)),
        ("mag", 0, (5, 5, 5)),
    ):
        for name, k, n in zip(
            ("backbone.stem.0.weight", "backbone.stages.3.0.conv1.weight", "heads.a.b.0.0.weight"),
            kept,
            (10, 100, 40),
            strict=True,
        ):
            rows.append(
                {"method": method, "options": "", "sparsity": 0.9, "seed": seed}
                | {"name": name, "kept": k, "weights": n}
            )
    return pd.DataFrame(rows)


def test_groups_and_fractions_by_hand() -> None:
    fractions = allocation.group_fractions(_layers())
    cut0 = fractions[(fractions.method == "cut") & (fractions.seed == 0)].set_index("group")
    assert list(cut0.index.astype(str)) == ["stem", "stage 4", "heads"]  # depth order
    assert cut0.loc["stem", "kept"] == 0.9 and cut0.loc["stage 4", "kept"] == 0.01
    table = allocation.allocation_table(fractions, 0.9).set_index("method")
    assert table.loc["cut", "stage 4"] == pytest.approx(0.02)  # mean of 1/100 and 3/100
    assert table.loc["mag", "heads"] == pytest.approx(5 / 40)
    shares = allocation.group_shares(_layers()[lambda f: f.method == "mag"])
    assert shares.to_dict() == {"stem": 10 / 150, "stage 4": 100 / 150, "heads": 40 / 150}
    with pytest.raises(ValueError, match="no run at sparsity 0.5"):
        allocation.allocation_table(fractions, 0.5)


def test_scoring_allocation_meets_the_sparsity_for_both_methods() -> None:
    smoke = load_profile("smoke", "synth-nyuv2")
    batches = scoring_batches(load_dataset("synth-nyuv2", "train", smoke, 0), 4, 2, 0)
    torch.manual_seed(0)
    net = SceneNet(dataset_info("synth-nyuv2").tasks, **smoke.model.kwargs())
    layers = allocation.scoring_allocation(net, batches, ["seg", "depth"], 0.8)
    for method in ("cut", "magnitude"):
        kept = (layers[method] * layers["weights"]).sum() / layers["weights"].sum()
        assert kept == pytest.approx(0.2, abs=0.005)
    assert layers.loc[layers.name == "backbone.stem.0.weight", "fan_in"].item() == 3 * 7 * 7
    assert not layers.name.str.startswith("heads.sn.").any()  # the compact model's layers only
    by_group = allocation.allocation_by_group(layers)
    assert by_group["share"].sum() == pytest.approx(1.0)
    assert set(net.heads) == {"seg", "sn", "depth"}  # the model itself is not changed
    assert np.isfinite(allocation.fan_in_slope(layers))
