"""The methods a run can use, one module each (docs/architecture.md#methods-and-the-registry).

Each module of this package that defines a method registers a
:class:`~cutlib.methods.registry.Method` declaring all there is to know about it (its name, where
its training starts, its schedule under each protocol, its options); importing this package
imports every module in it, so :data:`METHODS` holds every method and nothing else lists them.
What methods share is in :mod:`cutlib.methods.context` (the run context, masked training) and the
primitives in :mod:`cutlib.pruning`.
"""

from __future__ import annotations

import importlib
import pkgutil

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.dense import DENSE, pretrain
from cutlib.methods.registry import (
    DEFAULT_PROTOCOL,
    METHODS,
    PROTOCOLS,
    Method,
    get_method,
    register,
    unregister,
)
from cutlib.methods.spec import RunSpec

__all__ = [
    "CONTROL",
    "DEFAULT_PROTOCOL",
    "DENSE",
    "METHODS",
    "PROTOCOLS",
    "Method",
    "MethodResult",
    "RunContext",
    "RunSpec",
    "get_method",
    "pretrain",
    "register",
    "unregister",
]

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")

#: The control's method name (:mod:`cutlib.methods.control`), for the modules that compare with it.
CONTROL: str = importlib.import_module(f"{__name__}.control").CONTROL
