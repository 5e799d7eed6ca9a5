"""Dynamic sparse training, shared by RigL and DiSparse's dynamic variant: Erdős–Rényi-Kernel
layer budgets, random initial masks, a cosine drop schedule, and a mask updater that drops the
smallest active weights and grows as many inactive ones with the largest gradient.

References: Evci et al., "Rigging the Lottery: Making All Tickets Winners", ICML 2020 (RigL, ERK);
Sun et al., "DiSparse", CVPR 2022, its dynamic variant
(docs/method/disparse.md#dynamic-sparse-training, docs/method/baselines.md#the-baseline-methods).

Every update keeps each layer's number of non-zeros exactly constant: ``n = ⌊f(t) · active⌋``
weights are dropped and ``n`` grown, so the sparsity of the deployed model never moves from the
target the ERK budgets hit at the start.

Example:
    >>> shapes = {"a": torch.Size([4, 1]), "b": torch.Size([8, 8])}
    >>> counts = erk_counts(shapes, 0.5)
    >>> masks = random_masks(shapes, counts, torch.Generator().manual_seed(0))
    >>> {name: int(mask.sum()) for name, mask in masks.items()}
    {'a': 4, 'b': 30}
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn

from cutlib.losses import Align
from cutlib.models import SceneNet
from cutlib.pruning.importance import joint_importance, task_importance
from cutlib.pruning.masks import BACKBONE, Masks, prunable_weights
from cutlib.tasks import TaskSpec

#: The value a regrown weight starts from: ``zero`` (RigL) or its stored ``stale`` value (DiSparse).
RegrowValue = Literal["zero", "stale"]


def erk_counts(
    shapes: Mapping[str, torch.Size],
    density: float,
    power: float = 1.0,
    dense: Collection[str] = (),
) -> dict[str, int]:
    """Erdős–Rényi-Kernel keep counts per layer (Evci et al. 2020), summing exactly to
    ``round(density · N)``.

    Layer ℓ with weight shape (n₁, …, n_k) gets density d_ℓ = ε·((Σ nᵢ)/(Π nᵢ))^power (RigL: power
    1; DiSparse: 0.9), with ε solved so that Σ d_ℓ N_ℓ = density · N; a layer whose d_ℓ would exceed
    1 is made dense and ε re-solved; layers in ``dense`` are dense from the start. Rounding
    remainders go to the layers with the largest fractional parts (ties by order), so the total is
    exact.

    Raises:
        ValueError: if ``density`` is outside (0, 1] or the dense layers alone exceed the budget.

    Example:
        >>> erk_counts({"a": torch.Size([4, 1]), "b": torch.Size([8, 8])}, 0.5)
        {'a': 4, 'b': 30}
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    raw = {name: (sum(shape) / sizes[name]) ** power for name, shape in shapes.items()}
    target = round(density * sum(sizes.values()))
    full = set(dense)
    while True:
        budget = target - sum(sizes[n] for n in full)
        if budget < 0:
            raise ValueError(
                f"the dense layers alone hold {target - budget} weights, more than the "
                f"{target} a density of {density} allows"
            )
        rest = [n for n in shapes if n not in full]
        if not rest:
            break
        epsilon = budget / sum(raw[n] * sizes[n] for n in rest)
        overfull = {n for n in rest if epsilon * raw[n] > 1.0}
        if not overfull:
            break
        full |= overfull  # ε only grows when they leave, so they stay overfull
    counts = {n: sizes[n] for n in full}
    exact = {n: epsilon * raw[n] * sizes[n] for n in rest}
    counts |= {n: math.floor(v) for n, v in exact.items()}
    remainder = target - sum(counts.values())
    by_fraction = sorted(exact, key=lambda n: exact[n] - math.floor(exact[n]), reverse=True)
    for name in by_fraction[:remainder]:
        counts[name] += 1
    return {n: counts[n] for n in shapes}


def random_masks(
    shapes: Mapping[str, torch.Size], counts: Mapping[str, int], generator: torch.Generator
) -> Masks:
    """Masks keeping exactly ``counts[name]`` uniformly random positions of each layer (the top
    ``counts[name]`` of i.i.d. uniform keys drawn from ``generator``).

    Example:
        >>> m = random_masks({"w": torch.Size([2, 3])}, {"w": 2}, torch.Generator().manual_seed(0))
        >>> int(m["w"].sum()), m["w"].shape
        (2, torch.Size([2, 3]))
    """
    masks = {}
    for name, shape in shapes.items():
        keys = torch.rand(math.prod(shape), generator=generator)
        flat = torch.zeros(keys.numel(), dtype=torch.bool)
        flat[torch.topk(keys, counts[name]).indices] = True
        masks[name] = flat.reshape(shape)
    return masks


def cosine_drop_fraction(iteration: int, end: int, alpha: float) -> float:
    """RigL's drop fraction f(t) = α/2 · (1 + cos(π t / T_end)) (Evci et al. 2020, §3).

    Example:
        >>> cosine_drop_fraction(0, 100, 0.3), cosine_drop_fraction(100, 100, 0.3)
        (0.3, 0.0)
    """
    return alpha / 2.0 * (1.0 + math.cos(math.pi * iteration / end))


