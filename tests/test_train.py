"""The trainer: the loss falls, the best validation checkpoint is kept, runs are deterministic."""

from __future__ import annotations

import torch

from cutlib.data import dataset_tasks, load_dataset
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
