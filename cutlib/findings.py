"""What a study finds, written from its tables: the control, the mechanism tests and the answer to
"does CUT work, and when?" (notebook 07; docs/results.md#does-cut-work-and-when).

Every number in these sentences comes from the runs: the functions take the grid's tidy table
(:func:`cutlib.grid.collect`), the checked claims (:func:`cutlib.claims.check_claims`) and the
allocation table (:func:`cutlib.allocation.allocation_table`) and return tables or Markdown. A
verdict is the paired interval's (uncorrected) or Holm's over the claims table, as named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cutlib.allocation import CHECK_SPARSITY
from cutlib.comparison import DELTA, paired_differences
from cutlib.methods import CONTROL, get_method
from cutlib.methods.cut import NAME as CUT
from cutlib.methods.disparse_pt import NAME as DISPARSE_PT
from cutlib.methods.disparse_pt import DisparsePtOptions
from cutlib.methods.magnitude import METHOD as MAGNITUDE_METHOD
from cutlib.methods.swap import SWAP_MAGNITUDE, SWAP_TAYLOR
from cutlib.profiles import Profile
from cutlib.significance import mean_ci, verdict_of

MAGNITUDE = MAGNITUDE_METHOD.name
#: The methods the allocation swap is read against magnitude pruning with.
SWAP_METHODS = (CUT, SWAP_TAYLOR.name, SWAP_MAGNITUDE.name)


def _interval(mean: float, low: float, high: float) -> str:
    """``+1.23 [+0.50, +1.96]``, or the mean alone without an interval."""
    if np.isnan(low):
        return f"{mean:+.2f}"
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"


def _delta_rows(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[(runs["task"] == DELTA[0]) & (runs["metric"] == DELTA[1])]


def control_summary(runs: pd.DataFrame, protocol: str = "fair") -> pd.DataFrame:
    """The control's Δ_MTL per dataset and task selection (``protocol``'s cells): seeds, mean,
    95 % interval, and where it lies against the dense model: ``above``, ``below`` or ``within``
    (the interval contains 0: fine-tuning alone earned nothing measurable)."""
    chosen = _delta_rows(runs)
    chosen = chosen[(chosen["method"] == CONTROL) & (chosen["protocol"] == protocol)]
    rows = []
    for (dataset, tasks), block in chosen.groupby(["dataset", "tasks"], sort=False):
        estimate = mean_ci(list(block["value"]))
        place = {"holds": "above", "does not hold": "below", "undecided": "within"}
        where = place[verdict_of(estimate)] if estimate.n > 1 else "single seed"
        rows.append(
            {
                "dataset": dataset,
                "tasks": tasks,
                "seeds": estimate.n,
                "control Δ_MTL": estimate.mean,
            }
            | {"low": estimate.low, "high": estimate.high, "against dense": where}
        )
    columns = ["dataset", "tasks", "seeds", "control Δ_MTL", "low", "high", "against dense"]
    return pd.DataFrame(rows, columns=columns)


def control_by_seed(
    runs: pd.DataFrame, dataset: str, tasks: str, protocol: str = "fair"
) -> dict[int, float]:
    """The control's Δ_MTL per seed for one task selection (``protocol``'s cells), to pair a
    table's cells with it by seed (:func:`cutlib.factorial.factorial_table`)."""
    chosen = _delta_rows(runs)
    chosen = chosen[
        (chosen["dataset"] == dataset)
        & (chosen["tasks"] == tasks)
        & (chosen["method"] == CONTROL)
        & (chosen["protocol"] == protocol)
    ].drop_duplicates("seed")
    return dict(zip(chosen["seed"].astype(int), chosen["value"], strict=True))


def control_sentence(summary: pd.DataFrame) -> str:
    """The control in one sentence per selection (:func:`control_summary`)."""
    parts = []
    for row in summary.to_dict("records"):
        shown = _interval(row["control Δ_MTL"], row["low"], row["high"])
        parts.append(f"{row['dataset']} {row['tasks']}: {shown} ({row['against dense']})")
    return (
        "The control (the dense model fine-tuned like the pruned ones, nothing pruned), Δ_MTL "
        "against the dense model with its 95 % interval: " + "; ".join(parts) + "."
    )


