"""The claims check: margins, verdicts (holds / does not hold / within noise) and their tables,
on constructed inputs."""

from __future__ import annotations

import pandas as pd
import pytest

from cutlib.claims import (
    CLAIMS,
    Claim,
    check_claims,
    margin,
    summarise_claims,
    verdict,
    watershed_verdict,
)
from cutlib.methods import METHODS


def _runs(values: dict[tuple[str, float], list[float]], protocol: str = "fair") -> pd.DataFrame:
    rows = []
    for (method, sparsity), seeds in values.items():
        for seed, value in enumerate(seeds):
            rows.append(
                {
                    "dataset": "d",
                    "tasks": "a+b",
                    "method": method,
                    "options": "",
                    "protocol": protocol,
                    "sparsity": sparsity,
                    "seed": seed,
                    "task": "all",
                    "metric": "delta_mtl",
                    "value": value,
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("better", "worse", "floor", "expected"),
    [
        ([3.0], [1.0], 1.0, "holds"),  # difference 2 > floor 1
        ([1.0], [3.0], 1.0, "does not hold"),
        ([1.5], [1.0], 1.0, "within noise"),
        ([2.0], [1.0], 1.0, "within noise"),  # exactly the margin is not beyond it
        ([0.0, 4.0], [0.0, 0.0], 0.1, "within noise"),  # spread: SE = 2, margin 4 > diff 2
        ([2.0, 2.2], [0.0, 0.2], 0.1, "holds"),  # small spread, diff 2 > margin 0.28
        ([0.0, 0.2], [2.0, 2.2], 0.1, "does not hold"),
    ],
)
def test_verdict_truth_table(better, worse, floor, expected) -> None:
    assert verdict(better, worse, floor) == expected


def test_margin_is_twice_the_standard_error_of_the_difference_or_the_floor() -> None:
    # s² = 2 for [0, 2]; variance of the mean = 1 per side; SE = sqrt(2); margin 2·sqrt(2)
    assert margin([0.0, 2.0], [0.0, 2.0], 0.0) == pytest.approx(2 * 2**0.5)
    assert margin([0.0, 2.0], [0.0, 2.0], 5.0) == 5.0
    assert margin([1.0], [7.0], 0.25) == 0.25  # one seed each: no spread, the floor decides
    with pytest.raises(ValueError, match="noise floor"):
        margin([1.0], [1.0], -1.0)
    with pytest.raises(ValueError, match="at least one value"):
        verdict([], [1.0], 1.0)


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
    checked = check_claims(runs, noise_floor=0.5, claims=claims)
    got = {(r.against, r.sparsity): r.verdict for r in checked.itertuples()}
    assert got == {
        ("cut vs snip", 0.7): "holds",
        ("cut vs snip", 0.9): "within noise",
        ("cut vs magnitude", 0.9): "does not hold",
    }
    row = checked[(checked.against == "cut vs snip") & (checked.sparsity == 0.7)].iloc[0]
    assert row.seeds == 2 and row.better == "+5.10 ± 0.14" and row.difference == pytest.approx(25.6)
    summary = summarise_claims(checked).set_index("against")["overall"].to_dict()
    assert summary == {
        "cut vs snip": "holds in 1, within noise in 1 of 2 settings",
        "cut vs magnitude": "does not hold in any of 1 settings",
    }


def test_protocols_are_separate_settings() -> None:
    runs = pd.concat(
        [
            _runs({("cut", 0.9): [0.0], ("snip", 0.9): [-30.0]}, "paper"),
            _runs({("cut", 0.9): [0.0], ("snip", 0.9): [0.5]}, "fair"),
        ]
    )
    checked = check_claims(runs, 1.0, [Claim("CUT", "beats SNIP", "cut", "snip")])
    assert dict(zip(checked.protocol, checked.verdict, strict=True)) == {
        "fair": "within noise",
        "paper": "holds",
    }


def test_watershed_verdict_on_constructed_curves() -> None:
    assert watershed_verdict([0.9, 0.9, 0.1, 0.1], 0.1)[2] == "holds"
    assert watershed_verdict([0.1, 0.1, 0.9, 0.9], 0.1)[2] == "does not hold"
    assert watershed_verdict([0.5, 0.5, 0.45, 0.5, 0.5], 0.1)[2] == "within noise"
    early, late, _ = watershed_verdict([1.0, float("nan"), 0.5, 0.0], 0.1)  # NaN layers skipped
    assert (early, late) == (1.0, 0.25)
    with pytest.raises(ValueError, match="two layers"):
        watershed_verdict([0.3], 0.1)
