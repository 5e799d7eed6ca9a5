"""The method registry: everything the rest of the package knows about a method, declared once,
in the method's own module (docs/architecture.md#methods-and-the-registry).

A method module defines a function ``RunContext → MethodResult`` and registers a :class:`Method`
that names it, says where its training starts, how it trains under each protocol and which options
it takes. The run machinery, the grid, its step counts and the CLI's help all read this registry;
adding a method is adding one module to :mod:`cutlib.methods` (docs/howto.md#add-a-method).

**Training budgets (the two protocols).** With P the profile's pre-training iterations and F its
fine-tuning iterations, a method either starts from the dense pre-trained model (which has had P
iterations) or from scratch, and may train over several rounds:

- ``fair``: from the pre-trained model, F iterations of the ``finetune`` schedule; from scratch,
  P + F iterations of the ``pretrain`` schedule. A method with several rounds splits that budget
  across them.
- ``paper``: from the pre-trained model, F iterations per round; from scratch, the schedule the
  reference code uses (``paper_schedule``): ``finetune`` (the CUT code's SNIP and random
  baselines) or ``pretrain`` (DiSparse, RigL). A method with its own authors' code (DiSparse's
  three variants) also takes that code's hyperparameters: the profile's
  ``baselines.paper_protocol.<method>`` sections are merged over the profile for its runs
  (:func:`cutlib.profiles.method_settings`).

So under ``fair`` every deployed model has had P + F optimiser steps since its random
initialisation, however it was obtained; under ``paper`` a network pruned at initialisation may get
only the short fine-tuning, as in the CUT code, which makes it look weak
(docs/method/baselines.md#how-the-cut-code-configures-its-baselines).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from cutlib.models import SceneNet
from cutlib.profiles import Profile
from cutlib.pruning.options import options_from_pairs
from cutlib.train import TrainConfig

PROTOCOLS: tuple[str, ...] = ("fair", "paper")
DEFAULT_PROTOCOL = "fair"

#: Where a method's training starts: the dense pre-trained weights, or a fresh initialisation.
Start = Literal["pretrained", "scratch"]
#: Which schedule the reference code gives a from-scratch method (the ``paper`` protocol).
ReferenceSchedule = Literal["pretrain", "finetune"]


@dataclass
class MethodResult:
    """A method's deployed model (selected heads only), its training history, and details worth
    recording in ``metrics.json`` (``details``)."""

    model: SceneNet
    history: list[dict[str, float]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    #: extra models saved beside ``model.pt`` as ``<name>.pt`` (e.g. ``rewind`` for LTH)
    artifacts: dict[str, SceneNet] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """A method, as declared in its module.

    Args:
        name: the contract name (``cutlib run --method NAME``, the grid, the run id).
        run: the algorithm: a function of the run context
            (:class:`~cutlib.methods.context.RunContext`, which holds this declaration, hence the
            loose type) that returns the deployed model as a :class:`MethodResult`.
        start: ``pretrained`` (from the dense pre-trained model) or ``scratch``.
        summary: one line for ``cutlib run --help`` and the docs.
        paper_schedule: the schedule the reference code gives a from-scratch method under the
            ``paper`` protocol (``pretrain`` or ``finetune``).
        iterative: trains in the profile's ``baselines.rounds`` rounds (IMP, LTH).
        trains: whether the method trains at all (``dense`` does not).
        prunes: whether the method removes weights; one that does not (the dense reference, the
            fine-tuned control) runs at sparsity 0 only.
        sparsity: what a run's sparsity counts: pruned ``weights`` of the deployed model, or the
            fraction of its ``flops`` removed (channel pruning, where no weight is zero).
        options: the dataclass of its ``--option NAME=VALUE`` choices (``None``: it has none).
        schedule: the schedule of one round under a protocol, when the method's differs from
            :meth:`round_schedule`'s (LTH retrains at the pre-training rate).
        rewinds: retrains its survivors from weights of early in the pre-training, not from the
            pre-trained ones (LTH), though it starts from the pre-trained model.
        label: the name figures and tables show (default: ``name``).
        colour: its colour in every figure (:mod:`cutlib.palette`); one per method.
        marker: its matplotlib marker in every figure.
    """

    name: str
    run: Callable[[Any], MethodResult]
    start: Start
    summary: str
    paper_schedule: ReferenceSchedule = "finetune"
    iterative: bool = False
    trains: bool = True
    prunes: bool = True
    sparsity: Literal["weights", "flops"] = "weights"
    options: type | None = None
    schedule: Callable[[Method, Profile, str], TrainConfig] | None = None
    rewinds: bool = False
    label: str = ""
    colour: str = "0.5"
    marker: str = "o"

    @property
    def keeps_pretrained_weights(self) -> bool:
        """Whether the deployed model is the pre-trained weights pruned and fine-tuned (CUT and the
        other pre-trained pruners), rather than trained from an initialisation or rewound."""
        return self.start == "pretrained" and not self.rewinds

    @property
    def protocol_free(self) -> bool:
        """Whether the protocol cannot change how the method trains (given no per-method settings
        under ``paper``): it starts from the pre-trained model and trains in one round."""
        return self.start == "pretrained" and not self.iterative

    def rounds(self, profile: Profile) -> int:
        """Training rounds: the profile's ``baselines.rounds`` for an iterative method, else 1."""
        return profile.baselines.rounds if self.iterative else 1

    def round_schedule(self, profile: Profile, protocol: str) -> TrainConfig:
        """The schedule of one training round under ``protocol`` (module docstring), from the
        method's own settings ``profile`` (:func:`cutlib.profiles.method_settings`).

        Example:
            >>> from cutlib.profiles import load_profile
            >>> snip = METHODS["snip"]
            >>> smoke = load_profile("smoke")
            >>> p, f = smoke.pretrain.iterations, smoke.finetune.iterations
            >>> snip.round_schedule(smoke, "fair").iterations == p + f  # from scratch, fair
            True
            >>> snip.round_schedule(smoke, "paper").iterations == f  # the CUT code's schedule
            True
        """
        if self.schedule is not None:
            return self.schedule(self, profile, protocol)
        pretrain, finetune = profile.pretrain, profile.finetune
        if protocol == "paper":
            if self.start == "pretrained":
                return finetune
            return pretrain if self.paper_schedule == "pretrain" else finetune
        if self.start == "pretrained":
            total, base = finetune.iterations, finetune
        else:
            total, base = pretrain.iterations + finetune.iterations, pretrain
        per_round = max(total // self.rounds(profile), 1)
        return replace(base, iterations=per_round, eval_every=min(base.eval_every, per_round))

    def planned_steps(self, profile: Profile, protocol: str) -> int:
        """The optimiser steps a run of this method takes: rounds × the steps of one round."""
        if not self.trains:
            return 0
        return self.rounds(profile) * self.round_schedule(profile, protocol).iterations

    def parse_options(self, pairs: Mapping[str, Any]) -> Any:
        """The method's options from ``name → value`` pairs (``None`` for a method without).

        Raises:
            ValueError: for an option the method does not have or a value it does not accept.
        """
        if self.options is None:
            if pairs:
                raise ValueError(f"method {self.name!r} takes no options")
            return None
        return options_from_pairs(self.options, pairs)


_REGISTRY: dict[str, Method] = {}

#: Method name → :class:`Method`, every registered method (read-only; see :func:`register`).
METHODS: Mapping[str, Method] = MappingProxyType(_REGISTRY)


def register(method: Method) -> Method:
    """Add ``method`` to the registry and return it.

    Raises:
        ValueError: if a different method is already registered under its name.
    """
    known = _REGISTRY.get(method.name)
    if known is not None and known != method:
        raise ValueError(f"a method named {method.name!r} is already registered")
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method from the registry (for methods defined in a test or a notebook)."""
    _REGISTRY.pop(name, None)


def get_method(name: str) -> Method:
    """The registered method ``name``.

    Raises:
        ValueError: naming the valid methods.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]