def convergence_sentence(table: pd.DataFrame) -> str:
    """How many pre-trainings passed the convergence check, and the range of their gains
    (:func:`cutlib.convergence.convergence_table` with a ``dataset`` column)."""
    passed = int(table["converged"].sum())
    low, high = 100 * table["gain"].min(), 100 * table["gain"].max()
    return (
        f"{passed} of {len(table)} pre-trainings pass the convergence check (the last quarter "
        f"of the steps lowered the best validation loss by {low:.1f}–{high:.1f} %; the check "
        "needs less than 1 %)."
    )


def swap_table(runs: pd.DataFrame, dataset: str, tasks: str) -> pd.DataFrame:
    """CUT and the two allocation swaps against magnitude pruning, paired by seed, at every
    sparsity where the swaps ran: ``method``, ``sparsity``, ``seeds``, ``difference``, ``low``,
    ``high`` and the (uncorrected) ``verdict`` on "beats magnitude"."""
    differences = paired_differences(runs, dataset, tasks, "fair", MAGNITUDE)
    chosen = differences[differences["method"].isin(SWAP_METHODS)]
    swapped = set(chosen.loc[chosen["method"] != CUT, "sparsity"])
    chosen = chosen[chosen["sparsity"].isin(swapped)].copy()
    chosen["verdict"] = [
        "single seed"
        if np.isnan(low)
        else ("holds" if low > 0 else "does not hold" if high < 0 else "undecided")
        for low, high in zip(chosen["low"], chosen["high"], strict=True)
    ]
    return chosen.sort_values(["sparsity", "method"], kind="stable").reset_index(drop=True)


def swap_sentence(table: pd.DataFrame, sparsity: float) -> str:
    """The allocation-swap verdict at ``sparsity`` (hypothesis 3 of the regime study, stated for
    CUT's loss and read the same way for an advantage): where CUT and magnitude pruning differ,
    the allocation explains the difference when magnitude at CUT's layer densities differs from
    magnitude in the same direction as CUT, while Taylor at magnitude's densities does not."""
    rows = {
        r["method"]: r for r in table[np.isclose(table["sparsity"], sparsity)].to_dict("records")
    }
    if set(SWAP_METHODS) - set(rows):
        return f"At {sparsity:.0%} the swap did not run on every method."
    shown = {m: _interval(rows[m]["difference"], rows[m]["low"], rows[m]["high"]) for m in rows}
    side = {"holds": "advantage", "does not hold": "loss"}.get(rows[CUT]["verdict"])
    if side is None:
        verdict = "CUT and magnitude do not differ here, so the swap has nothing to explain"
    elif (
        rows[SWAP_MAGNITUDE.name]["verdict"] == rows[CUT]["verdict"]
        and rows[SWAP_TAYLOR.name]["verdict"] != rows[CUT]["verdict"]
    ):
        verdict = f"the allocation explains CUT's {side} (hypothesis holds)"
    else:
        verdict = f"the allocation does not explain CUT's {side} on its own (hypothesis fails)"
    return (
        f"At {sparsity:.0%}, against magnitude pruning: CUT {shown[CUT]}, Taylor at magnitude's "
        f"layer densities {shown[SWAP_TAYLOR.name]}, magnitude at CUT's layer densities "
        f"{shown[SWAP_MAGNITUDE.name]}: {verdict}."
    )


def stage_sentence(allocation: pd.DataFrame, sparsity: float, stage: str = "stage 4") -> str:
    """CUT's and magnitude's kept fraction of ``stage`` (hypothesis 2: CUT keeps much less of the
    widest stage), from :func:`cutlib.allocation.allocation_table` at ``sparsity``."""
    table = allocation.set_index("method")
    if {CUT, MAGNITUDE} - set(table.index) or stage not in table:
        return f"At {sparsity:.0%} CUT's or magnitude's per-layer counts are not recorded."
    cut, magnitude = table.loc[CUT, stage], table.loc[MAGNITUDE, stage]
    ratio = cut / magnitude if magnitude > 0 else float("nan")
    verdict = "holds" if ratio < STARVED else "does not hold"
    return (
        f"At {sparsity:.0%} CUT keeps {cut:.2%} of {stage}'s weights and magnitude pruning "
        f"{magnitude:.2%} ({ratio:.2f} times as much; uniform would be {1 - sparsity:.0%}): "
        f'"CUT starves the widest stage" (less than {STARVED:.2f} of magnitude\'s fraction) '
        f"**{verdict}**."
    )


