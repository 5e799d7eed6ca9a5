"""The grid's tables, from the tidy table of :func:`cutlib.grid.collect` (its figures are in
:mod:`cutlib.comparison_figures`).

Tables follow DiSparse's layout (docs/method/disparse.md#published-results): one row per method, one
column per metric of the selected tasks with its direction (↑ higher is better, ↓ lower), the best
method in **bold** (the dense reference and the control, the dense model fine-tuned like the
pruned ones, are not contenders; both rows are in every table), ``mean ± CI`` over seeds when there
are several: the half-width of the mean's 95 % Student-t interval
(docs/method/metrics.md#statistics-over-seeds). Each table comes as a numeric frame (means; the
CSV) and a formatted one (the Markdown).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cutlib.io import project_root
from cutlib.methods import CONTROL, DENSE, METHODS, get_method
from cutlib.methods.cut import NAME as CUT
from cutlib.significance import mean_ci, paired_comparison
from cutlib.tasks import TaskSpec

#: The Δ_MTL rows of the tidy table.
DELTA = ("all", "delta_mtl")
#: The rows every table carries beside the pruned models, at sparsity 0 (never in bold).
REFERENCE_ROWS = (DENSE, CONTROL)


def column_label(task: str, metric: str, higher: bool) -> str:
    """``"seg mIoU ↑"``; Δ_MTL is ``"Δ_MTL % ↑"``."""
    if (task, metric) == DELTA:
        return "Δ_MTL % ↑"
    return f"{task} {metric} {'↑' if higher else '↓'}"


def _summary(values: pd.Series) -> tuple[float, float, int]:
    """The mean, the half-width of its 95 % Student-t interval (NaN for one value), the count."""
    estimate = mean_ci(list(values))
    return estimate.mean, estimate.half_width, estimate.n


def _formatted(mean: float, half_width: float, n: int, precision: int) -> str:
    if n > 1:
        return f"{mean:.{precision}f} ± {half_width:.{precision}f}"
    return f"{mean:.{precision}f}"


def _bold_best(
    means: dict[str, float], text: dict[str, str], higher: bool, exclude: Sequence[str] = ()
) -> None:
    """Put the best mean's text in bold, and every other text equal to it as printed (ties);
    the rows in ``exclude`` are not contenders."""
    contenders = {k: m for k, m in means.items() if k not in exclude}
    if not contenders:
        return
    shown = text[(max if higher else min)(contenders, key=contenders.get)]
    for key in contenders:
        if text[key] == shown:
            text[key] = f"**{shown}**"


def _significant_precision(value: float) -> int:
    """Decimals that show about four significant digits (at least 2)."""
    if value == 0 or not np.isfinite(value):
        return 2
    return int(max(2, 3 - np.floor(np.log10(abs(value)))))


def variants_apart(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with each run that has method options (an ablation variant) named
    ``method [options]`` in the ``method`` column, so that a table keeps it apart from the method
    as published.

    Example:
        >>> frame = pd.DataFrame({"method": ["cut", "cut"], "options": ["", "fusion=union"]})
        >>> list(variants_apart(frame)["method"])
        ['cut', 'cut [fusion=union]']
    """
    if "options" not in runs:
        return runs
    options = runs["options"].fillna("")
    named = runs["method"].where(options == "", runs["method"] + " [" + options + "]")
    return runs.assign(method=named)


