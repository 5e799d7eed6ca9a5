"""Per-task importance of every prunable weight on the frozen pre-trained weights (CUT step 3,
PAPER_NOTES §1.5).

For task t and every weight j of its sub-model Θ_t = backbone ∪ head_t, the ``taylor`` score is

    s_{t,j} = Σ_b | W_j · ∂L_t(W; D_b) / ∂W_j |

with L_t the *unweighted* loss of task t and D_b the b-th batch. The authors obtain it as the
gradient of the loss with respect to an all-ones multiplicative mask m (∂L/∂m_j = W_j ∂L/∂W_j at
m = 1); here it is computed directly. The absolute value is taken per batch and then summed. Each
batch costs one forward pass (shared by all tasks) and one backward pass per task; the weights are
never changed.

Scoring mode (``bn_mode``): the authors score a copy of the model in *train* mode, so BatchNorm
normalises with batch statistics and head dropout is active (PAPER_NOTES §1.5). That is the
default here; ``"eval"`` uses the running statistics and no dropout. Either way the model passed
in is left untouched (a copy is scored, so its BatchNorm statistics do not move).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, get_args

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from cutlib.losses import Align, task_loss
from cutlib.models import SceneNet
from cutlib.pruning.masks import BACKBONE, copy_model, is_masked, owned_by
from cutlib.tasks import TaskSpec
from cutlib.train import to_device

Criterion = Literal["taylor", "magnitude", "random"]
CRITERIA: tuple[str, ...] = get_args(Criterion)
BNMode = Literal["train", "eval"]
BN_MODES: tuple[str, ...] = get_args(BNMode)

#: Scores: task → (parameter name → non-negative score tensor shaped like the weight).
TaskScores = dict[str, dict[str, Tensor]]


def _task_specs(model: SceneNet, tasks: Sequence[str | TaskSpec]) -> list[TaskSpec]:
    by_name = {t.name: t for t in model.tasks}
    specs = []
    for task in tasks:
        name = task.name if isinstance(task, TaskSpec) else task
        if name not in by_name:
            raise ValueError(
                f"cannot score task {name!r}; this model has: {', '.join(model.task_names)}"
            )
        specs.append(task if isinstance(task, TaskSpec) else by_name[name])
    if not specs:
        raise ValueError("task_importance needs at least one task")
    return specs


def scoring_batches(
    data: Dataset, batch_size: int, count: int, seed: int = 0
) -> list[dict[str, Tensor]]:
    """``count`` batches of ``batch_size`` samples from ``data`` (the augmented training split), in
    a seeded shuffled order, cycling through the split if it is short.

    The authors draw 50 batches from a shuffled training loader without a seed (PAPER_NOTES §1.5);
    seeding the order (and the augmentation, which draws from the global generator) makes the
    scores reproducible. Every user of scores (the ``cut`` method, the notebooks) draws them here.

    Raises:
        ValueError: if ``data`` is smaller than one batch, or ``count`` < 1.
    """
    if count < 1:
        raise ValueError(f"the number of scoring batches must be at least 1, got {count}")
    torch.manual_seed(seed)
    loader = DataLoader(
        data,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    if len(loader) == 0:
        raise ValueError(f"the training split ({len(data)} samples) is smaller than one batch")
    forever = itertools.chain.from_iterable(itertools.repeat(loader))
    return list(itertools.islice(forever, count))


def sub_model_weights(model: SceneNet, task: str) -> list[str]:
    """Names of the prunable weights of task ``task``'s sub-model Θ_t = backbone ∪ head_t."""
    return [w.name for w in owned_by(model, {BACKBONE, task})]


