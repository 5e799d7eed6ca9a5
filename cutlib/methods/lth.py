"""``lth``: the lottery-ticket procedure with weight rewinding (Frankle & Carbin, ICLR 2019;
Frankle et al., "Linear Mode Connectivity and the Lottery Ticket Hypothesis", ICML 2020).

Starting from the trained dense model (the pre-trained run), R rounds of: remove the smallest
surviving weights by global magnitude (the same fraction of survivors each round, reaching the
requested sparsity after R rounds), **rewind** the survivors to their values early in the dense
training (iteration k = ``pretrain.rewind_iteration``, saved by the pre-training run as
``rewind.pt``), and retrain with the mask fixed. The pruned weights are exactly zero.

Budgets (:mod:`cutlib.methods.registry`): under ``paper`` every round retrains for the rest of the
pre-training schedule, P − k iterations at the pre-training learning rate, as the procedure
prescribes (R times the cost of pre-training); under ``fair`` the R retrainings share the F
fine-tuning iterations, which is far too little to retrain from early weights: the fair protocol
makes the cost of the lottery ticket visible. The CUT code's "LTH" baseline is one-shot magnitude
pruning without rewinding (:mod:`cutlib.methods.magnitude`).
"""

from __future__ import annotations

from dataclasses import replace

from cutlib.methods.context import MethodResult, RunContext
from cutlib.methods.imp import iterative_magnitude
from cutlib.methods.registry import Method, register
from cutlib.profiles import Profile
from cutlib.train import TrainConfig


def rewind_iteration(profile: Profile) -> int:
    """The iteration k of the pre-training that LTH rewinds to (``pretrain.rewind_iteration``).

    Raises:
        ValueError: if the profile sets none.
    """
    if profile.pretrain.rewind_iteration is None:
        raise ValueError(f"profile {profile.name!r} sets no pretrain.rewind_iteration for lth")
    return profile.pretrain.rewind_iteration


def lth_schedule(method: Method, profile: Profile, protocol: str) -> TrainConfig:
    """One round's retraining: the pre-training's rate and decay, for P − k iterations under
    ``paper``, for the round's share of the fine-tuning budget F under ``fair``."""
    pretrain = profile.pretrain
    if protocol == "paper":
        iterations = pretrain.iterations - rewind_iteration(profile)
    else:
        iterations = max(profile.finetune.iterations // method.rounds(profile), 1)
    return replace(pretrain, iterations=iterations, eval_every=min(pretrain.eval_every, iterations))


def lth(ctx: RunContext) -> MethodResult:
    """Iterative magnitude pruning with rewinding to the early dense weights."""
    rewind = ctx.load_rewind().keep_tasks(ctx.task_names)
    rounds = ctx.spec.method.rounds(ctx.profile)
    result = iterative_magnitude(ctx, ctx.pretrained_compact(), rounds, ctx.schedule(), rewind)
    result.details["rewind_iteration"] = rewind_iteration(ctx.profile)
    return result


METHOD = register(
    Method(
        "lth",
        lth,
        start="pretrained",
        summary="lottery ticket: iterative magnitude pruning with rewinding to early weights",
        iterative=True,
        schedule=lth_schedule,
        rewinds=True,
        label="LTH",
        colour="#8C564B",
        marker="*",
    )
)
