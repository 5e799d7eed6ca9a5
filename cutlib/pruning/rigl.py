"""``rigl``: RigL, dynamic sparse training on the joint loss (Evci et al., "Rigging the Lottery:
Making All Tickets Winners", ICML 2020; PAPER_NOTES §3.2).

The compact network starts from its initialisation W₀ with random masks at Erdős–Rényi-Kernel
layer densities (power 1) for the requested sparsity. Every ΔT iterations until T_end, each layer
drops the fraction f(t) = α/2 · (1 + cos(π t / T_end)) of its active weights with the smallest
|w| and grows as many inactive ones where the dense gradient |∂(Σ_t λ_t L_t)/∂w| of the joint loss
is largest, starting at zero; the number of non-zeros never changes. ΔT, T_end / T and α come from
the profile's ``baselines.dynamic`` (α = 0.3 as in the RigL paper); the training budget from the
protocol (:mod:`cutlib.context`). Neither the CUT nor the DiSparse code has a RigL baseline;
DiSparse's tables report one.
"""

from __future__ import annotations

from cutlib.context import MethodResult, RunContext
from cutlib.pruning.dynamic import JointGradient, train_dynamic


def rigl(ctx: RunContext) -> MethodResult:
    """RigL from scratch on the selected tasks' joint loss."""
    alpha = float(ctx.profile["baselines"]["dynamic"]["rigl_drop_fraction"])
    return train_dynamic(ctx, JointGradient(ctx.tasks), power=1.0, alpha=alpha, regrow="zero")