def method_table(
    runs: pd.DataFrame, dataset: str, tasks: str, sparsity: float, protocol: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """DiSparse's layout for one setting: rows = methods (dense and the control first, then by
    Δ_MTL), columns = every metric of the selected tasks and Δ_MTL.

    Returns:
        ``(numeric, formatted)``: means (with a ``seeds`` column) for the CSV; ``mean ± CI``
        strings with the best method of each column in bold for the Markdown.

    Raises:
        ValueError: if the grid has no run of this setting.
    """
    runs = variants_apart(runs)
    chosen = runs[
        (runs["dataset"] == dataset)
        & (runs["tasks"] == tasks)
        & (runs["protocol"] == protocol)
        & (np.isclose(runs["sparsity"], sparsity) | runs["method"].isin(REFERENCE_ROWS))
    ]
    if chosen[~chosen["method"].isin(REFERENCE_ROWS)].empty:
        raise ValueError(
            f"no runs for {dataset} / {tasks} / {protocol} at sparsity {sparsity:g} in the grid"
        )
    return _wide(chosen, "method")


def _wide(chosen: pd.DataFrame, row_key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    columns = chosen[["task", "metric", "higher_is_better"]].drop_duplicates()
    columns = pd.concat(
        [columns[columns["task"] != "all"], columns[columns["task"] == "all"]], ignore_index=True
    )
    numeric: dict[str, dict[str, float]] = {}
    text: dict[str, dict[str, str]] = {}
    seeds: dict[str, int] = {}
    for task, metric, higher in columns.itertuples(index=False):
        label = column_label(task, metric, higher)
        cells = chosen[(chosen["task"] == task) & (chosen["metric"] == metric)]
        stats = {key: _summary(group["value"]) for key, group in cells.groupby(row_key, sort=False)}
        precision = (
            2
            if (task, metric) == DELTA
            else max(_significant_precision(m) for m, _, _ in stats.values())
        )
        numeric[label] = {key: m for key, (m, _, _) in stats.items()}
        text[label] = {key: _formatted(m, s, n, precision) for key, (m, s, n) in stats.items()}
        seeds |= {key: n for key, (_, _, n) in stats.items()}
        _bold_best(numeric[label], text[label], bool(higher), exclude=REFERENCE_ROWS)
    frame = pd.DataFrame(numeric)
    order = [r for r in REFERENCE_ROWS if r in frame.index]
    delta = column_label(*DELTA, True)
    others = frame.drop(index=order)
    if delta in frame:
        others = others.sort_values(delta, ascending=False)
    order += list(others.index)
    frame = frame.loc[order]
    formatted = pd.DataFrame(text).loc[order]
    frame.insert(0, "seeds", pd.Series(seeds))
    return (
        frame.rename_axis(row_key).reset_index(),
        formatted.rename_axis(row_key).reset_index(),
    )


def delta_table(runs: pd.DataFrame, dataset: str, tasks: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Δ_MTL of every method (and protocol) at every sparsity of one dataset and selection:
    rows = ``method (protocol)``, columns = sparsities, the best pruned model of each column in
    bold; the control (nothing pruned, fine-tuned like the others) repeats its one value in every
    column, as the level a pruned model has to reach to have lost nothing."""
    runs = variants_apart(runs)
    chosen = runs[
        (runs["dataset"] == dataset)
        & (runs["tasks"] == tasks)
        & (runs["task"] == DELTA[0])
        & (runs["metric"] == DELTA[1])
        & (runs["method"] != DENSE)
    ].copy()
    pruned = chosen[chosen["method"] != CONTROL]
    if pruned.empty:
        raise ValueError(f"no pruned runs for {dataset} / {tasks} in the grid")
    chosen = _control_at(chosen, sorted(set(pruned["sparsity"])))
    chosen["method (protocol)"] = chosen["method"] + " (" + chosen["protocol"] + ")"
    chosen["sparsity (printed)"] = chosen["sparsity"].map(lambda s: f"{s:.0%}")
    controls = [f"{CONTROL} ({p})" for p in sorted(set(chosen["protocol"]))]
    return _pivot(chosen, "method (protocol)", "sparsity (printed)", first=controls)


def _control_at(rows: pd.DataFrame, sparsities: Sequence[float]) -> pd.DataFrame:
    """``rows`` with the control's rows (at sparsity 0) repeated at each of ``sparsities``."""
    control = rows[rows["method"] == CONTROL]
    copies = [control.assign(sparsity=s) for s in sparsities]
    return pd.concat([rows[rows["method"] != CONTROL], *copies], ignore_index=True)


def selections_table(
    runs: pd.DataFrame, dataset: str, sparsity: float, protocol: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Δ_MTL of every method on every task selection of a dataset at one sparsity and protocol:
    rows = methods (the control first), columns = selections (``seg+depth`` …), the best pruned
    model of each column in bold."""
    runs = variants_apart(runs)
    chosen = runs[
        (runs["dataset"] == dataset)
        & (np.isclose(runs["sparsity"], sparsity) | (runs["method"] == CONTROL))
        & (runs["protocol"] == protocol)
        & (runs["task"] == DELTA[0])
        & (runs["metric"] == DELTA[1])
    ].copy()
    if chosen[chosen["method"] != CONTROL].empty:
        raise ValueError(f"no runs for {dataset} / {protocol} at sparsity {sparsity:g} in the grid")
    return _pivot(chosen, "method", "tasks", first=[CONTROL])


def _pivot(
    chosen: pd.DataFrame, row: str, column: str, first: Sequence[str] = ()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Means and ``mean ± CI`` of ``value`` by (row, column), best (highest) per column bold;
    the rows in ``first`` on top and never bold, then the others by their mean over the
    columns, best first."""
    numeric: dict[str, dict[str, float]] = {}
    text: dict[str, dict[str, str]] = {}
    for col, block in chosen.groupby(column, sort=True):
        stats = {key: _summary(group["value"]) for key, group in block.groupby(row, sort=True)}
        numeric[col] = {k: m for k, (m, _, _) in stats.items()}
        text[col] = {k: _formatted(m, s, n, 2) for k, (m, s, n) in stats.items()}
        _bold_best(numeric[col], text[col], higher=True, exclude=first)
    frame, formatted = pd.DataFrame(numeric), pd.DataFrame(text).fillna("")
    top = [r for r in first if r in frame.index]
    rest = frame.drop(index=top).mean(axis=1).sort_values(ascending=False).index
    order = [*top, *rest]
    return (
        frame.loc[order].rename_axis(row).reset_index(),
        formatted.loc[order].rename_axis(row).reset_index(),
    )


def paired_differences(
    runs: pd.DataFrame,
    dataset: str,
    tasks: str,
    protocol: str,
    reference: str = CUT,
    measure: tuple[str, str] = DELTA,
) -> pd.DataFrame:
    """Each pruning method minus ``reference`` on ``measure``, paired by seed, per sparsity:
    ``method``, ``sparsity``, ``seeds``, ``difference`` (mean) and its 95 % interval ``low``,
    ``high`` (NaN with one shared seed). A reference that prunes nothing (the control) is
    compared at every sparsity with its one run. Runs with method options (ablation variants) are
    left out."""
    chosen = runs[
        (runs["dataset"] == dataset)
        & (runs["tasks"] == tasks)
        & (runs["protocol"] == protocol)
        & (runs["task"] == measure[0])
        & (runs["metric"] == measure[1])
    ]
    if "options" in chosen:
        chosen = chosen[chosen["options"].fillna("") == ""]
    by_seed = {
        key: dict(zip(block["seed"].astype(int), block["value"], strict=True))
        for key, block in chosen.groupby(["method", "sparsity"], sort=True)
    }
    pruned_reference = get_method(reference).prunes
    rows = []
    for (method, sparsity), values in by_seed.items():
        at = sparsity if pruned_reference else 0.0  # a reference that prunes nothing: at 0
        base = by_seed.get((reference, at))
        if method in (reference, *REFERENCE_ROWS) or base is None:
            continue
        shared = sorted(set(values) & set(base))
        if len(shared) >= 2:
            estimate = paired_comparison(values, base).difference
            mean, low, high = estimate.mean, estimate.low, estimate.high
        elif shared:
            mean, low, high = values[shared[0]] - base[shared[0]], np.nan, np.nan
        else:
            continue
        rows.append(
            {"method": method, "sparsity": sparsity, "seeds": len(shared)}
            | {"difference": mean, "low": low, "high": high}
        )
    return pd.DataFrame(rows, columns=["method", "sparsity", "seeds", "difference", "low", "high"])


def control_table(
    runs: pd.DataFrame, dataset: str, tasks: str, protocol: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each pruning method's Δ_MTL minus the control's, paired by seed, at every sparsity of one
    setting: what pruning costs at an equal training budget (docs/method/metrics.md#the-control).
    Rows = methods, columns = sparsities; ``mean [low, high]`` (the 95 % interval) in the
    formatted frame, the means in the numeric one.

    Raises:
        ValueError: if no pruned run shares a seed with a control run of the setting.
    """
    differences = paired_differences(runs, dataset, tasks, protocol, CONTROL)
    if differences.empty:
        raise ValueError(f"no control run to compare with for {dataset} / {tasks} / {protocol}")
    differences["sparsity (printed)"] = differences["sparsity"].map(lambda s: f"{s:.0%}")
    numeric = differences.pivot(index="method", columns="sparsity (printed)", values="difference")
    text = differences.assign(
        shown=[
            f"{d:+.2f}" if np.isnan(low) else f"{d:+.2f} [{low:+.2f}, {high:+.2f}]"
            for d, low, high in differences[["difference", "low", "high"]].itertuples(index=False)
        ]
    ).pivot(index="method", columns="sparsity (printed)", values="shown")
    order = numeric.mean(axis=1).sort_values(ascending=False).index
    columns = sorted(numeric.columns, key=lambda c: float(c.rstrip("%")))
    return (
        numeric.loc[order, columns].reset_index(),
        text.loc[order, columns].fillna("").reset_index(),
    )


def dense_reference(
    records: Sequence[dict], tasks: Sequence[TaskSpec]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The dense pre-trained model against the best constant predictor, every metric of every
    task, from the pre-trained runs' ``metrics.json`` of one dataset (one per seed).

    Returns:
        ``(numeric, formatted)`` with columns ``task``, ``metric`` (with its direction),
        ``dense``, ``trivial`` (means; ``mean ± CI`` in the formatted frame).
    """
    if not records:
        raise ValueError("no pre-trained runs given")
    numeric, text = [], []
    for task in tasks:
        for metric, higher in task.metric_directions.items():
            row = {"task": task.name, "metric": f"{metric} {'↑' if higher else '↓'}"}
            shown = dict(row)
            for column in ("dense", "trivial"):
                values = pd.Series(
                    [
                        (r["metrics"] if column == "dense" else r["reference"]["trivial"])[
                            task.name
                        ][metric]
                        for r in records
                    ]
                )
                mean, std, n = _summary(values)
                row[column] = mean
                shown[column] = _formatted(mean, std, n, _significant_precision(mean))
            numeric.append(row)
            text.append(shown)
    return pd.DataFrame(numeric), pd.DataFrame(text)


def baseline_runs(runs: str, profile_runs: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """The ``(method, protocol)`` runs of notebook 06: ``runs`` as comma-separated
    ``method:protocol`` pairs, or ``"profile"`` for ``profile_runs`` (the profile's
    ``baselines.notebook``: method → protocols). CUT under ``fair`` comes first when ``runs``
    lacks it: it is the reference of every comparison.

    Raises:
        ValueError: for an item that is not ``method:protocol``, or an unknown method.

    Example:
        >>> baseline_runs("snip:paper,random:fair", {})
        [('cut', 'fair'), ('snip', 'paper'), ('random', 'fair')]
        >>> baseline_runs("profile", {"cut": ["fair"], "lth": ["fair", "paper"]})
        [('cut', 'fair'), ('lth', 'fair'), ('lth', 'paper')]
    """
    if runs == "profile":
        pairs = [(m, p) for m, protocols in profile_runs.items() for p in protocols]
    else:
        items = [item.split(":") for item in runs.split(",")]
        malformed = [":".join(item) for item in items if len(item) != 2]
        if malformed:
            raise ValueError(f"runs: {malformed[0]!r} is not method:protocol")
        pairs = [(method, protocol) for method, protocol in items]
    if not any(m == CUT for m, _ in pairs):
        pairs.insert(0, (CUT, "fair"))
    unknown = sorted({m for m, _ in pairs} - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; valid: {', '.join(METHODS)}")
    return pairs


def table_settings(runs: pd.DataFrame) -> pd.DataFrame:
    """The (dataset, tasks, protocol, sparsity) settings of the grid with at least two pruning
    methods (those get a table in DiSparse's layout), in the grid's order, and how many."""
    pruned = runs[~runs["method"].isin(REFERENCE_ROWS) & (runs["metric"] == DELTA[1])]
    keys = ["dataset", "tasks", "protocol", "sparsity"]
    counts = pruned.groupby(keys, sort=False)["method"].nunique().rename("methods").reset_index()
    return counts[counts["methods"] >= 2].reset_index(drop=True)


def study_runs() -> pd.DataFrame | None:
    """The committed multi-seed study's tidy run table (``results/study/tables/runs.csv`` of
    the project), or ``None`` where this checkout has none: what exercises compare a single
    run with."""
    path = project_root() / "results" / "study" / "tables" / "runs.csv"
    return pd.read_csv(path, keep_default_na=False) if path.is_file() else None


def seed_summary(
    runs: pd.DataFrame,
    task: str = DELTA[0],
    metric: str = DELTA[1],
    options: str = "",
    number_format: str = "+.2f",
    **setting: object,
) -> pd.DataFrame:
    """Mean and 95 % interval over seeds of one metric, per method, protocol and sparsity, over
    the runs whose columns equal ``setting`` (e.g. ``tasks="seg+depth", sparsity=0.9``) and
    whose options are ``options`` (default: none). ``mean ± CI`` is written with
    ``number_format`` (the half-width without its sign).

    Example:
        >>> runs = pd.DataFrame({"method": "cut", "protocol": "fair", "sparsity": 0.9,
        ...     "options": "", "task": "all", "metric": "delta_mtl", "value": [1.0, 2.0, 3.0]})
        >>> seed_summary(runs, sparsity=0.9).to_dict("records")[0]["mean ± CI"]
        '+2.00 ± 2.48'
    """
    chosen = runs[(runs["task"] == task) & (runs["metric"] == metric)]
    chosen = chosen[chosen["options"].fillna("").astype(str) == options]
    for column, value in setting.items():
        chosen = chosen[chosen[column] == value]
    rows = []
    for (method, protocol, sparsity), block in chosen.groupby(
        ["method", "protocol", "sparsity"], sort=False
    ):
        estimate = mean_ci(block["value"].tolist())
        half_width = format(estimate.half_width, number_format.lstrip("+"))
        rows.append(
            {"method": method, "protocol": protocol, "sparsity": sparsity, "seeds": estimate.n}
            | {
                "mean": estimate.mean,
                "mean ± CI": f"{estimate.mean:{number_format}} ± {half_width}",
            }
        )
    return pd.DataFrame(rows)
