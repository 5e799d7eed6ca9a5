"""Where each method spends its budget: the kept fraction of every layer group (stem, the four
stages, the heads), from the per-layer counts a run records
(docs/method/cut.md#where-the-budget-goes).

CUT keeps, per task, the top κ of all the task's weights by |w·∂L_t/∂w|, one threshold across
every layer. If a layer's scores are small *as a whole* (after BatchNorm, a weight's share of
its filter's sensitivity shrinks roughly like 1/fan-in), that layer loses most of its weights
whatever their merit; global magnitude pruning ranks |w|, whose scale Adam's steps make far less
dependent on the layer. The tables and figures here show the allocation each method ends with;
the allocation-swap ablation (:mod:`cutlib.methods.swap`) tests whether it explains the
results.

A run's ``metrics.json`` carries ``layers``: parameter name → ``[kept, weights]``
(:func:`cutlib.pruning.masks.kept_by_layer`). Records made before that field existed may carry a
``layers.json`` beside them, written by re-running the run (:func:`cutlib.grid.record_layers`).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import Tensor

from cutlib.data import dataset_tasks, load_dataset
from cutlib.methods.cut import NAME as CUT
from cutlib.methods.magnitude import METHOD as MAGNITUDE_METHOD
from cutlib.models import SceneNet
from cutlib.palette import method_label, method_style
from cutlib.profiles import load_profile
from cutlib.pruning.importance import scoring_batches, task_importance
from cutlib.pruning.masks import BACKBONE, copy_model, owned_by, prunable_weights
from cutlib.pruning.per_task import CutMasker, plan_cut
from cutlib.pruning.thresholds import Ranking
from cutlib.significance import mean_ci

MAGNITUDE = MAGNITUDE_METHOD.name

#: The layer groups in depth order; the heads of every selected task form one group.
GROUPS: tuple[str, ...] = ("stem", "stage 1", "stage 2", "stage 3", "stage 4", "heads")


def layer_group(name: str) -> str:
    """The group of a prunable weight from its parameter name.

    Example:
        >>> [layer_group(n) for n in ("backbone.stem.0.weight", "backbone.stages.3.0.conv1.weight",
        ...  "heads.seg.branches.0.0.weight")]
        ['stem', 'stage 4', 'heads']
    """
    parts = name.split(".")
    if parts[0] == "heads":
        return "heads"
    if parts[1] == "stages":
        return f"stage {int(parts[2]) + 1}"
    return parts[1]


def group_fractions(layers: pd.DataFrame) -> pd.DataFrame:
    """Per run and group: the kept fraction Σ kept / Σ weights.

    Args:
        layers: one row per (run, layer) with the run's columns (``method``, ``sparsity``,
            ``seed``…), ``name``, ``kept`` and ``weights`` (:func:`cutlib.grid.collect_layers`).

    Returns:
        The run columns, ``group`` (in :data:`GROUPS` order) and ``kept`` (a fraction).
    """
    frame = layers.assign(group=layers["name"].map(layer_group))
    keys = [c for c in frame.columns if c not in ("name", "kept", "weights", "group")]
    summed = frame.groupby([*keys, "group"], sort=False, dropna=False)[["kept", "weights"]].sum()
    summed = summed.reset_index()
    summed["kept"] = summed["kept"] / summed["weights"]
    summed["group"] = pd.Categorical(summed["group"], GROUPS, ordered=True)
    return summed.drop(columns="weights").sort_values([*keys, "group"], kind="stable")


def allocation_table(fractions: pd.DataFrame, sparsity: float) -> pd.DataFrame:
    """The mean kept fraction (over seeds) of every group for each method at ``sparsity``: rows
    = methods (with their options), columns = groups, plus each group's share of the deployed
    model's weights (row ``weights``, from the first run).

    Args:
        fractions: :func:`group_fractions` of runs with ``method``, ``options``, ``sparsity`` and
            ``seed`` columns.
    """
    chosen = fractions[np.isclose(fractions["sparsity"], sparsity)]
    if chosen.empty:
        raise ValueError(f"no run at sparsity {sparsity:g} records its layers")
    label = chosen["method"] + np.where(chosen["options"] != "", " [" + chosen["options"] + "]", "")
    table = chosen.assign(method=label).pivot_table(
        index="method", columns="group", values="kept", aggfunc="mean", observed=True
    )
    return table.rename_axis(columns=None).reset_index()


def group_shares(layers: pd.DataFrame) -> pd.Series:
    """Each group's share of the deployed model's prunable weights (from one run's layers).

    Example:
        >>> rows = pd.DataFrame({"name": ["backbone.stem.0.weight", "heads.a.b.0.0.weight"],
        ...     "kept": [1, 1], "weights": [1, 3]})
        >>> group_shares(rows).to_dict()
        {'stem': 0.25, 'heads': 0.75}
    """
    weights = layers.groupby(layers["name"].map(layer_group), sort=False)["weights"].sum()
    return (weights / weights.sum()).reindex([g for g in GROUPS if g in weights.index])


def plot_allocation(fractions: pd.DataFrame, sparsities: Sequence[float], title: str) -> Figure:
    """The kept fraction of each layer group (x, in depth order) for each method (one line in its
    style, the mean over seeds with its 95 % interval as error bars), one panel per sparsity, on
    a logarithmic axis: a group a method empties shows as a plunge, not as a point on the floor.
    """
    fig, axes = plt.subplots(
        1, len(sparsities), figsize=(4.6 * len(sparsities), 3.6), squeeze=False, sharey=True
    )
    groups = [g for g in GROUPS if g in set(fractions["group"].astype(str))]
    x = np.arange(len(groups))
    for ax, sparsity in zip(axes[0], sparsities, strict=True):
        chosen = fractions[np.isclose(fractions["sparsity"], sparsity)]
        for (method, options), block in chosen.groupby(["method", "options"], sort=True):
            style = method_style(method)
            if options:
                style |= {"label": f"{method_label(method)} [{options}]", "ls": "--"}
            means, lows, highs = [], [], []
            for group in groups:
                estimate = mean_ci(list(block.loc[block["group"] == group, "kept"]))
                means.append(estimate.mean)
                lows.append(estimate.mean - (estimate.low if estimate.n > 1 else estimate.mean))
                highs.append((estimate.high if estimate.n > 1 else estimate.mean) - estimate.mean)
            ax.errorbar(x, means, yerr=[lows, highs], capsize=2, **style)
        ax.set_yscale("log")
        ax.axhline(1 - sparsity, color="0.5", ls=":", lw=1)
        ax.set_xticks(x, groups, rotation=30)
        ax.set_title(f"{sparsity:.0%} sparsity (dotted: uniform)", fontsize=10)
    axes[0][0].set_ylabel("kept fraction of the group")
    handles = {}  # every method of every panel, once
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    axes[0][-1].legend(
        handles.values(), handles.keys(), fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left"
    )
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def scoring_allocation(
    model: SceneNet,
    batches: Sequence[Mapping[str, Tensor]],
    tasks: Sequence[str],
    sparsity: float,
) -> pd.DataFrame:
    """CUT's and global magnitude pruning's allocation on ``model`` at ``sparsity``, without any
    training: per prunable weight of the compact model (backbone and the heads of ``tasks``), its
    ``group``, ``fan_in`` (input channels × kernel area), ``weights`` and the kept fraction under
    CUT's plan (per-task Taylor scores over ``batches``, per-task top-κ over each sub-model, the
    vote on the backbone, κ calibrated to ``sparsity``: :func:`~cutlib.pruning.per_task.plan_cut`)
    and under one |w| threshold across the compact model. ``model`` is not changed.
    """
    scores = task_importance(model, batches, list(tasks), "taylor")
    compact = copy_model(model).keep_tasks(list(tasks))
    shared = {w.name for w in owned_by(compact, {BACKBONE})}
    plan = plan_cut(CutMasker(scores, list(tasks), shared, "vote"), sparsity)
    weights = {w.name: w.weight.detach() for w in prunable_weights(compact)}
    magnitude = Ranking({n: w.abs() for n, w in weights.items()}).masks(1.0 - sparsity)
    return pd.DataFrame(
        [
            {
                "name": name,
                "group": layer_group(name),
                "fan_in": weight[0].numel(),
                "weights": weight.numel(),
                CUT: float(plan.masks[name].float().mean()),
                MAGNITUDE: float(magnitude[name].float().mean()),
            }
            for name, weight in weights.items()
        ]
    )


def allocation_by_group(layers: pd.DataFrame) -> pd.DataFrame:
    """:func:`scoring_allocation`'s layers summed by group: the group's weights, its share of the
    compact model, its fan-in range and each method's kept fraction (Σ kept / Σ weights)."""
    rows = []
    for group in [g for g in GROUPS if g in set(layers["group"])]:
        block = layers[layers["group"] == group]
        total = block["weights"].sum()
        row = {"group": group, "weights": int(total), "share": total / layers["weights"].sum()}
        row["fan-in"] = f"{block['fan_in'].min()}–{block['fan_in'].max()}"
        for method in (CUT, MAGNITUDE):
            row[method] = float((block[method] * block["weights"]).sum() / total)
        rows.append(row)
    return pd.DataFrame(rows)


