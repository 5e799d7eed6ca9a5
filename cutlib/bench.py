"""``cutlib bench``: how fast a profile's model trains and evaluates on this machine, and how close
cutlib's training loop comes to the model's bare step (docs/architecture.md#benchmarking-a-machine).

Two kinds of figures, both per training step of the profile's pre-training (its batch size, its
resolution, every task of the dataset):

- **bare**: the model alone on one batch held in memory: forward, a trivial loss (the sum of the
  outputs' means, so that every parameter gets a gradient), backward and the Adam step, timed with
  :class:`torch.utils.benchmark.Timer`. Variants: ``eager`` (as cutlib trains), ``channels_last``
  (NHWC memory format) and ``compile`` (:func:`torch.compile`); the bare evaluation forward is
  timed at the profile's evaluation batch size in ``torch.inference_mode``.
- **cutlib**: :func:`cutlib.train.train` itself on the real training split: data loading and
  augmentation, the λ-weighted multi-task loss, bookkeeping; unmasked and with the masks of
  a 90 %-sparse model installed (fine-tuning's case), plus one validation pass, amortised over the
  iterations between the schedule's evaluations.

The ratio of the two is the loop's overhead; the bare step is the figure to quote beside a
reproduce time, so that machines can be compared.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from cutlib.data import dataset_tasks, load_dataset
from cutlib.loading import IN_PROCESS, LoaderSettings
from cutlib.models import SceneNet
from cutlib.profiles import Profile, load_profile
from cutlib.pruning.importance import joint_importance
from cutlib.pruning.masks import apply_masks
from cutlib.pruning.thresholds import Ranking
from cutlib.train import TrainConfig, autocast_dtype, resolve_device, train

Variant = Literal["eager", "channels_last", "compile"]
VARIANTS: tuple[Variant, ...] = ("eager", "channels_last", "compile")
BENCH_SPARSITY = 0.9  #: the sparsity of the masked training step


@dataclass(frozen=True)
class Timing:
    """A median time in milliseconds with its interquartile range, over ``samples`` measurements,
    and the time of the first (warm-up) call, which includes any compilation."""

    median_ms: float
    iqr_ms: float
    samples: int
    first_ms: float | None = None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timing:
        """Summarise per-step times in seconds.

        Example:
            >>> Timing.of([0.010, 0.011, 0.012, 0.013])
            Timing(median_ms=11.5, iqr_ms=2.5, samples=4, first_ms=None)
        """
        if not seconds:
            raise ValueError("no times to summarise")
        ms = sorted(1000.0 * s for s in seconds)
        quartiles = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0]] * 3
        return cls(round(statistics.median(ms), 3), round(quartiles[2] - quartiles[0], 3), len(ms))


def measure(step: Callable[[], Any], min_run_time: float) -> Timing:
    """Time ``step`` with :class:`torch.utils.benchmark.Timer` (which also synchronises CUDA)."""
    from torch.utils import benchmark  # imported here: it loads the C++ extension machinery

    start = time.perf_counter()
    step()  # warm-up: allocator, lazy initialisation, compilation
    first_ms = round(1000 * (time.perf_counter() - start), 1)
    timer = benchmark.Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads())
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    timing = Timing.of([t / measurement.number_per_run for t in measurement.raw_times])
    return dataclasses.replace(timing, first_ms=first_ms)


#: How cutlib's step is timed: from the end of its first step to the end of its last. Reports
#: without this key (made before) divided the whole loop, first step included, by its steps.
LOOP_TIMING = "steady state"


def summary_table(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table of ``cutlib bench`` reports (name → report): the machine, the shapes, the
    bare steps, cutlib's steps, and the overhead with its paired rounds, in milliseconds.

    Example:
        >>> report = {"machine": {"device": "cpu", "threads": 2}, "shapes": {"resolution": [64, 64],
        ...     "batch_size": 12}, "bare_train_step_ms": {"eager": {"median_ms": 95.3}},
        ...     "cutlib_train_step_ms": {"unmasked": 104.9, "masked": 114.9},
        ...     "cutlib_step_amortised_ms": 106.9, "overhead": 0.1635,
        ...     "overhead_rounds": [0.17, 0.16], "loop_timing": "steady state"}
        >>> "| +16.4 % (+17.0, +16.0 %) | steady state" in summary_table({"quick": report})
        True
    """
    rows = []
    for name, report in reports.items():
        bare = report["bare_train_step_ms"]
        shapes = report["shapes"]
        rounds = ", ".join(f"{100 * r:+.1f}" for r in report["overhead_rounds"])
        rows.append(
            {
                "report": name,
                "machine": f"{report['machine']['device']}, {report['machine']['threads']} threads",
                "shapes": f"{shapes['resolution'][0]}×{shapes['resolution'][1]}, "
                f"batch {shapes['batch_size']}",
                "bare step": f"{bare['eager']['median_ms']:.1f}",
                "bare, channels-last": f"{bare['channels_last']['median_ms']:.1f}"
                if "channels_last" in bare
                else "–",
                "cutlib step, unmasked": f"{report['cutlib_train_step_ms']['unmasked']:.1f}",
                "cutlib step, masked": f"{report['cutlib_train_step_ms']['masked']:.1f}",
                "cutlib step + validation": f"{report['cutlib_step_amortised_ms']:.1f}",
                "overhead (rounds)": f"{100 * report['overhead']:+.1f} % ({rounds} %)",
                "cutlib step timing": report.get("loop_timing", "whole loop, first step included"),
            }
        )
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def write_summary(
    folder: Path, table: Callable[[Mapping[str, Mapping[str, Any]]], str] = summary_table
) -> Path:
    """Write ``folder/summary.md``, the ``table`` (default :func:`summary_table`) of every report
    in ``folder``."""
    reports = {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
    out = folder / "summary.md"
    out.write_text(table(reports) + "\n")
    return out


def _first_batch(loader: DataLoader, device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in next(iter(loader)).items()}


def _trivial_loss(outputs: dict[str, Tensor]) -> Tensor:
    return sum(out.float().mean() for out in outputs.values())  # type: ignore[return-value]


def check_variants(variants: Sequence[str]) -> None:
    """Raise ValueError naming the valid variants if one of ``variants`` is unknown."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]!r}; valid: {', '.join(VARIANTS)}")


def bare_train_step(
    model: SceneNet,
    images: Tensor,
    variant: Variant = "eager",
    lr: float = 1e-3,
    precision: str = "fp32",
) -> Callable[[], None]:
    """One bare training step of ``model`` on ``images`` (forward, trivial loss, backward, Adam),
    in the memory format and compilation mode of ``variant``, the forward pass under the autocast
    of ``precision`` (:func:`cutlib.train.autocast_dtype`; fp16 with a gradient scaler)."""
    check_variants([variant])
    model.train()
    if variant == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(model) if variant == "compile" else model
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    dtype = autocast_dtype(precision, images.device)
    scaler = torch.amp.GradScaler(images.device.type, enabled=dtype == torch.float16)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
            loss = _trivial_loss(forward(images))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


def bare_eval_step(model: SceneNet, images: Tensor) -> Callable[[], None]:
    """One bare evaluation forward of ``model`` on ``images`` in inference mode."""
    model.eval()

    def step() -> None:
        with torch.inference_mode():
            model(images)

    return step


def profile_model(
    profile: Profile, tasks: Sequence[Any], device: torch.device, seed: int
) -> SceneNet:
    """The profile's model for ``tasks``, initialised from ``seed``, on ``device``."""
    torch.manual_seed(seed)
    return SceneNet(tasks, **profile.model.kwargs()).to(device)


def _random_masks(model: SceneNet, sparsity: float, seed: int) -> dict[str, Tensor]:
    """Masks keeping a random ``1 − sparsity`` of the prunable weights (random pruning's)."""
    scores = joint_importance(model, [], model.task_names, "random", seed=seed)
    return Ranking(scores).masks(1.0 - sparsity)


def loop_step(
    profile: Profile,
    tasks: Sequence[Any],
    train_set: Any,
    val_set: Any,
    device: torch.device,
    iterations: int,
    masked: bool,
    seed: int,
    loader: LoaderSettings = IN_PROCESS,
    precision: str = "fp32",
) -> dict[str, float]:
    """Seconds per iteration of :func:`train` in its steady state, from the end of its first step
    to the end of its last (so that, like the bare step's timing, it leaves out the slower first
    step; the validation runs after the last), and of its one validation pass, at the end; with
    the input pipeline of ``loader`` and the autocast of ``precision``."""
    model = profile_model(profile, tasks, device, seed)
    if masked:
        apply_masks(model, _random_masks(model, BENCH_SPARSITY, seed))
    schedule = profile.pretrain
    config = TrainConfig(
        iterations + 1,
        schedule.batch_size,
        schedule.lr,
        schedule.weight_decay,
        eval_every=iterations + 2,
    )
    ends: dict[int, float] = {}

    def clock(iteration: int, _batch: Any) -> None:
        if iteration in (1, config.iterations):
            ends[iteration] = time.perf_counter()

    result = train(
        model,
        tasks,
        train_set,
        val_set,
        config,
        device=device,
        seed=seed,
        eval_batch_size=profile.eval.batch_size,
        progress=False,
        on_step=clock,
        precision=precision,
        loader=loader,
    )
    step = (ends[config.iterations] - ends[1]) / (config.iterations - 1)
    return {"step_s": step, "validation_s": result.validation_seconds}


def machine(device: torch.device) -> dict[str, Any]:
    """Where a report was measured: the device, its name (the GPU's, or the CPU architecture),
    PyTorch's thread count and version."""
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    return {
        "device": str(device),
        "device_name": name,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def bench(
    profile: str | Profile = "quick",
    dataset: str = "synth-nyuv2",
    device: str | torch.device = "auto",
    variants: Sequence[Variant] = ("eager", "channels_last"),
    min_run_time: float = 3.0,
    loop_iterations: int = 30,
    seed: int = 0,
    rounds: int = 3,
) -> dict[str, Any]:
    """Benchmark the bare and cutlib training steps of ``profile``'s model on ``dataset``
    (the bare ``eager`` step is always timed: it is the overhead's baseline).

    Returns a JSON-ready dict: the machine (device, threads, torch), the shapes, the bare training
    step per variant and the bare evaluation step (median and IQR in ms), cutlib's step unmasked and
    masked, its validation pass amortised over the pre-training's evaluation period, and the
    overhead of cutlib's amortised unmasked step over the bare eager step: the median over
    ``rounds`` paired rounds, each timing both back to back (``overhead_rounds``).
    """
    profile = load_profile(profile) if isinstance(profile, str) else profile
    device = resolve_device(device)
    tasks = dataset_tasks(dataset)
    train_set = load_dataset(dataset, "train", profile, seed)
    val_set = load_dataset(dataset, "val", profile, seed)
    schedule = profile.pretrain
    images = _first_batch(DataLoader(train_set, batch_size=schedule.batch_size), device)["image"]
    eval_images = _first_batch(DataLoader(val_set, batch_size=profile.eval.batch_size), device)[
        "image"
    ]
    variants = ["eager", *(v for v in variants if v != "eager")]  # eager: the overhead's baseline
    bare = {
        variant: measure(
            bare_train_step(profile_model(profile, tasks, device, seed), images, variant),
            min_run_time,
        )
        for variant in variants
    }
    eval_model = profile_model(profile, tasks, device, seed)
    bare_eval = measure(bare_eval_step(eval_model, eval_images), min_run_time)
    # the overhead from paired rounds, the bare eager step and cutlib's loop back to back, so that
    # a machine whose speed drifts between them (shared CPUs do) moves both sides of each ratio
    eager = bare_train_step(profile_model(profile, tasks, device, seed), images, "eager")
    ratios, unmasked = [], []
    for _ in range(rounds):
        bare_s = measure(eager, min_run_time / rounds).median_ms / 1000.0
        loop = loop_step(profile, tasks, train_set, val_set, device, loop_iterations, False, seed)
        unmasked.append(loop)
        ratios.append((loop["step_s"] + loop["validation_s"] / schedule.eval_every) / bare_s)
    masked = loop_step(profile, tasks, train_set, val_set, device, loop_iterations, True, seed)
    step = statistics.median(loop["step_s"] for loop in unmasked)
    validation = statistics.median(loop["validation_s"] for loop in unmasked)
    return {
        "profile": profile.name,
        "dataset": dataset,
        "machine": machine(device),
        "shapes": {
            "batch_size": schedule.batch_size,
            "eval_batch_size": profile.eval.batch_size,
            "resolution": list(images.shape[-2:]),
            "tasks": [t.name for t in tasks],
        },
        "bare_train_step_ms": {v: vars(t) for v, t in bare.items()},
        "bare_eval_step_ms": vars(bare_eval),
        "cutlib_train_step_ms": {
            "unmasked": round(1000 * step, 3),
            "masked": round(1000 * masked["step_s"], 3),
        },
        "cutlib_validation_pass_ms": round(1000 * validation, 3),
        "cutlib_step_amortised_ms": round(1000 * (step + validation / schedule.eval_every), 3),
        "loop_timing": LOOP_TIMING,
        "overhead_rounds": [round(r - 1.0, 4) for r in ratios],
        "overhead": round(statistics.median(ratios) - 1.0, 4),
    }
