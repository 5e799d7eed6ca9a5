"""Dynamic sparse training, shared by RigL and DiSparse's dynamic variant: Erdős–Rényi-Kernel
layer budgets, random initial masks, a cosine drop schedule, and a mask updater that drops the
smallest active weights and grows as many inactive ones with the largest gradient.

References: Evci et al., "Rigging the Lottery: Making All Tickets Winners", ICML 2020 (RigL, ERK);
Sun et al., "DiSparse", CVPR 2022, its dynamic variant (PAPER_NOTES §2.5, §3.2).

Every update keeps each layer's number of non-zeros exactly constant: ``n = ⌊f(t) · active⌋``
weights are dropped and ``n`` grown, so the sparsity of the deployed model never moves from the
target the ERK budgets hit at the start.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor

from cutlib.context import MethodResult, RunContext
from cutlib.models import SceneNet
from cutlib.pruning.importance import joint_importance, task_importance
from cutlib.pruning.masks import BACKBONE, Masks, prunable_weights
from cutlib.tasks import TaskSpec

RegrowValue = Literal["zero", "stale"]


def erk_counts(
    shapes: Mapping[str, torch.Size],
    density: float,
    power: float = 1.0,
    dense: Collection[str] = (),
) -> dict[str, int]:
    """Erdős–Rényi-Kernel keep counts per layer, summing exactly to ``round(density · N)``.

    Layer ℓ with weight shape (n₁, …, n_k) gets density d_ℓ = ε·((Σ nᵢ)/(Π nᵢ))^power, with ε
    solved so that Σ d_ℓ N_ℓ = density · N; a layer whose d_ℓ would exceed 1 is made dense and ε
    re-solved; layers in ``dense`` are dense from the start. Rounding remainders go to the layers
    with the largest fractional parts (ties by order), so the total is exact.

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
        full |= overfull
    counts = {n: sizes[n] for n in full}
    exact = {n: epsilon * raw[n] * sizes[n] for n in rest} if rest else {}
    counts |= {n: math.floor(v) for n, v in exact.items()}
    remainder = target - sum(counts.values())
    by_fraction = sorted(exact, key=lambda n: exact[n] - math.floor(exact[n]), reverse=True)
    for name in by_fraction[:remainder]:
        counts[name] += 1
    return {n: counts[n] for n in shapes}


def random_masks(
    shapes: Mapping[str, torch.Size], counts: Mapping[str, int], generator: torch.Generator
) -> Masks:
    """Masks keeping exactly ``counts[name]`` uniformly random positions of each layer."""
    masks = {}
    for name, shape in shapes.items():
        keys = torch.rand(math.prod(shape), generator=generator)
        flat = torch.zeros(keys.numel(), dtype=torch.bool)
        flat[torch.topk(keys, counts[name]).indices] = True
        masks[name] = flat.reshape(shape)
    return masks


def cosine_drop_fraction(iteration: int, end: int, alpha: float) -> float:
    """RigL's drop fraction f(t) = α/2 · (1 + cos(π t / T_end))."""
    return alpha / 2.0 * (1.0 + math.cos(math.pi * iteration / end))


class GrowRule:
    """Which inactive weights to grow: :meth:`prepare` computes gradient scores on a batch,
    :meth:`select` picks ``n`` of a layer's candidate positions."""

    def prepare(self, model: SceneNet, batch: Mapping[str, Tensor]) -> None:
        raise NotImplementedError

    def select(self, name: str, candidates: Tensor, n: int) -> Tensor:
        raise NotImplementedError


def _top(scores: Tensor, candidates: Tensor, n: int) -> Tensor:
    """Boolean mask of the ``n`` candidate positions with the largest scores."""
    ranked = torch.where(candidates, scores, torch.tensor(-math.inf, device=scores.device))
    chosen = torch.zeros_like(candidates).reshape(-1)
    chosen[torch.topk(ranked.reshape(-1), n).indices] = True
    return chosen.reshape(candidates.shape)


class JointGradient(GrowRule):
    """RigL: grow where |∂L/∂w| of the joint λ-weighted loss is largest (the dense gradient at
    the effective, masked weights)."""

    def __init__(self, tasks: Sequence[TaskSpec]) -> None:
        self.tasks = list(tasks)
        self.scores: dict[str, Tensor] = {}

    def prepare(self, model: SceneNet, batch: Mapping[str, Tensor]) -> None:
        self.scores = joint_importance(model, [batch], self.tasks, "gradient")

    def select(self, name: str, candidates: Tensor, n: int) -> Tensor:
        return _top(self.scores[name].to(candidates.device), candidates, n)


