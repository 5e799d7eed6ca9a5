"""Resumable runs: the checkpoints a run writes while it trains, so that a killed or pre-empted
run continues where it stopped (docs/architecture.md#resumable-runs).

A run trains in one or more *stages* (pre-training; fine-tuning; each round of IMP or LTH), each
a call of :func:`cutlib.train.train`, numbered in the order the method makes them. Under
``<run>/checkpoints/`` a stage has

- ``<n>-<stage>.progress.pt`` every ``checkpoint_every`` iterations while it trains: the model
  (masks included), the optimiser, the schedule, the gradient scaler, the best model so far, the
  history, the random state of every generator that training draws from, the iteration, and the
  state of its step hook (dynamic-sparsity counters, LTH's rewinding weights);
- ``<n>-<stage>.done.pt`` once it has finished: the model it returned, its result and its hook.

Rerunning the run replays the method from its start. Everything a method does between its stages
(scoring, masks, pruning rounds) is deterministic given its inputs, so the replay reaches each
stage in the state it had; a finished stage then returns at once with its saved model, and the
interrupted one continues from its last checkpoint. The result equals an uninterrupted run's to
the last digit on a CPU. The folder is deleted when the run has written its ``metrics.json``.
Files are written atomically (a temporary file renamed), so a kill while writing leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from cutlib.io import save_torch

#: The folder of a run's checkpoints, inside its run folder.
FOLDER = "checkpoints"


@runtime_checkable
class StatefulHook(Protocol):
    """A step hook (``train(on_step=...)``) with state to carry over a resume."""

    def state_dict(self) -> dict[str, Any]:
        """What the hook must remember, as tensors and plain values."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back the state of :meth:`state_dict`."""
        ...


def random_state() -> dict[str, Any]:
    """The state of PyTorch's global CPU generator and of every CUDA device's."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict[str, Any]) -> None:
    """Restore a :func:`random_state`."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _load(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


@dataclass(frozen=True)
class StageCheckpoint:
    """The checkpoint files of one training stage, ``<folder>/<key>.*.pt``, written every
    ``every`` iterations (0: only when the stage finishes), by the ``writer`` process only (the
    others of a several-process run read them)."""

    folder: Path
    key: str
    every: int
    writer: bool = True

    @property
    def progress_file(self) -> Path:
        """The latest mid-stage checkpoint."""
        return self.folder / f"{self.key}.progress.pt"

    @property
    def done_file(self) -> Path:
        """The finished stage."""
        return self.folder / f"{self.key}.done.pt"

    def due(self, iteration: int, last: int) -> bool:
        """Whether to checkpoint after ``iteration`` (never after the ``last``: the stage's
        result is saved then)."""
        return self.every > 0 and iteration % self.every == 0 and iteration < last

    def finished(self) -> dict[str, Any] | None:
        """The saved end of the stage, if it has finished."""
        return _load(self.done_file)

    def progress(self) -> dict[str, Any] | None:
        """The latest mid-stage state, if any."""
        return _load(self.progress_file)

    def save_progress(self, state: dict[str, Any]) -> None:
        """Replace the mid-stage checkpoint with ``state``, atomically."""
        if self.writer:
            save_torch(self.progress_file, state)

    def save_finished(self, state: dict[str, Any]) -> None:
        """Save the stage's end and drop its mid-stage checkpoint."""
        if self.writer:
            save_torch(self.done_file, state)
            self.progress_file.unlink(missing_ok=True)


class RunCheckpoints:
    """A run's checkpoints (``<run>/checkpoints/``): hands each training stage, in the order the
    method makes them, its :class:`StageCheckpoint`; only the ``writer`` writes or deletes."""

    def __init__(self, run_folder: Path, every: int, writer: bool = True) -> None:
        if every < 0:
            raise ValueError(f"checkpoint_every must be ≥ 0 (0: at stage ends only), got {every}")
        self.folder = Path(run_folder) / FOLDER
        self.every = every
        self.writer = writer
        self.stages = 0

    def stage(self, name: str) -> StageCheckpoint:
        """The checkpoint of the next stage, ``name`` (``pretrain``, ``finetune``…)."""
        self.stages += 1
        return StageCheckpoint(self.folder, f"{self.stages:02d}-{name}", self.every, self.writer)

    def resumable(self) -> bool:
        """Whether an earlier, interrupted attempt left checkpoints."""
        return self.folder.is_dir() and any(self.folder.glob("*.pt"))

    def clear(self) -> None:
        """Delete the checkpoints (the run has finished)."""
        if self.writer:
            shutil.rmtree(self.folder, ignore_errors=True)
