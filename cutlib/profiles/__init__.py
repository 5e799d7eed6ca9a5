"""Run profiles (docs/architecture.md#profiles): data size, model size and schedules, as YAML
files beside this module, loaded into a typed, validated :class:`~cutlib.profiles.schema.Profile`.

A profile has top-level sections (``data``, ``model``, ``pretrain``, ``eval``…) and an optional
``datasets`` mapping whose entries are deep-merged over the sections for that dataset, so one
profile can hold per-dataset settings (the ``paper`` profile holds the authors' values for each of
the paper's datasets). Every variant is validated when the file is first read.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any

import yaml

from cutlib.profiles.schema import Profile, ProfileError, deep_merge, parse_profile

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILE_NAMES",
    "Profile",
    "ProfileError",
    "check_profile_name",
    "load_profile",
    "method_settings",
    "run_settings",
]

PROFILE_NAMES: tuple[str, ...] = ("smoke", "quick", "study", "regime", "full", "paper")
DEFAULT_PROFILE = "quick"

#: Profile entries that say which runs to make, how to present them or how to execute them, not
#: what one run computes: top-level keys, and ``(section, key)`` pairs. They are left out of a
#: run's identity, so a change of the grid, of a notebook's run list or of the runtime (workers,
#: checkpoints, cluster) reuses every finished run.
PLANNING_KEYS: tuple[str, ...] = (
    "description",
    "seeds",
    "grid",
    "claims",
    "ablations",
    "edge",
    "runtime",
)
PLANNING_SUBKEYS: tuple[tuple[str, str], ...] = (("baselines", "notebook"),)


def check_profile_name(name: str) -> str:
    """Return ``name`` if it is a profile, else raise ValueError listing the valid ones."""
    if name not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILE_NAMES)}")
    return name


def load_profile(name: str, dataset: str | None = None) -> Profile:
    """Load profile ``name``; with ``dataset``, merge that dataset's overrides into the sections.

    Raises:
        ValueError: for an unknown profile name.
        ProfileError: for a profile file with an unknown, missing or ill-typed key.

    Example:
        >>> load_profile("smoke", "synth-nyuv2").model.backbone
        'resnet18'
    """
    check_profile_name(name)
    return _variants(name)[dataset if dataset in _variants(name) else None]


def method_settings(profile: Profile, method: str, protocol: str) -> Profile:
    """The settings a run of ``method`` under ``protocol`` trains with: the profile itself,
    except under ``paper`` where the method's ``baselines.paper_protocol`` sections are merged
    over the profile's (a DiSparse variant then trains with DiSparse's learning rate, decay, batch
    and scoring batch sizes, not the CUT code's).

    Example:
        >>> paper = load_profile("paper", "nyuv2")
        >>> method_settings(paper, "disparse_static", "paper").pretrain.lr
        0.001
        >>> method_settings(paper, "disparse_static", "fair").pretrain.lr
        0.0001
    """
    overrides = profile.baselines.paper_protocol.get(method)
    if protocol != "paper" or not overrides:
        return profile
    return profile.override(overrides)


def run_settings(profile: Profile) -> dict[str, Any]:
    """The part of a loaded profile that determines the result of one run (its identity): the
    validated mapping it was built from, without :data:`PLANNING_KEYS` and
    :data:`PLANNING_SUBKEYS`.

    Example:
        >>> "grid" in run_settings(load_profile("quick", "synth-nyuv2"))
        False
    """
    settings = {k: copy.deepcopy(v) for k, v in profile.source.items() if k not in PLANNING_KEYS}
    for section, key in PLANNING_SUBKEYS:
        if isinstance(settings.get(section), dict):
            settings[section].pop(key, None)
    return settings


def _read(name: str) -> dict[str, Any]:
    """The mapping in the package's ``<name>.yaml``."""
    return yaml.safe_load(resources.files(__package__).joinpath(f"{name}.yaml").read_text())


def _source(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The mapping of profile ``name``'s YAML file; a profile that starts with ``extends: BASE``
    is BASE's mapping with its own entries merged in, section by section (lists replaced).

    Raises:
        ValueError: an unknown base profile, or profiles that extend each other in a circle.
    """
    source = _read(name)
    base = source.pop("extends", None)
    if base is None:
        return source
    if base in (name, *seen):
        raise ValueError(f"profile {name!r} extends {base!r}, which extends it back")
    check_profile_name(base)
    return deep_merge(_source(base, (*seen, name)), source)


@functools.cache
def _variants(name: str) -> dict[str | None, Profile]:
    """Profile ``name`` as a whole (key ``None``) and with each dataset's overrides merged,
    parsed and validated once per process (runs, run ids and the grid read profiles thousands of
    times; profiles are frozen, so sharing them is safe)."""
    source = _source(name)
    overrides = source.pop("datasets", None) or {}
    variants: dict[str | None, Profile] = {None: parse_profile(source, name)}
    for dataset, changes in overrides.items():
        variants[dataset] = parse_profile(deep_merge(source, changes), name, dataset)
    return variants
