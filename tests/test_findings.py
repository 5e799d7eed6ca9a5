"""The sentences and tables of what a study finds, on constructed runs: the control's place, the
allocation swap's truth table, scoring batches, before fine-tuning, DiSparse's twin."""

from __future__ import annotations

import pandas as pd
import pytest

from cutlib import findings


def _runs(values: dict[tuple[str, float, str], list[float]], tasks: str = "a+b") -> pd.DataFrame:
    rows = []
    for (method, sparsity, options), seeds in values.items():
        for seed, value in enumerate(seeds):
            rows.append(
                {"dataset": "d", "tasks": tasks, "method": method, "options": options}
                | {"protocol": "fair", "sparsity": sparsity, "seed": seed}
                | {"task": "all", "metric": "delta_mtl", "value": value}
            )
    return pd.DataFrame(rows)


def test_control_summary_places_the_control_against_the_dense_model() -> None:
    above = _runs({("control", 0.0, ""): [2.0, 2.2, 2.1]})
    within = _runs({("control", 0.0, ""): [0.3, -0.2, 0.1]}, tasks="c+d")
    summary = findings.control_summary(pd.concat([above, within])).set_index("tasks")
    assert summary.loc["a+b", "against dense"] == "above"
    assert summary.loc["c+d", "against dense"] == "within"
    assert summary.loc["a+b", "control Δ_MTL"] == pytest.approx(2.1)
    text = findings.control_sentence(summary.reset_index())
    assert "d a+b: +2.10 [" in text and "(within)" in text


def test_control_by_seed_reads_one_selection_and_protocol() -> None:
    runs = pd.concat(
        [
            _runs({("control", 0.0, ""): [0.5, -0.5]}),
            _runs({("control", 0.0, ""): [9.0, 9.0]}, tasks="c+d"),
            _runs({("cut", 0.9, ""): [-3.0, -4.0]}),
            _runs({("control", 0.0, ""): [0.5, -0.5]}),  # the same cell in another block
        ]
    )
    paper = _runs({("control", 0.0, ""): [7.0, 7.0]}).assign(protocol="paper")
    both = pd.concat([runs, paper])
    assert findings.control_by_seed(both, "d", "a+b") == {0: 0.5, 1: -0.5}
    assert findings.control_by_seed(both, "d", "a+b", "paper") == {0: 7.0, 1: 7.0}
    assert findings.control_by_seed(both, "d", "e+f") == {}


def test_control_verdict_holds_only_within_on_every_selection() -> None:
    within = _runs({("control", 0.0, ""): [0.3, -0.2, 0.1]})
    below = _runs({("control", 0.0, ""): [-0.3, -0.4, -0.35]}, tasks="c+d")
    above = _runs({("control", 0.0, ""): [2.0, 2.2, 2.1]}, tasks="e+f")
    assert "on 1 of 1 selections: " in findings.control_verdict(findings.control_summary(within))
    assert "**holds**" in findings.control_verdict(findings.control_summary(within))
    text = findings.control_verdict(findings.control_summary(pd.concat([within, below, above])))
    assert "on 1 of 3 selections, above it on 1, below it on 1:" in text
    assert "**does not hold**" in text
    single = _runs({("control", 0.0, ""): [0.3]})
    assert "not judged (one seed)" in findings.control_verdict(findings.control_summary(single))


@pytest.mark.parametrize(
    ("cut", "taylor", "magnitude", "verdict"),
    [
        ([-2.0, -2.1, -1.9], [0.1, -0.1, 0.0], [-2.0, -2.2, -1.8], "explains CUT's loss"),
        ([-2.0, -2.1, -1.9], [-2.0, -2.1, -2.2], [-2.0, -2.2, -1.8], "does not explain"),
        ([-2.0, -2.1, -1.9], [0.1, -0.1, 0.0], [0.2, -0.1, 0.1], "does not explain"),
        ([0.5, -0.4, 0.1], [0.1, -0.1, 0.0], [-2.0, -2.2, -1.8], "nothing to explain"),
        ([2.0, 2.1, 1.9], [0.1, -0.1, 0.0], [2.0, 2.2, 1.8], "explains CUT's advantage"),
        ([2.0, 2.1, 1.9], [2.0, 2.1, 2.2], [2.0, 2.2, 1.8], "does not explain CUT's advantage"),
    ],
)
def test_the_swap_verdict_truth_table(cut, taylor, magnitude, verdict) -> None:
    """Differences to magnitude pruning (at 0 on every seed): the allocation explains CUT's loss
    (or advantage) only when magnitude at CUT's densities moves the same way as CUT and Taylor at
    magnitude's densities does not."""
    runs = _runs(
        {
            ("magnitude", 0.9, ""): [0.0, 0.0, 0.0],
            ("cut", 0.9, ""): cut,
            ("swap_taylor", 0.9, ""): taylor,
            ("swap_magnitude", 0.9, ""): magnitude,
        }
    )
    table = findings.swap_table(runs, "d", "a+b")
    assert set(table["method"]) == {"cut", "swap_taylor", "swap_magnitude"}
    assert verdict in findings.swap_sentence(table, 0.9)