def fan_in_slope(layers: pd.DataFrame, method: str = CUT) -> float:
    """The slope of log(kept fraction) against log(fan-in) over the backbone convs of
    :func:`scoring_allocation`'s table (a fully emptied layer counts at 1e-4): −1 would mean a
    layer's kept fraction falls like 1/fan-in.

    Example:
        >>> t = pd.DataFrame({"group": ["stem", "stage 1"], "fan_in": [10, 100],
        ...     "cut": [0.5, 0.05]})
        >>> round(fan_in_slope(t), 6)
        -1.0
    """
    backbone = layers[layers["group"] != "heads"]
    kept = np.log(backbone[method].clip(lower=1e-4))
    return float(np.polyfit(np.log(backbone["fan_in"]), kept, 1)[0])


def untrained_allocation(
    profile: str,
    dataset: str,
    tasks: Sequence[str],
    sparsity: float = 0.9,
    *,
    batches: int = 4,
    batch_size: int = 2,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`scoring_allocation` on ``profile``'s network as initialised (seed ``seed``), scored
    on ``batches`` batches of ``dataset`` rendered at the profile's crop: where CUT's one threshold
    per task puts the budget of a network too large to pre-train here (the ``paper`` profile's
    DeepLab-ResNet34 on a CPU). After BatchNorm, a weight's share of its filter's sensitivity
    does not need trained weights to depend on the fan-in, which is what this measures; whether
    the pattern at initialisation predicts the trained one is checked on a network that can be
    trained (notebook 07 on the ``regime`` profile)."""
    settings = load_profile(profile, dataset)
    sizes = {"train": batches * batch_size, "val": 1, "test": 1}
    settings = settings.override({"data": {"sizes": sizes}})
    data = load_dataset(dataset, "train", settings, seed)
    torch.manual_seed(seed)
    model = SceneNet(dataset_tasks(dataset, settings), **settings.model.kwargs())
    return scoring_allocation(
        model, scoring_batches(data, batch_size, batches, seed), tasks, sparsity
    )


#: The sparsity :func:`main` prunes each network to.
CHECK_SPARSITY = 0.9

#: The networks :func:`main` checks: name → (profile, dataset, tasks, batches, batch size).
CHECKS: dict[str, tuple[str, str, tuple[str, ...], int, int]] = {
    "paper": ("paper", "synth-nyuv2", ("seg", "depth"), 4, 2),
    "regime": ("regime", "synth-nyuv2", ("seg", "depth"), 50, 12),
    "study": ("study", "synth-nyuv2", ("seg", "depth"), 20, 12),
}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cutlib.allocation OUT``: CUT's and magnitude's allocation at 90 % on the
    networks of :data:`CHECKS` as initialised, one ``<name>.csv`` each (:func:`scoring_allocation`)
    and ``settings.json`` (what was scored, and how long it took) in the folder OUT."""
    parser = argparse.ArgumentParser(prog="python -m cutlib.allocation", description=main.__doc__)
    parser.add_argument("out", type=Path, help="the folder to write")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {}
    for name, (profile, dataset, tasks, batches, batch_size) in CHECKS.items():
        start = time.perf_counter()
        layers = untrained_allocation(
            profile, dataset, tasks, CHECK_SPARSITY, batches=batches, batch_size=batch_size
        )
        layers.to_csv(args.out / f"{name}.csv", index=False, float_format="%.6g")
        settings[name] = {
            "profile": profile,
            "dataset": dataset,
            "tasks": list(tasks),
            "sparsity": CHECK_SPARSITY,
            "batches": batches,
            "batch_size": batch_size,
            "seconds": round(time.perf_counter() - start, 1),
            "threads": torch.get_num_threads(),
        }
        print(f"{name}: {len(layers)} layers in {settings[name]['seconds']} s")
    (args.out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
