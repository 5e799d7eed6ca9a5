"""The claims check: paired differences by seed, their intervals and verdicts (holds / does not
hold / undecided / single seed), and their tables, on constructed inputs."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from cutlib.claims import (
    CLAIMS,
    Claim,
    check_claims,
    claims_markdown,
    compare,
    summarise_claims,
    watershed_verdict,
)
from cutlib.methods import METHODS


def _runs(
    values: dict[tuple[str, float], list[float]], protocol: str = "fair", options: str = ""
) -> pd.DataFrame:
    rows = []
    for (method, sparsity), seeds in values.items():
        for seed, value in enumerate(seeds):
            rows.append(
                {
                    "dataset": "d",
                    "tasks": "a+b",
                    "method": method,
                    "options": options,
                    "protocol": protocol,
                    "sparsity": sparsity,
                    "seed": seed,
                    "task": "all",
                    "metric": "delta_mtl",
                    "value": value,
                }
            )
    return pd.DataFrame(rows)


def test_compare_is_the_paired_t_interval_of_the_per_seed_differences() -> None:
    # differences 2, 2.3, 1.6: mean 1.9667, s = 0.3512, t(0.975, 2) = 4.3027 → ± 0.8724
    row = compare({0: 3.0, 1: 3.5, 2: 2.5}, {0: 1.0, 1: 1.2, 2: 0.9})
    assert row["seeds"] == 3
    assert row["difference"] == pytest.approx(1.966667, abs=1e-6)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((1.0942, 2.8391), abs=1e-3)
    # (t(0.975, 2) + t(0.8, 2)) · s/√3 = (4.3027 + 1.0607) · 0.2028
    assert row["detectable"] == pytest.approx(1.0876, abs=1e-3)
    assert row["verdict"] == "holds"
    assert row["better"] == "+3.00 ± 1.24"  # s = 0.5, 4.3027 · 0.5/√3


def test_pairing_removes_the_variation_both_methods_share() -> None:
    # each seed moves both methods alike; unpaired, the means' intervals overlap widely
    better = {0: 10.0, 1: 0.0, 2: -10.0, 3: 5.0}
    worse = {s: v - 1.0 + 0.01 * s for s, v in better.items()}
    assert compare(better, worse)["verdict"] == "holds"


@pytest.mark.parametrize(
    ("better", "worse", "expected"),
    [
        ({0: 2.0, 1: 2.2, 2: 2.1}, {0: 0.0, 1: 0.1, 2: 0.0}, "holds"),
        ({0: 0.0, 1: 0.1, 2: 0.0}, {0: 2.0, 1: 2.2, 2: 2.1}, "does not hold"),
        ({0: 1.0, 1: -1.0, 2: 0.5}, {0: 0.0, 1: 0.0, 2: 0.0}, "undecided"),
        ({0: 5.0}, {0: 0.0}, "single seed"),  # no spread, no verdict, whatever the gap
        ({0: 5.0, 1: 5.0}, {1: 0.0, 2: 0.0}, "single seed"),  # only seed 1 is shared
    ],
)
def test_verdict_truth_table(better, worse, expected) -> None:
    assert compare(better, worse)["verdict"] == expected


def test_a_single_seed_shows_its_difference_without_an_interval() -> None:
    row = compare({0: 5.0}, {0: 1.5})
    assert row["difference"] == 3.5 and row["better"] == "+5.00"
    assert all(math.isnan(row[key]) for key in ("ci_low", "ci_high", "detectable"))
    with pytest.raises(ValueError, match="no shared seed"):
        compare({0: 1.0}, {1: 1.0})


def test_every_claim_names_registered_methods() -> None:
    for claim in CLAIMS:
        assert claim.better in METHODS and claim.worse in METHODS, claim


def test_check_claims_compares_only_settings_where_both_methods_ran() -> None:
    runs = _runs(
        {
            ("cut", 0.7): [5.0, 5.2],
            ("cut", 0.9): [-1.0, -1.2],
            ("snip", 0.7): [-20.0, -21.0],  # CUT clearly better at 70 %
            ("snip", 0.9): [-1.1, -0.9],  # indistinguishable at 90 %
            ("magnitude", 0.9): [3.0, 3.1],  # CUT clearly worse; magnitude has no 70 % run
        }
    )
    claims = [Claim("CUT", "beats SNIP", "cut", "snip"), Claim("CUT", "beats", "cut", "magnitude")]
    checked = check_claims(runs, claims=claims)
    got = {(r.against, r.sparsity): r.verdict for r in checked.itertuples()}
    assert got == {
        ("cut vs snip", 0.7): "holds",
        ("cut vs snip", 0.9): "undecided",
        ("cut vs magnitude", 0.9): "does not hold",
    }
    row = checked[(checked.against == "cut vs snip") & (checked.sparsity == 0.7)].iloc[0]
    assert row.seeds == 2 and row.difference == pytest.approx(25.6)
    summary = summarise_claims(checked).set_index("against")["uncorrected"].to_dict()
    assert summary == {
        "cut vs snip": "holds in 1, undecided in 1 of 2 settings",
        "cut vs magnitude": "does not hold in any of 1 settings",
    }


def test_protocols_are_separate_settings_and_ablation_variants_are_left_out() -> None:
    runs = pd.concat(
        [
            _runs({("cut", 0.9): [0.0, 0.1], ("snip", 0.9): [-30.0, -31.0]}, "paper"),
            _runs({("cut", 0.9): [0.0, 0.1], ("snip", 0.9): [0.5, 0.6]}, "fair"),
            _runs({("cut", 0.9): [-50.0, -50.0]}, "fair", options="fusion=union"),
        ]
    )
    checked = check_claims(runs, [Claim("CUT", "beats SNIP", "cut", "snip")])
    assert dict(zip(checked.protocol, checked.verdict, strict=True)) == {
        "fair": "does not hold",
        "paper": "holds",
    }
    fair = checked[checked.protocol == "fair"].iloc[0]
    assert fair.difference == pytest.approx(-0.5)  # the union variant's −50 is not CUT


def test_claims_markdown_gives_interval_detectable_difference_and_verdict() -> None:
    runs = _runs({("cut", 0.9): [2.0, 2.2, 2.1], ("snip", 0.9): [0.0, 0.1, 0.0]})
    checked = check_claims(runs, [Claim("CUT", "beats SNIP", "cut", "snip")])
    text = claims_markdown(checked, pd.DataFrame(), profile="study", watershed_margin=0.1)
    row = next(line for line in text.splitlines() if "| cut vs snip" in line and "90%" in line)
    # differences 2.0, 2.1, 2.1: mean 2.0667, s = 0.0577, ± 4.3027 · 0.0577/√3 = 0.1434
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # then p (t = 62.0 with 2 degrees of freedom), the verdict, Holm's (one test: the same p),
    # and both sides against the control, which did not run here
    assert cells[-9:] == ["+2.07", "[+1.92, +2.21]", "0.18", "0.000", "holds", "0.000", "holds"] + [
        "—",
        "—",
    ]


def test_watershed_verdict_on_constructed_curves() -> None:
    assert watershed_verdict([0.9, 0.9, 0.1, 0.1], 0.1)[2] == "holds"
    assert watershed_verdict([0.1, 0.1, 0.9, 0.9], 0.1)[2] == "does not hold"
    assert watershed_verdict([0.5, 0.5, 0.45, 0.5, 0.5], 0.1)[2] == "undecided"
    early, late, _ = watershed_verdict([1.0, float("nan"), 0.5, 0.0], 0.1)  # NaN layers skipped
    assert (early, late) == (1.0, 0.25)
    with pytest.raises(ValueError, match="two layers"):
        watershed_verdict([0.3], 0.1)


def test_holm_and_the_control_columns() -> None:
    """Two claims over three settings; Holm adjusts the family of judged rows, and each side is
    also given against the control, paired by seed."""
    from cutlib.significance import holm

    values = {
        ("cut", 0.9): [1.0, 1.1, 1.3, 0.9],
        ("magnitude", 0.9): [0.0, 0.2, 0.1, 0.1],
        ("cut", 0.7): [1.0, 2.0, 0.5, 1.5],
        ("magnitude", 0.7): [0.6, 0.9, 1.0, 0.8],
        ("snip", 0.9): [0.5, 1.4, 0.2, 1.3],
        ("control", 0.0): [2.0, 2.0, 2.0, 2.0],
    }
    checked = check_claims(_runs(values))
    assert len(checked) == 3
    assert list(checked["p_holm"]) == pytest.approx(holm(list(checked["p"])))
    for row in checked.to_dict("records"):
        expected = (
            "undecided"
            if row["p_holm"] >= 0.05
            else ("holds" if row["difference"] > 0 else "does not hold")
        )
        assert row["verdict_holm"] == expected
        assert (row["p"] < 0.05) == (row["verdict"] != "undecided")
    strong = checked[(checked.against == "cut vs magnitude") & (checked.sparsity == 0.9)].iloc[0]
    # cut − control per seed: −1, −0.9, −0.7, −1.1: mean −0.925, sd 0.1708, t(0.975, 3) = 3.1824
    assert strong["better − control"] == "-0.93 [-1.20, -0.65]"
    assert strong["verdict"] == strong["verdict_holm"] == "holds"


def test_summaries_count_the_holm_verdicts_and_keep_the_uncorrected_in_words() -> None:
    frame = pd.DataFrame(
        {
            "source": ["CUT"] * 3,
            "claim": ["c"] * 3,
            "against": ["cut vs snip"] * 3,
            "verdict": ["holds", "does not hold", "undecided"],
            "verdict_holm": ["undecided", "does not hold", "undecided"],
        }
    )
    row = summarise_claims(frame).iloc[0]
    assert (row["holds"], row["does not hold"], row["undecided"]) == (0, 1, 2)
    assert row["uncorrected"] == "holds in 1, does not hold in 1, undecided in 1 of 3 settings"
