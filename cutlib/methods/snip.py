"""``snip``: pruning at initialisation by connection sensitivity (Lee et al., "SNIP: Single-shot
Network Pruning based on Connection Sensitivity", ICLR 2019), then training the sparse network.

On the freshly initialised network W₀ (the very weights pre-training started from), every prunable
weight of the deployed model gets the score

    s_j = Σ_b | W₀_j · ∂(Σ_t λ_t L_t)(W₀; D_b) / ∂W₀_j |

of the *joint* λ-weighted loss of the selected tasks, over the scoring batches; one global top-k
keeps ⌊(1 − sparsity)·N⌋ and the masked network is trained from scratch.

As in the CUT code's ``SNIP_prune``
(docs/method/baselines.md#how-the-cut-code-configures-its-baselines): the joint loss, the network's
default initialisation (not Xavier), one ranking across backbone and heads. Differences: only the
selected tasks' heads exist and enter the loss; the CUT code normalises the scores by their sum
(which does not change the ranking) and defines its keep ratio for 70 % only. The training budget
follows the protocol: ``paper`` gives the short fine-tuning schedule as the CUT code does, ``fair``
the pre-training plus fine-tuning iterations (:mod:`cutlib.context`).
"""

from __future__ import annotations

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.registry import Method, register


def snip(ctx: RunContext) -> MethodResult:
    """SNIP masks of the joint loss at initialisation, then training from scratch."""
    return ctx.prune_at_initialisation("taylor")


METHOD = register(
    Method(
        "snip",
        snip,
        start="scratch",
        summary="SNIP: connection sensitivity of the joint loss at initialisation",
        paper_schedule="finetune",
        label="SNIP",
        colour="#999933",
        marker="<",
    )
)
