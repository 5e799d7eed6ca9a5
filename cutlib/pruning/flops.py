"""FLOP counting, the primitive behind FLOP-calibrated channel pruning and the efficiency tables
(docs/method/efficiency.md#flop-conventions).

**FLOP** (:func:`flop_counts`, :func:`total_flops`): shape-based, from
:class:`torch.utils.flop_counter.FlopCounterMode`, **2 FLOP per multiply-accumulate**; bias, BN,
ReLU, add and pooling count 0. Masked zeros do **not** reduce it: dense kernels run anyway.
**Sparse FLOP** (:func:`sparse_flops`): the *theoretical* count if every zero weight were skipped.
No dense kernel realises it.

Example (a 3×3 convolution, 2 → 4 channels, on an 8×8 input, stride 1, padding 1: every output
pixel of every output channel costs 2·(2·3·3) FLOP):
    >>> from torch import nn
    >>> total_flops(nn.Conv2d(2, 4, 3, padding=1, bias=False), (1, 2, 8, 8)) == 2 * 2 * 9 * 4 * 64
    True
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from cutlib.pruning.masks import PRUNABLE_TYPES, is_masked

#: Key of :func:`flop_counts` for FLOPs of ops run outside every leaf module (0 for SceneNet).
OUTSIDE_LEAVES = ""


def device_of(model: nn.Module) -> torch.device:
    """The device of ``model``'s parameters (the CPU for a model without any)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def effective_weight(module: nn.Module) -> Tensor:
    """The weight a forward pass uses: ``weight_orig * weight_mask`` when a mask is installed."""
    if is_masked(module):
        return module.weight_orig.detach() * module.weight_mask
    return module.weight.detach()


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode for the ``with`` block, then back in its previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def flop_counts(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """FLOPs of one forward pass per leaf module, keyed by its name in ``model.named_modules()``.

    Unit: FLOP, **2 per multiply-accumulate** (:class:`~torch.utils.flop_counter.FlopCounterMode`'s
    convention, docs/method/efficiency.md#flop-conventions): a conv costs
    2·N·C_out·H_out·W_out·(C_in/g)·k_h·k_w; biases, BN, activations, adds and pooling count 0.
    Shape-based: masked zeros do not reduce it.

    Every ``Conv2d`` / ``Linear`` gets an entry (0 if it did not run), other leaves only when they
    count FLOPs; FLOPs of ops outside every leaf module go under the key ``""`` (the root's
    name) when there are any, so the values always sum to :func:`total_flops`.

    Args:
        model: run once in eval mode under ``torch.inference_mode()`` on a zero input (restored to
            its previous train/eval mode afterwards).
        input_shape: the full input shape, e.g. ``(1, 3, 96, 96)``.
    """
    counter = FlopCounterMode(display=False)
    x = torch.zeros(input_shape, device=device_of(model))
    with eval_mode(model), torch.inference_mode(), counter:
        model(x)
    by_module = {key: sum(ops.values()) for key, ops in counter.get_flop_counts().items()}
    root = type(model).__name__
    counts: dict[str, int] = {}
    for name, module in model.named_modules():
        if name and next(module.children(), None) is None:
            flops = int(by_module.get(f"{root}.{name}", 0))
            if flops or isinstance(module, PRUNABLE_TYPES):
                counts[name] = flops
    outside = int(counter.get_total_flops()) - sum(counts.values())
    if outside:
        counts[OUTSIDE_LEAVES] = outside
    return counts


def total_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of ``model`` (2 per multiply-accumulate, shape-based; see
    :func:`flop_counts`, docs/method/efficiency.md#flop-conventions)."""
    return sum(flop_counts(model, input_shape).values())


@torch.no_grad()
def sparse_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Theoretical FLOPs if every zero weight were skipped (2 per multiply-accumulate).

    Σ over ``Conv2d`` / ``Linear`` of (its :func:`flop_counts` entry × the fraction of non-zero
    entries of its effective weight), i.e. 2·Σ nnz(W_ℓ)·H_out·W_out·N; other FLOPs count in full.
    **Not realised by dense kernels** (docs/method/efficiency.md#what-unstructured-masks-buy,
    docs/method/efficiency.md#flop-conventions): a masked model runs the dense count; only a sparse
    kernel could approach this one.
    """
    return sparse_from_counts(model, flop_counts(model, input_shape))


def sparse_from_counts(model: nn.Module, counts: Mapping[str, int]) -> int:
    """:func:`sparse_flops` from :func:`flop_counts` already measured."""
    modules = dict(model.named_modules())
    flops = 0
    for name, count in counts.items():
        module = modules.get(name) if name else None
        if isinstance(module, PRUNABLE_TYPES):
            weight = effective_weight(module)
            # count = 2·N·H_out·W_out·numel(W) exactly, so this division is exact.
            flops += count * int(torch.count_nonzero(weight)) // weight.numel()
        else:
            flops += count
    return flops
