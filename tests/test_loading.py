"""The input pipeline (cutlib.loading): the shuffled stream, per-sample seeds, and batches (and so
a trained model) that do not depend on the number of DataLoader workers."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from cutlib.data import load_dataset
from cutlib.loading import (
    EpochBatches,
    LoaderSettings,
    SeededSamples,
    TrainingBatches,
    loader_settings,
)
from cutlib.profiles import load_profile
from cutlib.tasks import select_tasks
from cutlib.train import TrainConfig, train


def _indices(batches: list[list[tuple[int, int]]]) -> list[list[int]]:
    return [[index for index, _ in batch] for batch in batches]


@pytest.mark.parametrize(("size", "batch_size"), [(10, 3), (12, 4), (5, 8)])
def test_the_stream_is_the_order_of_a_shuffling_dataloader(size: int, batch_size: int) -> None:
    """The batches of a fresh DataLoader(shuffle=True, generator) per epoch, as training drew
    them before workers existed: the runs made then keep their batches."""
    loader = DataLoader(
        range(size),
        batch_size=batch_size,
        shuffle=True,
        drop_last=size >= batch_size,
        generator=torch.Generator().manual_seed(5),
    )
    expected = [batch.tolist() for _ in range(4) for batch in loader]
    stream = EpochBatches(size, batch_size, seed=5)
    assert _indices(list(itertools.islice(stream, len(expected)))) == expected


def test_the_stream_resumes_and_splits_among_processes() -> None:
    whole = list(itertools.islice(EpochBatches(20, 6, seed=1), 9))
    assert list(itertools.islice(EpochBatches(20, 6, seed=1, start=4), 5)) == whole[4:]
    shares = [list(itertools.islice(EpochBatches(20, 6, 1, rank=r, world=3), 9)) for r in range(3)]
    for step, batch in enumerate(whole):
        assert sorted(sum((share[step] for share in shares), [])) == sorted(batch)
    keys = [key for batch in whole for key in batch]
    assert len({seed for _, seed in keys}) == len(keys)  # every draw has its own seed
    with pytest.raises(ValueError, match="cannot be shared equally among 4"):
        EpochBatches(20, 6, 1, world=4)
    with pytest.raises(ValueError, match="empty"):
        EpochBatches(0, 6, 1)


class _Noisy(Dataset):
    """A sample that draws from PyTorch's global generator, as torchvision's transforms do."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": index + torch.rand(2)}


def test_seeded_samples_repeat_and_leave_the_global_generator_alone() -> None:
    data = SeededSamples(_Noisy())
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = data[(3, 42)]["image"]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(data[(3, 42)]["image"], first)
    assert not torch.equal(data[(3, 43)]["image"], first)


def _batches(data: Dataset, workers: int, count: int = 7) -> list:
    torch.manual_seed(0)
    stream = TrainingBatches(data, 4, 3, torch.device("cpu"), LoaderSettings(workers))
    return [next(stream) for _ in range(count)]


def test_per_sample_augmentation_is_the_same_with_and_without_workers() -> None:
    """The real datasets' path: each sample under its own seed, in whichever process reads it."""
    without, with_two = _batches(_Noisy(), 0), _batches(_Noisy(), 2)
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(without, with_two, strict=True))


def _smoke(split: str):
    profile = load_profile("smoke", "synth-nyuv2")
    return load_dataset("synth-nyuv2", split, profile, 0), profile


def test_batch_augmentation_is_the_same_with_and_without_workers() -> None:
    """The synthetic datasets' path: workers read, the training process augments."""
    data, _ = _smoke("train")
    for a, b in zip(_batches(data, 0), _batches(data, 2), strict=True):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) and a[k].is_contiguous() for k in a)


def test_training_gives_identical_models_with_zero_and_two_workers(three_tasks) -> None:
    """The issue's invariance: same seed, 0 or 2 workers, the same history and weights."""
    from cutlib.models import SceneNet

    train_set, profile = _smoke("train")
    val_set, _ = _smoke("val")
    tasks = select_tasks(train_set.tasks, None)
    config = TrainConfig(12, 8, 1e-3, eval_every=6)
    results = []
    for workers in (0, 2):
        torch.manual_seed(0)
        model = SceneNet(tasks, **profile.model.kwargs())
        result = train(
            model,
            tasks,
            train_set,
            val_set,
            config,
            device="cpu",
            progress=False,
            loader=LoaderSettings(workers),
        )
        results.append((result.history, model.state_dict()))
    (history_0, state_0), (history_2, state_2) = results
    assert history_0 == history_2
    assert all(torch.equal(state_0[k], state_2[k]) for k in state_0)


def test_loader_settings_by_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert loader_settings(torch.device("cpu")) == LoaderSettings(0, False, 2)
    assert loader_settings(torch.device("cpu"), workers=3).workers == 3
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr("cutlib.loading.available_cpus", lambda: 16)
    assert loader_settings(torch.device("cuda")) == LoaderSettings(7, True, 2)
    monkeypatch.setattr("cutlib.loading.available_cpus", lambda: 64)
    assert loader_settings(torch.device("cuda"), pin_memory=False) == LoaderSettings(8, False, 2)
    assert LoaderSettings(2, prefetch=4).loader_options()["persistent_workers"]
    with pytest.raises(ValueError, match="workers must be"):
        LoaderSettings(-1)