#: A stage is *starved* when CUT keeps less than this fraction of what the reference keeps.
STARVED = 1 / 3


def twin_sentence(runs: pd.DataFrame, dataset: str) -> str:
    """How far DiSparse on the pre-trained model is from magnitude pruning on ``dataset``, paired
    by seed over every shared setting: on the presets that score by |w| it is the same method up
    to per-task thresholds and the union, and its claim repeats the magnitude claim."""
    chosen = _delta_rows(runs)
    chosen = chosen[(chosen["dataset"] == dataset) & (chosen["options"].fillna("") == "")]
    keys = ["tasks", "protocol", "sparsity", "seed"]
    pt = chosen[chosen["method"] == DISPARSE_PT].set_index(keys)["value"]
    mag = chosen[chosen["method"] == MAGNITUDE].set_index(keys)["value"]
    shared = pt.index.intersection(mag.index)
    if shared.empty:
        return ""
    gap = (pt[shared] - mag[shared]).abs()
    criterion = DisparsePtOptions().resolved_criterion(dataset)
    return (
        f"On {dataset}, DiSparse on the pre-trained model scores by {CRITERION_NAMES[criterion]} "
        f"(as its code does on that dataset's original) and differs from magnitude pruning by "
        f"{gap.mean():.2f} points of Δ_MTL on average and {gap.max():.2f} at most, over "
        f"{len(shared)} paired runs."
    )


#: How the sentences name DiSparse's criteria on the pre-trained model.
CRITERION_NAMES = {"magnitude": "|w|", "w2grad": "w²·Σ|∂L/∂w|", "taylor": "|w·∂L/∂w|"}


def verdicts_by_setting(checked: pd.DataFrame, against: str, column: str = "verdict_holm") -> str:
    """Where one comparison of the claims table holds, fails and stays undecided under ``fair``,
    each verdict with its selections and their sparsities, e.g.
    ``holds at d a+b (95, 98 %); undecided at d a+b (50, 70, 90 %)``."""
    chosen = checked[(checked["against"] == against) & (checked["protocol"] == "fair")]
    if chosen.empty:
        return f"{against}: not run"
    groups = []
    for verdict, block in chosen.groupby(column, sort=False):
        where = []
        for (dataset, tasks), cell in block.groupby(["dataset", "tasks"], sort=False):
            percents = ", ".join(f"{100 * s:.0f}" for s in sorted(cell["sparsity"]))
            where.append(f"{dataset} {tasks} ({percents} %)")
        groups.append(f"**{verdict}** at {'; '.join(where)}")
    return f"{against}: " + "; ".join(groups)


def answer_lines(
    checked: pd.DataFrame,
    runs: pd.DataFrame,
    comparisons: Sequence[str] = (f"{CUT} vs {MAGNITUDE}", f"{CUT} vs {DISPARSE_PT}"),
) -> list[str]:
    """The claims of CUT against the pre-trained pruners, setting by setting after Holm's
    correction, with DiSparse's resemblance to magnitude pruning on each dataset."""
    lines = [f"- {verdicts_by_setting(checked, against)}" for against in comparisons]
    for dataset in dict.fromkeys(runs["dataset"]):
        sentence = twin_sentence(runs, dataset)
        if sentence:
            lines.append(f"- {sentence}")
    return lines


