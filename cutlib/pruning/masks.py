"""Prunable weights, their owners, and sparsity accounting (DESIGN §5).

Prunable weights are the ``weight`` of every ``nn.Conv2d`` and ``nn.Linear`` (stem, downsample and
head convs included), never biases or normalisation parameters. Each belongs to the shared
backbone or to the head of one task; ownership is read from the module tree of
:class:`~cutlib.models.SceneNet` (``backbone`` vs ``heads[task]``), not from name substrings.

Sparsity (contract) is the fraction of exactly-zero prunable weights of the deployed model, i.e.
the backbone plus the heads the model still has.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cutlib.models import SceneNet

BACKBONE = "backbone"
PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)


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
        >>> {w.owner for w in prunable_weights(net)}
        {'backbone', 'depth'}
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


def _zero_fraction(weights: list[Tensor]) -> float:
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / total if total else 0.0


@torch.no_grad()
def sparsity_report(model: SceneNet) -> dict[str, object]:
    """Achieved sparsity of the deployed model: overall, backbone, and per head (fractions).

    The keys match ``metrics.json["sparsity"]`` (DESIGN §6) minus the requested ``target``.
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
def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Total and non-zero parameters (all parameters: weights, biases and norm affines)."""
    params = list(model.parameters())
    return {
        "total": sum(p.numel() for p in params),
        "nonzero": sum(int(torch.count_nonzero(p)) for p in params),
    }
