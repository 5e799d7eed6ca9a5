"""Channel groups of :class:`~cutlib.models.SceneNet` and their exact removal (structured pruning,
docs/method/efficiency.md#what-gives-real-savings).

Removing an output channel of a conv also removes the BatchNorm entries over it and the input
slice of every conv that reads it. Residual additions tie channels together: every block of a
ResNet stage adds its output to the stage's running sum, so the stage's channels (the stem's or the
first block's 1×1 shortcut, and each block's second conv) form one *group* that is removed as a
whole; the last stage's group is read by every head's first (3×3) conv of every ASPP branch. The
channels inside a block (between its two convs) and inside an ASPP branch (after its 3×3 conv and
after its first 1×1 conv) are groups of their own. The four branches of a head are summed only
after their last 1×1 conv, whose output channels are the task's and are never removed.

A group is named after its first producing conv (e.g. ``backbone.stem.0``,
``backbone.stages.1.0.downsample.0``, ``heads.seg.branches.0.3``). The exact slicing here plays
the role of Torch-Pruning's dependency graph for this one architecture; the couplings are tested
(outputs keep their shapes, and keeping every channel changes nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

BACKBONE = "backbone"


@dataclass(frozen=True)
class ChannelGroup:
    """Channels removed together: the output channels of ``producers`` (convs), the entries of
    ``norms`` (BatchNorms) over them, and the input channels of ``consumers`` (convs); ``owner`` is
    ``"backbone"`` or the task whose head holds the group. Module names are those of
    ``model.named_modules()``."""

    name: str
    owner: str
    producers: tuple[str, ...]
    norms: tuple[str, ...]
    consumers: tuple[str, ...]
    size: int


def channel_groups(model: nn.Module) -> list[ChannelGroup]:
    """Every removable channel group of ``model``, backbone first, then each head's.

    Example:
        >>> from cutlib.tasks import TaskSpec
        >>> from cutlib.models import SceneNet
        >>> net = SceneNet([TaskSpec("depth", "depth", 1)], "resnet18", 0.125, 8, (1, 2, 3, 4))
        >>> stem = {g.name: g for g in channel_groups(net)}["backbone.stem.0"]  # tied by residuals
        >>> stem.producers
        ('backbone.stem.0', 'backbone.stages.0.0.conv2', 'backbone.stages.0.1.conv2')
    """
    head_inputs = tuple(
        f"heads.{task}.branches.{b}.0"
        for task, head in model.heads.items()
        for b in range(len(head.branches))
    )
    groups: list[ChannelGroup] = []
    # The running residual group: producers, norms, consumers (filled as the stages are walked).
    residual = (["backbone.stem.0"], ["backbone.stem.1"], [])
    for s, stage in enumerate(model.backbone.stages):
        for b, block in enumerate(stage):
            prefix = f"backbone.stages.{s}.{b}"
            residual[2].append(f"{prefix}.conv1")
            if block.downsample is not None:
                residual[2].append(f"{prefix}.downsample.0")
                groups.append(_group(model, *residual))
                residual = ([f"{prefix}.downsample.0"], [f"{prefix}.downsample.1"], [])
            groups.append(
                _group(model, [f"{prefix}.conv1"], [f"{prefix}.bn1"], [f"{prefix}.conv2"])
            )
            residual[0].append(f"{prefix}.conv2")
            residual[1].append(f"{prefix}.bn2")
    residual[2].extend(head_inputs)
    groups.append(_group(model, *residual))
    for task, head in model.heads.items():
        for b in range(len(head.branches)):
            branch = f"heads.{task}.branches.{b}"
            groups.append(_group(model, [f"{branch}.0"], [], [f"{branch}.3"], task))
            groups.append(_group(model, [f"{branch}.3"], [], [f"{branch}.6"], task))
    return groups


def _group(
    model: nn.Module,
    producers: list[str],
    norms: list[str],
    consumers: list[str],
    owner: str = BACKBONE,
) -> ChannelGroup:
    size = model.get_submodule(producers[0]).out_channels
    return ChannelGroup(producers[0], owner, tuple(producers), tuple(norms), tuple(consumers), size)


def channel_scores(
    groups: list[ChannelGroup],
    weight_scores: Mapping[str, Tensor],
    cost: Mapping[str, float] | None = None,
) -> dict[str, Tensor]:
    """Per group, the importance of each channel: the summed score of the weights removed with
    it (its producers' output filters and its consumers' input slices), over the weights that
    ``weight_scores`` (parameter name → per-weight score) covers, divided by the channel's cost.

    ``cost`` (group name → cost of one channel, e.g. its FLOPs) defaults to the number of scored
    weights per channel, which makes the score a mean per weight. A task's scores cover its
    sub-model (backbone and its own head), so a channel of the last backbone stage is judged by
    the task's own head only. Groups none of whose weights are scored are left out.

    Example:
        >>> g = ChannelGroup("a", "backbone", ("a",), (), ("b",), 2)
        >>> s = {"a.weight": torch.tensor([[1.0, 1], [0, 0]]), "b.weight": torch.tensor([[2.0, 4]])}
        >>> channel_scores([g], s)["a"]  # channel 0: (1 + 1 + 2) / 3; channel 1: (0 + 0 + 4) / 3
        tensor([1.3333, 1.3333])
    """
    scores = {}
    for group in groups:
        total = torch.zeros(group.size)
        count = 0
        for name in group.producers:
            if f"{name}.weight" in weight_scores:
                weights = weight_scores[f"{name}.weight"].detach().float().cpu()
                total += weights.reshape(group.size, -1).sum(1)
                count += weights[0].numel()
        for name in group.consumers:
            if f"{name}.weight" in weight_scores:
                weights = weight_scores[f"{name}.weight"].detach().float().cpu().transpose(0, 1)
                total += weights.reshape(group.size, -1).sum(1)
                count += weights[0].numel()
        if count:
            scores[group.name] = total / (count if cost is None else cost[group.name])
    return scores


@torch.no_grad()
def remove_channels(model: nn.Module, keep: Mapping[str, Tensor]) -> nn.Module:
    """Physically remove channels (in place) and return ``model``: ``keep`` maps group names to
    boolean keep-masks over the group's channels (groups not named keep every channel).

    The new widths are recorded in ``model.channels`` (group name → channel count), so
    :meth:`SceneNet.config` can rebuild the slimmed architecture.

    Raises:
        KeyError: for a group name the model does not have.
        ValueError: for a mask of the wrong length, one that keeps no channel, or a model with
            pruning masks installed (fold them first).
    """
    groups = {g.name: g for g in channel_groups(model)}
    unknown = sorted(set(keep) - set(groups))
    if unknown:
        raise KeyError(f"no channel group {unknown[0]!r}; groups: {', '.join(list(groups)[:4])}, …")
    if any(hasattr(m, "weight_orig") for m in model.modules()):
        raise ValueError("fold the pruning masks (cutlib.pruning.masks.fold_masks) first")
    for name, mask in keep.items():
        group = groups[name]
        if mask.shape != (group.size,) or mask.dtype != torch.bool:
            raise ValueError(f"group {name} needs a boolean mask of {group.size} channels")
        if not mask.any():
            raise ValueError(f"group {name} would lose every channel; keep at least one")
        index = mask.nonzero().flatten().to(next(model.parameters()).device)
        for producer in group.producers:
            conv = model.get_submodule(producer)
            _set(conv, "weight", conv.weight[index])
            if conv.bias is not None:
                _set(conv, "bias", conv.bias[index])
            conv.out_channels = len(index)
        for norm_name in group.norms:
            norm = model.get_submodule(norm_name)
            for attribute in ("weight", "bias", "running_mean", "running_var"):
                _set(norm, attribute, getattr(norm, attribute)[index])
            norm.num_features = len(index)
        for consumer in group.consumers:
            conv = model.get_submodule(consumer)
            _set(conv, "weight", conv.weight[:, index])
            conv.in_channels = len(index)
        model.channels[name] = len(index)
    return model


def _set(module: nn.Module, attribute: str, value: Tensor) -> None:
    if isinstance(getattr(module, attribute), nn.Parameter):
        setattr(module, attribute, nn.Parameter(value.clone()))
    else:
        module.register_buffer(attribute, value.clone())


def slim_to(model: nn.Module, widths: Mapping[str, int]) -> nn.Module:
    """Give ``model`` (freshly built) the channel counts ``widths`` (group name → channels) by
    keeping each group's first channels; the weights are then loaded from a checkpoint."""
    masks = {}
    for group in channel_groups(model):
        if group.name in widths:
            mask = torch.zeros(group.size, dtype=torch.bool)
            mask[: widths[group.name]] = True
            masks[group.name] = mask
    unknown = sorted(set(widths) - set(masks))
    if unknown:
        raise ValueError(f"the configuration names unknown channel group {unknown[0]!r}")
    return remove_channels(model, masks)
