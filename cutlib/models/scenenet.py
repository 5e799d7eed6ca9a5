"""SceneNet: the DeepLab-style multi-task network of CUT, DiSparse and AdaShare
(docs/method/model.md).

A dilated ResNet backbone (BasicBlocks, output stride 8) shared by all tasks, plus one DeepLab-v2
ASPP head per task: four parallel branches (3×3 dilated conv → 1×1 → 1×1 to the task's channels)
whose outputs are summed. Predictions stay at 1/8 of the input resolution; losses and metrics bring
them to label resolution.

With ``backbone="resnet34", width=1.0, head_channels=1024, aspp_rates=(6, 12, 18, 24)`` this is
exactly the reference model: 21,267,648 backbone conv weights and 23,068,672 + 4096·C per head.
Smaller profiles scale width, depth, head channels and ASPP rates to their resolution.

Heads live in an ``nn.ModuleDict`` keyed by task name; parameter ownership (backbone vs head of
task t) follows from the module tree (``backbone.*`` vs ``heads.<task>.*``), never from positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor, nn

from cutlib.models.channels import slim_to
from cutlib.tasks import TaskSpec

#: BasicBlocks per stage for the supported backbones.
BLOCKS_PER_STAGE: dict[str, tuple[int, int, int, int]] = {
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
}
STAGE_STRIDES = (1, 2, 1, 1)
STAGE_DILATIONS = (1, 1, 2, 4)


class BasicBlock(nn.Module):
    """ResNet BasicBlock with dilation; the shortcut is a 1×1 conv + BN when shapes change.

    ``out = ReLU(shortcut(x) + BN(conv(ReLU(BN(conv(x))))))``, padding = dilation so the spatial
    size only changes by the stride (docs/method/model.md#backbone).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, dilation: int, shortcut: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
            if shortcut
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class DilatedResNet(nn.Module):
    """Output-stride-8 ResNet: stem (7×7/2 conv, 3×3/2 ceil-mode max-pool) and four stages with
    strides (1, 2, 1, 1) and dilations (1, 1, 2, 4) (docs/method/model.md#backbone).

    A stage's first block gets a 1×1 shortcut when its stride ≠ 1, its width changes or it is
    dilated, exactly the reference rule (ResNet-34: stages 2, 3 and 4).
    """

    def __init__(self, blocks: Sequence[int], widths: Sequence[int]) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 7, 2, 3, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1, ceil_mode=True),
        )
        stages = []
        in_ch = widths[0]
        for n_blocks, out_ch, stride, dilation in zip(
            blocks, widths, STAGE_STRIDES, STAGE_DILATIONS, strict=True
        ):
            shortcut = stride != 1 or in_ch != out_ch or dilation in (2, 4)
            layers = [BasicBlock(in_ch, out_ch, stride, dilation, shortcut)]
            layers += [BasicBlock(out_ch, out_ch, 1, dilation, False) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*layers))
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.out_channels = in_ch
        self._init_weights()

    def _init_weights(self) -> None:
        # Reference initialisation (docs/method/model.md#backbone): convs N(0, 0.01), BN weight 1,
        # bias 0.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.01)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))


class ASPPHead(nn.Module):
    """DeepLab-v2 ASPP task head: four summed branches, one per dilation rate
    (docs/method/model.md#task-heads).

    Each branch: 3×3 conv (dilation = padding = rate, bias) → ReLU → Dropout → 1×1 conv → ReLU →
    Dropout → 1×1 conv to ``out_channels``. No BatchNorm, no upsampling.
    """

    def __init__(
        self, in_channels: int, hidden: int, out_channels: int, rates: Sequence[int], dropout: float
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, hidden, 3, padding=rate, dilation=rate),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Conv2d(hidden, hidden, 1),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Conv2d(hidden, out_channels, 1),
            )
            for rate in rates
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([branch(x) for branch in self.branches]).sum(0)


