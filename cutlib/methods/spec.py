"""A run's configuration, resolved once (docs/architecture.md#how-a-run-flows).

:class:`RunSpec` is what a :class:`~cutlib.experiments.RunConfig` becomes after validation: the
method from the registry, its parsed options, the typed profile (the run's identity) and the
settings the method trains with, the dataset's tasks as this run trains them. The run store, the
run context and the grid all read it; nothing re-reads a profile after it is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cutlib.methods.registry import Method
from cutlib.profiles import Profile
from cutlib.tasks import TaskSpec


@dataclass(frozen=True)
class RunSpec:
    """One run, resolved.

    Args:
        dataset: the dataset's name.
        method: the registered method.
        tasks: the selected tasks' names, in dataset order.
        sparsity: the requested sparsity, a fraction in [0, 1).
        seed: drives data, initialisation and order.
        protocol: the training budget (``fair`` or ``paper``, :mod:`cutlib.methods.registry`).
        options: the method's parsed options (``None`` for a method without options).
        profile: the run's profile with its dataset's overrides (its identity).
        settings: what the method trains with under the protocol
            (:func:`cutlib.profiles.method_settings`).
        all_tasks: every task of the dataset, with the loss and class weights this run uses.
        selected: the selected tasks' specifications.
        data_root: the folder of a real dataset (``None``: the default).
        is_pretraining: the dense run on all tasks, which every other run starts from.
        precision: ``fp32``, or ``bf16`` / ``fp16`` autocast on CUDA
            (:func:`cutlib.train.autocast_dtype`).
    """

    dataset: str
    method: Method
    tasks: tuple[str, ...]
    sparsity: float
    seed: int
    protocol: str
    options: Any
    profile: Profile
    settings: Profile
    all_tasks: tuple[TaskSpec, ...]
    selected: tuple[TaskSpec, ...]
    data_root: str | None
    is_pretraining: bool
    precision: str = "fp32"

    @property
    def planned_steps(self) -> int:
        """The optimiser steps this run takes (the pre-training's when it is the pre-training)."""
        if self.is_pretraining:
            return self.settings.pretrain.iterations
        return self.method.planned_steps(self.settings, self.protocol)
