"""CUT's choices, one at a time (notebook 09): the fusion rule, the importance criterion, the
number of scoring batches, calibrated vs the authors' fixed κ, and BatchNorm's mode while scoring.

Every variant is a ``cut`` run with one option changed from the authors' defaults
(:class:`~cutlib.methods.cut.CutOptions`), so it is cached, resumable and identical to
``cutlib run --method cut -o NAME=VALUE``. The profile's ``ablations`` section sets the dataset,
the task selection, the sparsity, the selection for the fusion rules (with two tasks, vote ≥ 1 is
the union and vote ≥ 2 the intersection, so the rules need three tasks to differ) and the scoring
batches to try. Fusion rules that give the very same masks are trained once
(:func:`fusion_mask_groups`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from cutlib.data import dataset_info
from cutlib.experiments import RunConfig, pretrained_task_scores, run
from cutlib.grid import GridCell
from cutlib.methods.cut import NAME as CUT
from cutlib.methods.cut import CutOptions
from cutlib.metrics import delta_mtl
from cutlib.profiles.schema import AblationSettings
from cutlib.pruning.fusion import FUSION_RULES
from cutlib.pruning.masks import BACKBONE, Masks, owned_by
from cutlib.pruning.per_task import CutMasker, plan_cut
from cutlib.tasks import select_tasks


@dataclass(frozen=True)
class Variant:
    """One ablation: its family (``fusion rule`` …), a label, the tasks and CUT's options."""

    family: str
    label: str
    tasks: tuple[str, ...]
    options: tuple[tuple[str, Any], ...] = ()

    def config(self, dataset: str, sparsity: float, profile: str, seed: int) -> RunConfig:
        """The ``cut`` run of this variant."""
        return RunConfig(dataset, CUT, self.tasks, sparsity, profile, seed, self.options)


#: The ablation families, in the order notebook 09 shows them.
FAMILIES = (
    "fusion rule",
    "criterion",
    "scoring batches",
    "keep ratio κ",
    "BatchNorm while scoring",
)
#: The criteria compared with the authors' Taylor score unless a profile lists its own.
OTHER_CRITERIA = ("magnitude", "random")


def variants(ablations: AblationSettings, default_batches: int) -> list[Variant]:
    """The variants of a profile's ``ablations`` section; the authors' choice comes first in each
    family (``default_batches``: the profile's ``scoring.batches``).

    Optional settings: ``families`` (the families to run, default :data:`FAMILIES`), ``criteria``
    (the criteria compared with Taylor, default :data:`OTHER_CRITERIA`) and ``batches`` (the
    scoring batches compared with the default).

    Raises:
        ValueError: for an unknown family.

    Example:
        >>> names = variants(AblationSettings("synth-nyuv2", "seg+depth", "seg+sn+depth", 0.9,
        ...                                   batches=[1, 20]), 20)
        >>> [(v.family, v.label) for v in names][:4]
        [('fusion rule', 'vote ≥ 2 (authors)'), ('fusion rule', 'vote ≥ 1'), \
('fusion rule', 'vote ≥ 3'), ('fusion rule', 'union')]
        >>> [v.label for v in variants(AblationSettings("synth-nyuv2", "seg+depth", "seg+depth",
        ...     0.9, families=["criterion"], criteria=["magnitude"]), 20)]
        ['taylor (authors)', 'magnitude']
    """
    families = list(ablations.families or FAMILIES)
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(
            f"unknown ablation family {unknown[0]!r}; valid families: {', '.join(FAMILIES)}"
        )
    tasks = tuple(ablations.tasks.split("+"))
    fusion_tasks = tuple(ablations.fusion_tasks.split("+"))
    found = [Variant("fusion rule", "vote ≥ 2 (authors)", fusion_tasks)]
    found += [
        Variant("fusion rule", f"vote ≥ {k}", fusion_tasks, (("min_votes", k),))
        for k in range(1, len(fusion_tasks) + 1)
        if k != 2
    ]
    found += [
        Variant("fusion rule", rule, fusion_tasks, (("fusion", rule),))
        for rule in FUSION_RULES
        if rule != "vote"
    ]
    found += [Variant("criterion", "taylor (authors)", tasks)]
    found += [
        Variant("criterion", name, tasks, (("criterion", name),))
        for name in ablations.criteria or OTHER_CRITERIA
        if name != "taylor"
    ]
    found += [Variant("scoring batches", f"{default_batches} (profile)", tasks)]
    found += [
        Variant("scoring batches", str(n), tasks, (("scoring_batches", int(n)),))
        for n in ablations.batches
        if int(n) != default_batches
    ]
    found += [
        Variant("keep ratio κ", "calibrated (ours)", tasks),
        Variant("keep ratio κ", "the authors' table", tasks, (("keep_ratio", "table"),)),
        Variant("BatchNorm while scoring", "train (authors)", tasks),
        Variant("BatchNorm while scoring", "eval", tasks, (("bn_mode", "eval"),)),
    ]
    return [v for v in found if v.family in families]