def task_importance(
    model: SceneNet,
    batches: Iterable[Mapping[str, Tensor]],
    tasks: Sequence[str | TaskSpec],
    criterion: Criterion = "taylor",
    *,
    bn_mode: BNMode = "train",
    align: Align = "upsample",
    seed: int = 0,
    progress: bool = False,
) -> TaskScores:
    """Raw (unnormalised) importance of every prunable weight of each task's sub-model.

    Args:
        model: the pre-trained multi-task network (not modified).
        batches: batches of samples (dicts with ``image`` and the tasks' labels), e.g. a
            ``DataLoader`` over the augmented training split; used only by ``taylor``.
        tasks: the tasks to score (names or specs), each with a head in ``model``.
        criterion: ``taylor`` (Σ_b |w ⊙ ∂L_t/∂w|, CUT), ``magnitude`` (|w|) or ``random``
            (uniform noise, seeded by ``seed``).
        bn_mode: ``train`` (the authors') or ``eval`` BatchNorm/dropout behaviour while scoring.
        align: how predictions meet labels in the loss (see :mod:`cutlib.losses`).
        seed: seeds dropout while scoring and the ``random`` criterion.
        progress: show a progress bar over the batches.

    Returns:
        task → (parameter name → score tensor on the CPU, shaped like the weight), over the
        backbone and that task's head.

    Example:
        >>> # scores = task_importance(net, loader, ["seg", "depth"])
        >>> # scores["seg"]["backbone.stem.0.weight"].shape == net.backbone.stem[0].weight.shape
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; valid criteria: {', '.join(CRITERIA)}")
    if bn_mode not in BN_MODES:
        raise ValueError(f"unknown bn_mode {bn_mode!r}; valid modes: {', '.join(BN_MODES)}")
    specs = _task_specs(model, tasks)
    if criterion == "taylor":
        return _taylor(model, batches, specs, bn_mode, align, seed, progress)
    generator = torch.Generator().manual_seed(seed)
    scores: TaskScores = {}
    with torch.no_grad():
        for spec in specs:
            weights = owned_by(model, {BACKBONE, spec.name})
            if criterion == "magnitude":
                scores[spec.name] = {w.name: w.weight.detach().abs().cpu() for w in weights}
            else:
                scores[spec.name] = {
                    w.name: torch.rand(w.weight.shape, generator=generator) for w in weights
                }
    return scores


def _taylor(
    model: SceneNet,
    batches: Iterable[Mapping[str, Tensor]],
    specs: list[TaskSpec],
    bn_mode: BNMode,
    align: Align,
    seed: int,
    progress: bool,
) -> TaskScores:
    device = next(model.parameters()).device
    scorer = copy_model(model).train(bn_mode == "train")
    for param in scorer.parameters():
        param.requires_grad_(False)
    owners = {spec.name: owned_by(scorer, {BACKBONE, spec.name}) for spec in specs}
    for weights in owners.values():
        for w in weights:  # the leaf behind the weight: weight_orig when a mask is installed
            leaf = w.module.weight_orig if is_masked(w.module) else w.module.weight
            leaf.requires_grad_(True)
    scores: TaskScores = {
        name: {w.name: torch.zeros_like(w.weight, device=device) for w in weights}
        for name, weights in owners.items()
    }
    torch.manual_seed(seed)
    n_batches = 0
    for batch in tqdm(batches, desc="importance", disable=not progress, leave=False):
        batch = to_device(batch, device)
        preds = scorer(batch["image"])
        for i, spec in enumerate(specs):
            loss = task_loss(spec, preds[spec.name], batch[spec.name], align=align)
            weights = [w.weight for w in owners[spec.name]]  # effective (masked) weights
            grads = torch.autograd.grad(loss, weights, retain_graph=i < len(specs) - 1)
            with torch.no_grad():
                for w, weight, grad in zip(owners[spec.name], weights, grads, strict=True):
                    scores[spec.name][w.name] += (weight * grad).abs()
        n_batches += 1
    if n_batches == 0:
        raise ValueError("taylor importance needs at least one batch")
    return {t: {n: s.cpu() for n, s in per.items()} for t, per in scores.items()}
