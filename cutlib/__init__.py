"""cutlib: a reproducible companion to *CUT: Pruning Pre-Trained Multi-Task Models into Compact
Models for Edge Devices* (Zhou, Bao, Wang, Zhong; arXiv 2504.09803) and its baseline DiSparse
(Sun et al., CVPR 2022).

``import cutlib as cl`` is the public face (docs/architecture.md#the-public-face): the names a
notebook or a script needs, flat (``cl.load_profile``, ``cl.run``, ``cl.task_importance``…), and
every module by its name (``cl.reporting``, ``cl.efficiency``…). Names are imported on first use,
so ``import cutlib`` itself is cheap and a worker process that imports one module loads only what
that module needs. The ``cutlib`` command is :mod:`cutlib.cli`; the notebooks are under
``notebooks/``.

Example:
    >>> import cutlib as cl
    >>> cl.load_profile("smoke").model.backbone
    'resnet18'
    >>> "cut" in cl.METHODS
    True
"""

from __future__ import annotations

import importlib
from typing import Any

from cutlib.version import __version__

#: Public name → the module that defines it.
_EXPORTS: dict[str, str] = {
    # profiles
    "Profile": "cutlib.profiles",
    "ProfileError": "cutlib.profiles",
    "load_profile": "cutlib.profiles",
    "PROFILE_NAMES": "cutlib.profiles",
    # data and tasks
    "DATASETS": "cutlib.data",
    "SYNTHETIC_DATASETS": "cutlib.data",
    "dataset_info": "cutlib.data",
    "dataset_tasks": "cutlib.data",
    "paper_tasks": "cutlib.data",
    "load_dataset": "cutlib.data",
    "metric_conventions": "cutlib.data",
    "TaskSpec": "cutlib.tasks",
    "select_tasks": "cutlib.tasks",
    # models, training, evaluation
    "SceneNet": "cutlib.models",
    "load_model": "cutlib.checkpoint",
    "TrainConfig": "cutlib.train",
    "resolve_device": "cutlib.train",
    "evaluate": "cutlib.metrics",
    "delta_mtl": "cutlib.metrics",
    # pruning primitives
    "BACKBONE": "cutlib.pruning.masks",
    "prunable_weights": "cutlib.pruning.masks",
    "owned_by": "cutlib.pruning.masks",
    "masks_of": "cutlib.pruning.masks",
    "density": "cutlib.pruning.masks",
    "parameter_counts": "cutlib.pruning.masks",
    "scope_sparsity": "cutlib.pruning.masks",
    "weights_by_owner": "cutlib.pruning.masks",
    "sub_model_weights": "cutlib.pruning.importance",
    "scoring_batches": "cutlib.pruning.importance",
    "task_importance": "cutlib.pruning.importance",
    "joint_importance": "cutlib.pruning.importance",
    "Ranking": "cutlib.pruning.thresholds",
    "calibrate": "cutlib.pruning.thresholds",
    "FUSION_RULES": "cutlib.pruning.fusion",
    "AUTHORS_MIN_VOTES": "cutlib.pruning.fusion",
    "fuse_masks": "cutlib.pruning.fusion",
    "vote_counts": "cutlib.pruning.fusion",
    "vote_threshold": "cutlib.pruning.fusion",
    "CutMasker": "cutlib.pruning.per_task",
    "plan_cut": "cutlib.pruning.per_task",
    "plan_rules": "cutlib.pruning.per_task",
    # methods
    "METHODS": "cutlib.methods",
    "CONTROL": "cutlib.methods",
    "Method": "cutlib.methods",
    "register": "cutlib.methods",
    "get_method": "cutlib.methods",
    "CutOptions": "cutlib.methods.cut",
    # experiments
    "RunConfig": "cutlib.experiments",
    "run": "cutlib.experiments",
    "resolve": "cutlib.experiments",
    "pretrained_run": "cutlib.experiments",
    "pretrained_task_scores": "cutlib.experiments",
    "compact_before_finetuning": "cutlib.experiments",
    "grid_cells": "cutlib.grid",
    "run_grid": "cutlib.grid",
    "collect": "cutlib.grid",
    "read_json": "cutlib.io",
    "results_dir": "cutlib.io",
    # reporting
    "set_style": "cutlib.reporting",
    "save_figure": "cutlib.reporting",
    "save_table": "cutlib.reporting",
}

#: Modules reachable as ``cl.<name>``.
_MODULES: tuple[str, ...] = (
    "ablation_figures",
    "ablations",
    "allocation",
    "checkpoint",
    "claims",
    "comparison",
    "comparison_figures",
    "convergence",
    "curves",
    "palette",
    "data",
    "diagram",
    "efficiency",
    "efficiency_figures",
    "executed",
    "experiments",
    "export",
    "factorial",
    "findings",
    "grid",
    "io",
    "knobs",
    "losses",
    "methods",
    "metrics",
    "models",
    "profiles",
    "pruning",
    "reporting",
    "tasks",
    "train",
    "trivial",
    "watershed",
)

__all__ = ["__version__", *_EXPORTS, *_MODULES]


def __getattr__(name: str) -> Any:
    """Import a public name or module on first use (PEP 562)."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module 'cutlib' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
