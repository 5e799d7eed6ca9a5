"""The input pipeline of training: shuffled batches of a split, read by DataLoader worker
processes, that are the same whatever the number of workers
(docs/architecture.md#the-input-pipeline).

Randomness in a batch comes from three places, each made independent of the workers:

- **the order** (which samples, in which batch): an endless stream of shuffled epochs drawn in the
  training process from a generator of the run's seed (:class:`EpochBatches`);
- **a batch augmentation** (the synthetic datasets' flip and colour jitter, vectorised over the
  batch): done in the training process on the batch once it is on the device, from the global
  generator (:class:`BatchTransformed`), so the workers only read;
- **a per-sample augmentation** (the real datasets' random scale, flip and crop, done in the
  workers because resizing is the costly part): each sample is transformed under a seed of its
  own, carried with its index from the stream (:class:`SeededSamples`).

With no workers, every draw is the one the training loop made before workers existed, so the
runs made then are reproduced to the last digit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

#: A sample's key in the stream: its index in the split and the seed of its augmentation.
SampleKey = tuple[int, int]

#: The most worker processes :func:`loader_settings` gives one run by default.
MAX_DEFAULT_WORKERS = 8


@dataclass(frozen=True)
class LoaderSettings:
    """How batches are read (a profile's ``runtime`` section, :func:`loader_settings`).

    Args:
        workers: DataLoader worker processes (0: read in the training process).
        pin_memory: page-locked batches, so that copies to a GPU can overlap compute.
        prefetch: batches each worker prepares ahead.
    """

    workers: int = 0
    pin_memory: bool = False
    prefetch: int = 2

    def __post_init__(self) -> None:
        if self.workers < 0 or self.prefetch < 1:
            raise ValueError(
                f"workers must be ≥ 0 and prefetch ≥ 1, got {self.workers} and {self.prefetch}"
            )

    def loader_options(self) -> dict[str, Any]:
        """Keyword arguments of ``torch.utils.data.DataLoader`` for these settings; with workers,
        they persist across the loader's passes (validation every few hundred steps)."""
        if self.workers == 0:
            return {"num_workers": 0, "pin_memory": self.pin_memory}
        return {
            "num_workers": self.workers,
            "pin_memory": self.pin_memory,
            "prefetch_factor": self.prefetch,
            "persistent_workers": True,
        }


#: Read in the training process: no workers, no pinned memory (the default everywhere).
IN_PROCESS = LoaderSettings()


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, which a cluster job's allocation sets)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def loader_settings(
    device: torch.device,
    workers: int | None = None,
    pin_memory: bool | None = None,
    prefetch: int = 2,
) -> LoaderSettings:
    """The loader settings of a run on ``device``, ``None`` values chosen by device: on a CPU (or
    MPS), no workers and no pinned memory, since the training step already uses every core; on
    CUDA, the CPUs shared out among the visible GPUs (at most :data:`MAX_DEFAULT_WORKERS` per run)
    and pinned memory.

    Example:
        >>> loader_settings(torch.device("cpu"))
        LoaderSettings(workers=0, pin_memory=False, prefetch=2)
    """
    cuda = device.type == "cuda"
    if workers is None:
        gpus = max(torch.cuda.device_count(), 1) if cuda else 1
        workers = min(MAX_DEFAULT_WORKERS, max(available_cpus() // gpus - 1, 1)) if cuda else 0
    return LoaderSettings(workers, cuda if pin_memory is None else pin_memory, prefetch)


def sample_seed(epoch_seed: int, position: int) -> int:
    """The augmentation seed of the sample at ``position`` in an epoch whose seed is
    ``epoch_seed``: a 63-bit mix of both (a Weyl step, so neighbours get unrelated seeds).

    Example:
        >>> sample_seed(7, 0), sample_seed(7, 1) != sample_seed(7, 0)
        (7, True)
    """
    return (epoch_seed ^ (position * 0x9E3779B97F4A7C15)) & (2**63 - 1)


class EpochBatches(Sampler[list[SampleKey]]):
    """Endless shuffled epochs of batches of sample keys (index, augmentation seed), drawn from a
    generator seeded with ``seed``.

    Each epoch draws, in this order, a 64-bit epoch seed (the per-sample augmentation seeds derive
    from it, :func:`sample_seed`) and the permutation of the split, then a second permutation that
    is not used: exactly the draws of a fresh ``DataLoader(shuffle=True, generator=…)`` iterator
    over its ``RandomSampler`` (worker base seed, the epoch's order, and the empty tail it draws
    to end the epoch), so the batches are those that loop gave. An incomplete last batch is
    dropped, so every step sees a full batch; a split smaller than one batch gives one batch of
    all its samples each epoch.

    Args:
        size: samples in the split.
        batch_size: samples per batch.
        seed: the generator's seed.
        start: batches to skip (a resumed run continues where it stopped).
        rank, world: with ``world`` > 1 processes, this one's share of each batch, samples
            ``rank``, ``rank + world``… (the batch of one process, split among several).

    Raises:
        ValueError: an empty split, or a batch that cannot be shared among ``world`` processes.
    """

    def __init__(
        self, size: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1
    ) -> None:
        if size == 0:
            raise ValueError("the training split is empty")
        self.size, self.seed, self.start, self.rank, self.world = size, seed, start, rank, world
        self.batch_size = min(batch_size, size)
        if self.batch_size % world:
            raise ValueError(
                f"a batch of {self.batch_size} cannot be shared equally among {world} processes"
            )

    def __iter__(self) -> Iterator[list[SampleKey]]:
        generator = torch.Generator().manual_seed(self.seed)
        served = 0
        while True:
            epoch_seed = int(torch.empty((), dtype=torch.int64).random_(generator=generator))
            order = torch.randperm(self.size, generator=generator).tolist()
            torch.randperm(self.size, generator=generator)
            for first in range(0, self.size - self.batch_size + 1, self.batch_size):
                if served >= self.start:
                    positions = range(first + self.rank, first + self.batch_size, self.world)
                    yield [(order[p], sample_seed(epoch_seed, p)) for p in positions]
                served += 1


@runtime_checkable
class BatchTransformed(Protocol):
    """A dataset whose random augmentation is cheap and vectorised over a batch: workers only
    read its samples (:meth:`read_batch`), the training process transforms whole batches
    (:meth:`transform_batch`) on the device."""

    def read_batch(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """The samples at ``indices``, stacked, before any random transform."""
        ...

    def transform_batch(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """A batch of :meth:`read_batch`, augmented and normalised."""
        ...


class BatchReads(Dataset):
    """What the workers of a :class:`BatchTransformed` dataset do: read the batch of a list of
    sample keys (their seeds are not needed: nothing random happens there)."""

    def __init__(self, data: BatchTransformed) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitems__(self, keys: Sequence[SampleKey]) -> dict[str, Tensor]:
        return self.data.read_batch([index for index, _ in keys])


class SeededSamples(Dataset):
    """Any map-style dataset whose samples draw from PyTorch's global generator, each sample read
    under its own seed (the global generator's state is restored afterwards, so the training
    process's stream is untouched)."""

    def __init__(self, data: Dataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, key: SampleKey) -> Any:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.data[index]


def stacked(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The collate function of :class:`BatchReads`: its batch is stacked already."""
    return batch


def to_device(batch: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """Move every tensor of a batch to ``device`` (asynchronously from pinned memory)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class TrainingBatches:
    """The endless stream of training batches of ``data``, on ``device`` and augmented
    (module docstring): ``next(stream)`` is the next batch.

    Args:
        data: the training split.
        batch_size: samples per batch (see :class:`EpochBatches`).
        seed: the run's seed (order and augmentation).
        device: where batches go.
        settings: workers, pinned memory, prefetching.
        start: batches already consumed (a resumed run).
        rank, world: this process's share of each batch (several processes).
    """

    def __init__(
        self,
        data: Dataset,
        batch_size: int,
        seed: int,
        device: torch.device,
        settings: LoaderSettings = IN_PROCESS,
        start: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        sampler = EpochBatches(len(data), batch_size, seed, start, rank, world)  # type: ignore[arg-type]
        self.transform = data.transform_batch if isinstance(data, BatchTransformed) else None
        read, collate = (
            (BatchReads(data), stacked) if self.transform else (SeededSamples(data), None)
        )
        self.device = device
        loader = DataLoader(
            read,
            batch_sampler=sampler,
            collate_fn=collate,
            generator=torch.Generator(),  # the workers' base seed: never the global generator
            **settings.loader_options(),
        )
        self._batches = iter(loader)

    def __iter__(self) -> TrainingBatches:
        return self

    def __next__(self) -> dict[str, Tensor]:
        batch = to_device(next(self._batches), self.device)
        return batch if self.transform is None else self.transform(batch)


def evaluation_batches(
    data: Dataset, batch_size: int, settings: LoaderSettings = IN_PROCESS
) -> DataLoader:
    """The batches of an evaluation split in order, read by the workers of ``settings``."""
    return DataLoader(data, batch_size=batch_size, **settings.loader_options())