class SceneNet(nn.Module):
    """Hard-parameter-sharing multi-task network: a shared dilated ResNet, one ASPP head per task.

    Args:
        tasks: the tasks, one head each, in dataset order.
        backbone: ``"resnet18"`` or ``"resnet34"`` (the paper's).
        width: multiplier of the stage widths (64, 128, 256, 512).
        head_channels: hidden channels of every ASPP branch (1024 in the paper).
        aspp_rates: dilation rates of the four ASPP branches ((6, 12, 18, 24) in the paper).
        dropout: dropout probability in the heads (0.5 in the paper).

    Example:
        >>> from cutlib.tasks import TaskSpec
        >>> net = SceneNet([TaskSpec("depth", "depth", 1)], backbone="resnet18", width=0.25,
        ...                head_channels=16, aspp_rates=(1, 2, 3, 4))
        >>> net(torch.zeros(2, 3, 64, 64))["depth"].shape
        torch.Size([2, 1, 9, 9])
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        backbone: str = "resnet34",
        width: float = 1.0,
        head_channels: int = 1024,
        aspp_rates: Sequence[int] = (6, 12, 18, 24),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if backbone not in BLOCKS_PER_STAGE:
            raise ValueError(f"unknown backbone {backbone!r}; valid: {', '.join(BLOCKS_PER_STAGE)}")
        if not tasks:
            raise ValueError("SceneNet needs at least one task")
        if width <= 0 or head_channels < 1:
            raise ValueError("width must be > 0 and head_channels ≥ 1")
        widths = [max(1, round(64 * 2**s * width)) for s in range(4)]
        self.hparams: dict[str, Any] = {
            "backbone": backbone,
            "width": width,
            "head_channels": head_channels,
            "aspp_rates": list(aspp_rates),
            "dropout": dropout,
        }
        self.tasks: tuple[TaskSpec, ...] = tuple(tasks)
        #: channel counts of the groups structured pruning has slimmed (:mod:`.channels`)
        self.channels: dict[str, int] = {}
        self.backbone = DilatedResNet(BLOCKS_PER_STAGE[backbone], widths)
        self.heads = nn.ModuleDict(
            {
                t.name: ASPPHead(
                    self.backbone.out_channels, head_channels, t.channels, aspp_rates, dropout
                )
                for t in self.tasks
            }
        )

    @property
    def task_names(self) -> tuple[str, ...]:
        """Names of the tasks this network predicts, in order."""
        return tuple(t.name for t in self.tasks)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self.backbone(x)
        return {name: head(features) for name, head in self.heads.items()}

    def keep_tasks(self, names: Sequence[str]) -> SceneNet:
        """Physically remove every head not in ``names`` (in place) and return ``self``.

        The kept tasks' outputs are unchanged: heads are independent given the backbone.
        """
        unknown = set(names) - set(self.task_names)
        if unknown or not names:
            raise ValueError(
                f"cannot keep tasks {sorted(names)}; this model has: {', '.join(self.task_names)}"
            )
        for name in self.task_names:
            if name not in names:
                del self.heads[name]
        self.tasks = tuple(t for t in self.tasks if t.name in names)
        self.channels = {
            g: n
            for g, n in self.channels.items()
            if not g.startswith("heads.") or g.split(".")[1] in names
        }
        return self

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this architecture with :meth:`from_config`."""
        slimmed = {"channels": dict(self.channels)} if self.channels else {}
        # unweighted classes leave no entry, so configs read the same as before weights existed
        tasks = [
            {k: v for k, v in asdict(t).items() if k != "class_weights" or v is not None}
            for t in self.tasks
        ]
        return {**self.hparams, "tasks": tasks, **slimmed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SceneNet:
        """Rebuild an (untrained) network from :meth:`config`'s output, slimmed to its recorded
        channel counts if structured pruning removed channels."""
        config = dict(config)
        widths = config.pop("channels", {})
        sequences = ("class_names", "class_weights")
        tasks = [TaskSpec(**_tuples(t, sequences)) for t in config.pop("tasks")]
        model = cls(tasks, **config)
        return slim_to(model, widths) if widths else model


def _tuples(spec: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """A task spec's dict with the sequences under ``keys`` as tuples (a checkpoint or a json file
    may hold lists)."""
    return {k: tuple(v) if k in keys and v is not None else v for k, v in spec.items()}