def fusion_mask_groups(
    fusion_variants: Sequence[Variant],
    dataset: str,
    sparsity: float,
    profile: str,
    seed: int = 0,
    device: str = "auto",
) -> dict[str, str]:
    """For each fusion variant, the label of the first variant with exactly the same calibrated
    masks (itself when none): rules that coincide are trained once. Scores are computed once on
    the pre-trained model, as the ``cut`` runs compute them."""
    tasks = fusion_variants[0].tasks
    model, scores = pretrained_task_scores(dataset, profile, tasks, seed=seed, device=device)
    model.keep_tasks(list(tasks))
    shared = {w.name for w in owned_by(model, {BACKBONE})}
    seen: list[tuple[str, Masks]] = []
    groups: dict[str, str] = {}
    for variant in fusion_variants:
        options = CutOptions(**dict(variant.options))
        masker = CutMasker(scores, list(tasks), shared, options.fusion, options.min_votes)
        masks = plan_cut(masker, sparsity, options.keep_ratio).masks
        same = next(
            (label for label, other in seen if all(torch.equal(masks[n], other[n]) for n in masks)),
            None,
        )
        groups[variant.label] = same or variant.label
        if same is None:
            seen.append((variant.label, masks))
    return groups


def ablation_cells(
    chosen: Sequence[Variant],
    dataset: str,
    sparsity: float,
    profile: str,
    seed: int,
    skip: Mapping[str, str] | None = None,
) -> list[GridCell]:
    """The runs to make: one per variant, except those ``skip`` maps to another label."""
    skip = skip or {}
    return [
        GridCell(v.config(dataset, sparsity, profile, seed).validated(), "fair")
        for v in chosen
        if skip.get(v.label, v.label) == v.label
    ]


def ablation_row(variant: Variant, record: Mapping[str, Any], same_as: str) -> dict[str, Any]:
    """One row of the ablation table from the variant's ``metrics.json``: achieved sparsity, κ,
    Δ_MTL before fine-tuning (BatchNorm statistics re-estimated where the run did it, and with
    the dense model's stale ones) and after it, and each task's main metric."""
    details = record["details"]
    reference = record["reference"]["dense"]
    specs = select_tasks(dataset_info(record["dataset"]).tasks, record["tasks"])
    directions = {t.name: t.metric_directions for t in specs}
    row = {
        "family": variant.family,
        "variant": variant.label,
        "tasks": "+".join(variant.tasks),
        "same masks as": "" if same_as == variant.label else same_as,
        "sparsity": record["sparsity"]["achieved"],
        "κ": details["keep_ratio"],
        "Δ_MTL before fine-tuning % ↑": delta_mtl(
            details.get("metrics_before_finetune_bn", details["metrics_before_finetune"]),
            reference,
            directions,
        ),
        "… with stale BN % ↑": delta_mtl(details["metrics_before_finetune"], reference, directions),
        "Δ_MTL % ↑": record["delta_mtl"],
    }
    for task in specs:
        higher = task.metric_directions[task.main_metric]
        label = f"{task.name} {task.main_metric} {'↑' if higher else '↓'}"
        row[label] = record["metrics"][task.name][task.main_metric]
    return row


