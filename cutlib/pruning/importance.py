"""Per-task importance of every prunable weight on the frozen pre-trained weights (CUT step 3,
docs/method/cut.md#per-task-importance).

For task t and every weight j of its sub-model Θ_t = backbone ∪ head_t, the ``taylor`` score is

    s_{t,j} = Σ_b | W_j · ∂L_t(W; D_b) / ∂W_j |

with L_t the *unweighted* loss of task t and D_b the b-th batch. The authors obtain it as the
gradient of the loss with respect to an all-ones multiplicative mask m (∂L/∂m_j = W_j ∂L/∂W_j at
m = 1); here it is computed directly. The absolute value is taken per batch and then summed. Each
batch costs one forward pass (shared by all tasks) and one backward pass per task; the weights are
never changed.

Scoring mode (``bn_mode``): the authors score a copy of the model in *train* mode, so BatchNorm
normalises with batch statistics and head dropout is active
(docs/method/cut.md#per-task-importance). That is the default here; ``"eval"`` uses the running
statistics and no dropout. Either way the model passed in is left untouched (a copy is scored, so
its BatchNorm statistics do not move).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

import cutlib.distributed as distributed
from cutlib.loading import TrainingBatches, to_device
from cutlib.losses import Align, multitask_loss, task_loss
from cutlib.models import SceneNet
from cutlib.pruning.masks import BACKBONE, copy_model, is_masked, owned_by, prunable_weights
from cutlib.tasks import TaskSpec

Criterion = Literal["taylor", "w2grad", "gradient", "magnitude", "random"]
CRITERIA: tuple[str, ...] = get_args(Criterion)
GRADIENT_CRITERIA: tuple[str, ...] = ("taylor", "w2grad", "gradient")
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

    The authors draw 50 batches from a shuffled training loader without a seed
    (docs/method/cut.md#per-task-importance); seeding the order (and the augmentation, which draws
    from the global generator) makes the scores reproducible. Every user of scores (the ``cut``
    method, the notebooks) draws them here. With several processes (:mod:`cutlib.distributed`),
    each gets its share of every batch, and the gradient scores average the shares' gradients.

    Raises:
        ValueError: if ``data`` is empty, or ``count`` < 1 (a split smaller than one batch gives
            batches of all its samples, :class:`cutlib.loading.EpochBatches`).
    """
    if count < 1:
        raise ValueError(f"the number of scoring batches must be at least 1, got {count}")
    torch.manual_seed(seed)
    rank, processes = distributed.rank(), distributed.world_size()
    stream = TrainingBatches(
        data, batch_size, seed, torch.device("cpu"), rank=rank, world=processes
    )
    return [next(stream) for _ in range(count)]


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
            ``DataLoader`` over the augmented training split; used by the gradient criteria.
        tasks: the tasks to score (names or specs), each with a head in ``model``.
        criterion: ``taylor`` (Σ_b |w ⊙ ∂L_t/∂w|, CUT), ``w2grad`` (w² ⊙ Σ_b |∂L_t/∂w|,
            DiSparse's pre-trained variant on Taskonomy,
            docs/method/disparse.md#pruning-a-pre-trained-model), ``gradient`` (Σ_b |∂L_t/∂w|, the
            growth criterion of RigL and DiSparse's dynamic variant), ``magnitude`` (|w|) or
            ``random`` (uniform noise, seeded by ``seed``).
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
    _check(criterion, bn_mode)
    specs = _task_specs(model, tasks)
    objectives = {
        spec.name: _Objective(
            [w.name for w in owned_by(model, {BACKBONE, spec.name})],
            lambda preds, batch, spec=spec: task_loss(
                spec, preds[spec.name], batch[spec.name], align=align
            ),
        )
        for spec in specs
    }
    return _scores(model, batches, objectives, criterion, bn_mode, seed, progress)


def joint_importance(
    model: SceneNet,
    batches: Iterable[Mapping[str, Tensor]],
    tasks: Sequence[str | TaskSpec],
    criterion: Criterion = "taylor",
    *,
    bn_mode: BNMode = "train",
    align: Align = "upsample",
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Tensor]:
    """Importance of every prunable weight of the model (backbone and the heads of ``tasks``) for
    the *joint* λ-weighted loss Σ_t λ_t L_t: with ``taylor`` this is SNIP's connection sensitivity
    (Lee et al., ICLR 2019) as the CUT code's SNIP baseline computes it
    (docs/method/baselines.md#how-the-cut-code-configures-its-baselines).

    Arguments as for :func:`task_importance`. Returns parameter name → score on the CPU.
    """
    _check(criterion, bn_mode)
    specs = _task_specs(model, tasks)
    objective = _Objective(
        [w.name for w in owned_by(model, {BACKBONE, *(s.name for s in specs)})],
        lambda preds, batch: multitask_loss(specs, preds, batch, align=align)[0],
    )
    return _scores(model, batches, {JOINT: objective}, criterion, bn_mode, seed, progress)[JOINT]


JOINT = "joint"


@dataclass(frozen=True)
class _Objective:
    """A set of weights to score and the loss whose sensitivity scores them."""

    names: list[str]
    loss: Callable[[Mapping[str, Tensor], Mapping[str, Tensor]], Tensor]


def _check(criterion: str, bn_mode: str) -> None:
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; valid criteria: {', '.join(CRITERIA)}")
    if bn_mode not in BN_MODES:
        raise ValueError(f"unknown bn_mode {bn_mode!r}; valid modes: {', '.join(BN_MODES)}")


def _scores(
    model: SceneNet,
    batches: Iterable[Mapping[str, Tensor]],
    objectives: Mapping[str, _Objective],
    criterion: str,
    bn_mode: BNMode,
    seed: int,
    progress: bool,
) -> TaskScores:
    if criterion in GRADIENT_CRITERIA:
        return _gradient_scores(model, batches, objectives, criterion, bn_mode, seed, progress)
    weights = {w.name: w.weight.detach() for w in prunable_weights(model)}
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if criterion == "magnitude":
            return {k: {n: weights[n].abs().cpu() for n in o.names} for k, o in objectives.items()}
        return {
            k: {n: torch.rand(weights[n].shape, generator=generator) for n in o.names}
            for k, o in objectives.items()
        }


def _gradient_scores(
    model: SceneNet,
    batches: Iterable[Mapping[str, Tensor]],
    objectives: Mapping[str, _Objective],
    criterion: str,
    bn_mode: BNMode,
    seed: int,
    progress: bool,
) -> TaskScores:
    """One forward pass per batch, one backward pass per objective; taylor accumulates
    |w ⊙ g| per batch, gradient and w2grad accumulate |g|, and w2grad multiplies by w² at the end.
    The gradient is taken at the effective (masked) weights, so it is dense."""
    device = next(model.parameters()).device
    scorer = copy_model(model).train(bn_mode == "train")
    for param in scorer.parameters():
        param.requires_grad_(False)
    by_name = {w.name: w for w in prunable_weights(scorer)}
    for objective in objectives.values():
        for name in objective.names:  # the leaf behind the weight: weight_orig when masked
            module = by_name[name].module
            leaf = module.weight_orig if is_masked(module) else module.weight
            leaf.requires_grad_(True)
    totals: TaskScores = {
        key: {n: torch.zeros_like(by_name[n].weight, device=device) for n in o.names}
        for key, o in objectives.items()
    }
    torch.manual_seed(seed)
    n_batches = 0
    for batch in tqdm(batches, desc="importance", disable=not progress, leave=False):
        batch = to_device(batch, device)
        preds = scorer(batch["image"])
        for i, (key, objective) in enumerate(objectives.items()):
            weights = [by_name[n].weight for n in objective.names]  # effective (masked) weights
            grads = torch.autograd.grad(
                objective.loss(preds, batch), weights, retain_graph=i < len(objectives) - 1
            )
            grads = distributed.average(grads)  # several processes: the whole batch's gradient
            with torch.no_grad():
                for name, weight, grad in zip(objective.names, weights, grads, strict=True):
                    totals[key][name] += (
                        (weight * grad).abs() if criterion == "taylor" else grad.abs()
                    )
        n_batches += 1
    if n_batches == 0:
        raise ValueError(f"{criterion} importance needs at least one batch")
    if criterion == "w2grad":
        with torch.no_grad():
            for per_name in totals.values():
                for name, total in per_name.items():
                    total *= by_name[name].weight.detach() ** 2
    return {key: {n: s.cpu() for n, s in per.items()} for key, per in totals.items()}
