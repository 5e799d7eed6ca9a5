"""What every method shares: the run context (configuration, profile, data, the pre-trained
model, timings), the budgets of the two protocols (:mod:`cutlib.methods.registry`), and training
under fixed masks. The primitives (importance, masks, thresholds, fusion) live in
:mod:`cutlib.pruning`; each method in its own module of :mod:`cutlib.methods`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from cutlib.checkpoint import load_model
from cutlib.data import load_dataset, metric_conventions
from cutlib.loading import IN_PROCESS, LoaderSettings, evaluation_batches
from cutlib.methods.registry import MethodResult, Start
from cutlib.methods.spec import RunSpec
from cutlib.metrics import evaluate
from cutlib.models import SceneNet
from cutlib.profiles import Profile
from cutlib.pruning.fusion import AUTHORS_MIN_VOTES, FusionRule
from cutlib.pruning.importance import (
    GRADIENT_CRITERIA,
    BNMode,
    Criterion,
    TaskScores,
    joint_importance,
    scoring_batches,
    task_importance,
)
from cutlib.pruning.masks import BACKBONE, Masks, apply_masks, copy_model, fold_masks, owned_by
from cutlib.pruning.per_task import CutMasker, CutPlan, plan_cut
from cutlib.pruning.thresholds import Ranking
from cutlib.resume import RunCheckpoints
from cutlib.tasks import TaskSpec
from cutlib.train import TrainConfig, reestimate_batchnorm, train


@dataclass
class RunContext:
    """What a method needs: the resolved run, the device and the pre-trained run (``None`` while
    pre-training it), and what the run records as it goes (timings, selected iterations)."""

    spec: RunSpec
    device: torch.device
    progress: bool
    pretrained: Path | None
    timings: dict[str, float] = field(default_factory=dict)
    selected_iteration: dict[str, int] = field(default_factory=dict)
    #: where the deployed model's training started (set by the model constructors below)
    start: Start | None = None
    #: optimiser steps taken by this run (all rounds)
    trained_iterations: int = 0
    #: where each training stage reports its validation points (``curves(stage, entry)``)
    curves: Callable[[str, dict[str, float]], None] | None = None
    #: how batches are read (workers, pinned memory); never changes a result
    loader: LoaderSettings = IN_PROCESS
    #: where the training stages checkpoint and resume (``None``: no checkpoints)
    checkpoints: RunCheckpoints | None = None

    @property
    def profile(self) -> Profile:
        """The settings the method trains with under the run's protocol."""
        return self.spec.settings

    @property
    def all_tasks(self) -> tuple[TaskSpec, ...]:
        """Every task of the dataset (the pre-training trains them all)."""
        return self.spec.all_tasks

    @property
    def tasks(self) -> tuple[TaskSpec, ...]:
        """The selected tasks."""
        return self.spec.selected

    @property
    def task_names(self) -> list[str]:
        """Names of the selected tasks."""
        return [t.name for t in self.tasks]

    def time(self, stage: str, since: float) -> None:
        """Add the seconds since ``since`` to the timing of ``stage``."""
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - since

    def dataset(self, split: str, augment: bool | None = None) -> Dataset:
        """Load a split of this run's dataset (timed under ``data``)."""
        start = time.perf_counter()
        data = load_dataset(
            self.spec.dataset,
            split,
            self.profile,
            self.spec.seed,
            augment=augment,
            root=self.spec.data_root,
        )
        self.time("data", start)
        return data

    def load_pretrained(self) -> SceneNet:
        """The dense pre-trained multi-task model (all heads), on this run's device."""
        assert self.pretrained is not None, "the pre-training run has no pre-trained model"
        self.start = "pretrained"
        return load_model(self.pretrained / "model.pt", self.device)

    def pretrained_compact(self) -> SceneNet:
        """The dense pre-trained model with only the selected heads."""
        return self.load_pretrained().keep_tasks(self.task_names)

    def initial_model(self) -> SceneNet:
        """The network at initialisation, all heads: the very weights W_0 that pre-training
        started from (same seed, same construction)."""
        torch.manual_seed(self.spec.seed)
        self.start = "scratch"
        return SceneNet(self.all_tasks, **self.profile.model.kwargs()).to(self.device)

    def initial_compact(self) -> SceneNet:
        """The network at initialisation W_0 with only the selected heads (the deployed
        architecture that a from-scratch method prunes and trains)."""
        return self.initial_model().keep_tasks(self.task_names)

    def load_rewind(self) -> SceneNet:
        """The dense model early in pre-training (``pretrain.rewind_iteration``), all heads."""
        assert self.pretrained is not None, "the pre-training run has no rewinding checkpoint"
        path = self.pretrained / "rewind.pt"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: the pre-trained run predates rewinding checkpoints; "
                "delete its folder to retrain it"
            )
        return load_model(path, self.device)

    def test_metrics(self, model: torch.nn.Module, tasks: tuple[TaskSpec, ...] | None = None):
        """Metrics of ``model`` on the test split (the selected tasks by default)."""
        loader = evaluation_batches(self.dataset("test"), self.profile.eval.batch_size, self.loader)
        conventions = metric_conventions(self.spec.dataset, self.profile)
        return evaluate(
            model, loader, tasks or self.tasks, conventions=conventions, device=self.device
        )

    def scoring_batches(self, count: int | None = None) -> list[dict[str, Tensor]]:
        """``count`` (default: the profile's ``scoring.batches``) batches of the augmented
        training split (:func:`cutlib.pruning.importance.scoring_batches`)."""
        scoring = self.profile.scoring
        return scoring_batches(
            self.dataset("train"),
            scoring.batch_size,
            scoring.batches if count is None else count,
            self.spec.seed,
        )

    def training_record(self) -> dict[str, Any]:
        """Where training started, the protocol, the steps this run took, and the steps since
        random initialisation (the pre-training's included when starting from it)."""
        before = self.profile.pretrain.iterations if self.start == "pretrained" else 0
        return {
            "protocol": self.spec.protocol,
            "start": self.start,
            "iterations": self.trained_iterations,
            "iterations_since_initialisation": before + self.trained_iterations,
        }

    def task_scores(
        self,
        model: SceneNet,
        criterion: Criterion,
        bn_mode: BNMode = "train",
        batches: int | None = None,
    ) -> TaskScores:
        """Per-task importance of the selected tasks on ``model`` over ``batches`` scoring
        batches (default: the profile's; timed under ``scoring``)."""
        return self._timed_scores(task_importance, model, criterion, bn_mode, batches)

    def joint_scores(self, model: SceneNet, criterion: Criterion) -> dict[str, Tensor]:
        """Importance for the joint λ-weighted loss of the selected tasks on ``model``, in train
        mode (timed under ``scoring``)."""
        return self._timed_scores(joint_importance, model, criterion, "train")

    def _timed_scores(
        self,
        score: Callable[..., Any],
        model: SceneNet,
        criterion: Criterion,
        bn_mode: BNMode,
        count: int | None = None,
    ) -> Any:
        batches = self.scoring_batches(count) if criterion in GRADIENT_CRITERIA else []
        start = time.perf_counter()
        scores = score(
            model,
            batches,
            self.tasks,
            criterion,
            bn_mode=bn_mode,
            align=self.profile.finetune.align,
            seed=self.spec.seed,
            progress=self.progress,
        )
        self.time("scoring", start)
        return scores

    def global_masks(self, model: SceneNet, criterion: Criterion) -> Masks:
        """One global ranking of every prunable weight of ``model`` by its joint ``criterion``
        score, keeping exactly ⌊(1 − sparsity)·N⌋ (SNIP, random and magnitude pruning)."""
        scores = self.joint_scores(model, criterion)
        start = time.perf_counter()
        masks = Ranking(scores).masks(1.0 - self.spec.sparsity)
        self.time("fusion", start)
        return masks

    def prune_at_initialisation(self, criterion: Criterion) -> MethodResult:
        """Prune the initial compact model W_0 by one global ranking of its joint ``criterion``
        scores (:meth:`global_masks`), then train the sparse network from scratch under the
        protocol's schedule (SNIP with ``taylor``, random pruning with ``random``)."""
        model = self.initial_compact()
        masks = self.global_masks(model, criterion)
        return self.train_masked(model, masks, self.schedule(), stage="train")

    def per_task_masks(
        self,
        model: SceneNet,
        scores: TaskScores,
        fusion: FusionRule,
        keep_ratio: str | float,
        min_votes: int = AUTHORS_MIN_VOTES,
        table: dict[float, float] | None = None,
    ) -> CutPlan:
        """Per-task top-κ masks fused by ``fusion`` on the shared weights of ``model`` (the
        compact model: backbone + selected heads), κ chosen per ``keep_ratio``
        (:func:`~cutlib.pruning.per_task.plan_cut`; timed under ``fusion``). CUT uses the vote,
        DiSparse the union."""
        start = time.perf_counter()
        shared = {w.name for w in owned_by(model, {BACKBONE})}
        masker = CutMasker(scores, self.task_names, shared, fusion, min_votes)
        plan = plan_cut(masker, self.spec.sparsity, keep_ratio, table)
        self.time("fusion", start)
        if self.progress:
            print(
                f"{fusion} of per-task masks: κ = {plan.keep_ratio:.4f}, "
                f"{plan.sparsity:.2%} sparsity"
            )
        return plan

    def schedule(self) -> TrainConfig:
        """The schedule of one training round of this run's method under its protocol
        (:meth:`~cutlib.methods.registry.Method.round_schedule`)."""
        return self.spec.method.round_schedule(self.profile, self.spec.protocol)

    def train(
        self,
        model: SceneNet,
        tasks: tuple[TaskSpec, ...],
        schedule: TrainConfig,
        stage: str,
        on_step: Callable[[int, dict[str, Tensor]], None] | None = None,
    ) -> list[dict[str, float]]:
        """Train ``model`` on the λ-weighted loss of ``tasks`` with ``schedule``, selecting the
        checkpoint on the validation split; the seconds are added to ``timings[stage]``, the
        selected iteration goes to ``selected_iteration[stage]``. Returns the history."""
        result = train(
            model,
            tasks,
            self.dataset("train"),
            self.dataset("val"),
            schedule,
            seed=self.spec.seed,
            device=self.device,
            eval_batch_size=self.profile.eval.batch_size,
            progress=self.progress,
            description=stage,
            on_step=on_step,
            on_evaluation=None if self.curves is None else functools.partial(self.curves, stage),
            precision=self.spec.precision,
            loader=self.loader,
            checkpoint=None if self.checkpoints is None else self.checkpoints.stage(stage),
        )
        self.timings[stage] = self.timings.get(stage, 0.0) + result.seconds
        # of which validation passes (model selection on the validation split)
        self.timings["validate"] = self.timings.get("validate", 0.0) + result.validation_seconds
        self.selected_iteration[stage] = result.best_iteration
        self.trained_iterations += schedule.iterations
        return result.history

    def before_finetune_recalibrated(self, model: SceneNet) -> dict[str, Any]:
        """The test metrics of a copy of ``model`` whose BatchNorm statistics are re-estimated on
        the profile's ``eval.bn_batches`` scoring batches
        (:func:`cutlib.train.reestimate_batchnorm`), as ``{"metrics_before_finetune_bn": …}``;
        nothing when that setting is 0. ``model`` itself, and the training that follows (it seeds
        its own generators), are unchanged."""
        count = self.profile.eval.bn_batches
        if count == 0:
            return {}
        start = time.perf_counter()
        batches = self.scoring_batches(count)
        copy = reestimate_batchnorm(copy_model(model), batches, self.device)
        self.time("recalibrate", start)
        return {"metrics_before_finetune_bn": self.test_metrics(copy)}

    def train_masked(
        self,
        model: SceneNet,
        masks: Masks,
        schedule: TrainConfig,
        stage: str = "finetune",
        on_step: Callable[[int, dict[str, Tensor]], None] | None = None,
    ) -> MethodResult:
        """Install ``masks`` on ``model`` (selected heads only), record its test metrics, train it
        on the selected tasks with the masks fixed (``on_step`` may change them), and fold the
        masks into the weights. The details hold the metrics before training and the selected
        iteration; methods add their own."""
        apply_masks(model, masks)
        before = self.test_metrics(model)
        recalibrated = self.before_finetune_recalibrated(model)
        history = self.train(model, self.tasks, schedule, stage, on_step)
        fold_masks(model)
        details = {
            "metrics_before_finetune": before,
            **recalibrated,
            f"{stage}_selected_iteration": self.selected_iteration[stage],
            f"{stage}_iterations": schedule.iterations,
        }
        return MethodResult(model, history, details)