def ablation_table(
    chosen: Sequence[Variant],
    same: Mapping[str, str],
    dataset: str,
    sparsity: float,
    profile: str,
    seed: int,
) -> pd.DataFrame:
    """Notebook 09's table: one :func:`ablation_row` per variant of ``chosen``, read from the run
    store; a variant that ``same`` maps to another label of its family (the same masks,
    :func:`fusion_mask_groups`) reports that variant's run."""
    rows = []
    for variant in chosen:
        label = same.get(variant.label, variant.label)
        source = next(v for v in chosen if v.label == label and v.family == variant.family)
        record = run(source.config(dataset, sparsity, profile, seed), progress=False).metrics
        rows.append(ablation_row(variant, record, label))
    return pd.DataFrame(rows)


#: What each family of :data:`FAMILIES` tests, for :func:`ablation_reading`.
FAMILY_QUESTIONS = {
    "fusion rule": "how many of the selected tasks must keep a shared weight",
    "criterion": "whether the data (Taylor's gradient term) adds to the weights' magnitude, "
    "with random scores as the floor",
    "scoring batches": "whether the Taylor scores need many batches",
    "keep ratio κ": "κ calibrated to the sparsity against the authors' fixed table, which "
    "misses the nominal sparsity on another model",
    "BatchNorm while scoring": "batch statistics (train mode) against running ones (eval mode) "
    "while scoring",
}


def distinct_variants(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of an :func:`ablation_table` whose masks no earlier row already has; each kept
    row's ``variant`` names every variant it stands for.

    Example:
        >>> table = pd.DataFrame({"family": ["f"] * 3, "variant": ["vote ≥ 1", "vote ≥ 2", "union"],
        ...                       "same masks as": ["", "", "vote ≥ 1"]})
        >>> distinct_variants(table)["variant"].tolist()
        ['vote ≥ 1 = union', 'vote ≥ 2']
    """
    duplicates = table[table["same masks as"] != ""]
    aliases = duplicates.groupby("same masks as", sort=False)["variant"].agg(list).to_dict()
    kept = table[table["same masks as"] == ""].copy()
    kept["variant"] = [" = ".join([v, *aliases.get(v, [])]) for v in kept["variant"]]
    return kept


def _span(block: pd.DataFrame, column: str) -> str:
    low, high = block[column].idxmin(), block[column].idxmax()
    return (
        f"from {block.at[low, column]:+.2f} % ({block.at[low, 'variant']}) to "
        f"{block.at[high, column]:+.2f} % ({block.at[high, 'variant']}), "
        f"{block.at[high, column] - block.at[low, column]:.2f} points apart"
    )


def ablation_reading(table: pd.DataFrame, target: float) -> str:
    """Markdown bullets stating what an :func:`ablation_table` shows, family by family: what the
    family tests, the spread of Δ_MTL after and before fine-tuning with the variants at its ends,
    and, for a variant that missed the ``target`` sparsity, what it reached instead. Only the
    families in the table get a bullet."""
    kept = distinct_variants(table)
    bullets = []
    for family in dict.fromkeys(kept["family"]):
        block = kept[kept["family"] == family]
        text = f"- **{family.capitalize()}** ({FAMILY_QUESTIONS[family]}). "
        if len(block) < 2:
            text += "Only one distinct variant ran."
        else:
            text += f"After fine-tuning, Δ_MTL goes {_span(block, 'Δ_MTL % ↑')}; before it, "
            text += f"{_span(block, 'Δ_MTL before fine-tuning % ↑')}."
        missed = block[(block["sparsity"] - target).abs() > 1e-3]
        for _, row in missed.iterrows():
            name = row["variant"][:1].upper() + row["variant"][1:]
            text += f" {name} reaches {row['sparsity']:.2%} sparsity, not {target:.0%}."
        bullets.append(text)
    return "\n".join(bullets)
