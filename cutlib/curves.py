"""Live training curves in TensorBoard (``cutlib run/grid --log-dir DIR``).

Every training stage of a run (``pretrain``, ``finetune``, an IMP/LTH round…) reports each
validation point of :func:`cutlib.train.train` (the history entry: training and validation
losses, λ-weighted total and per task, and the learning rate) to
``<DIR>/<run id>/``, under ``<stage>/<name>``, at its iteration. ``tensorboard --logdir DIR``
then shows the runs of a grid side by side while they train. TensorBoard is optional
(``pip install tensorboard``); without it ``--log-dir`` is refused before anything runs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path


def check_available() -> None:
    """Raise ValueError (bad input) if TensorBoard is not installed."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ValueError("--log-dir needs TensorBoard: pip install tensorboard")


class TensorBoardCurves:
    """One run's curves, written to ``directory`` as TensorBoard event files."""

    def __init__(self, directory: Path) -> None:
        check_available()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(directory))

    def __call__(self, stage: str, entry: Mapping[str, float]) -> None:
        """Log one history entry of ``stage`` at its iteration."""
        step = int(entry["iteration"])
        for name, value in entry.items():
            if name != "iteration":
                self.writer.add_scalar(f"{stage}/{name}", float(value), step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()
