"""Task specifications: what each dense prediction task is, how it is weighted and scored.

Tasks are always addressed by name, never by position (docs/architecture.md#layers,
docs/architecture.md#house-style). A dataset is described by an ordered tuple of :class:`TaskSpec`;
the model builds one head per spec, the losses and metrics dispatch on :attr:`TaskSpec.kind`.

Conventions shared by every dataset (docs/architecture.md#data):

========  ==========================  ===================================================
kind      target tensor               invalid pixels
========  ==========================  ===================================================
seg       long (H, W), class ids      ``ignore_value`` (255)
sn        float (3, H, W), unit       all three components 0
depth     float (1, H, W), metres     0
keypoint  float (1, H, W)             ``ignore_value`` if set (Taskonomy pads with 255)
edge      float (1, H, W)             ``ignore_value`` if set
========  ==========================  ===================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TaskKind = Literal["seg", "sn", "depth", "keypoint", "edge"]
TASK_KINDS: tuple[str, ...] = ("seg", "sn", "depth", "keypoint", "edge")

#: Metric names per task kind, each with ``True`` when higher is better
#: (docs/architecture.md#runs-and-the-run-store).
METRIC_DIRECTIONS: dict[str, dict[str, bool]] = {
    "seg": {"mIoU": True, "pixel_acc": True},
    "sn": {
        "angle_mean": False,
        "angle_median": False,
        "within_11.25": True,
        "within_22.5": True,
        "within_30": True,
    },
    "depth": {
        "abs_err": False,
        "rel_err": False,
        "delta_1.25": True,
        "delta_1.25^2": True,
        "delta_1.25^3": True,
    },
    "keypoint": {"err": False},
    "edge": {"err": False},
}

#: The metric each task is summarised by in one-number plots.
MAIN_METRIC: dict[str, str] = {
    "seg": "mIoU",
    "sn": "angle_mean",
    "depth": "abs_err",
    "keypoint": "err",
    "edge": "err",
}


@dataclass(frozen=True)
class TaskSpec:
    """One dense prediction task of a multi-task dataset.

    Args:
        name: unique name of the task within its dataset (``"seg"``, ``"depth"``, ...).
        kind: what is predicted; decides the loss and the metrics.
        channels: output channels of the task head (classes for seg, 3 for sn, 1 otherwise).
        loss_weight: λ_t in the training loss Σ_t λ_t L_t (docs/method/metrics.md#training-losses).
        ignore_value: label value marking invalid pixels (seg, keypoint, edge); ``None`` if the
            kind has its own rule (sn: zero vector, depth: 0).
        class_names: names of the segmentation classes, for plots and tables.
        class_weights: per-class weights w_c of the seg cross-entropy, a weighted mean
            Σ w_y·CE / Σ w_y (Taskonomy's ``semseg_prior_factor``, as the reference loss); ``None``
            weighs every class alike.

    Example:
        >>> TaskSpec("seg", "seg", channels=13, ignore_value=255).metric_directions["mIoU"]
        True
    """

    name: str
    kind: TaskKind
    channels: int
    loss_weight: float = 1.0
    ignore_value: int | float | None = None
    class_names: tuple[str, ...] = field(default=(), compare=False)
    class_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(
                f"unknown task kind {self.kind!r}; valid kinds: {', '.join(TASK_KINDS)}"
            )
        if self.channels < 1:
            raise ValueError(f"task {self.name!r} needs at least one output channel")
        if self.kind == "seg" and self.ignore_value is None:
            raise ValueError(f"segmentation task {self.name!r} needs an ignore_value")
        if self.class_weights is not None and (
            self.kind != "seg" or len(self.class_weights) != self.channels
        ):
            raise ValueError(
                f"task {self.name!r}: class weights need a seg task and one weight per class "
                f"({self.channels}), got {len(self.class_weights)}"
            )

    @property
    def metric_directions(self) -> dict[str, bool]:
        """Metric name → ``True`` if higher is better."""
        return METRIC_DIRECTIONS[self.kind]

    @property
    def main_metric(self) -> str:
        """The metric that summarises this task in one number."""
        return MAIN_METRIC[self.kind]


def select_tasks(
    specs: tuple[TaskSpec, ...], names: list[str] | tuple[str, ...] | None
) -> tuple[TaskSpec, ...]:
    """Return the specs named in ``names`` (in dataset order), or all of them for ``None``.

    Raises:
        ValueError: on an empty selection, a repeated name or a name the dataset lacks; the message
            lists the valid task names.
    """
    valid = [s.name for s in specs]
    if names is None:
        return tuple(specs)
    names = list(names)
    if not names:
        raise ValueError(f"no task selected; valid tasks: {', '.join(valid)}")
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"unknown task {unknown[0]!r}; valid tasks: {', '.join(valid)}")
    if len(set(names)) != len(names):
        raise ValueError(f"task listed twice in {','.join(names)}; valid tasks: {', '.join(valid)}")
    return tuple(s for s in specs if s.name in names)
