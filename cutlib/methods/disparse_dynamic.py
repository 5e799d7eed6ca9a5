"""``disparse_dynamic``: DiSparse's dynamic sparse training (Sun et al., "DiSparse: Disentangled
Sparsification for Multitask Model Compression", CVPR 2022;
docs/method/disparse.md#dynamic-sparse-training).

RigL's schedule with DiSparse's disentangled growth, on the compact network (backbone + selected
heads) from its initialisation:

- **Initial masks:** random, at Erdős–Rényi-Kernel densities with power 0.9,
  d_ℓ = ε · (Σᵢ nᵢ / Πᵢ nᵢ)^0.9 with Σ_ℓ d_ℓ N_ℓ = (1 − sparsity) · N, the stem convolution
  dense (the reference code does not randomise ``backbone.conv1``).
- **Drop**, every ΔT iterations until T_end: each layer removes the n = ⌊ρ(t) · active⌋ active
  weights with the smallest |w|, ρ(t) = ρ₀/2 · (1 + cos(π t / T_end)), ρ₀ =
  ``disparse_drop_fraction`` (the code's PRUNE_RATE 0.5).
- **Grow:** each selected task t proposes, per layer of its sub-model, the n inactive weights with
  the largest |∂L_t/∂w| of its own unweighted loss on the current batch; head t grows its own
  task's proposal, the backbone the **union** of the proposals (the arbiter A of the paper).
- **Regrown weights resume their stored values**, as in the reference code.

Differences from the reference code (``dynamic_prune.py``), all kept small and deliberate:

- only the selected tasks take part (DiSparse has no task selection);
- the backbone's union, up to |S|·n positions, is trimmed to n by the largest score normalised by
  the task's sum over the layer (:class:`~cutlib.pruning.dynamic.UnionOfTaskGradients`), so the
  number of non-zeros stays exactly constant; the code grows the whole union and its count drifts;
- the stem stays dense for the whole run and counts in the ERK budget; in the code it only starts
  dense (above its ERK density, which the budget assumes) and is cut to it at the first update;
- the gradient is that of the masked network on the whole batch; the code takes it with all masks
  set to one (the stored values of inactive weights in the forward pass), over micro-batches of
  8, and lets a just-dropped weight be regrown; here only weights inactive before the drop grow;
- an update due right before an evaluation is made one iteration earlier
  (:func:`~cutlib.pruning.dynamic.update_iterations`), and the updates simply stop at T_end,
  where the code calls an undefined ``copy_v2`` and crashes.
"""

from __future__ import annotations

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.dynamic_training import train_dynamic
from cutlib.methods.registry import Method, register
from cutlib.pruning.dynamic import UnionOfTaskGradients

#: The reference code leaves the stem convolution dense.
STEM = "backbone.stem.0.weight"


def disparse_dynamic(ctx: RunContext) -> MethodResult:
    """DiSparse's dynamic sparse training from scratch with the union arbiter."""
    alpha = ctx.profile.baselines.dynamic.disparse_drop_fraction
    return train_dynamic(
        ctx, UnionOfTaskGradients, power=0.9, alpha=alpha, regrow="stale", dense=[STEM]
    )


METHOD = register(
    Method(
        "disparse_dynamic",
        disparse_dynamic,
        start="scratch",
        summary="DiSparse, dynamic: sparse training growing the union of per-task gradients",
        paper_schedule="pretrain",
        label="DiSparse (dynamic)",
        colour="#CC79A7",
        marker="v",
    )
)
