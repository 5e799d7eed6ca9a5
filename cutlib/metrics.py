"""Per-task evaluation metrics, streamed over a split, and the Δ_MTL summary
(docs/method/metrics.md).

Metric names follow :data:`cutlib.tasks.METRIC_DIRECTIONS`; fractions are in [0, 1], angles in
degrees. Every evaluator only accumulates sums (confusion matrix, histograms, per-image means), so
memory stays constant and several ``update`` calls give the same result as one big call.

Two sets of conventions are provided (:class:`MetricConventions`): :data:`STANDARD`, the usual
definitions, and :data:`REFERENCE`, the quirks of the AdaShare-derived evaluation code used by
DiSparse and CUT (docs/method/metrics.md#quirks-before-comparing-numbers). Never mix the two in one
table.

Example:
    >>> from cutlib.tasks import TaskSpec
    >>> spec = TaskSpec("depth", "depth", channels=1)
    >>> ev = make_evaluator(spec)
    >>> ev.update(torch.full((1, 1, 1, 2), 2.0), torch.tensor([[[[2.0, 4.0]]]]))
    >>> ev.compute()["abs_err"], ev.compute()["delta_1.25"]
    (1.0, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args, get_type_hints

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from cutlib.losses import valid_mask
from cutlib.tasks import TaskSpec

#: Angle thresholds (degrees) of the ``within_*`` normal metrics.
ANGLE_THRESHOLDS: tuple[float, ...] = (11.25, 22.5, 30.0)
#: Bin width (degrees) of the histogram the median angle is read from.
ANGLE_BIN: float = 0.01
_ANGLE_BINS = round(180 / ANGLE_BIN)
_DELTA_NAMES = ("delta_1.25", "delta_1.25^2", "delta_1.25^3")
#: Lower bound on depth predictions for ``rel_err`` and δ when ``clamp_depth`` is set.
DEPTH_FLOOR: float = 1e-6


#: How a per-pixel quantity is averaged over a split (:class:`MetricConventions`).
Averaging = Literal["global", "per_image", "per_batch"]


@dataclass(frozen=True)
class MetricConventions:
    """How metrics are computed where the usual definitions and the reference code differ.

    The defaults are the usual definitions; :data:`REFERENCE` sets every field to the behaviour
    of the reference evaluation code on NYUv2 (the AdaShare-derived ``evaluation.py``), and
    :func:`cutlib.data.metric_conventions` adjusts it to what that code does on another dataset.

    Attributes:
        miou: ``"present"`` averages IoU over classes with a non-empty union;
            ``"tp"`` only over classes with at least one true positive (reference).
        pixel_acc: ``"global"`` pools all pixels of the split; ``"per_image"`` averages per-image
            accuracies (reference, with test batch size 1); ``"per_batch"`` averages the pooled
            accuracy of each evaluation batch, weighted by its size (reference, any batch size:
            Taskonomy's test batches hold 16 images).
        depth_errors: ``"global"`` pools abs/rel errors over pixels; ``"per_image"`` and
            ``"per_batch"`` average per-image or per-batch means as for ``pixel_acc``. δ is pooled
            in all three.
        map_errors: the same choice for the keypoint and edge ``err``.
        ignored_pixels: ``"excluded"``: seg pixels labelled with the ignore value count nowhere;
            ``"wrong"``: they count as wrong in pixel accuracy (reference on Cityscapes, whose void
            label −1 passes its ``label < classes`` test; mIoU still leaves them out).
        normals: ``"unit"`` measures angles between the vectors as labelled and predicted;
            ``"color"`` between the colour encodings 127.5·(n + 1) of unit normals (reference on
            NYUv2, a compressed angle scale).
        clamp_depth: clamp depth predictions to ≥ 1e-6 for rel_err and δ; without it (reference) a
            negative prediction counts as a δ hit.
        upsample: how predictions reach label resolution: ``"bilinear"`` or ``"nearest"``
            (reference).
    """

    miou: Literal["present", "tp"] = "present"
    pixel_acc: Averaging = "global"
    depth_errors: Averaging = "global"
    normals: Literal["unit", "color"] = "unit"
    clamp_depth: bool = True
    upsample: Literal["bilinear", "nearest"] = "bilinear"
    map_errors: Averaging = "global"
    ignored_pixels: Literal["excluded", "wrong"] = "excluded"

    def __post_init__(self) -> None:
        for name, hint in get_type_hints(type(self)).items():
            choices = get_args(hint)
            if choices and getattr(self, name) not in choices:
                raise ValueError(f"{name}={getattr(self, name)!r}; valid: {', '.join(choices)}")


STANDARD = MetricConventions()
REFERENCE = MetricConventions(
    miou="tp",
    pixel_acc="per_image",
    depth_errors="per_image",
    normals="color",
    clamp_depth=False,
    upsample="nearest",
    map_errors="per_image",
)
_CONVENTIONS = {"standard": STANDARD, "reference": REFERENCE}


def conventions_from_name(name: str) -> MetricConventions:
    """The conventions called ``"standard"`` or ``"reference"``."""
    if name not in _CONVENTIONS:
        raise ValueError(f"unknown metric conventions {name!r}; valid: {', '.join(_CONVENTIONS)}")
    return _CONVENTIONS[name]


def _ratio(num: float, den: float) -> float:
    """num / den, NaN when nothing was counted."""
    return num / den if den > 0 else math.nan


class TaskEvaluator:
    """Streams one task's metrics over a split: :meth:`update` per batch, then :meth:`compute`.

    Subclasses implement ``_update`` (on predictions already at label resolution, with the valid
    mask of :func:`cutlib.losses.valid_mask`) and ``compute``; all statistics are additive sums kept
    in ``self._sums``.
    """

    def __init__(self, spec: TaskSpec, conventions: MetricConventions = STANDARD) -> None:
        self.spec = spec
        self.conventions = conventions
        self._sums: dict[str, Tensor] = {}

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add one batch: ``pred`` (B, C, h, w) model output, ``target`` full-resolution labels."""
        pred = pred.detach()
        if pred.shape[-2:] != target.shape[-2:]:
            mode = self.conventions.upsample
            align = {"align_corners": False} if mode == "bilinear" else {}
            pred = F.interpolate(pred, size=target.shape[-2:], mode=mode, **align)
        self._update(pred, target, valid_mask(self.spec, target))

    def compute(self) -> dict[str, float]:
        """Metrics over everything seen so far (NaN where no valid pixel was seen)."""
        raise NotImplementedError

    def _update(self, pred: Tensor, target: Tensor, valid: Tensor) -> None:
        raise NotImplementedError

    def _add(self, name: str, value: Tensor) -> None:
        """Accumulate an additive statistic."""
        self._sums[name] = self._sums[name] + value if name in self._sums else value

    def _add_mean(self, name: str, values: Tensor, valid: Tensor) -> None:
        """Accumulate a per-pixel quantity (B, H, W) over the valid pixels: pooled, per image
        and per batch (the batch's pooled mean weighted by its size; a batch without a valid
        pixel adds nothing)."""
        sums = torch.where(valid, values.double(), 0.0).flatten(1).sum(1)
        counts = valid.flatten(1).sum(1)
        total, count = sums.sum(), counts.sum()
        per_image = (sums / counts.clamp(min=1)).sum()
        batch = (count > 0).double() * valid.shape[0]
        per_batch = batch * total / count.clamp(min=1)
        stats = [total, count, per_image, (counts > 0).sum(), per_batch, batch]
        self._add(name, torch.stack([s.double() for s in stats]))

    def _totals(self, name: str, size: int) -> list[float]:
        """The accumulated statistic ``name`` as floats (zeros before the first update)."""
        return self._sums[name].tolist() if name in self._sums else [0.0] * size

    def _mean(self, name: str, averaging: Averaging) -> float:
        """Mean of a quantity accumulated by :meth:`_add_mean`: pooled over pixels, mean of
        image means, or size-weighted mean of batch means."""
        total, pixels, image_means, images, batch_means, batched = self._totals(name, 6)
        if averaging == "per_image":
            return _ratio(image_means, images)
        if averaging == "per_batch":
            return _ratio(batch_means, batched)
        return _ratio(total, pixels)


class SegEvaluator(TaskEvaluator):
    """``mIoU`` and ``pixel_acc`` from a confusion matrix accumulated over the split."""

    def _update(self, pred: Tensor, target: Tensor, valid: Tensor) -> None:
        classes = self.spec.channels
        label = pred.argmax(dim=1)
        pairs = target[valid].long() * classes + label[valid]  # row: ground truth, column: pred
        self._add("confusion", torch.bincount(pairs, minlength=classes**2).view(classes, classes))
        scored = valid if self.conventions.ignored_pixels == "excluded" else torch.ones_like(valid)
        self._add_mean("correct", ((label == target) & valid).double(), scored)

    def compute(self) -> dict[str, float]:
        pixel_acc = self._mean("correct", self.conventions.pixel_acc)
        if math.isnan(pixel_acc):
            return {"mIoU": math.nan, "pixel_acc": pixel_acc}
        cm = self._sums["confusion"].double()
        tp = cm.diag()
        union = cm.sum(0) + cm.sum(1) - tp
        scored = union > 0 if self.conventions.miou == "present" else tp > 0
        miou = (tp[scored] / union[scored]).sum() / max(int(scored.sum()), 1)
        return {"mIoU": float(miou), "pixel_acc": pixel_acc}


class NormalEvaluator(TaskEvaluator):
    """Angle statistics of surface normals, pooled over all valid pixels of the split."""

    def _update(self, pred: Tensor, target: Tensor, valid: Tensor) -> None:
        n, g = F.normalize(pred.double(), dim=1), F.normalize(target.double(), dim=1)
        if self.conventions.normals == "color":  # 127.5·(n + 1); the scale does not change angles
            n, g = F.normalize(n + 1, dim=1), F.normalize(g + 1, dim=1)
        angles = torch.rad2deg(torch.arccos((n * g).sum(dim=1).clamp(-1, 1)))[valid]
        within = [(angles <= t).sum() for t in ANGLE_THRESHOLDS]
        self._add("angles", torch.stack([angles.sum(), angles.new_tensor(angles.numel()), *within]))
        bins = (angles / ANGLE_BIN).long().clamp(max=_ANGLE_BINS - 1)
        self._add("histogram", torch.bincount(bins, minlength=_ANGLE_BINS))

    def compute(self) -> dict[str, float]:
        total, count, *within = self._totals("angles", 2 + len(ANGLE_THRESHOLDS))
        if count == 0:
            median = math.nan
        else:  # lower median, as torch.median: the ((count - 1) // 2)-th smallest angle
            cumulative = self._sums["histogram"].cumsum(0)
            rank = torch.tensor((int(count) - 1) // 2 + 1, device=cumulative.device)
            median = (int(torch.searchsorted(cumulative, rank)) + 0.5) * ANGLE_BIN
        names = [f"within_{t:g}" for t in ANGLE_THRESHOLDS]
        return {
            "angle_mean": _ratio(total, count),
            "angle_median": median,
            **{name: _ratio(hits, count) for name, hits in zip(names, within, strict=True)},
        }


class DepthEvaluator(TaskEvaluator):
    """``abs_err``, ``rel_err`` (pooled or per image) and the pooled δ < 1.25^k accuracies."""

    def _update(self, pred: Tensor, target: Tensor, valid: Tensor) -> None:
        d, g = pred[:, 0].double(), target[:, 0].double()
        self._add_mean("abs_err", (d - g).abs(), valid)
        if self.conventions.clamp_depth:
            d = d.clamp(min=DEPTH_FLOOR)
        self._add_mean("rel_err", (d - g).abs() / g, valid)
        ratio = torch.maximum(d / g, g / d)[valid]
        hits = [(ratio <= 1.25**k).sum() for k in range(1, len(_DELTA_NAMES) + 1)]
        self._add("delta", torch.stack([ratio.new_tensor(ratio.numel()), *hits]))

    def compute(self) -> dict[str, float]:
        averaging = self.conventions.depth_errors
        count, *hits = self._totals("delta", 1 + len(_DELTA_NAMES))
        return {
            "abs_err": self._mean("abs_err", averaging),
            "rel_err": self._mean("rel_err", averaging),
            **{key: _ratio(h, count) for key, h in zip(_DELTA_NAMES, hits, strict=True)},
        }


class ErrorEvaluator(TaskEvaluator):
    """``err``: mean absolute error over the valid pixels (keypoint, edge), averaged as
    ``map_errors`` says."""

    def _update(self, pred: Tensor, target: Tensor, valid: Tensor) -> None:
        self._add_mean("err", (pred[:, 0] - target[:, 0]).abs(), valid)

    def compute(self) -> dict[str, float]:
        return {"err": self._mean("err", self.conventions.map_errors)}


_EVALUATORS: dict[str, type[TaskEvaluator]] = {
    "seg": SegEvaluator,
    "sn": NormalEvaluator,
    "depth": DepthEvaluator,
    "keypoint": ErrorEvaluator,
    "edge": ErrorEvaluator,
}


def make_evaluator(spec: TaskSpec, conventions: MetricConventions = STANDARD) -> TaskEvaluator:
    """A fresh evaluator for ``spec``'s kind."""
    return _EVALUATORS[spec.kind](spec, conventions)


class MultiTaskEvaluator:
    """One :class:`TaskEvaluator` per task, fed with model outputs and batches keyed by task."""

    def __init__(
        self, specs: Sequence[TaskSpec], conventions: MetricConventions = STANDARD
    ) -> None:
        self.evaluators = {spec.name: make_evaluator(spec, conventions) for spec in specs}

    def update(self, preds: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> None:
        """Add one batch: ``preds[task]`` model outputs, ``batch[task]`` labels."""
        for name, evaluator in self.evaluators.items():
            evaluator.update(preds[name], batch[name])

    def compute(self) -> dict[str, dict[str, float]]:
        """``{task: {metric: value}}`` over everything seen so far."""
        return {name: evaluator.compute() for name, evaluator in self.evaluators.items()}


def evaluate(
    model: nn.Module,
    loader: Iterable[Mapping[str, Tensor]],
    specs: Sequence[TaskSpec],
    *,
    conventions: MetricConventions = STANDARD,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[str, dict[str, float]]:
    """Metrics of ``model`` on every batch of ``loader``: ``{task: {metric: value}}``.

    Runs in eval mode under ``torch.inference_mode()``; tensors of each batch are moved to
    ``device`` (the model must already be there). The model's train/eval mode is restored after.
    """
    evaluator = MultiTaskEvaluator(specs, conventions)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in tqdm(loader, desc="evaluate", disable=not progress, leave=False):
                batch = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
                evaluator.update(model(batch["image"]), batch)
    finally:
        model.train(was_training)
    return evaluator.compute()


def delta_mtl(
    metrics: Mapping[str, Mapping[str, float]],
    reference: Mapping[str, Mapping[str, float]],
    directions: Mapping[str, Mapping[str, bool]],
) -> float:
    """Multi-task performance relative to a reference, in percent
    (docs/method/metrics.md#the-multi-task-summary-delta-mtl).

    Δ_MTL = 100 · mean_t mean_k (−1)^{l_tk} (M_tk − R_tk) / R_tk, with l_tk = 1 when lower is
    better (Maninis et al., "Attentive Single-Tasking of Multiple Tasks", CVPR 2019). The nested
    mean runs over the tasks of ``metrics`` and, per task, over the metrics present in
    ``metrics[t]``, ``reference[t]`` and ``directions[t]``. Positive = better than the reference.

    Args:
        metrics: ``{task: {metric: value}}`` of the model being judged.
        reference: the same for the reference (usually the dense model, same metric code).
        directions: ``{task: {metric: higher_is_better}}``, e.g.
            ``{s.name: s.metric_directions for s in specs}``.

    Example:
        >>> dirs = {"seg": {"mIoU": True}, "depth": {"abs_err": False}}
        >>> ref = {"seg": {"mIoU": 0.40}, "depth": {"abs_err": 0.50}}
        >>> round(delta_mtl({"seg": {"mIoU": 0.44}, "depth": {"abs_err": 0.4}}, ref, dirs), 6)
        15.0
    """
    if not metrics:
        raise ValueError("delta_mtl needs metrics of at least one task")
    task_means = []
    for task, values in metrics.items():
        for where, mapping in (("reference", reference), ("directions", directions)):
            if task not in mapping:
                raise ValueError(
                    f"task {task!r} is missing from {where}, which has: {', '.join(mapping)}; "
                    f"give {where} for the same tasks as the metrics"
                )
        common = [k for k in values if k in reference[task] and k in directions[task]]
        if not common:
            raise ValueError(f"task {task!r} shares no metric with its reference and directions")
        terms = []
        for k in common:
            ref = reference[task][k]
            if ref == 0:
                raise ValueError(
                    f"reference {task}/{k} is 0, so its relative change is undefined; "
                    f"drop {k!r} from the metric set of task {task!r}"
                )
            sign = 1.0 if directions[task][k] else -1.0
            terms.append(sign * (values[k] - ref) / ref)
        task_means.append(sum(terms) / len(terms))
    return 100.0 * sum(task_means) / len(task_means)
