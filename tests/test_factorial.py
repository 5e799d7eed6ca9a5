"""The criterion × arbiter factorial: cells read from CUT's option runs, effects as paired
differences by seed, on constructed runs with known effects."""

from __future__ import annotations

import pandas as pd
import pytest

from cutlib.factorial import (
    INTERACTION,
    factorial_effects,
    factorial_table,
    factorial_values,
    parse_options,
)

#: (criterion, fusion) → Δ_MTL of seeds 0, 1, 2 at 90 %
CELLS = {
    ("taylor", "vote"): [2.0, 3.0, 1.0],  # CUT itself: no options
    ("taylor", "union"): [1.0, 2.1, -0.1],  # the vote buys 1.0, 0.9, 1.1
    ("magnitude", "vote"): [0.0, 1.0, -1.0],  # Taylor buys 2 under the vote
    ("magnitude", "union"): [0.0, 1.0, -1.0],  # same masks under magnitude: no arbiter effect
}


def _runs() -> pd.DataFrame:
    rows = []
    for (criterion, fusion), values in CELLS.items():
        options = ",".join(
            f"{k}={v}"
            for k, v, default in (("criterion", criterion, "taylor"), ("fusion", fusion, "vote"))
            if v != default
        )
        for seed, value in enumerate(values):
            rows.append(
                {"dataset": "d", "tasks": "seg+depth", "method": "cut", "options": options}
                | {"protocol": "fair", "sparsity": 0.9, "seed": seed, "task": "all"}
                | {"metric": "delta_mtl", "value": value}
            )
    rows.append(rows[0] | {"options": "min_votes=1", "value": 99.0})  # another ablation: left out
    rows.append(rows[0] | {"method": "magnitude", "value": 99.0})  # another method: left out
    return pd.DataFrame(rows)


def test_parse_options() -> None:
    assert parse_options("criterion=magnitude,fusion=union") == {
        "criterion": "magnitude",
        "fusion": "union",
    }


def test_factorial_values_fill_defaults_and_leave_other_runs_out() -> None:
    values = factorial_values(_runs(), "d", "seg+depth")
    assert len(values) == 12 and 99.0 not in set(values["value"])
    table = factorial_table(values).set_index(["criterion", "fusion"])
    assert table.loc[("taylor", "vote"), "Δ_MTL"] == pytest.approx(2.0)
    assert table.loc[("taylor", "vote"), "seeds"] == 3


def test_factorial_effects_are_paired_differences() -> None:
    effects = factorial_effects(factorial_values(_runs(), "d", "seg+depth")).set_index("effect")
    arbiter = effects.loc["arbiter: vote − union (taylor)"]
    # differences 1.0, 0.9, 1.1: mean 1.0, s = 0.1, ± 4.3027 · 0.1/√3 = 0.2484
    assert arbiter.difference == pytest.approx(1.0)
    assert (arbiter.low, arbiter.high) == pytest.approx((0.7516, 1.2484), abs=1e-4)
    assert arbiter.verdict == "holds"
    criterion = effects.loc["criterion: taylor − magnitude (vote)"]
    assert criterion.difference == pytest.approx(2.0) and criterion.low == pytest.approx(2.0)
    same = effects.loc["arbiter: vote − union (magnitude)"]
    assert same.difference == 0.0 and same.verdict == "undecided"
    assert effects.loc[INTERACTION].difference == pytest.approx(1.0)