def test_scoring_table_pairs_each_variant_with_the_default() -> None:
    runs = _runs(
        {
            ("cut", 0.9, ""): [1.0, 2.0, 3.0],
            ("cut", 0.9, "scoring_batches=20"): [1.5, 2.5, 3.0],
            ("cut", 0.9, "fusion=union"): [9.0, 9.0, 9.0],  # not a scoring variant
        }
    )
    table = findings.scoring_table(runs, 50).set_index("batches")
    assert list(table.index) == [20, 50]
    assert table.loc[50, "difference"] == 0.0
    assert table.loc[20, "difference"] == pytest.approx(1 / 3)
    assert table.loc[20, "Δ_MTL"] == pytest.approx(7 / 3)


def test_twin_sentence_and_verdicts_by_setting() -> None:
    runs = _runs({("disparse_pt", 0.9, ""): [1.0, 2.0], ("magnitude", 0.9, ""): [1.5, 2.0]})
    sentence = findings.twin_sentence(runs, "d")
    assert "0.25 points of Δ_MTL on average and 0.50 at most, over 2 paired runs" in sentence
    assert "scores by |w|" in sentence
    checked = pd.DataFrame(
        {"against": ["cut vs magnitude"] * 2, "protocol": "fair", "dataset": "d", "tasks": "a+b"}
        | {"sparsity": [0.9, 0.95], "verdict_holm": ["undecided", "does not hold"]}
    )
    text = findings.verdicts_by_setting(checked, "cut vs magnitude")
    assert (
        text == "cut vs magnitude: **undecided** at d a+b (90 %); **does not hold** at d a+b (95 %)"
    )


def test_with_reruns_replaces_only_the_rerun_cells() -> None:
    runs = _runs({("cut", 0.9, ""): [1.0, 2.0], ("magnitude", 0.9, ""): [3.0, 4.0]})
    reruns = pd.DataFrame(
        [
            {"dataset": "d", "tasks": "a+b", "method": "cut", "options": "", "protocol": "fair"}
            | {"sparsity": 0.9, "seed": 1, "record": 2.0, "rerun": 2.5}
        ]
    )
    replaced = findings.with_reruns(runs, reruns)
    assert list(replaced["value"]) == [1.0, 2.5, 3.0, 4.0]
    assert list(runs["value"]) == [1.0, 2.0, 3.0, 4.0]  # the input is not changed
    assert findings.with_reruns(runs, reruns.iloc[:0]) is runs


def _before(values: dict[tuple[str, float], tuple[float, float]]) -> pd.DataFrame:
    """Tidy before-fine-tuning rows: (method, sparsity) -> (stale, recalibrated), one seed."""
    rows = []
    for (method, sparsity), pair in values.items():
        for statistics, value in zip(("stale", "recalibrated"), pair, strict=True):
            rows.append(
                {"dataset": "d", "tasks": "a+b", "method": method, "options": ""}
                | {"protocol": "fair", "sparsity": sparsity, "seed": 0}
                | {"statistics": statistics, "value": value}
            )
    return pd.DataFrame(rows)


def test_before_sentence_holds_only_where_every_setting_rises() -> None:
    raised = _before({("cut", 0.9): (-70.0, -20.0), ("magnitude", 0.95): (-60.0, -30.0)})
    sentence = findings.before_sentence(raised)
    assert "in 2 of 2 settings" in sentence and "**holds**" in sentence
    assert "not raised" not in sentence
    mixed = _before(
        {("cut", 0.9): (-70.0, -20.0), ("cut", 0.98): (-50.0, -80.0), ("magnitude", 0.9): (-1, -2)}
        | {("cut", 0.5): (-9.0, -99.0)}  # below 90 %: not judged
    )
    sentence = findings.before_sentence(mixed)
    assert "in 1 of 3 settings" in sentence and "**does not hold**" in sentence
    assert "not raised for cut in 1 (at 98%), magnitude in 1 (at 90%)" in sentence
