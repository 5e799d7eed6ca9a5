"""``lth``: the lottery-ticket procedure with weight rewinding (Frankle & Carbin, ICLR 2019;
Frankle et al., "Linear Mode Connectivity and the Lottery Ticket Hypothesis", ICML 2020).

Starting from the trained dense model (the pre-trained run), R rounds of: remove the smallest
surviving weights by global magnitude (the same fraction of survivors each round, reaching the
requested sparsity after R rounds), **rewind** the survivors to their values early in the dense
training (iteration k = ``pretrain.rewind_iteration``, saved by the pre-training run as
``rewind.pt``), and retrain with the mask fixed. The pruned weights are exactly zero.

Budgets (:mod:`cutlib.context`): under ``paper`` every round retrains for the rest of the
pre-training schedule, P − k iterations at the pre-training learning rate, as the procedure
prescribes (R times the cost of pre-training); under ``fair`` the R retrainings share the F
fine-tuning iterations, which is far too little to retrain from early weights: the fair protocol
makes the cost of the lottery ticket visible. The CUT code's "LTH" baseline is one-shot magnitude
pruning without rewinding (:mod:`cutlib.pruning.magnitude`).
"""

from __future__ import annotations

from dataclasses import replace

from cutlib.context import MethodResult, RunContext
from cutlib.pruning.imp import iterative_magnitude


def lth(ctx: RunContext) -> MethodResult:
    """Iterative magnitude pruning with rewinding to the early dense weights."""
    rounds = int(ctx.profile["baselines"]["rounds"])
    pretrain = ctx.train_config("pretrain")
    rewind_at = int(ctx.profile["pretrain"]["rewind_iteration"])
    if ctx.config.protocol == "paper":
        iterations = pretrain.iterations - rewind_at
    else:
        iterations = ctx.schedule("pretrained", rounds=rounds).iterations
    schedule = replace(
        pretrain, iterations=iterations, eval_every=min(pretrain.eval_every, iterations)
    )
    rewind = ctx.load_rewind().keep_tasks(ctx.task_names)
    result = iterative_magnitude(ctx, ctx.pretrained_compact(), rounds, schedule, rewind)
    result.details["rewind_iteration"] = rewind_at
    return result
