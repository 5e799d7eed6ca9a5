"""Validation shared by the methods' options (``cutlib run --option NAME=VALUE``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, TypeVar

#: How a method chooses its keep ratio κ: calibrated to the requested sparsity, or looked up in
#: the authors' table for the nominal sparsity; a number in (0, 1] is also accepted.
KEEP_RATIO_MODES: tuple[str, ...] = ("calibrate", "table")

T = TypeVar("T")


def options_from_pairs(cls: type[T], pairs: Mapping[str, Any]) -> T:
    """Build the dataclass ``cls`` from ``name → value`` pairs, rejecting unknown names.

    Raises:
        ValueError: naming the first unknown option and the valid ones.
    """
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(pairs) - set(names))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}; valid options: {', '.join(names)}")
    return cls(**pairs)


def check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(choices)}")


def check_keep_ratio(value: object) -> None:
    """Raise ValueError unless ``value`` is a keep-ratio mode or a number in (0, 1]."""
    number = isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value <= 1.0
    if value not in KEEP_RATIO_MODES and not number:
        raise ValueError(
            f"unknown keep_ratio {value!r}; valid choices: calibrate, table or a number in (0, 1]"
        )


def check_positive_int(name: str, value: object) -> None:
    """Raise ValueError unless ``value`` is an integer ≥ 1 (booleans are not integers here)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
