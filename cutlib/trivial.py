"""The "trivial" reference: the best constant predictor fitted on the training split
(docs/architecture.md#runs-and-the-run-store).

Scoring it with :func:`cutlib.metrics.evaluate` shows how much of a metric a model earns beyond
predicting the majority class, the mean normal, the mean depth or the mean keypoint/edge value.

Example:
    >>> from cutlib.metrics import evaluate
    >>> from cutlib.tasks import TaskSpec
    >>> specs = (TaskSpec("depth", "depth", channels=1),)
    >>> depth = torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]]])  # 0 = no depth
    >>> train = [{"image": torch.zeros(1, 3, 2, 2), "depth": depth}]
    >>> constants = fit_constants(specs, train)
    >>> float(constants["depth"])
    2.0
    >>> evaluate(ConstantPredictor(specs, constants), train, specs)["depth"]["abs_err"]
    1.0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cutlib.losses import valid_mask
from cutlib.tasks import TaskSpec

#: Logit of the majority class in :class:`ConstantPredictor` (all other classes get 0).
SEG_LOGIT: float = 100.0


def fit_constants(
    specs: Sequence[TaskSpec], batches: Iterable[Mapping[str, Tensor]]
) -> dict[str, Tensor]:
    """Best constant prediction per task, streamed over ``batches`` (the training split).

    seg: the majority class over valid pixels (long scalar); sn: the L2-normalised mean of the
    valid normals (3,); depth, keypoint, edge: the mean of the valid values (float scalar).
    Returned on the CPU.
    """
    totals: dict[str, Tensor] = {}  # seg: class histogram; other kinds: per-channel sums
    counts = dict.fromkeys((spec.name for spec in specs), 0)
    for batch in batches:
        for spec in specs:
            target = batch[spec.name]
            valid = valid_mask(spec, target)
            if spec.kind == "seg":
                stat = torch.bincount(target[valid].long(), minlength=spec.channels)
            else:
                stat = target.movedim(1, -1)[valid].double().sum(0)
            stat = stat.cpu()
            totals[spec.name] = totals[spec.name] + stat if spec.name in totals else stat
            counts[spec.name] += int(valid.sum())
    constants = {}
    for spec in specs:
        if counts[spec.name] == 0:
            raise ValueError(f"no valid {spec.name!r} label in the batches; cannot fit a constant")
        total = totals[spec.name]
        if spec.kind == "seg":
            constants[spec.name] = total.argmax()
        elif spec.kind == "sn":
            constants[spec.name] = F.normalize(total, dim=0).float()
        else:
            constants[spec.name] = (total[0] / counts[spec.name]).float()
    return constants


class ConstantPredictor(nn.Module):
    """A "model" predicting the same value at every pixel of every image.

    Outputs (B, C, 1, 1) per task, which the metrics upsample to label size: seg logits with
    :data:`SEG_LOGIT` at the majority class and 0 elsewhere; other kinds the constant itself. The
    outputs are buffers, so ``.to(device)`` moves them and they are saved in the state dict.

    Args:
        specs: the tasks to predict.
        constants: ``{task: constant}`` as returned by :func:`fit_constants`.
    """

    def __init__(self, specs: Sequence[TaskSpec], constants: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.tasks = tuple(spec.name for spec in specs)
        for spec in specs:
            value = torch.as_tensor(constants[spec.name])
            if spec.kind == "seg":
                output = F.one_hot(value.long(), spec.channels).float() * SEG_LOGIT
            else:
                output = value.float().reshape(spec.channels)
            self.register_buffer(f"output_{spec.name}", output.view(1, spec.channels, 1, 1))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """``{task: (B, C, 1, 1)}`` for a batch ``x`` of B images."""
        batch = x.shape[0]
        return {t: self.get_buffer(f"output_{t}").expand(batch, -1, -1, -1) for t in self.tasks}
