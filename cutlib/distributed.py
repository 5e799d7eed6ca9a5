"""One run on several processes (``torchrun``): the process group and the few collective steps
the rest of cutlib needs (docs/architecture.md#one-run-on-several-gpus).

``torchrun --nproc_per_node=G -m cutlib.cli run …`` starts G processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`start` joins them in a process group (NCCL on CUDA,
gloo on a CPU) and gives each its device. Without torchrun every function here is a no-op, so
single-process code needs no branch: :func:`world_size` is 1, :func:`rank` 0, :func:`average`
returns its input.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


def active() -> bool:
    """Whether this process is one of several in a process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """The number of processes training the run (1 without torchrun)."""
    return dist.get_world_size() if active() else 1


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return dist.get_rank() if active() else 0


def is_writer() -> bool:
    """Whether this process writes the run's files: rank 0 only."""
    return rank() == 0


def launched() -> bool:
    """Whether torchrun started this process as one of several (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: torch.device) -> torch.device:
    """Join the process group torchrun describes and return this process's device: on CUDA, GPU
    ``LOCAL_RANK`` and the NCCL backend; on a CPU, gloo.

    Raises:
        ValueError: a CUDA run with fewer GPUs than processes on this node.
    """
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ValueError(
                f"process {local} of this node has no GPU: {torch.cuda.device_count()} visible"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def stop() -> None:
    """Leave the process group, if in one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def average(tensors: Sequence[Tensor]) -> list[Tensor]:
    """The mean of each tensor over the processes (each process's share of one batch gives the
    gradient of the whole batch); every process gets the same values."""
    if not active():
        return list(tensors)
    averaged = []
    for tensor in tensors:
        total = tensor.detach().clone()
        dist.all_reduce(total)
        averaged.append(total / world_size())
    return averaged


def summed(values: Mapping[str, float]) -> dict[str, float]:
    """Each value summed over the processes, in the keys' order (which every process shares)."""
    if not active():
        return dict(values)
    device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    total = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return dict(zip(values, total.tolist(), strict=True))


def agreed(flag: bool) -> bool:
    """Rank 0's ``flag``, on every process."""
    if not active():
        return flag
    shared = [flag]
    dist.broadcast_object_list(shared, src=0)
    return bool(shared[0])


def gathered(value: Any) -> list[Any]:
    """Every process's ``value`` (a picklable object), in rank order; ``[value]`` alone."""
    if not active():
        return [value]
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def barrier() -> None:
    """Wait until every process gets here."""
    if active():
        dist.barrier()


def checksum(tensors: Iterable[Tensor]) -> str:
    """A digest of the tensors' bytes, to compare the processes' copies of a model."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def ranks_agree(model: nn.Module) -> dict[str, bool]:
    """Whether every process holds the same parameters and the same zeros (the masks), by
    comparing checksums."""
    params = [p for _, p in sorted(model.named_parameters())]
    sums = gathered((checksum(params), checksum(p == 0 for p in params)))
    return {
        "parameters": len({s[0] for s in sums}) == 1,
        "masks": len({s[1] for s in sums}) == 1,
    }


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` for the training step: as it is alone; with several processes, in
    ``DistributedDataParallel`` (gradients averaged over the processes at each step), its
    BatchNorm layers synchronised across the processes on CUDA (``SyncBatchNorm``, which needs
    CUDA: on a CPU each process normalises by its own share of the batch). :func:`unwrap` undoes
    it."""
    if not active():
        return model
    if device.type == "cuda":
        nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> None:
    """Turn the ``SyncBatchNorm`` layers :func:`wrap` made back into ``BatchNorm2d`` (same
    parameters and statistics), in place."""
    for name, child in model.named_children():
        if isinstance(child, nn.SyncBatchNorm):
            state = child.state_dict()
            local = nn.BatchNorm2d(
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
            )
            local.load_state_dict(state)
            device = next(iter(state.values())).device if state else torch.device("cpu")
            setattr(model, name, local.to(device).train(child.training))
        else:
            unwrap(child)
