"""Iteration-based multi-task training with validation-based model selection
(docs/architecture.md#layers).

The loss is Σ_t λ_t L_t over the given tasks (docs/method/metrics.md#training-losses); the optimiser
is Adam with a StepLR schedule stepped every iteration, as in the authors' ``train.train``
(docs/method/cut.md#pre-training-the-dense-model). Unlike the reference code, which keeps the
checkpoint with the best *test* loss
(docs/method/reference-code.md#the-shared-data-and-metric-code), the best checkpoint here is chosen
on the validation split; the test split is only evaluated once, at the end, by the caller.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

import cutlib.distributed as distributed
from cutlib.loading import (
    IN_PROCESS,
    LoaderSettings,
    TrainingBatches,
    evaluation_batches,
    to_device,
)
from cutlib.losses import Align, multitask_loss
from cutlib.resume import StageCheckpoint, StatefulHook, random_state, set_random_state
from cutlib.tasks import TaskSpec


@dataclass(frozen=True)
class TrainConfig:
    """A training schedule, read from a profile section (``pretrain``, ``finetune``).

    Args:
        iterations: optimiser steps.
        batch_size: training batch size.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        lr_step: StepLR period, in iterations.
        lr_gamma: StepLR decay factor.
        eval_every: iterations between validation passes (one is also made at the end).
        align: how predictions meet labels in the loss (see :mod:`cutlib.losses`).
    """

    iterations: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    lr_step: int = 10**9
    lr_gamma: float = 1.0
    eval_every: int = 100
    align: Align = "upsample"

    def learning_rate_area(self) -> float:
        """Σ over the steps of the learning rate each step uses, lr · γ^⌊i / lr_step⌋ for step
        i = 0 … iterations − 1 (StepLR stepped after every optimiser step): how far, in rate ×
        steps, a schedule can move the weights. The ``regime`` profile's fine-tuning has about 1 %
        of its pre-training's, as the reference code's has.

        Example:
            >>> TrainConfig(4, 8, 1.0, lr_step=2, lr_gamma=0.5).learning_rate_area()  # 1+1+.5+.5
            3.0
        """
        phases, rest = divmod(self.iterations, self.lr_step)
        full = sum(self.lr * self.lr_gamma**k * self.lr_step for k in range(phases))
        return full + self.lr * self.lr_gamma**phases * rest

    def evaluation_iterations(self) -> set[int]:
        """The iterations after which :func:`train` evaluates on the validation split (and may
        keep the model as its checkpoint): every ``eval_every`` iterations, and the last one.

        Example:
            >>> sorted(TrainConfig(50, 8, 1e-3, eval_every=15).evaluation_iterations())
            [15, 30, 45, 50]
        """
        return set(range(self.eval_every, self.iterations + 1, self.eval_every)) | {self.iterations}

    @classmethod
    def from_profile(cls, section: Mapping[str, Any]) -> TrainConfig:
        """Build from a profile section, ignoring keys that are not schedule fields."""
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in section.items() if k in names})


@dataclass
class TrainResult:
    """What :func:`train` returns: the history for plots and the selected checkpoint."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_iteration: int = 0
    best_val_loss: float = float("inf")
    seconds: float = 0.0  #: the whole call, validation included
    validation_seconds: float = 0.0  #: the validation passes alone


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then CPU; anything else is passed to ``torch.device``."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def checked_device(device: str | torch.device = "auto") -> torch.device:
    """:func:`resolve_device`, refusing a device that does not exist or is not available here.

    Raises:
        ValueError: a malformed name (``"cdua"``), or a device this machine does not have.
    """
    try:
        resolved = resolve_device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {str(device)!r}: {err}") from None
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available() and (resolved.index or 0) < torch.cuda.device_count(),
        "mps": torch.backends.mps.is_available(),
    }
    if not available.get(resolved.type, False):
        raise ValueError(f"device {str(device)!r} is not available on this machine")
    return resolved


#: Training precisions: fp32 everywhere; bf16 or fp16 autocast (fp16 with a gradient scaler) on
#: CUDA only.
PRECISIONS = ("fp32", "bf16", "fp16")


def check_precision(precision: str) -> None:
    """ValueError naming the valid precisions for any other."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``: ``None`` for fp32.

    Raises:
        ValueError: an unknown precision, or bf16 / fp16 on a device other than CUDA (the CPU
            and MPS train in fp32: mixed precision there is slower, and it would change results).

    Example:
        >>> autocast_dtype("fp32", torch.device("cpu")) is None
        True
    """
    check_precision(precision)
    if precision == "fp32":
        return None
    if device.type != "cuda":
        raise ValueError(f"{precision} mixed precision runs on CUDA only; on {device}, use fp32")
    return torch.bfloat16 if precision == "bf16" else torch.float16