class UnionOfTaskGradients(GrowRule):
    """DiSparse's dynamic arbiter: each task proposes the ``n`` candidates with the largest
    |∂L_t/∂w| of its own loss; a head grows its own task's proposal, the backbone the union of
    the proposals. The union can hold up to |S|·n positions; to keep the number of non-zeros
    constant, the ``n`` with the largest score, normalised by each task's total over the layer and
    maximised over tasks, are kept (the reference code grows the whole union, so its count
    drifts)."""

    def __init__(self, tasks: Sequence[TaskSpec]) -> None:
        self.tasks = list(tasks)
        self.owners: dict[str, str] = {}
        self.scores: dict[str, dict[str, Tensor]] = {}

    def prepare(self, model: SceneNet, batch: Mapping[str, Tensor]) -> None:
        self.owners = {w.name: w.owner for w in prunable_weights(model)}
        self.scores = task_importance(model, [batch], self.tasks, "gradient")

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


class DynamicSparsity:
    """The mask updater, called after every optimiser step (``train(on_step=...)``).

    At iterations t with t % ``every`` == 0 and t < ``end``, in every masked layer: drop the
    n = ⌊f(t) · active⌋ active weights with the smallest |w| (f: :func:`cosine_drop_fraction`),
    then grow n of the previously inactive positions chosen by ``rule``; grown weights start at
    zero (``regrow="zero"``, RigL) or resume their stored value (``"stale"``, DiSparse's code).
    Only the layers in ``names`` are touched. The gradient pass works on a copy of the model (its
    BatchNorm statistics do not move) and does not consume the global random stream.
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
    ) -> None:
        if every < 1 or end < 0 or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"bad schedule: every={every}, end={end}, alpha={alpha}")
        self.model = model
        self.modules = {w.name: w.module for w in prunable_weights(model) if w.name in names}
        self.rule, self.every, self.end, self.alpha, self.regrow = rule, every, end, alpha, regrow
        self.updates = 0
        self.moved = 0

    def __call__(self, iteration: int, batch: Mapping[str, Tensor]) -> None:
        if iteration % self.every or iteration >= self.end:
            return
        fraction = cosine_drop_fraction(iteration, self.end, self.alpha)
        with torch.random.fork_rng(devices=[]):
            self.rule.prepare(self.model, batch)
        with torch.no_grad():
            for name, module in self.modules.items():
                self.moved += self._update(name, module, fraction)
        self.updates += 1

    def _update(self, name: str, module: torch.nn.Module, fraction: float) -> int:
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


def train_dynamic(
    ctx: RunContext,
    rule: GrowRule,
    *,
    power: float,
    alpha: float,
    regrow: RegrowValue,
    dense: Collection[str] = (),
) -> MethodResult:
    """Dynamic sparse training of the compact model from its initialisation: ERK budgets (with
    ``power``; ``dense`` layers kept whole) at the run's sparsity, random initial masks, then the
    profile's ``baselines.dynamic`` schedule of :class:`DynamicSparsity` updates."""
    settings = ctx.profile["baselines"]["dynamic"]
    model = ctx.initial_model().keep_tasks(ctx.task_names)
    shapes = deployed_shapes(model)
    start = time.perf_counter()
    counts = erk_counts(shapes, 1.0 - ctx.config.sparsity, power, dense)
    masks = random_masks(shapes, counts, torch.Generator().manual_seed(ctx.config.seed))
    ctx.time("fusion", start)
    schedule = ctx.schedule("scratch", "pretrain")
    updater = DynamicSparsity(
        model,
        shapes,
        rule,
        every=int(settings["update_every"]),
        end=int(settings["end_fraction"] * schedule.iterations),
        alpha=alpha,
        regrow=regrow,
    )
    result = ctx.train_masked(model, masks, schedule, stage="train", on_step=updater)
    result.details |= {
        "mask_updates": updater.updates,
        "weights_regrown": updater.moved,
        "drop_fraction": alpha,
        "erk_power": power,
        "regrow": regrow,
    }
    return result
