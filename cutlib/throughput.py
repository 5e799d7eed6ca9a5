"""``cutlib throughput``: what a profile's model asks of a machine at full size: its training step
per precision, how fast the input pipeline feeds it per number of DataLoader workers, and
cutlib's own step with both (docs/usage.md#running-at-scale).

Three measurements, each at the profile's training crop and batch size:

- **bare step**: forward, a trivial loss, backward and the Adam step on random images held on the
  device (:func:`cutlib.bench.bare_train_step`), per precision (``bf16``/``fp16`` autocast on
  CUDA only): the model's cost with nothing else in the way.
- **input**: samples per second of the run's training stream
  (:class:`cutlib.loading.TrainingBatches`: reading, decoding, augmenting and copying to the
  device) with each number of worker processes, nothing training beside it: what the pipeline can
  supply.
- **cutlib step** (optional): :func:`cutlib.train.train`'s steady-state step with each number of
  workers and each precision: whether the pipeline keeps the step busy.

A rendered (synthetic) dataset is drawn at the profile's crop, with as many scenes as the
measurements need when the profile sets no split sizes (the ``paper`` profile reads real data).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from cutlib.bench import bare_train_step, loop_step, machine, measure, profile_model
from cutlib.data import REAL_LAYOUTS, dataset_tasks, load_dataset
from cutlib.loading import LoaderSettings, TrainingBatches
from cutlib.profiles import Profile, load_profile
from cutlib.train import autocast_dtype


def _profile_for(profile: Profile, dataset: str, batches: int) -> Profile:
    """``profile``, with split sizes for ``batches`` batches when it renders ``dataset`` and sets
    none."""
    if dataset in REAL_LAYOUTS or profile.data.sizes is not None:
        return profile
    batch = profile.pretrain.batch_size
    sizes = {"train": batch * batches, "val": profile.eval.batch_size, "test": batch}
    return profile.override({"data": {"sizes": sizes}})


def input_rate(
    data: Any, batch_size: int, device: torch.device, settings: LoaderSettings, batches: int
) -> dict[str, float]:
    """Samples per second, and milliseconds per batch, of the training stream of ``data`` with
    ``settings``, over ``batches`` batches after a first one (which starts the workers)."""
    stream = TrainingBatches(data, batch_size, 0, device, settings)
    next(stream)
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / batches
    size = min(batch_size, len(data))
    return {"samples_per_s": round(size / seconds, 1), "batch_ms": round(1000 * seconds, 1)}


def throughput(
    profile: str | Profile = "paper",
    dataset: str = "nyuv2",
    device: torch.device | None = None,
    *,
    data_root: Path | None = None,
    precisions: Sequence[str] = ("fp32",),
    workers: Sequence[int] = (0, 2),
    input_batches: int = 20,
    steps: int = 0,
    min_run_time: float = 1.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure the model of ``profile`` on ``device`` (default: the CPU; module docstring);
    ``steps`` > 0 also times cutlib's step over that many iterations per (workers, precision).

    Raises:
        ValueError: a precision other than fp32 off CUDA, or a negative count.
        cutlib.data.real.DataError: a real dataset that is missing or malformed.
    """
    device = device or torch.device("cpu")
    for precision in precisions:
        autocast_dtype(precision, device)
    if min(workers, default=0) < 0 or input_batches < 1 or steps < 0:
        raise ValueError("workers and steps must be ≥ 0, input batches ≥ 1")
    loaded = load_profile(profile, dataset) if isinstance(profile, str) else profile
    loaded = _profile_for(loaded, dataset, input_batches + steps + 2)
    tasks = dataset_tasks(dataset, loaded, data_root)
    train_set = load_dataset(dataset, "train", loaded, seed, root=data_root)  # present, or stop
    schedule = loaded.pretrain
    height, width = loaded.data.resolution
    images = torch.randn(schedule.batch_size, 3, height, width, device=device)
    model = profile_model(loaded, tasks, device, seed)
    parameters = sum(p.numel() for p in model.parameters())
    bare = {
        precision: vars(measure(bare_train_step(model, images, precision=precision), min_run_time))
        for precision in precisions
    }
    pinned = device.type == "cuda"
    rates = {
        str(count): input_rate(
            train_set, schedule.batch_size, device, LoaderSettings(count, pinned), input_batches
        )
        for count in workers
    }
    report: dict[str, Any] = {
        "profile": loaded.name,
        "dataset": dataset,
        "machine": machine(device),
        "model": {
            "parameters": parameters,
            "crop": [height, width],
            "batch_size": schedule.batch_size,
        },
        "bare_train_step_ms": bare,
        "input": rates,
    }
    if steps:
        val_set = load_dataset(dataset, "val", loaded, seed, root=data_root)
        report["cutlib_train_step_ms"] = {
            f"{_workers(count)}, {precision}": round(
                1000
                * loop_step(
                    loaded,
                    tasks,
                    train_set,
                    val_set,
                    device,
                    steps,
                    False,
                    seed,
                    LoaderSettings(count, pinned),
                    precision,
                )["step_s"],
                1,
            )
            for count in workers
            for precision in precisions
        }
    return report


def _workers(count: int) -> str:
    return f"{count} worker" + ("" if count == 1 else "s")


def summary_table(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table of ``cutlib throughput`` reports (name → report): one row per
    measurement, with the machine and the model's shapes.

    Example:
        >>> report = {"machine": {"device": "cpu", "device_name": "x86_64", "threads": 2},
        ...     "profile": "paper", "model": {"parameters": 90_700_000, "crop": [321, 321],
        ...     "batch_size": 16}, "bare_train_step_ms": {"fp32": {"median_ms": 61000.0}},
        ...     "input": {"0": {"samples_per_s": 40.0, "batch_ms": 400.0}}}
        >>> row = summary_table({"paper_cpu": report}).splitlines()[2]
        >>> [cell.strip() for cell in row.strip("|").split("|")][2:]
        ['paper: 90.7 M parameters, 321×321, batch 16', 'bare training step, fp32', '61,000 ms']
    """
    rows = []
    for name, report in reports.items():
        machine = report["machine"]
        model = report["model"]
        where = f"{machine['device']} ({machine['device_name']}), {machine['threads']} threads"
        shapes = (
            f"{report['profile']}: {model['parameters'] / 1e6:.1f} M parameters, "
            f"{model['crop'][0]}×{model['crop'][1]}, batch {model['batch_size']}"
        )
        measured = [
            (f"bare training step, {p}", f"{t['median_ms']:,.0f} ms")
            for p, t in report["bare_train_step_ms"].items()
        ]
        measured += [
            (
                f"input pipeline, {w} worker{'' if w == '1' else 's'}",
                f"{r['samples_per_s']:,.1f} samples/s",
            )
            for w, r in report["input"].items()
        ]
        measured += [
            (f"cutlib step, {setting}", f"{ms:,.0f} ms")
            for setting, ms in report.get("cutlib_train_step_ms", {}).items()
        ]
        rows += [
            {"report": name, "machine": where, "model": shapes, "measure": m, "value": v}
            for m, v in measured
        ]
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)