def update_iterations(
    every: int, end: int, evaluations: Collection[int] = (), at_start: bool = False
) -> list[int]:
    """The iterations after which the masks change: RigL's t = ΔT, 2ΔT, … < T_end, except that an
    update due at an ``evaluation`` iteration is made one iteration earlier (and dropped if that
    one is an evaluation too). ``at_start`` adds t = 0, an update before the first step (DiSparse's
    code updates at every iteration i with i mod ΔT = 0, the first included).

    Training evaluates, and may keep the model as its checkpoint, right after ``on_step`` at an
    evaluation iteration; a weight grown at zero there would still be exactly zero, and count as
    pruned in the deployed model. One optimiser step in between moves it off zero, so every
    checkpoint has exactly the ERK number of non-zeros.

    Example:
        >>> update_iterations(5, 37, evaluations={15, 30, 45, 50})
        [5, 10, 14, 20, 25, 29, 35]
        >>> update_iterations(5, 12, at_start=True)
        [0, 5, 10]
    """
    due = range(every, end, every)
    moved = [t - 1 if t in evaluations else t for t in due]
    start = [0] if at_start and end > 0 else []
    return start + [t for t in moved if t >= 1 and t not in evaluations]


class GrowRule(Protocol):
    """Which inactive weights to grow: :meth:`prepare` computes gradient scores on a batch,
    :meth:`select` picks ``n`` of a layer's candidate positions."""

    def prepare(self, model: SceneNet, batch: Mapping[str, Tensor]) -> None:
        """Score every prunable weight of ``model`` on ``batch`` (``model`` is not modified)."""

    def select(self, name: str, candidates: Tensor, n: int) -> Tensor:
        """Boolean mask of ``n`` positions of layer ``name`` among ``candidates`` to grow."""


def _top(scores: Tensor, candidates: Tensor, n: int) -> Tensor:
    """Boolean mask of the ``n`` candidate positions with the largest scores."""
    ranked = torch.where(candidates, scores, torch.tensor(-math.inf, device=scores.device))
    chosen = torch.zeros_like(candidates).reshape(-1)
    chosen[torch.topk(ranked.reshape(-1), n).indices] = True
    return chosen.reshape(candidates.shape)


class JointGradient:
    """RigL's growth: where |∂L/∂w| of the joint λ-weighted loss Σ_t λ_t L_t of ``tasks`` is
    largest, L evaluated at the effective (masked) weights and differentiated with respect to all
    of them, the dense gradient of Evci et al. 2020."""

    def __init__(self, tasks: Sequence[TaskSpec], align: Align = "upsample") -> None:
        self.tasks, self.align = list(tasks), align
        self.scores: dict[str, Tensor] = {}

    def prepare(self, model: SceneNet, batch: Mapping[str, Tensor]) -> None:
        self.scores = joint_importance(model, [batch], self.tasks, "gradient", align=self.align)

    def select(self, name: str, candidates: Tensor, n: int) -> Tensor:
        return _top(self.scores[name].to(candidates.device), candidates, n)


class UnionOfTaskGradients:
    """DiSparse's disentangled growth with its union arbiter (Sun et al. 2022,
    docs/method/disparse.md#dynamic-sparse-training).

    Each task t proposes the ``n`` candidates with the largest |∂L_t/∂w| of its own unweighted loss
    over its sub-model (backbone + head t); a head grows its own task's proposal, the backbone the
    union of the proposals. The union holds between n and |S|·n positions; to keep the number of
    non-zeros constant, the ``n`` union positions with the largest score normalised by the task's
    sum over the layer, ŝ_t = s_t / Σ_layer s_t, maximised over tasks, are kept. **Deviation:** the
    reference code grows the whole union, so its non-zero count drifts upwards at every update.

    Example:
        >>> seg = TaskSpec("seg", "seg", 3, ignore_value=255)
        >>> rule = UnionOfTaskGradients([seg, TaskSpec("depth", "depth", 1)])
        >>> rule.owners = {"b": BACKBONE}
        >>> rule.scores = {"seg": {"b": torch.tensor([5.0, 4, 0, 0])},
        ...                "depth": {"b": torch.tensor([0.0, 0, 1, 3])}}
        >>> rule.select("b", torch.ones(4, dtype=torch.bool), 2)  # {0, 1} ∪ {2, 3} → 0 and 3
        tensor([ True, False, False,  True])
    """

    def __init__(self, tasks: Sequence[TaskSpec], align: Align = "upsample") -> None:
        self.tasks, self.align = list(tasks), align
        self.owners: dict[str, str] = {}
        self.scores: dict[str, dict[str, Tensor]] = {}

    def prepare(self, model: SceneNet, batch: Mapping[str, Tensor]) -> None:
        self.owners = {w.name: w.owner for w in prunable_weights(model)}
        self.scores = task_importance(model, [batch], self.tasks, "gradient", align=self.align)

    def select(self, name: str, candidates: Tensor, n: int) -> Tensor:
        owner = self.owners[name]
        if owner != BACKBONE:
            return _top(self.scores[owner][name].to(candidates.device), candidates, n)
        per_task = [s[name].to(candidates.device) for s in self.scores.values()]
        union = torch.zeros_like(candidates)
        for score in per_task:
            union |= _top(score, candidates, n)
        normalised = torch.stack([s / s.sum().clamp_min(1e-30) for s in per_task]).amax(0)
        return _top(normalised, union, n)