@torch.no_grad()
def reestimate_batchnorm(
    model: nn.Module, batches: Sequence[Mapping[str, Tensor]], device: torch.device
) -> nn.Module:
    """Re-estimate the running statistics of every BatchNorm layer of ``model`` (in place) as the
    plain average of the batch statistics over ``batches``, with no gradient and no weight change
    (the BN recalibration of Li et al., "Revisiting Batch Normalization for Practical Domain
    Adaptation", 2016, as pruning studies use it after removing weights).

    After pruning, the running statistics of the dense model describe activations the pruned
    network no longer produces; evaluating with them measures that mismatch, not what the mask
    kept. Returns ``model``, in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches
    model.train()
    for batch in batches:
        model(batch["image"].to(device))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    return model.eval()


@torch.no_grad()
def mean_losses(
    model: nn.Module,
    loader: DataLoader,
    tasks: Sequence[TaskSpec],
    device: torch.device,
    align: Align = "upsample",
) -> dict[str, float]:
    """Sample-weighted mean λ-weighted loss (``"loss"``) and task losses, in eval mode; with
    several processes, each evaluates its share of the split and the sums are added up, so every
    process gets the same means (and selects the same checkpoint)."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    for batch in loader:
        batch = to_device(batch, device)
        total, per_task = multitask_loss(tasks, model(batch["image"]), batch, align=align)
        n = batch["image"].shape[0]
        for name, value in {"loss": total, **per_task}.items():
            sums[name] = sums.get(name, 0.0) + float(value) * n
        count += n
    model.train(was_training)
    totals = distributed.summed(sums | {"samples": count})
    count = totals.pop("samples")
    return {name: value / count for name, value in totals.items()}


def train(
    model: nn.Module,
    tasks: Sequence[TaskSpec],
    train_set: Dataset,
    val_set: Dataset,
    config: TrainConfig,
    *,
    seed: int = 0,
    device: str | torch.device = "auto",
    eval_batch_size: int = 50,
    progress: bool = True,
    description: str = "train",
    on_step: Callable[[int, dict[str, Tensor]], None] | None = None,
    on_evaluation: Callable[[dict[str, float]], None] | None = None,
    precision: str = "fp32",
    loader: LoaderSettings = IN_PROCESS,
    checkpoint: StageCheckpoint | None = None,
) -> TrainResult:
    """Train ``model`` on ``tasks`` for ``config.iterations`` steps and keep the best validation
    checkpoint (loaded into ``model`` on return).

    ``on_step(iteration, batch)``, when given, is called after every optimiser step with the
    iteration number (from 1) and the batch just used, and once before the first step with
    iteration 0 and the first batch: dynamic sparse training updates its masks there, and
    pre-training saves its rewinding checkpoint. ``on_evaluation(entry)``, when given, gets each
    history entry as it is made (live curves, :mod:`cutlib.curves`). ``precision``: ``bf16`` or
    ``fp16`` run the forward pass and the loss under autocast on CUDA, fp16 with a gradient
    scaler (:func:`autocast_dtype`); validation stays in fp32. ``loader``: worker processes and
    pinned memory (:mod:`cutlib.loading`); the batches, and so the result, do not depend on it.
    ``checkpoint``: where to save the loop's state every few iterations and at the end, and to
    resume from (:mod:`cutlib.resume`); an ``on_step`` hook with a state (:class:`StatefulHook`)
    is saved and restored with it.

    Only parameters with ``requires_grad`` are optimised, so frozen parts stay frozen. The seed
    fixes the sampling order and augmentation; with the same seed on the same CPU, two runs are
    identical.

    Example:
        >>> # result = train(net, tasks, train_set, val_set, TrainConfig(100, 8, 1e-3))
        >>> # plot [h["val_loss"] for h in result.history]
    """
    device = resolve_device(device)
    model.to(device).train()
    if checkpoint is not None and (done := checkpoint.finished()) is not None:
        return _finished_stage(model, done, on_step)
    rank, processes = distributed.rank(), distributed.world_size()
    torch.manual_seed(seed + rank)  # dropout and the batch augmentation's random draws
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step, config.lr_gamma)
    dtype = autocast_dtype(precision, device)
    autocast = nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    loop = _Loop(model, optimizer, scheduler, scaler, on_step)
    if checkpoint is not None and (saved := checkpoint.progress()) is not None:
        loop.restore(saved, device)
    batches = TrainingBatches(
        train_set, config.batch_size, seed, device, loader, loop.iteration, rank, processes
    )
    if processes > 1:  # each process validates its share
        val_set = Subset(val_set, range(rank, len(val_set), processes))  # type: ignore[arg-type]
    val_loader = evaluation_batches(val_set, eval_batch_size, loader)
    step_model = distributed.wrap(model, device)
    result = loop.result
    start = time.perf_counter() - result.seconds
    evaluations = config.evaluation_iterations()
    bar = tqdm(
        range(loop.iteration + 1, config.iterations + 1),
        desc=description,
        disable=not progress,
        leave=False,
        initial=loop.iteration,
        total=config.iterations,
    )
    for iteration in bar:
        batch = next(batches)
        if iteration == 1 and on_step is not None:
            on_step(0, batch)
        with autocast:
            outputs = step_model(batch["image"])
            total, per_task = multitask_loss(tasks, outputs, batch, align=config.align)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if on_step is not None:
            on_step(iteration, batch)
        for name, value in {"loss": total, **per_task}.items():
            loop.running[name] = loop.running.get(name, 0.0) + float(value.detach())
        loop.steps_since_eval += 1
        loop.iteration = iteration
        if iteration in evaluations:
            validation_start = time.perf_counter()
            val = mean_losses(model, val_loader, tasks, device, config.align)
            result.validation_seconds += time.perf_counter() - validation_start
            entry = {"iteration": iteration, "lr": optimizer.param_groups[0]["lr"]}
            entry |= {f"train_{k}": v / loop.steps_since_eval for k, v in loop.running.items()}
            entry |= {f"val_{k}": v for k, v in val.items()}
            result.history.append(entry)
            if on_evaluation is not None:
                on_evaluation(entry)
            loop.running, loop.steps_since_eval = {}, 0
            if val["loss"] < result.best_val_loss:
                result.best_val_loss, result.best_iteration = val["loss"], iteration
                loop.best_state = copy.deepcopy(model.state_dict())
            bar.set_postfix(train=f"{entry['train_loss']:.3f}", val=f"{val['loss']:.3f}")
        if checkpoint is not None and checkpoint.due(iteration, config.iterations):
            result.seconds = time.perf_counter() - start
            checkpoint.save_progress(loop.state())
    distributed.unwrap(model)
    if loop.best_state is not None:
        model.load_state_dict(loop.best_state)
    result.seconds = time.perf_counter() - start
    if checkpoint is not None:
        checkpoint.save_finished(_stage_end(model, result, on_step))
    return result


