"""The trainer: the loss falls, the best validation checkpoint is kept, runs are deterministic."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import DataLoader

import cutlib.train
from cutlib.data import dataset_tasks, load_dataset
from cutlib.losses import multitask_loss
from cutlib.models import SceneNet
from cutlib.profiles import load_profile
from cutlib.train import TrainConfig, train

DATASET = "synth-nyuv2"


def _setup(seed: int = 0) -> tuple:
    profile = load_profile("smoke", DATASET)
    tasks = dataset_tasks(DATASET, profile)
    torch.manual_seed(seed)
    model = SceneNet(tasks, **profile.model.kwargs())
    return (
        model,
        tasks,
        load_dataset(DATASET, "train", profile, 0),
        load_dataset(DATASET, "val", profile, 0),
    )


def test_short_training_lowers_the_loss() -> None:
    model, tasks, train_set, val_set = _setup()
    config = TrainConfig(iterations=60, batch_size=8, lr=3e-3, eval_every=20)
    result = train(model, tasks, train_set, val_set, config, progress=False, device="cpu")
    first, last = result.history[0], result.history[-1]
    assert len(result.history) == 3
    assert last["train_loss"] < first["train_loss"]
    assert result.best_val_loss == min(h["val_loss"] for h in result.history)
    assert {"lr", "train_seg", "val_depth", "iteration"} <= set(first)


def test_same_seed_gives_identical_weights() -> None:
    config = TrainConfig(iterations=6, batch_size=8, lr=1e-3, eval_every=3)
    states = []
    for _ in range(2):
        model, tasks, train_set, val_set = _setup()
        train(model, tasks, train_set, val_set, config, seed=3, progress=False, device="cpu")
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_frozen_parameters_stay_frozen() -> None:
    model, tasks, train_set, val_set = _setup()
    for p in model.heads["sn"].parameters():
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in model.heads["sn"].state_dict().items()}
    train(model, tasks, train_set, val_set, TrainConfig(4, 8, 1e-2, eval_every=4), progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.heads["sn"].state_dict().items())


def test_on_step_sees_iteration_zero_before_the_first_step_then_every_step() -> None:
    """``on_step(0, batch)`` comes before any weight changes, with the batch the first step then
    trains on (DiSparse's dynamic variant updates its masks there); then once per step."""
    model, tasks, train_set, val_set = _setup()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    calls: list[tuple[int, torch.Tensor, bool]] = []

    def record(iteration: int, batch: dict[str, torch.Tensor]) -> None:
        unchanged = all(torch.equal(initial[k], v) for k, v in model.state_dict().items())
        calls.append((iteration, batch["image"].clone(), unchanged))

    config = TrainConfig(iterations=3, batch_size=4, lr=1e-2, eval_every=3)
    train(model, tasks, train_set, val_set, config, progress=False, device="cpu", on_step=record)
    assert [c[0] for c in calls] == [0, 1, 2, 3]
    assert calls[0][2] and not calls[1][2]  # nothing trained yet at 0, the first step after
    assert torch.equal(calls[0][1], calls[1][1])  # the same batch: 0 updates on it, 1 trains on it


def _val_loss(
    model: SceneNet, state: dict[str, torch.Tensor], tasks: tuple, val_set: object
) -> float:
    """The sample-weighted mean λ-weighted loss of ``model`` with ``state`` on ``val_set``, in eval
    mode (computed here, not by the trainer)."""
    net = copy.deepcopy(model)
    net.load_state_dict(state)
    net.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in DataLoader(val_set, batch_size=len(val_set)):
            loss = multitask_loss(tasks, net(batch["image"]), batch)[0]
            total += float(loss) * batch["image"].shape[0]
            count += batch["image"].shape[0]
    return total / count


class _RecordingAdam(torch.optim.Adam):
    """Adam that records the learning rate each of its steps is taken with."""

    instances: list[_RecordingAdam] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.step_lrs: list[float] = []
        _RecordingAdam.instances.append(self)

    def step(self, closure=None):  # type: ignore[no-untyped-def, override]
        self.step_lrs.append(self.param_groups[0]["lr"])
        return super().step(closure)


@pytest.mark.slow
def test_the_learning_rate_of_step_t_is_lr_times_gamma_to_the_floor_of_t_over_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """StepLR stepped every iteration: the optimiser step of iteration t (from 1) runs at
    lr·γ^⌊(t − 1)/step⌋, i.e. lr·γ^⌊t/step⌋ with t counted from 0."""
    _RecordingAdam.instances.clear()
    monkeypatch.setattr(cutlib.train.torch.optim, "Adam", _RecordingAdam)
    model, tasks, train_set, val_set = _setup()
    lr, step, gamma, iterations = 2e-3, 3, 0.5, 10
    config = TrainConfig(iterations, 8, lr, lr_step=step, lr_gamma=gamma, eval_every=iterations)
    train(model, tasks, train_set, val_set, config, progress=False, device="cpu")
    (optimizer,) = _RecordingAdam.instances
    expected = [lr * gamma ** (t // step) for t in range(iterations)]
    assert optimizer.step_lrs == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.slow
def test_train_returns_the_model_of_its_best_validation_evaluation() -> None:
    """The weights (and BatchNorm statistics) ``train`` leaves in the model are those it had at
    the evaluation with the lowest validation loss, recorded here as training went (``on_step``
    runs after each step, before that iteration's evaluation). The learning rate jumps ×100 after
    iteration 6, so the later evaluations are worse and the best one is not the last."""
    model, tasks, train_set, val_set = _setup()
    config = TrainConfig(12, 8, 2e-3, lr_step=6, lr_gamma=100.0, eval_every=3)
    evaluated = config.evaluation_iterations()
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def record(iteration: int, batch: dict[str, torch.Tensor]) -> None:
        if iteration in evaluated:
            snapshots[iteration] = {k: v.clone() for k, v in model.state_dict().items()}

    result = train(
        model, tasks, train_set, val_set, config, progress=False, device="cpu", on_step=record
    )
    assert [h["iteration"] for h in result.history] == sorted(snapshots) == [3, 6, 9, 12]
    val_loss = {it: _val_loss(model, state, tasks, val_set) for it, state in snapshots.items()}
    assert [h["val_loss"] for h in result.history] == pytest.approx(
        [val_loss[h["iteration"]] for h in result.history], rel=1e-4
    )
    best = min(val_loss, key=val_loss.__getitem__)
    assert best != 12  # the premise: the last evaluation is not the best
    assert result.best_iteration == best
    final = model.state_dict()
    assert final.keys() == snapshots[best].keys()
    assert all(torch.equal(final[k], snapshots[best][k]) for k in final)


def test_the_learning_rate_area_is_the_sum_of_the_rates_the_scheduler_gives() -> None:
    """Against PyTorch's own StepLR, stepped after every optimiser step as train() does."""
    for config in (
        TrainConfig(300, 8, 4e-4, lr_step=60, lr_gamma=0.5),
        TrainConfig(1000, 12, 2e-3, lr_step=350, lr_gamma=0.5),
        TrainConfig(7, 1, 1.0),
    ):
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step, config.lr_gamma)
        total = 0.0
        for _ in range(config.iterations):
            total += optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
        assert config.learning_rate_area() == pytest.approx(total)
