"""The methods a run can use (DESIGN §5): each turns the dense pre-trained model into a deployed
model for the selected tasks. They share the machinery here (the run context, scoring batches,
masked fine-tuning); the pruning algorithms themselves live in :mod:`cutlib.pruning`.

A method is a function ``RunContext → MethodResult`` registered in :data:`METHODS`; a method with
options registers a parser in :data:`METHOD_OPTIONS` (``cutlib run --option name=value``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from cutlib.checkpoint import load_model
from cutlib.data import load_dataset
from cutlib.data.arrays import ArrayDataset
from cutlib.metrics import conventions_from_name, evaluate
from cutlib.models import SceneNet
from cutlib.pruning.cut import CutMasker, CutOptions, plan_cut
from cutlib.pruning.importance import scoring_batches, task_importance
from cutlib.pruning.masks import BACKBONE, apply_masks, fold_masks, owned_by
from cutlib.tasks import TaskSpec
from cutlib.train import TrainConfig, train

if TYPE_CHECKING:
    from cutlib.experiments import RunConfig

DENSE = "dense"


@dataclass
class RunContext:
    """What a method needs: the validated config, profile, tasks, device and the pre-trained run
    (``None`` while pre-training it)."""

    config: RunConfig
    profile: dict[str, Any]
    all_tasks: tuple[TaskSpec, ...]
    tasks: tuple[TaskSpec, ...]
    device: torch.device
    progress: bool
    pretrained: Path | None
    timings: dict[str, float] = field(default_factory=dict)
    selected_iteration: dict[str, int] = field(default_factory=dict)

    @property
    def task_names(self) -> list[str]:
        """Names of the selected tasks."""
        return [t.name for t in self.tasks]

    def time(self, stage: str, since: float) -> None:
        """Add the seconds since ``since`` to the timing of ``stage``."""
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - since

    def dataset(self, split: str, augment: bool | None = None) -> ArrayDataset:
        """Load a split of this run's dataset (timed under ``data``)."""
        start = time.perf_counter()
        data = load_dataset(
            self.config.dataset, split, self.profile, self.config.seed, augment=augment
        )
        self.time("data", start)
        return data

    def train_config(self, section: str) -> TrainConfig:
        """The schedule of a profile section (``pretrain``, ``finetune``)."""
        return TrainConfig.from_profile(self.profile[section])

    def load_pretrained(self) -> SceneNet:
        """The dense pre-trained multi-task model (all heads), on this run's device."""
        assert self.pretrained is not None, "the pre-training run has no pre-trained model"
        return load_model(self.pretrained / "model.pt", self.device)

    def test_metrics(self, model: torch.nn.Module, tasks: tuple[TaskSpec, ...] | None = None):
        """Metrics of ``model`` on the test split (the selected tasks by default)."""
        loader = DataLoader(self.dataset("test"), batch_size=self.profile["eval"]["batch_size"])
        conventions = conventions_from_name(self.profile["eval"].get("conventions", "standard"))
        return evaluate(
            model, loader, tasks or self.tasks, conventions=conventions, device=self.device
        )

    def scoring_batches(self) -> list[dict[str, Tensor]]:
        """The profile's ``scoring.batches`` batches of the augmented training split
        (:func:`cutlib.pruning.importance.scoring_batches`)."""
        scoring = self.profile["scoring"]
        return scoring_batches(
            self.dataset("train"), scoring["batch_size"], scoring["batches"], self.config.seed
        )

    def train(
        self, model: SceneNet, tasks: tuple[TaskSpec, ...], section: str
    ) -> list[dict[str, float]]:
        """Train ``model`` on the λ-weighted loss of ``tasks`` with the schedule of profile section
        ``section`` (``pretrain``, ``finetune``), selecting the checkpoint on the validation split;
        the seconds go to ``timings[section]``, the selected iteration to
        ``selected_iteration[section]``. Returns the history."""
        result = train(
            model,
            tasks,
            self.dataset("train"),
            self.dataset("val"),
            self.train_config(section),
            seed=self.config.seed,
            device=self.device,
            eval_batch_size=self.profile["eval"]["batch_size"],
            progress=self.progress,
            description=section,
        )
        self.timings[section] = result.seconds
        self.selected_iteration[section] = result.best_iteration
        return result.history


@dataclass
class MethodResult:
    """A method's deployed model (selected heads only), its training history, and details worth
    recording in ``metrics.json`` (``details``)."""

    model: SceneNet
    history: list[dict[str, float]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def pretrain(ctx: RunContext) -> MethodResult:
    """Train the dense multi-task model from scratch on all tasks (PAPER_NOTES §1.12)."""
    torch.manual_seed(ctx.config.seed)
    model = SceneNet(ctx.all_tasks, **ctx.profile["model"])
    if ctx.progress:
        iterations = ctx.train_config("pretrain").iterations
        print(
            f"pre-training the dense {ctx.config.dataset} model ({ctx.config.profile} profile, "
            f"{iterations} iterations on {ctx.device})"
        )
    return MethodResult(model, ctx.train(model, ctx.all_tasks, "pretrain"))


def dense(ctx: RunContext) -> MethodResult:
    """The pre-trained model with only the selected heads (the unselected ones removed)."""
    return MethodResult(ctx.load_pretrained().keep_tasks(ctx.task_names))


def cut(ctx: RunContext) -> MethodResult:
    """CUT (PAPER_NOTES §1.13, DESIGN §5): score the selected tasks on the frozen pre-trained
    weights, per-task top-κ masks, vote-fused backbone, drop the unselected heads, fine-tune."""
    options: CutOptions = ctx.config.method_options()
    model = ctx.load_pretrained()
    batches = ctx.scoring_batches()
    start = time.perf_counter()
    scores = task_importance(
        model,
        batches,
        ctx.tasks,
        options.criterion,
        bn_mode=options.bn_mode,
        align=ctx.train_config("finetune").align,
        seed=ctx.config.seed,
        progress=ctx.progress,
    )
    ctx.time("scoring", start)

    start = time.perf_counter()
    model.keep_tasks(ctx.task_names)
    shared = {w.name for w in owned_by(model, {BACKBONE})}
    masker = CutMasker(scores, ctx.task_names, shared, options.fusion, options.min_votes)
    plan = plan_cut(masker, ctx.config.sparsity, options, ctx.profile["scoring"].get("keep_ratios"))
    apply_masks(model, plan.masks)
    ctx.time("fusion", start)
    if ctx.progress:
        print(f"CUT: κ = {plan.keep_ratio:.4f} gives {plan.sparsity:.2%} sparsity; fine-tuning")

    before = ctx.test_metrics(model)
    history = ctx.train(model, ctx.tasks, "finetune")  # masks fixed, selected tasks only
    fold_masks(model)
    details = {
        "options": vars(options),
        "keep_ratio": plan.keep_ratio,
        "metrics_before_finetune": before,
        "finetune_selected_iteration": ctx.selected_iteration["finetune"],
    }
    return MethodResult(model, history, details)


#: Method name → implementation. Baselines join here as their issues land (DESIGN §5).
METHODS: dict[str, Callable[[RunContext], MethodResult]] = {DENSE: dense, "cut": cut}

#: Method name → parser of its ``--option`` pairs (methods without options are absent).
METHOD_OPTIONS: dict[str, Callable[[Mapping[str, Any]], Any]] = {"cut": CutOptions.from_pairs}