def _hook_state(on_step: Callable[..., None] | None) -> dict[str, Any] | None:
    return on_step.state_dict() if isinstance(on_step, StatefulHook) else None


def _stage_end(
    model: nn.Module, result: TrainResult, on_step: Callable[..., None] | None
) -> dict[str, Any]:
    """What a finished stage's checkpoint holds (:class:`cutlib.resume.StageCheckpoint`)."""
    return {"model": model.state_dict(), "result": asdict(result), "hook": _hook_state(on_step)}


def _finished_stage(
    model: nn.Module, done: dict[str, Any], on_step: Callable[..., None] | None
) -> TrainResult:
    """A stage finished by an earlier attempt of the run: its model and hook as it left them."""
    model.load_state_dict(done["model"])
    if isinstance(on_step, StatefulHook) and done["hook"] is not None:
        on_step.load_state_dict(done["hook"])
    return TrainResult(**done["result"])


@dataclass
class _Loop:
    """The state of :func:`train`'s loop that a checkpoint carries over (:mod:`cutlib.resume`)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    on_step: Callable[..., None] | None
    iteration: int = 0
    result: TrainResult = field(default_factory=TrainResult)
    best_state: dict[str, Tensor] | None = None
    running: dict[str, float] = field(default_factory=dict)
    steps_since_eval: int = 0

    def state(self) -> dict[str, Any]:
        """Everything needed to continue after :attr:`iteration`, random state included."""
        return {
            "iteration": self.iteration,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_state": self.best_state,
            "result": asdict(self.result),
            "running": self.running,
            "steps_since_eval": self.steps_since_eval,
            "hook": _hook_state(self.on_step),
            "generators": distributed.gathered(random_state()),
        }

    def restore(self, saved: dict[str, Any], device: torch.device) -> None:
        """Continue from a :meth:`state`."""
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])
        best = saved["best_state"]
        self.best_state = None if best is None else {k: v.to(device) for k, v in best.items()}
        self.result = TrainResult(**saved["result"])
        self.running, self.steps_since_eval = saved["running"], saved["steps_since_eval"]
        self.iteration = saved["iteration"]
        if isinstance(self.on_step, StatefulHook) and saved["hook"] is not None:
            self.on_step.load_state_dict(saved["hook"])
        generators = saved["generators"]
        if len(generators) != distributed.world_size():
            raise ValueError(
                f"this checkpoint was written by a run on {len(generators)} processes; resume it "
                f"on as many (now {distributed.world_size()})"
            )
        set_random_state(generators[distributed.rank()])
