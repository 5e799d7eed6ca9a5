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
    model = SceneNet(tasks, **profile["model"])
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
