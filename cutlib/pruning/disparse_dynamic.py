"""``disparse_dynamic``: DiSparse's dynamic sparse training (Sun et al., "DiSparse: Disentangled
Sparsity for Multitask Model Compression", CVPR 2022; PAPER_NOTES §2.5).

RigL's schedule with DiSparse's disentangled growth: random initial masks at Erdős–Rényi-Kernel
densities with power 0.9, the stem left dense (as the reference code leaves ``backbone.conv1``);
every ΔT iterations until T_end each layer drops the fraction f(t) = ρ/2 · (1 + cos(π t / T_end))
of its active weights with the smallest |w| (ρ = ``disparse_drop_fraction``, the code's
PRUNE_RATE 0.5), and each selected task proposes the inactive weights with the largest gradient
|∂L_t/∂w| of its own loss; a head grows its own task's proposal, the backbone the **union** of the
proposals. Regrown weights resume their stored values, as in the reference code (which computes
the gradients on a copy with all masks set to one).

Differences from the reference code: only the selected tasks take part; the backbone's union is
trimmed to the dropped count (largest per-task-normalised gradient first) so the number of
non-zeros stays constant, where the code's count drifts; the gradient is taken on whole batches,
not micro-batches; and the updates simply stop at T_end, where the code calls an undefined
``copy_v2`` and crashes.
"""

from __future__ import annotations

from cutlib.context import MethodResult, RunContext
from cutlib.pruning.dynamic import UnionOfTaskGradients, train_dynamic

#: The reference code leaves the stem convolution dense.
STEM = "backbone.stem.0.weight"


def disparse_dynamic(ctx: RunContext) -> MethodResult:
    """DiSparse's dynamic sparse training from scratch with the union arbiter."""
    alpha = float(ctx.profile["baselines"]["dynamic"]["disparse_drop_fraction"])
    rule = UnionOfTaskGradients(ctx.tasks)
    return train_dynamic(ctx, rule, power=0.9, alpha=alpha, regrow="stale", dense=[STEM])
