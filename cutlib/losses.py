"""Per-task training losses and the weighted multi-task loss
(docs/method/metrics.md#training-losses).

Every loss is a mean over the *valid* pixels of the batch (:func:`valid_mask`), pooled over the
images. Predictions usually come at 1/8 of the label resolution; ``align`` decides how the two
meet:

- ``"upsample"`` (default): the prediction is bilinearly upsampled (``align_corners=False``) to the
  label size, so every labelled pixel counts;
- ``"downsample"``: the label is nearest-downsampled to the prediction size, as the reference code
  (AdaShare / DiSparse / CUT ``loss.py``) does.

Example:
    >>> from cutlib.tasks import TaskSpec
    >>> spec = TaskSpec("depth", "depth", channels=1)
    >>> pred, target = torch.ones(1, 1, 2, 2), torch.tensor([[[[2.0, 0.0], [3.0, 0.0]]]])
    >>> float(task_loss(spec, pred, target))  # mean(|1-2|, |1-3|); the zero depths are invalid
    1.5
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from cutlib.tasks import TaskSpec

Align = Literal["upsample", "downsample"]
_CE_IGNORE = -100  # cross_entropy's ignore index, given to every invalid seg pixel


def valid_mask(spec: TaskSpec, target: Tensor) -> Tensor:
    """Boolean (B, H, W) mask of the pixels of ``target`` that carry a label.

    seg: ``target != ignore_value`` and ``0 <= target < channels``; sn: not the zero vector;
    depth: ``target > 0``; keypoint / edge: ``target != ignore_value`` (all pixels when it is None).
    """
    if spec.kind == "seg":
        return (target != spec.ignore_value) & (target >= 0) & (target < spec.channels)
    if spec.kind == "sn":
        return target.ne(0).any(dim=1)
    if spec.kind == "depth":
        return target[:, 0] > 0
    if spec.ignore_value is None:
        return torch.ones_like(target[:, 0], dtype=torch.bool)
    return target[:, 0] != spec.ignore_value


def unit_vectors(x: Tensor, eps: float = 1e-12) -> Tensor:
    """``F.normalize(x, dim=1)`` for a (B, 3, H, W) map, written out: several times faster on CPU
    than the generic vector norm over a strided axis."""
    return x / x.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(eps)


def _align(pred: Tensor, target: Tensor, align: Align) -> tuple[Tensor, Tensor]:
    """Bring prediction and label to one resolution (see the module docstring)."""
    if align not in get_args(Align):
        raise ValueError(f"unknown align {align!r}; valid choices: {', '.join(get_args(Align))}")
    size = pred.shape[-2:]
    if size == target.shape[-2:]:
        return pred, target
    if align == "upsample":
        up = F.interpolate(pred, size=target.shape[-2:], mode="bilinear", align_corners=False)
        return up, target
    if target.dim() == 3:  # seg labels (B, H, W): interpolate needs a float (B, 1, H, W) tensor
        down = F.interpolate(target[:, None].float(), size=size, mode="nearest")[:, 0]
        return pred, down.to(target.dtype)
    return pred, F.interpolate(target, size=size, mode="nearest")


def task_loss(
    spec: TaskSpec,
    pred: Tensor,
    target: Tensor,
    *,
    align: Align = "upsample",
    class_weights: Tensor | None = None,
) -> Tensor:
    """Unweighted loss L_t of one task (docs/method/metrics.md#training-losses).

    seg: cross-entropy, a weighted mean Σ w_y·CE / Σ w_y with the class weights w of
    ``class_weights`` (C,) or else of ``spec.class_weights`` (Taskonomy's ``semseg_prior_factor``),
    a plain mean without either; sn: 1 − mean cosine between the L2-normalised prediction
    and label; depth, keypoint, edge: L1. A batch without any valid pixel gives a zero loss that
    still backpropagates (zero gradients).

    Args:
        spec: the task.
        pred: model output (B, C, h, w): logits for seg, a raw 3-vector for sn, values otherwise.
        target: labels at full resolution in the conventions of :mod:`cutlib.tasks`.
        align: ``"upsample"`` the prediction or ``"downsample"`` the label (reference code).
        class_weights: per-class weights for seg, instead of ``spec.class_weights``.
    """
    pred, target = _align(pred, target, align)
    valid = valid_mask(spec, target)
    count = valid.sum()
    if count == 0:
        return pred.sum() * 0
    if spec.kind == "seg":
        labels = torch.where(valid, target, _CE_IGNORE).long()
        if class_weights is None and spec.class_weights is not None:
            class_weights = pred.new_tensor(spec.class_weights)
        return F.cross_entropy(pred, labels, weight=class_weights, ignore_index=_CE_IGNORE)
    if spec.kind == "sn":
        per_pixel = 1 - (unit_vectors(pred) * unit_vectors(target)).sum(dim=1)
    else:
        per_pixel = (pred - target).abs()[:, 0]
    # Masked sums rather than boolean gathers: the same mean over the valid pixels, without the
    # gather/scatter pair (and with log-softmax over a contiguous class axis), which is faster.
    return torch.where(valid, per_pixel, 0).sum() / count


def multitask_loss(
    specs: Sequence[TaskSpec],
    preds: Mapping[str, Tensor],
    batch: Mapping[str, Tensor],
    *,
    align: Align = "upsample",
) -> tuple[Tensor, dict[str, Tensor]]:
    """Training loss Σ_t λ_t L_t over ``specs`` (λ_t = ``spec.loss_weight``;
    docs/method/metrics.md#training-losses).

    Returns the total and the unweighted per-task losses by task name; the latter stay attached to
    the graph, since CUT's importance scores differentiate each L_t separately (§1.5).
    """
    if not specs:
        raise ValueError("multitask_loss needs at least one task spec")
    losses = {s.name: task_loss(s, preds[s.name], batch[s.name], align=align) for s in specs}
    total = sum(s.loss_weight * losses[s.name] for s in specs)
    return total, losses
