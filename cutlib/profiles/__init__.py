"""Run profiles (DESIGN §7): data size, model size and schedules, as YAML files beside this module.

A profile has top-level sections (``data``, ``model``, ``pretrain``, ``eval``) and an optional
``datasets`` mapping whose entries are deep-merged over the sections for that dataset, so one
profile can hold per-dataset settings (the ``paper`` profile holds the authors' values for each of
the paper's datasets).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

PROFILE_NAMES: tuple[str, ...] = ("smoke", "quick", "full", "paper")
DEFAULT_PROFILE = "quick"

#: Profile entries that say which runs to make or how to present them, not how one run goes:
#: top-level keys, and ``(section, key)`` pairs. They are left out of a run's identity, so a
#: change of the grid or of a notebook's run list reuses every finished run.
PLANNING_KEYS: tuple[str, ...] = (
    "description",
    "seeds",
    "grid",
    "claims",
    "ablations",
    "edge",
)
PLANNING_SUBKEYS: tuple[tuple[str, str], ...] = (("baselines", "notebook"),)


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
    profile = copy.deepcopy(_parsed(name))  # a copy: callers may change theirs
    overrides = profile.pop("datasets", {}) or {}
    if dataset is not None and dataset in overrides:
        profile = _deep_merge(profile, overrides[dataset])
    return profile


def paper_protocol_methods(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The ``baselines.paper_protocol`` section of a loaded profile: method → the profile
    sections (``pretrain``, ``finetune``, ``scoring``, ``baselines``…) that method trains with
    under ``--protocol paper``, as its own authors' code sets them (empty when there is none).

    Example:
        >>> sorted(paper_protocol_methods(load_profile("paper", "nyuv2")))
        ['disparse_dynamic', 'disparse_pt', 'disparse_static']
    """
    return dict((profile.get("baselines") or {}).get("paper_protocol") or {})


def method_settings(profile: dict[str, Any], method: str, protocol: str) -> dict[str, Any]:
    """The settings a run of ``method`` under ``protocol`` trains with: the profile itself,
    except under ``paper`` where the method's ``baselines.paper_protocol`` sections are merged
    over the profile's (a DiSparse variant then trains with DiSparse's learning rate, decay, batch
    and scoring batch sizes, not the CUT code's).

    Example:
        >>> paper = load_profile("paper", "nyuv2")
        >>> method_settings(paper, "disparse_static", "paper")["pretrain"]["lr"]
        0.001
        >>> method_settings(paper, "disparse_static", "fair")["pretrain"]["lr"]
        0.0001
    """
    overrides = paper_protocol_methods(profile).get(method)
    if protocol != "paper" or not overrides:
        return profile
    return _deep_merge(profile, overrides)


@functools.cache
def _parsed(name: str) -> dict[str, Any]:
    """The YAML of profile ``name``, parsed once per process (runs, run ids and the grid read
    profiles thousands of times)."""
    return yaml.safe_load(resources.files(__package__).joinpath(f"{name}.yaml").read_text())


def run_settings(profile: dict[str, Any]) -> dict[str, Any]:
    """The part of a loaded profile that determines the result of one run (its identity):
    the profile without :data:`PLANNING_KEYS` and :data:`PLANNING_SUBKEYS`.

    Example:
        >>> "grid" in run_settings(load_profile("quick", "synth-nyuv2"))
        False
    """
    settings = {k: copy.deepcopy(v) for k, v in profile.items() if k not in PLANNING_KEYS}
    for section, key in PLANNING_SUBKEYS:
        if isinstance(settings.get(section), dict):
            settings[section].pop(key, None)
    return settings