def scoring_table(runs: pd.DataFrame, default: int) -> pd.DataFrame:
    """CUT with other ``scoring_batches`` than the profile's ``default``, against CUT with the
    default, paired by seed, per dataset, selection and sparsity: ``batches``, ``seeds``,
    ``Δ_MTL`` (mean) and the paired ``difference`` with its interval (empty without such runs)."""
    chosen = _delta_rows(runs)
    chosen = chosen[(chosen["method"] == CUT) & (chosen["protocol"] == "fair")]
    options = chosen["options"].fillna("")
    varied = chosen[options.str.fullmatch(r"scoring_batches=\d+")]
    rows = []
    keys = ["dataset", "tasks", "sparsity"]
    for key, block in varied.groupby(keys, sort=True):
        base = chosen[(options == "") & (chosen[keys] == pd.Series(key, index=keys)).all(axis=1)]
        reference = dict(zip(base["seed"].astype(int), base["value"], strict=True))
        rows.append(_scoring_row(dict(zip(keys, key, strict=True)), default, reference, reference))
        for label, cell in block.groupby("options", sort=False):
            values = dict(zip(cell["seed"].astype(int), cell["value"], strict=True))
            batches = int(label.split("=")[1])
            rows.append(_scoring_row(dict(zip(keys, key, strict=True)), batches, values, reference))
    columns = [*keys, "batches", "seeds", "Δ_MTL", "difference", "low", "high"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values([*keys, "batches"], kind="stable").reset_index(drop=True)


def _scoring_row(
    where: dict[str, object], batches: int, values: dict[int, float], reference: dict[int, float]
) -> dict[str, object]:
    seeds = sorted(set(values) & set(reference))
    mean = mean_ci([values[s] for s in values]).mean
    paired = mean_ci([values[s] - reference[s] for s in seeds])
    return (
        where
        | {"batches": batches, "seeds": len(seeds), "Δ_MTL": mean}
        | {
            "difference": paired.mean,
            "low": paired.low,
            "high": paired.high,
        }
    )


def before_table(before: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Δ_MTL before fine-tuning (:func:`cutlib.grid.collect_before`) with stale and re-estimated
    BatchNorm statistics, ``mean ± half-width`` over seeds, per method (no ablation variant),
    dataset, selection and sparsity under ``fair``, and the fine-tuned Δ_MTL beside them; only
    the methods that keep the pre-trained weights (the others are "before" a training from
    scratch)."""
    chosen = before[(before["protocol"] == "fair") & (before["options"].fillna("") == "")]
    kept = [m for m in set(chosen["method"]) if get_method(m).keeps_pretrained_weights]
    chosen = chosen[chosen["method"].isin(kept)]
    after = _delta_rows(runs)
    after = after[after["options"].fillna("") == ""]
    rows = []
    keys = ["dataset", "tasks", "method", "sparsity"]
    for key, block in chosen.groupby(keys, sort=True):
        row = dict(zip(keys, key, strict=True))
        for statistics, cell in block.groupby("statistics", sort=False):
            row[f"before ({statistics})"] = _spread(cell["value"])
        mask = (after[keys] == pd.Series(key, index=keys)).all(axis=1)
        row["after fine-tuning"] = _spread(after.loc[mask & (after["protocol"] == "fair"), "value"])
        rows.append(row)
    return pd.DataFrame(rows)


def _spread(values: pd.Series) -> str:
    estimate = mean_ci(list(values)) if len(values) else None
    if estimate is None:
        return "—"
    if estimate.n < 2:
        return f"{estimate.mean:+.2f}"
    return f"{estimate.mean:+.2f} ± {estimate.half_width:.2f}"


def paper_network_sentence(by_group: pd.DataFrame, slope: float) -> str:
    """The paper-network scoring check in words (:func:`cutlib.allocation.allocation_by_group`
    and :func:`cutlib.allocation.fan_in_slope` of its layers)."""
    table = by_group.set_index("group")
    widest = table[CUT].idxmin()
    uniform = 1 - CHECK_SPARSITY
    verdict = "holds" if table.loc["stage 4", CUT] < STARVED * uniform else "does not hold"
    return (
        f"On the paper's network as initialised, CUT's one threshold per task keeps "
        f"{table.loc['stem', CUT]:.1%} of the stem and {table.loc['stage 4', CUT]:.2%} of "
        f"stage 4 ({table.loc['stage 4', 'share']:.0%} of the compact model's weights); its "
        f"emptiest group is {widest} ({table.loc[widest, CUT]:.2%}). Across the backbone "
        f"convs, log(kept fraction) falls with log(fan-in) at a slope of {slope:.2f} "
        f'(−1 would be exactly 1/fan-in). "One threshold per task empties the widest stage of '
        f"the paper's network too\" (stage 4 below {STARVED:.2f} of the uniform {uniform:.0%}) "
        f"**{verdict}**."
    )


def against_control_sentence(runs: pd.DataFrame, method: str = CUT) -> str:
    """Where ``method`` lies against the control (paired by seed, uncorrected intervals) under
    ``fair``: below, within or above it, each with its selections and, per sparsity, the mean
    difference in points of Δ_MTL."""
    groups: dict[str, dict[str, list[str]]] = {}
    for dataset, tasks in runs[["dataset", "tasks"]].drop_duplicates().itertuples(index=False):
        differences = paired_differences(runs, dataset, tasks, "fair", CONTROL)
        for row in differences[differences["method"] == method].to_dict("records"):
            if np.isnan(row["low"]):
                place = "single seed"
            else:
                place = "above" if row["low"] > 0 else "below" if row["high"] < 0 else "within"
            shown = f"{100 * row['sparsity']:.0f} %: {row['difference']:+.1f}"
            groups.setdefault(place, {}).setdefault(f"{dataset} {tasks}", []).append(shown)
    if not groups:
        return f"{method} has no control to be compared with in this grid."
    parts = [
        f"**{place}**{' it' if place != 'single seed' else ''} at "
        + "; ".join(f"{where} ({', '.join(v)})" for where, v in by.items())
        for place, by in groups.items()
    ]
    return f"{method} − control, paired by seed: " + "; ".join(parts) + "."


def answer_markdown(
    settings: Profile,
    checked: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    control: pd.DataFrame,
    convergence: pd.DataFrame,
    allocation: Mapping[tuple[str, str], tuple[float, pd.DataFrame]],
    swaps: Mapping[tuple[str, str], pd.DataFrame],
    scoring: pd.DataFrame | None = None,
) -> str:
    """The answer of one profile's grid to "does CUT work, and when?", every number from the
    tables: the pre-training and the control, CUT's claims against the pre-trained pruners after
    Holm's correction, CUT against the control, where the budget goes and the allocation swap."""
    lines = [f"**`{settings.name}`**: {settings.description}.", ""]
    training = [convergence_sentence(convergence)] if len(convergence) else []
    training += [control_sentence(control), control_verdict(control)] if len(control) else []
    lines.append("- **The dense model and the control.** " + " ".join(training))
    lines.append("- **CUT against the pre-trained pruners** (Δ_MTL paired by seed, `fair` budget,")
    lines[-1] += " verdicts after Holm's correction over the claims table):"
    lines += ["  " + line for line in answer_lines(checked, runs)]
    lines.append(f"- **CUT against the control.** {against_control_sentence(runs)}")
    for (dataset, tasks), (sparsity, table) in allocation.items():
        if {CUT, MAGNITUDE} <= set(table["method"]):
            sentence = stage_sentence(table, sparsity)
            lines.append(f"- **Where the budget goes** ({dataset}, {tasks}). {sentence}")
    for (dataset, tasks), table in swaps.items():
        sentences = [swap_sentence(table, s) for s in sorted(set(table["sparsity"]))]
        lines.append(f"- **The allocation swap** ({dataset}, {tasks}). " + " ".join(sentences))
    if scoring is not None and len(scoring):
        lines.append(f"- **Scoring batches.** {scoring_sentence(scoring)}")
    return "\n".join(lines) + "\n"


def init_against_trained(untrained: pd.DataFrame, trained: pd.DataFrame) -> pd.DataFrame:
    """CUT's kept fraction by group on a network as initialised
    (:func:`cutlib.allocation.allocation_by_group` of :func:`cutlib.allocation.
    untrained_allocation`) beside the same profile's trained runs at the same sparsity (a row of
    :func:`cutlib.allocation.allocation_table`): does the untrained pattern predict the trained
    one?"""
    row = trained.set_index("method").loc[CUT]
    table = untrained.set_index("group")[["share", CUT]].rename(
        columns={CUT: "CUT, as initialised"}
    )
    table["CUT, pre-trained (mean over seeds)"] = [row.get(g, np.nan) for g in table.index]
    return table.reset_index()


def scoring_sentence(table: pd.DataFrame) -> str:
    """Hypothesis 5 of the regime study: every scoring-batch variant's paired difference to the
    default has an interval that contains 0 (:func:`scoring_table`)."""
    variants = table[table["difference"] != 0.0]
    parts = [
        f"{int(r['batches'])} batches {_interval(r['difference'], r['low'], r['high'])}"
        for r in variants.to_dict("records")
    ]
    same = all(r["low"] <= 0 <= r["high"] for r in variants.to_dict("records"))
    judged = not variants["low"].isna().any()
    verdict = ("holds" if same else "does not hold") if judged else "not judged (one seed)"
    return (
        "CUT's Δ_MTL against the default number of scoring batches, paired by seed: "
        + "; ".join(parts)
        + f': "the number of scoring batches does not matter" **{verdict}**.'
    )


def control_verdict(summary: pd.DataFrame) -> str:
    """Hypothesis 1: the control lies within its interval of the dense model on every selection
    (:func:`control_summary`)."""
    places = summary["against dense"]
    within = places == "within"
    judged = (places != "single seed").all()
    verdict = ("holds" if within.all() else "does not hold") if judged else "not judged (one seed)"
    outside = "".join(
        f", {where} it on {int((places == where).sum())}"
        for where in ("above", "below")
        if (places == where).any()
    )
    return (
        f"The control is within its interval of the dense model on {int(within.sum())} of "
        f"{len(summary)} selections{outside}: "
        f'"fine-tuning alone neither earns nor costs anything" **{verdict}**.'
    )


def before_sentence(before: pd.DataFrame, at_least: float = 0.9) -> str:
    """Hypothesis 6 of the regime study: at ``at_least`` sparsity and above, the compact models
    before fine-tuning score higher with re-estimated BatchNorm statistics than with the stale
    ones (:func:`cutlib.grid.collect_before`; means over seeds, per method, selection and
    sparsity, the methods that keep the pre-trained weights)."""
    chosen = before[
        (before["protocol"] == "fair")
        & (before["options"].fillna("") == "")
        & (before["sparsity"] >= at_least - 1e-9)
    ]
    kept = [m for m in set(chosen["method"]) if get_method(m).keeps_pretrained_weights]
    chosen = chosen[chosen["method"].isin(kept)]
    means = chosen.pivot_table(
        index=["dataset", "tasks", "method", "sparsity"], columns="statistics", values="value"
    )
    if means.empty or {"stale", "recalibrated"} - set(means.columns):
        return "No run records both evaluations before fine-tuning."
    higher = means["recalibrated"] > means["stale"]
    gain = (means["recalibrated"] - means["stale"]).median()
    verdict = "holds" if higher.all() else "does not hold"
    return (
        f"At {at_least:.0%} and above, re-estimating BatchNorm raises Δ_MTL before fine-tuning in "
        f"{int(higher.sum())} of {len(higher)} settings (median gain {gain:+.1f} points)"
        f"{_not_raised(higher)}: "
        f'"the stale statistics understate what the masks kept" **{verdict}**.'
    )


def _not_raised(higher: pd.Series) -> str:
    """Where re-estimation did not raise Δ_MTL: per method, in how many settings and at which
    sparsities (``higher`` indexed by dataset, tasks, method and sparsity)."""
    lower = higher[~higher].reset_index()
    if lower.empty:
        return ""
    parts = []
    for method, rows in lower.groupby("method", sort=True):
        sparsities = ", ".join(f"{s:.0%}" for s in sorted(set(rows["sparsity"])))
        parts.append(f"{method} in {len(rows)} (at {sparsities})")
    return "; not raised for " + ", ".join(parts)


def rerun_summary(differences: pd.DataFrame) -> pd.DataFrame:
    """Per method (with its options): how many records were re-run, and the mean and largest
    absolute gap between a re-run's Δ_MTL and its record's (:func:`cutlib.grid.rerun_differences`,
    each run counted once)."""
    unique = differences.drop_duplicates(
        ["dataset", "tasks", "method", "options", "sparsity", "seed"]
    )
    gap = (unique["rerun"] - unique["record"]).abs()
    table = unique.assign(gap=gap).groupby(["method", "options"], sort=True)["gap"]
    return table.agg(runs="count", mean="mean", largest="max").reset_index()


def with_reruns(runs: pd.DataFrame, reruns: pd.DataFrame) -> pd.DataFrame:
    """``runs`` (the tidy table) with the Δ_MTL of every re-run cell (:func:`cutlib.grid.
    rerun_differences`) replaced by its re-run's: where a study's records come from another
    machine than its later runs, comparing the later runs with the re-runs pairs runs made on
    one machine from one pre-trained model per seed."""
    if reruns.empty:
        return runs
    keys = ["dataset", "tasks", "method", "options", "protocol", "sparsity", "seed"]
    rerun = reruns.drop_duplicates(keys).set_index(keys)["rerun"]
    delta = (runs["task"] == DELTA[0]) & (runs["metric"] == DELTA[1])
    index = pd.MultiIndex.from_frame(runs.loc[delta, keys])
    replaced = rerun.reindex(index).to_numpy()
    values = runs.loc[delta, "value"].to_numpy()
    runs = runs.copy()
    runs.loc[delta, "value"] = np.where(np.isnan(replaced), values, replaced)
    return runs
