"""``rigl``: RigL, dynamic sparse training on the joint loss (Evci et al., "Rigging the Lottery:
Making All Tickets Winners", ICML 2020; docs/method/baselines.md#the-baseline-methods).

The compact network (backbone + selected heads) starts from its initialisation W₀ with random
masks at Erdős–Rényi-Kernel layer densities (power 1),

    d_ℓ = ε · (Σᵢ nᵢ / Πᵢ nᵢ),   ε such that Σ_ℓ d_ℓ N_ℓ = (1 − sparsity) · N,

hit exactly in whole weights. Every ΔT iterations until T_end, each layer drops the
n = ⌊f(t) · active⌋ active weights with the smallest |w|, f(t) = α/2 · (1 + cos(π t / T_end)), and
grows the n inactive ones where the dense gradient |∂(Σ_t λ_t L_t)/∂w| of the joint loss on the
current batch is largest, starting at zero; the number of non-zeros never changes. ΔT, T_end / T
and α come from the profile's ``baselines.dynamic`` (α = 0.3 as in the RigL paper); the training
budget from the protocol (:mod:`cutlib.context`). Neither the CUT nor the DiSparse code has a RigL
baseline; DiSparse's tables report one.

Beyond the paper: an update due right before an evaluation is made one iteration earlier
(:func:`~cutlib.pruning.dynamic.update_iterations`), so a checkpoint never holds a weight grown
at zero and not yet trained, which would count as pruned. The optimiser's moments of a regrown
weight are kept (the training loop owns the optimiser).
"""

from __future__ import annotations

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.dynamic_training import train_dynamic
from cutlib.methods.registry import Method, register
from cutlib.pruning.dynamic import JointGradient


def rigl(ctx: RunContext) -> MethodResult:
    """RigL from scratch on the selected tasks' joint λ-weighted loss."""
    alpha = ctx.profile.baselines.dynamic.rigl_drop_fraction
    return train_dynamic(ctx, JointGradient, power=1.0, alpha=alpha, regrow="zero")


METHOD = register(
    Method(
        "rigl",
        rigl,
        start="scratch",
        summary="RigL: dynamic sparse training on the joint loss",
        paper_schedule="pretrain",
        label="RigL",
        colour="#332288",
        marker="p",
    )
)