@contextlib.contextmanager
def _random_state_kept(model: nn.Module) -> Iterator[None]:
    """Restore the CPU random state, and that of the model's accelerator, on exit: scoring seeds
    the global generators, which must not change the training's dropout and augmentation."""
    device = next(model.parameters()).device
    devices = [] if device.type == "cpu" else [device]
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        yield


class DynamicSparsity:
    """The mask updater, called after every optimiser step (``train(on_step=...)``) and once
    before the first (iteration 0).

    At the :func:`update_iterations` t (every ``every`` iterations before ``end``, moved off the
    ``evaluations`` the training loop makes: ``TrainConfig.evaluation_iterations``), in every
    layer of ``names``: drop the n = ⌊f(t) · active⌋ active weights with the smallest |w| (f:
    :func:`cosine_drop_fraction`), then grow n of the positions inactive *before* the drop, chosen
    by ``rule`` on the batch just trained on (so a just-dropped weight cannot come back and exactly
    n positions move). The masks (``weight_mask`` buffers) change in place; a grown weight starts
    at zero (``regrow="zero"``, RigL) or resumes its stored ``weight_orig`` value (``"stale"``,
    DiSparse's code). Layers outside ``names`` (and heads the compact model no longer has) are
    never touched. The gradients are taken on a copy of the model, so its BatchNorm statistics and
    ``.grad`` fields do not change, and the random state is restored afterwards. The optimiser's
    state for a regrown weight is left as it is.

    Attributes:
        updates: mask updates made; ``moved``: weights dropped (= grown) in all;
        ``seconds``: time spent in the updates.
    """

    def __init__(
        self,
        model: SceneNet,
        names: Collection[str],
        rule: GrowRule,
        *,
        every: int,
        end: int,
        alpha: float,
        regrow: RegrowValue = "zero",
        evaluations: Collection[int] = (),
        at_start: bool = False,
    ) -> None:
        if every < 1 or end < 0 or not 0.0 <= alpha <= 1.0:
            raise ValueError(
                f"a dynamic-sparsity schedule needs every ≥ 1, end ≥ 0 and alpha in [0, 1]; "
                f"got every={every}, end={end}, alpha={alpha}"
            )
        self.model = model
        self.modules = {w.name: w.module for w in prunable_weights(model) if w.name in names}
        self.rule, self.end, self.alpha, self.regrow = rule, end, alpha, regrow
        self.iterations = frozenset(update_iterations(every, end, evaluations, at_start))
        self.updates = 0
        self.moved = 0
        self.seconds = 0.0

    def __call__(self, iteration: int, batch: Mapping[str, Tensor]) -> None:
        if iteration not in self.iterations:
            return
        start = time.perf_counter()
        fraction = cosine_drop_fraction(iteration, self.end, self.alpha)
        with _random_state_kept(self.model):
            self.rule.prepare(self.model, batch)
        with torch.no_grad():
            for name, module in self.modules.items():
                self.moved += self._update(name, module, fraction)
        self.updates += 1
        self.seconds += time.perf_counter() - start

    def state_dict(self) -> dict[str, Any]:
        """The counters (the masks themselves are the model's ``weight_mask`` buffers), carried
        over a resume (:class:`cutlib.resume.StatefulHook`)."""
        return {"updates": self.updates, "moved": self.moved, "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back the counters of :meth:`state_dict`."""
        self.updates, self.moved, self.seconds = state["updates"], state["moved"], state["seconds"]

    def _update(self, name: str, module: nn.Module, fraction: float) -> int:
        mask = module.weight_mask
        active = mask.bool()
        inactive = ~active
        n = min(math.floor(fraction * int(active.sum())), int(inactive.sum()))
        if n == 0:
            return 0
        weight = module.weight_orig
        magnitude = torch.where(active, weight.abs(), torch.tensor(math.inf, device=weight.device))
        dropped = torch.zeros_like(active).reshape(-1)
        dropped[torch.topk(magnitude.reshape(-1), n, largest=False).indices] = True
        grown = self.rule.select(name, inactive, n)
        if self.regrow == "zero":
            weight[grown] = 0.0
        mask.copy_((active & ~dropped.reshape(active.shape)) | grown)
        return n


def deployed_shapes(model: SceneNet) -> dict[str, torch.Size]:
    """Shapes of every prunable weight of ``model`` (backbone and its heads)."""
    return {w.name: w.weight.shape for w in prunable_weights(model)}
