"""Run profiles (DESIGN §7): data size, model size and schedules, as YAML files beside this module.

A profile has top-level sections (``data``, ``model``, ``pretrain``, ``eval``) and an optional
``datasets`` mapping whose entries are deep-merged over the sections for that dataset, so one
profile can hold per-dataset settings (the ``paper`` profile holds the authors' values for each of
the paper's datasets).
"""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

import yaml

PROFILE_NAMES: tuple[str, ...] = ("smoke", "quick", "full", "paper")
DEFAULT_PROFILE = "quick"


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def check_profile_name(name: str) -> str:
    """Return ``name`` if it is a profile, else raise ValueError listing the valid ones."""
    if name not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILE_NAMES)}")
    return name


def load_profile(name: str, dataset: str | None = None) -> dict[str, Any]:
    """Load profile ``name``; with ``dataset``, merge that dataset's overrides into the sections.

    Example:
        >>> load_profile("smoke", "synth-nyuv2")["model"]["backbone"]
        'resnet18'
    """
    check_profile_name(name)
    text = resources.files(__package__).joinpath(f"{name}.yaml").read_text()
    profile = yaml.safe_load(text)
    overrides = profile.pop("datasets", {}) or {}
    if dataset is not None and dataset in overrides:
        profile = _deep_merge(profile, overrides[dataset])
    return profile
