"""The grid's tables: DiSparse's layout with directions, best in bold, mean ± the half-width of its
95 % t interval over seeds; Δ_MTL per sparsity; task selections."""

from __future__ import annotations

import pandas as pd
import pytest

from cutlib.comparison import (
    baseline_runs,
    delta_table,
    method_table,
    selections_table,
)


def _row(method, sparsity, seed, task, metric, higher, value, tasks="seg+depth", protocol="fair"):
    return {
        "dataset": "d",
        "tasks": tasks,
        "method": method,
        "options": "",
        "protocol": protocol,
        "sparsity": sparsity,
        "seed": seed,
        "task": task,
        "metric": metric,
        "higher_is_better": higher,
        "value": value,
    }


@pytest.fixture
def runs() -> pd.DataFrame:
    rows = []
    values = {  # method: (mIoU per seed, abs_err per seed, Δ_MTL per seed)
        "dense": ([0.40, 0.42], [0.50, 0.52], [0.0, 0.0]),
        "cut": ([0.38, 0.40], [0.45, 0.47], [1.0, 2.0]),  # best abs_err (lower), best Δ_MTL
        "snip": ([0.39, 0.41], [0.60, 0.62], [-5.0, -6.0]),  # best mIoU
    }
    for method, (miou, err, delta) in values.items():
        sparsity = 0.0 if method == "dense" else 0.9
        for seed in (0, 1):
            rows += [
                _row(method, sparsity, seed, "seg", "mIoU", True, miou[seed]),
                _row(method, sparsity, seed, "depth", "abs_err", False, err[seed]),
                _row(method, sparsity, seed, "all", "delta_mtl", True, delta[seed]),
            ]
    rows.append(_row("cut", 0.7, 0, "all", "delta_mtl", True, 4.0))
    rows.append(_row("cut", 0.9, 0, "all", "delta_mtl", True, 9.0, tasks="seg+sn"))
    return pd.DataFrame(rows)


def test_method_table_layout_bold_best_by_direction_and_spread(runs: pd.DataFrame) -> None:
    numeric, text = method_table(runs, "d", "seg+depth", 0.9, "fair")
    assert list(text.columns) == ["method", "seg mIoU ↑", "depth abs_err ↓", "Δ_MTL % ↑"]
    assert list(text.method) == ["dense", "cut", "snip"]  # dense first, then by Δ_MTL
    text = text.set_index("method")
    assert text.loc["snip", "seg mIoU ↑"].startswith("**0.40")  # higher is better
    assert text.loc["cut", "depth abs_err ↓"] == "**0.4600 ± 0.1271**"  # lower is better
    assert text.loc["dense", "seg mIoU ↑"] == "0.4100 ± 0.1271"  # never bold
    # two seeds: sd 0.7071, t(0.975, 1) = 12.706, half-width 12.706 · 0.7071 / √2 = 6.35
    assert text.loc["cut", "Δ_MTL % ↑"] == "**1.50 ± 6.35**"
    tied = runs.copy()
    tied.loc[(tied.method == "snip") & (tied.metric == "abs_err"), "value"] = [0.450001, 0.47]
    _, text = method_table(tied, "d", "seg+depth", 0.9, "fair")
    shown = text.set_index("method")["depth abs_err ↓"]
    assert shown["cut"] == shown["snip"] == "**0.4600 ± 0.1271**"  # equal as printed: both bold
    numeric = numeric.set_index("method")
    assert numeric.loc["cut", "seeds"] == 2
    assert numeric.loc["snip", "seg mIoU ↑"] == pytest.approx(0.40)
    with pytest.raises(ValueError, match="no runs"):
        method_table(runs, "d", "seg+depth", 0.5, "fair")


def test_delta_and_selection_tables(runs: pd.DataFrame) -> None:
    numeric, text = delta_table(runs, "d", "seg+depth")
    assert list(text.columns) == ["method (protocol)", "70%", "90%"]
    numeric = numeric.set_index("method (protocol)")
    assert numeric.loc["cut (fair)", "70%"] == 4.0 and numeric.loc["cut (fair)", "90%"] == 1.5
    assert pd.isna(numeric.loc["snip (fair)", "70%"])
    numeric, text = selections_table(runs, "d", 0.9, "fair")
    assert set(text.columns) == {"method", "seg+depth", "seg+sn"}
    assert text.set_index("method").loc["cut", "seg+sn"] == "**9.00**"  # one seed: no ± part


def test_baseline_runs_parse_a_list_or_take_the_profiles_and_put_cut_first() -> None:
    assert baseline_runs("snip:paper,random:fair", {}) == [
        ("cut", "fair"),
        ("snip", "paper"),
        ("random", "fair"),
    ]
    assert baseline_runs("random:fair,cut:paper", {}) == [("random", "fair"), ("cut", "paper")]
    profile = {"cut": ["fair"], "lth": ["fair", "paper"]}
    assert baseline_runs("profile", profile) == [("cut", "fair"), ("lth", "fair"), ("lth", "paper")]
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['nope'\]; valid: "):
        baseline_runs("nope:fair", {})
    with pytest.raises(ValueError, match="'snip' is not method:protocol"):
        baseline_runs("snip", {})


@pytest.fixture
def with_control(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with a control run per seed (Δ_MTL 3 and 4, at sparsity 0)."""
    rows = [
        _row("control", 0.0, seed, task, metric, higher, value)
        for seed, delta in ((0, 3.0), (1, 4.0))
        for task, metric, higher, value in (
            ("seg", "mIoU", True, 0.43),
            ("depth", "abs_err", False, 0.49),
            ("all", "delta_mtl", True, delta),
        )
    ]
    return pd.concat([runs, pd.DataFrame(rows)], ignore_index=True)


def test_the_control_is_a_reference_row_in_every_table(with_control: pd.DataFrame) -> None:
    from cutlib.comparison import control_table

    _, text = method_table(with_control, "d", "seg+depth", 0.9, "fair")
    assert list(text.method) == ["dense", "control", "cut", "snip"]
    shown = text.set_index("method")
    assert not shown.loc["control"].str.startswith("**").any()  # never a contender
    assert shown.loc["cut", "Δ_MTL % ↑"].startswith("**")  # cut stays the best pruned model
    numeric, text = delta_table(with_control, "d", "seg+depth")
    numeric = numeric.set_index("method (protocol)")
    assert list(numeric.index)[0] == "control (fair)"
    assert numeric.loc["control (fair)", "70%"] == numeric.loc["control (fair)", "90%"] == 3.5
    _, text = selections_table(with_control, "d", 0.9, "fair")
    assert text.method.iloc[0] == "control"
    # per seed: cut − control = 1 − 3, 2 − 4 → −2, −2; snip: −8, −10 → −9 ± 12.706·1.414/√2
    numeric, text = control_table(with_control, "d", "seg+depth", "fair")
    numeric, text = numeric.set_index("method"), text.set_index("method")
    assert numeric.loc["cut", "90%"] == -2.0 and numeric.loc["snip", "90%"] == -9.0
    assert text.loc["cut", "90%"] == "-2.00 [-2.00, -2.00]"
    assert text.loc["snip", "90%"] == "-9.00 [-21.71, +3.71]"
    assert numeric.loc["cut", "70%"] == 1.0  # one shared seed: the difference alone
    assert text.loc["cut", "70%"] == "+1.00"
