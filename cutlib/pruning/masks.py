"""Prunable weights, their owners, and sparsity accounting
(docs/architecture.md#pruning-conventions).

Prunable weights are the ``weight`` of every ``nn.Conv2d`` and ``nn.Linear`` (stem, downsample and
head convs included), never biases or normalisation parameters. Each belongs to the shared
backbone or to the head of one task; ownership is read from the module tree of
:class:`~cutlib.models.SceneNet` (``backbone`` vs ``heads[task]``), not from name substrings.

A mask is ``dict[param_name, BoolTensor]`` (True = keep). :func:`apply_masks` installs it with
:func:`torch.nn.utils.prune.custom_from_mask`: the module keeps ``weight_orig`` as the trainable
parameter and recomputes ``weight = weight_orig * weight_mask`` before every forward, so a pruned
weight is exactly zero in every forward pass and receives no gradient, whatever the optimiser does
to ``weight_orig`` (Adam moments, weight decay). :func:`fold_masks` makes the zeros permanent
before a model is saved or counted.

Sparsity (contract) is the fraction of exactly-zero prunable weights of the deployed model, i.e.
the backbone plus the heads the model still has.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from cutlib.models import SceneNet

BACKBONE = "backbone"
PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)

#: A pruning mask: parameter name → boolean tensor of the weight's shape (True = keep).
Masks = dict[str, Tensor]


@dataclass(frozen=True)
class PrunableWeight:
    """One prunable weight: parameter name, module, owner (``"backbone"`` or a task name)."""

    name: str
    module: nn.Module
    owner: str

    @property
    def weight(self) -> Tensor:
        """The effective weight (with a pruning mask applied, if one is installed)."""
        return self.module.weight


def prunable_weights(model: SceneNet) -> list[PrunableWeight]:
    """Every prunable weight of ``model`` in module order, with its owner.

    Example:
        >>> from cutlib.tasks import TaskSpec
        >>> net = SceneNet([TaskSpec("depth", "depth", 1)], "resnet18", 0.125, 8, (1, 2, 3, 4))
        >>> sorted({w.owner for w in prunable_weights(net)})
        ['backbone', 'depth']
    """
    owners = [(BACKBONE, model.backbone)] + list(model.heads.items())
    prefixes = {BACKBONE: "backbone."} | {task: f"heads.{task}." for task in model.heads}
    found = []
    for owner, root in owners:
        for module_name, module in root.named_modules():
            if isinstance(module, PRUNABLE_TYPES):
                found.append(
                    PrunableWeight(f"{prefixes[owner]}{module_name}.weight", module, owner)
                )
    return found


def owned_by(model: SceneNet, owners: set[str] | frozenset[str]) -> list[PrunableWeight]:
    """The prunable weights of ``model`` whose owner is in ``owners`` (``"backbone"`` or tasks)."""
    return [w for w in prunable_weights(model) if w.owner in owners]


def is_masked(module: nn.Module) -> bool:
    """True when a pruning mask is installed on ``module.weight``."""
    return prune.is_pruned(module) and hasattr(module, "weight_mask")


def apply_masks(model: SceneNet, masks: Masks) -> SceneNet:
    """Install ``masks`` on ``model`` (in place) with ``torch.nn.utils.prune.custom_from_mask``.

    Weights without an entry in ``masks`` stay dense. A weight that already carries a mask gets the
    product of both (PyTorch's pruning containers compose masks).

    Raises:
        KeyError: if ``masks`` names a parameter that is not a prunable weight of ``model``.
        ValueError: if a mask's shape differs from its weight's.
    """
    weights = {w.name: w for w in prunable_weights(model)}
    unknown = sorted(set(masks) - set(weights))
    if unknown:
        raise KeyError(f"masks name weights this model does not have: {', '.join(unknown[:5])}")
    for name, mask in masks.items():
        module = weights[name].module
        if mask.shape != module.weight.shape:
            raise ValueError(
                f"mask for {name} has shape {tuple(mask.shape)}, the weight has "
                f"{tuple(module.weight.shape)}"
            )
        prune.custom_from_mask(module, "weight", mask.to(module.weight.device, torch.bool))
    return model


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy of ``model``, masks included.

    ``torch.nn.utils.prune`` keeps the effective ``weight`` as a non-leaf tensor of the last
    forward pass, which ``copy.deepcopy`` refuses; it is recomputed without a graph first (the
    same values).
    """
    with torch.no_grad():
        for module in model.modules():
            if is_masked(module):
                module.weight = module.weight_orig * module.weight_mask
    return copy.deepcopy(model)


def fold_masks(model: nn.Module) -> nn.Module:
    """Make installed masks permanent (in place): pruned entries become exact zeros in a plain
    ``weight`` parameter and the ``weight_orig`` / ``weight_mask`` pair disappears."""
    for module in model.modules():
        if is_masked(module):
            prune.remove(module, "weight")
    return model


def deployed(model: nn.Module) -> nn.Module:
    """The model as it would ship: ``model`` itself when no pruning mask is installed, else a copy
    with the masks folded into plain weights
    (docs/method/efficiency.md#what-unstructured-masks-buy). ``model`` is never changed.

    The prune re-parametrisation recomputes ``weight_orig * weight_mask`` before every forward
    pass, which costs time and memory a deployed model does not pay.
    """
    if not any(is_masked(m) for m in model.modules()):
        return model
    return fold_masks(copy_model(model))


@torch.no_grad()
def masks_of(model: SceneNet) -> Masks:
    """The keep-masks of ``model``'s prunable weights: its installed masks, else ``weight != 0``."""
    return {
        w.name: (w.module.weight_mask if is_masked(w.module) else w.weight).ne(0).cpu()
        for w in prunable_weights(model)
    }


def density(masks: Masks) -> float:
    """Fraction of kept entries over all masks (1 − sparsity)."""
    total = sum(m.numel() for m in masks.values())
    return sum(int(m.sum()) for m in masks.values()) / total if total else 1.0


def scope_sparsity(masks: Masks, shared: Collection[str]) -> dict[str, float]:
    """Sparsity (1 − :func:`density`) of the deployed model's ``masks``, of their ``shared``
    (backbone) weights and of the others (the heads).

    Example:
        >>> masks = {"b": torch.tensor([True, False, False, False]), "h": torch.ones(2) > 0}
        >>> scope_sparsity(masks, {"b"})
        {'deployed sparsity': 0.5, 'backbone sparsity': 0.75, 'heads sparsity': 0.0}
    """
    backbone = {n: m for n, m in masks.items() if n in shared}
    heads = {n: m for n, m in masks.items() if n not in shared}
    return {
        "deployed sparsity": 1 - density(masks),
        "backbone sparsity": 1 - density(backbone),
        "heads sparsity": 1 - density(heads),
    }


def weights_by_owner(model: SceneNet) -> dict[str, int]:
    """The number of prunable weights of each owner of ``model``: the backbone, then each head.

    Example:
        >>> from cutlib.tasks import TaskSpec
        >>> net = SceneNet([TaskSpec("depth", "depth", 1)], "resnet18", 0.125, 8, (1,))
        >>> weights_by_owner(net)["depth"]  # one ASPP branch: 3×3 64→8, 1×1 8→8, 1×1 8→1
        4680
    """
    counts: dict[str, int] = {}
    for w in prunable_weights(model):
        counts[w.owner] = counts.get(w.owner, 0) + w.weight.numel()
    return counts


def _zero_fraction(weights: list[Tensor]) -> float:
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / total if total else 0.0


@torch.no_grad()
def sparsity_report(model: SceneNet) -> dict[str, object]:
    """Achieved sparsity of the deployed model: overall, backbone, and per head (fractions).

    The keys match ``metrics.json["sparsity"]`` (docs/architecture.md#runs-and-the-run-store) minus
    the requested ``target``.
    """
    weights = prunable_weights(model)
    by_owner: dict[str, list[Tensor]] = {}
    for w in weights:
        by_owner.setdefault(w.owner, []).append(w.weight.detach())
    return {
        "achieved": _zero_fraction([w.weight.detach() for w in weights]),
        "backbone": _zero_fraction(by_owner.get(BACKBONE, [])),
        "heads": {task: _zero_fraction(by_owner[task]) for task in model.heads},
    }


@torch.no_grad()
def kept_by_layer(model: SceneNet) -> dict[str, list[int]]:
    """Per prunable weight of ``model`` (parameter name, in module order): ``[kept, weights]``,
    the non-zero entries of its effective weight and its size. ``metrics.json`` records it, so
    where a method spends its budget can be read from a run's record without its weights.

    Example:
        >>> from cutlib.tasks import TaskSpec
        >>> net = SceneNet([TaskSpec("depth", "depth", 1)], "resnet18", 0.125, 8, (1,))
        >>> kept_by_layer(net)["backbone.stem.0.weight"]  # 8 filters of 3 × 7 × 7, all non-zero
        [1176, 1176]
    """
    return {
        w.name: [int(torch.count_nonzero(w.weight)), w.weight.numel()]
        for w in prunable_weights(model)
    }


@torch.no_grad()
def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Total and non-zero parameters (all parameters: weights, biases and norm affines).

    Installed masks are honoured: a masked weight counts with its effective (masked) values.
    """
    params = [p for name, p in model.named_parameters() if not name.endswith("_orig")]
    params += [m.weight for m in model.modules() if is_masked(m)]
    return {
        "total": sum(p.numel() for p in params),
        "nonzero": sum(int(torch.count_nonzero(p)) for p in params),
    }
