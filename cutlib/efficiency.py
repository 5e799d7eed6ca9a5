"""What an edge device really gains from a pruned multi-task model: measurement only, no plots
(docs/method/efficiency.md).

Every number here says what it counts (docs/method/efficiency.md#an-honest-efficiency-table):

- **FLOP** and **sparse FLOP**: :mod:`cutlib.pruning.flops` (shape-based, 2 per
  multiply-accumulate; the sparse count is the theoretical one no dense kernel realises).
- **Parameters** (:func:`parameter_summary`): total vs non-zero, biases and BN affines included,
  masks honoured.
- **File sizes** (:func:`file_sizes`): dense ``torch.save``, its gzip, bitmask + packed values
  (fp32 / fp16) and ONNX, always of the *deployed* model (masks folded on a copy).
- **Peak inference memory** (:func:`peak_inference_memory`): bytes of tensors alive at once during
  one forward pass, parameters and input excluded.
- **Latency** (:func:`measure_latency`, :func:`latency_summary`): ``torch.utils.benchmark`` with
  fixed threads, eval + inference mode, variants interleaved, raw samples kept; medians and IQRs,
  never means (docs/method/efficiency.md#measuring-latency); in PyTorch eager and, optionally, as
  the ONNX export under ONNX Runtime, the runtime a CPU edge device would use.
"""

from __future__ import annotations

import copy
import gzip
import os
import platform
import tempfile
import weakref
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from itertools import product
from pathlib import Path
from typing import Any, Literal, get_args

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from tqdm.auto import tqdm

from cutlib.models import SceneNet
from cutlib.pruning.flops import (
    device_of,
    effective_weight,
    eval_mode,
    flop_counts,
    sparse_from_counts,
)
from cutlib.pruning.masks import PRUNABLE_TYPES, deployed, parameter_counts

#: Bytes per MB in every table here (decimal, as in
#: docs/method/efficiency.md#storage-of-sparse-weights: 90.65 M fp32 = 362.6 MB).
MB = 1e6


# -------------------------------------------------------------------------------------- parameters


@torch.no_grad()
def parameter_summary(model: nn.Module) -> dict[str, int]:
    """Parameter counts (docs/method/efficiency.md#what-unstructured-masks-buy): ``total`` /
    ``nonzero`` over all parameters (weights, biases, BN affines; buffers such as BN running stats
    excluded) and ``prunable_total`` / ``prunable_nonzero`` over the ``Conv2d`` / ``Linear`` weights
    only.

    Installed masks are honoured: a masked weight counts once, with its effective values
    (``weight_orig`` is not double counted).
    """
    counts = parameter_counts(model)
    prunable = [effective_weight(m) for m in model.modules() if isinstance(m, PRUNABLE_TYPES)]
    return {
        "total": counts["total"],
        "nonzero": counts["nonzero"],
        "prunable_total": sum(w.numel() for w in prunable),
        "prunable_nonzero": sum(int(torch.count_nonzero(w)) for w in prunable),
    }


# ---------------------------------------------------------------------------------------- files


def _onnx_available() -> bool:
    from importlib.util import find_spec

    return find_spec("onnx") is not None


#: The name of the ONNX export :func:`file_sizes` writes in its folder.
ONNX_FILE = "model.onnx"


def file_sizes(
    model: SceneNet,
    directory: Path,
    input_size: tuple[int, int] | None = None,
    gzip_level: int = 9,
) -> dict[str, int | None]:
    """Bytes on disk of ``model`` in each storage format
    (docs/method/efficiency.md#what-unstructured-masks-buy,
    docs/method/efficiency.md#storage-of-sparse-weights).

    All formats are written for the deployed model (:func:`deployed`: masks folded on a copy, so
    zeros are plain zeros and ``model`` is untouched). Keys:

    - ``state_dict``: ``torch.save(state_dict)``, dense (BN buffers included);
    - ``state_dict_gzip``: that file gzip-compressed at ``gzip_level`` (9, the smallest, by
      default; on a 90 %-zero file level 9 takes ~15× longer than 6 for ~9 % fewer bytes);
    - ``state_dict_reparam``: ``torch.save`` of the model *as given*, with the prune
      re-parametrisation (``weight_orig`` + ``weight_mask``, ≈ 2× the dense file); ``None``
      when no mask is installed;
    - ``sparse_fp32`` / ``sparse_fp16``: bitmask + packed non-zero values
      (:func:`cutlib.export.save_sparse`);
    - ``onnx``: :func:`cutlib.export.export_onnx` at ``input_size``; ``None`` when no
      ``input_size`` is given or onnx is not installed.

    The files are left in ``directory`` (created if needed), named after their key.
    """
    from cutlib.export import export_onnx, save_sparse

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_out = deployed(model)
    sizes: dict[str, int | None] = {}

    raw = directory / "state_dict.pt"
    torch.save(model_out.state_dict(), raw)
    sizes["state_dict"] = raw.stat().st_size
    packed = directory / "state_dict.pt.gz"
    with gzip.GzipFile(packed, "wb", compresslevel=gzip_level, mtime=0) as fh:
        fh.write(raw.read_bytes())
    sizes["state_dict_gzip"] = packed.stat().st_size
    sizes["state_dict_reparam"] = None
    if model_out is not model:
        reparam = directory / "state_dict_reparam.pt"
        torch.save(model.state_dict(), reparam)
        sizes["state_dict_reparam"] = reparam.stat().st_size

    for values in ("fp32", "fp16"):
        written = save_sparse(model_out, directory / f"sparse_{values}", values=values)
        sizes[f"sparse_{values}"] = Path(written).stat().st_size

    sizes["onnx"] = None
    if input_size is not None and _onnx_available():
        try:
            written = export_onnx(model_out, directory / ONNX_FILE, input_size=input_size)
        except ImportError:  # the exporter (onnxscript) is missing: no ONNX size
            pass
        else:
            sizes["onnx"] = Path(written).stat().st_size
    return sizes


# ------------------------------------------------------------------------------------------ memory


class _LiveTensorBytes(TorchDispatchMode):
    """Tracks the bytes of storages created by aten ops and still alive; remembers the peak."""

    def __init__(self, known: set[int]) -> None:
        super().__init__()
        self.known = known
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0
        self.finalizers: list[weakref.finalize] = []

    def _release(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if not isinstance(tensor, Tensor):
                continue
            storage = tensor.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes == 0 or key in self.known or key in self.live:
                continue  # views, in-place results, parameters and the input are not new memory
            self.live[key] = nbytes
            self.current += nbytes
            self.peak = max(self.peak, self.current)
            # Storages keep their Python object while C++ holds them, so this fires at the free.
            self.finalizers.append(weakref.finalize(storage, self._release, key))
        return out


def _allocator_peak_cpu(model: nn.Module, x: Tensor) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(x)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if str(event.device_type()).endswith("CPU"):
            current += event.nbytes()  # > 0: allocation, < 0: free
            peak = max(peak, current)
    return peak


def peak_inference_memory(
    model: nn.Module, input: Tensor, method: Literal["tensors", "allocator"] = "tensors"
) -> int:
    """Peak bytes of memory allocated during one inference forward pass of ``model`` on ``input``
    (eval mode, ``torch.inference_mode()``), **excluding** the parameters, buffers and the input.

    Masks are folded first (:func:`deployed`), so the re-parametrisation's per-forward weight
    products are not counted.

    Args:
        method: ``"tensors"`` (default, any device): the most bytes of aten-op output storages
            alive at the same time, tracked with a ``TorchDispatchMode`` (views and in-place
            results add nothing; storages are released when freed). This is the activation
            memory any runtime needs for this graph, and is hand-computable: one conv → its
            output; a chain of two convs → both outputs. Kernel-internal workspaces are not seen.
            ``"allocator"``: what PyTorch's allocator actually handed out, including kernel
            workspaces and oneDNN weight/output reorders (so ≥ ``"tensors"``). On CUDA,
            ``torch.cuda.max_memory_allocated`` minus the memory allocated before the pass; on
            CPU, replayed from the profiler's allocation / free events (``profile_memory=True``).
    """
    if method not in ("tensors", "allocator"):
        raise ValueError(f"unknown method {method!r}; valid: 'tensors', 'allocator'")
    model = deployed(model)
    with eval_mode(model), torch.inference_mode():
        if method == "allocator":
            if input.device.type == "cuda":
                torch.cuda.synchronize(input.device)
                before = torch.cuda.memory_allocated(input.device)
                torch.cuda.reset_peak_memory_stats(input.device)
                model(input)
                torch.cuda.synchronize(input.device)
                return int(torch.cuda.max_memory_allocated(input.device) - before)
            return _allocator_peak_cpu(model, input)
        tensors = [*model.parameters(), *model.buffers(), input]
        tracker = _LiveTensorBytes({t.untyped_storage().data_ptr() for t in tensors})
        with tracker:
            model(input)
        for finalizer in tracker.finalizers:
            finalizer.detach()
        return tracker.peak


# ----------------------------------------------------------------------------------------- latency


def environment(device: torch.device | str | None = None) -> dict[str, Any]:
    """What a latency number depends on (docs/method/efficiency.md#measuring-latency): torch and
    Python versions, platform, CPU model, logical cores, ``torch.get_num_threads()`` and the device
    measured on (``"cpu"`` or the GPU's name)."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = torch.device(device or "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": name,
    }


#: What runs a timed forward pass: PyTorch eager in its default contiguous (NCHW) layout, PyTorch
#: eager with the model and input in channels-last (NHWC) layout, or the ONNX export under ONNX
#: Runtime on the CPU.
Runtime = Literal["torch", "torch_channels_last", "onnxruntime"]
RUNTIMES: tuple[str, ...] = get_args(Runtime)
#: How each runtime is named in :func:`merge_latency`'s columns.
RUNTIME_LABELS = {"torch": "PyTorch", "torch_channels_last": "PyTorch NHWC", "onnxruntime": "ORT"}

#: Timed statements: inference mode is entered inside PyTorch's, so it holds for every timed call.
_TORCH_STMT = "with torch.inference_mode():\n    model(x)"
_ORT_STMT = "model.run(None, x)"


class _Deployments:
    """Each variant ready for each runtime, made on first use: the deployed model itself
    (``torch``), a channels-last copy (``torch_channels_last``), or an ONNX Runtime session per
    thread count over the variant's ONNX export in a temporary folder (``onnxruntime``)."""

    def __init__(
        self,
        models: Mapping[str, nn.Module],
        input_size: tuple[int, int],
        onnx_files: Mapping[str, Path],
    ) -> None:
        self.models = models
        self.input_size = input_size
        self.onnx_files = onnx_files
        self.folder = tempfile.TemporaryDirectory(prefix="cutlib-latency-")
        self.cache: dict[tuple[str, str, int], Any] = {}

    def __call__(self, name: str, runtime: str, threads: int, x: Tensor) -> tuple[str, dict]:
        """The Timer's statement and globals for variant ``name`` under ``runtime`` on input
        ``x`` (NCHW)."""
        model = self.models[name]
        if runtime == "torch":
            return _TORCH_STMT, {"model": model, "x": x}
        key = (name, runtime, threads if runtime == "onnxruntime" else 0)
        if key not in self.cache:
            self.cache[key] = self._prepare(name, model, runtime, threads)
        if runtime == "torch_channels_last":
            nhwc = x.to(memory_format=torch.channels_last)
            return _TORCH_STMT, {"model": self.cache[key], "x": nhwc}
        return _ORT_STMT, {"model": self.cache[key], "x": {"image": x.cpu().numpy()}}

    def _prepare(self, name: str, model: nn.Module, runtime: str, threads: int) -> Any:
        if runtime == "torch_channels_last":
            return copy.deepcopy(model).to(memory_format=torch.channels_last)
        from cutlib.export import export_onnx, onnx_session

        if not isinstance(model, SceneNet):
            raise TypeError(f"onnxruntime latency needs SceneNet variants; {name!r} is not")
        path = self.onnx_files.get(name) or Path(self.folder.name) / f"{_slug(name)}.onnx"
        if not Path(path).exists():
            export_onnx(model, path, self.input_size)
        return onnx_session(path, threads)


def measure_latency(
    variants: Mapping[str, nn.Module],
    input_size: tuple[int, int],
    batch_sizes: Sequence[int] = (1, 8),
    threads: Sequence[int] = (1, 2),
    min_run_time: float = 0.2,
    repeats: int = 3,
    progress: bool = True,
    in_channels: int = 3,
    seed: int = 0,
    runtimes: Sequence[Runtime] = ("torch",),
    onnx_files: Mapping[str, Path] | None = None,
) -> pd.DataFrame:
    """Forward-pass latency of every variant with ``torch.utils.benchmark``
    (docs/method/efficiency.md#measuring-latency).

    Protocol: each variant is deployed (:func:`deployed`: masks folded on a copy), put in eval
    mode and timed with ``Timer(stmt, num_threads=T)`` and ``blocked_autorange(min_run_time)``
    (which also warms up) on one fixed random input per batch size (seeded). ``runtimes`` says
    what runs the forward pass:

    - ``"torch"``: PyTorch eager, ``with torch.inference_mode(): model(x)`` on the model's
      device (CUDA is synchronised by the Timer), in PyTorch's default contiguous (NCHW) layout;
    - ``"torch_channels_last"``: the same with the model and input converted to channels-last
      (NHWC), the layout PyTorch recommends for CPU inference with oneDNN convolutions: it
      avoids a layout reorder around every convolution, which weighs most on small models;
    - ``"onnxruntime"``: the variant's ONNX export (:func:`cutlib.export.export_onnx`, SceneNet
      variants only) under an ONNX Runtime CPU session with ``T`` intra-op threads
      (:func:`cutlib.export.onnx_session`), ``session.run(None, {"image": x})``: what a CPU
      edge deployment runs. ONNX Runtime folds BN into the convolutions, fuses the ReLUs and
      has far less per-operator overhead than eager PyTorch, so a small model's time follows
      its FLOPs more closely. ``onnx_files`` maps a variant to an export of it already on disk
      (:func:`onnx_exports` of an :func:`efficiency_table` folder), which is then timed instead
      of exporting it again (an export takes seconds); the others are exported to a temporary
      folder.

    Measurements are interleaved in one process: for each repeat, for each thread count, for each
    batch size, for each runtime, every variant in turn.

    Returns:
        One row per (variant, runtime, threads, batch, repeat) with ``median_ms``, ``iqr_ms``,
        ``mean_ms`` (over the Timer's blocks, each the mean time of ``number_per_run`` calls),
        ``n_blocks``, ``n_runs`` (timed calls) and ``times_ms`` (the raw per-call block times, a
        list). No speed-up is implied: masked zeros run the same dense kernels
        (docs/method/efficiency.md#what-unstructured-masks-buy).

    Raises:
        ValueError: no variant, an unknown runtime, ``repeats < 1`` or ``min_run_time ≤ 0``.
        ImportError: ``"onnxruntime"`` without onnx, onnxscript or onnxruntime installed.
    """
    from torch.utils.benchmark import Timer

    if not variants:
        raise ValueError("measure_latency needs at least one variant")
    if repeats < 1 or min_run_time <= 0:
        raise ValueError("repeats must be ≥ 1 and min_run_time > 0")
    for runtime in runtimes:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    models = {name: deployed(model) for name, model in variants.items()}
    generator = torch.Generator().manual_seed(seed)
    images = {b: torch.randn(b, in_channels, *input_size, generator=generator) for b in batch_sizes}
    inputs = {
        (name, b): images[b].to(device_of(model))
        for name, model in models.items()
        for b in batch_sizes
    }
    deployments = _Deployments(models, input_size, onnx_files or {})
    rows = []
    total = repeats * len(threads) * len(batch_sizes) * len(runtimes) * len(models)
    with ExitStack() as stack, tqdm(total=total, desc="latency", disable=not progress) as bar:
        for model in models.values():
            stack.enter_context(eval_mode(model))
        stack.callback(deployments.folder.cleanup)
        order = product(range(repeats), threads, batch_sizes, runtimes, models)
        for repeat, num_threads, batch, runtime, name in order:
            bar.set_postfix_str(f"{name}, {runtime}, {num_threads} thr, batch {batch}")
            stmt, timed = deployments(name, runtime, num_threads, inputs[name, batch])
            timer = Timer(
                stmt=stmt,
                globals={"torch": torch, **timed},
                num_threads=num_threads,
                label="latency",
                sub_label=f"{name} ({runtime})",
                description=f"batch {batch}, {num_threads} thr",
            )
            m = timer.blocked_autorange(min_run_time=min_run_time)
            rows.append(
                {
                    "variant": name,
                    "runtime": runtime,
                    "threads": num_threads,
                    "batch": batch,
                    "repeat": repeat,
                    "median_ms": m.median * 1e3,
                    "iqr_ms": m.iqr * 1e3,
                    "mean_ms": m.mean * 1e3,
                    "n_blocks": len(m.times),
                    "n_runs": len(m.times) * m.number_per_run,
                    "times_ms": [t * 1e3 for t in m.times],
                }
            )
            bar.update()
    return pd.DataFrame(rows)


def latency_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, runtime, threads, batch) of a :func:`measure_latency` table
    (docs/method/efficiency.md#measuring-latency):

    - ``median_ms``: the median over repeats of each repeat's median (one disturbed repeat
      cannot move it);
    - ``iqr_ms``: the IQR (75th − 25th percentile) of all raw block times of all repeats pooled,
      so it holds both the within-repeat noise and the drift between repeats;
    - ``repeat_range_ms``: max − min of the repeats' medians (the drift alone);
    - ``n_repeats``, ``n_blocks`` (raw samples behind ``iqr_ms``; with very few, e.g. a slow
      model at a small ``min_run_time``, the IQR is coarse) and ``n_runs`` (timed calls).
    """

    def pooled_iqr(times: pd.Series) -> float:
        pooled = pd.Series([t for block in times for t in block], dtype=float)
        return float(pooled.quantile(0.75) - pooled.quantile(0.25))

    grouped = df.groupby(["variant", "runtime", "threads", "batch"], sort=False)
    summary = grouped.agg(
        median_ms=("median_ms", "median"),
        iqr_ms=("times_ms", pooled_iqr),
        repeat_range_ms=("median_ms", lambda s: s.max() - s.min()),
        n_repeats=("repeat", "nunique"),
        n_blocks=("n_blocks", "sum"),
        n_runs=("n_runs", "sum"),
    )
    return summary.reset_index()


# ------------------------------------------------------------------------------------------- table


def efficiency_table(
    variants: Mapping[str, SceneNet],
    input_size: tuple[int, int],
    directory: Path,
    memory_batch: int = 1,
    onnx: bool = True,
    gzip_level: int = 9,
    progress: bool = True,
    in_channels: int = 3,
) -> pd.DataFrame:
    """One row per variant: what it costs on an edge device
    (docs/method/efficiency.md#an-honest-efficiency-table), units in the column names. Latency is
    measured separately (:func:`measure_latency`) and joined with :func:`merge_latency`, so the
    caller controls its budget.

    Columns: ``variant``; ``params total`` / ``params nonzero`` (all parameters incl. biases and
    BN, :func:`parameter_summary`); ``sparsity (prunable, %)`` (zero fraction of conv/linear
    weights); ``GFLOP (2/MAC)`` (shape-based: what dense kernels run, batch 1);
    ``sparse GFLOP (theory)`` (zeros skipped; not realised by dense kernels);
    ``state_dict MB`` (masks folded), ``state_dict with masks MB`` (as given, with the prune
    re-parametrisation; NaN without masks), ``gzip-L MB`` (level ``gzip_level``),
    ``sparse fp32 MB``, ``sparse fp16 MB``, ``ONNX MB`` (:func:`file_sizes`, 1 MB = 10⁶ bytes;
    files under ``directory/<variant>``);
    ``peak memory MB (batch N)`` (:func:`peak_inference_memory`, ``"tensors"`` method, at
    ``memory_batch``). GFLOP, parameters and memory are of the deployed model (masks folded).

    Every variant is exported to ONNX (keeping dense initialisers, so its size depends on the
    architecture only); :func:`onnx_exports` finds those files again, so that
    :func:`measure_latency` times them without exporting twice. ``onnx=False`` skips it (NaN
    column), as does a missing onnx / onnxscript.
    """
    rows = []
    shape = (1, in_channels, *input_size)
    for name, model in tqdm(variants.items(), desc="efficiency", disable=not progress):
        folder = _variant_folder(directory, name)
        sizes = file_sizes(model, folder, input_size if onnx else None, gzip_level)
        model = deployed(model)
        params = parameter_summary(model)
        counts = flop_counts(model, shape)
        x = torch.randn(memory_batch, in_channels, *input_size, device=device_of(model))
        rows.append(
            {
                "variant": name,
                "params total": params["total"],
                "params nonzero": params["nonzero"],
                "sparsity (prunable, %)": 100
                * (1 - params["prunable_nonzero"] / max(params["prunable_total"], 1)),
                "GFLOP (2/MAC)": sum(counts.values()) / 1e9,
                "sparse GFLOP (theory)": sparse_from_counts(model, counts) / 1e9,
                "state_dict MB": sizes["state_dict"] / MB,
                "state_dict with masks MB": _mb(sizes["state_dict_reparam"]),
                f"gzip-{gzip_level} MB": sizes["state_dict_gzip"] / MB,
                "sparse fp32 MB": sizes["sparse_fp32"] / MB,
                "sparse fp16 MB": sizes["sparse_fp16"] / MB,
                "ONNX MB": _mb(sizes["onnx"]),
                f"peak memory MB (batch {memory_batch})": peak_inference_memory(model, x) / MB,
            }
        )
    return pd.DataFrame(rows)


def onnx_exports(directory: Path, names: Iterable[str]) -> dict[str, Path]:
    """The ONNX export :func:`efficiency_table` left in ``directory`` for each variant of
    ``names`` that has one (none when it ran with ``onnx=False``)."""
    files = {name: _variant_folder(directory, name) / ONNX_FILE for name in names}
    return {name: path for name, path in files.items() if path.exists()}


def _variant_folder(directory: Path, name: str) -> Path:
    """Where :func:`efficiency_table` writes the files of variant ``name``."""
    return Path(directory) / _slug(name)


def _mb(nbytes: int | None) -> float:
    return float("nan") if nbytes is None else nbytes / MB


def latency_column(runtime: Runtime, batch: int, threads: int, kind: str = "latency") -> str:
    """Name of a :func:`merge_latency` column: ``"<runtime> <kind> ms (batch B, T thr)"``, e.g.
    ``"ORT latency ms (batch 1, 1 thr)"``; ``kind`` is ``latency`` (median) or ``IQR``."""
    return f"{RUNTIME_LABELS[runtime]} {kind} ms (batch {batch}, {threads} thr)"


def merge_latency(table: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """``table`` (:func:`efficiency_table`) with the :func:`latency_summary` joined on
    ``variant``: per (runtime, batch, threads) a latency column (median over repeats of the
    medians) and an IQR column (pooled IQR), named by :func:`latency_column`."""
    wide = summary.pivot_table(
        index="variant", columns=["runtime", "batch", "threads"], values=["median_ms", "iqr_ms"]
    )
    columns = {}
    for runtime, batch, num_threads in sorted(
        {key[1:] for key in wide.columns}, key=lambda k: (RUNTIMES.index(k[0]), k[1], k[2])
    ):
        key = (runtime, batch, num_threads)
        columns[latency_column(*key)] = wide[("median_ms", *key)]
        columns[latency_column(*key, kind="IQR")] = wide[("iqr_ms", *key)]
    return table.merge(pd.DataFrame(columns).reset_index(), on="variant", how="left")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "variant"


# ------------------------------------------------------------------------- notebook 08's variants

#: The reference variant of notebook 08's table: the dense pre-trained model with all its heads.
DENSE_ALL_HEADS = "dense, all heads"
#: What :func:`variant_label` appends to a variant whose sparsity counts zero weights.
UNSTRUCTURED = "(unstructured)"


def variant_label(name: str, method: str, sparsity: float) -> str:
    """Notebook 08's name of a run of ``method`` shown as ``name``: with its sparsity when that
    counts pruned weights (unstructured), with the fraction of FLOPs it removes when it counts
    FLOPs (:attr:`Method.sparsity <cutlib.methods.registry.Method>`).

    Example:
        >>> variant_label("CUT", "cut", 0.9), variant_label("CUT", "cut_structured", 0.5)
        ('CUT 90% (unstructured)', 'CUT −50% FLOPs')
    """
    from cutlib.methods import get_method  # local: measuring needs no method

    if get_method(method).sparsity == "flops":
        return f"{name} −{sparsity:.0%} FLOPs"
    return f"{name} {sparsity:.0%} {UNSTRUCTURED}"


def speedup_column(runtime: Runtime) -> str:
    """Name of :func:`edge_table`'s speed-up column of ``runtime`` (batch 1, 1 thread).

    Example:
        >>> speedup_column("onnxruntime")
        'ORT speed-up (batch 1, 1 thr)'
    """
    return f"{RUNTIME_LABELS[runtime]} speed-up (batch 1, 1 thr)"


def edge_table(
    costs: pd.DataFrame,
    latency: pd.DataFrame,
    variants: Mapping[str, nn.Module],
    deltas: Mapping[str, float],
    runtimes: Sequence[Runtime],
) -> pd.DataFrame:
    """Notebook 08's table: the costs (:func:`efficiency_table`) with the latencies
    (:func:`latency_summary`, joined by :func:`merge_latency`), each variant's Δ_MTL (``deltas``;
    0 for a variant without one: the dense models, whose selected outputs are the dense ones),
    its parameters against :data:`DENSE_ALL_HEADS`'s, and per runtime its speed-up against
    :data:`DENSE_ALL_HEADS` at batch 1 on 1 thread (:func:`speedup_column`).
    """
    total = sum(p.numel() for p in variants[DENSE_ALL_HEADS].parameters())
    quality = pd.DataFrame(
        {
            "variant": list(variants),
            "Δ_MTL % ↑": [deltas.get(name, 0.0) for name in variants],
            "params vs dense all heads": [
                sum(p.numel() for p in model.parameters()) / total for model in variants.values()
            ],
        }
    )
    table = merge_latency(costs, latency).merge(quality, on="variant")
    for runtime in runtimes:
        column = latency_column(runtime, 1, 1)
        base = table.loc[table["variant"] == DENSE_ALL_HEADS, column].item()
        table[speedup_column(runtime)] = base / table[column]
    return table


def edge_summary_columns(runtimes: Sequence[Runtime]) -> list[str]:
    """The columns of :func:`edge_table` notebook 08 shows: Δ_MTL (against the dense model, and
    against the control where the notebook adds it), parameters, FLOPs, file sizes,
    and per runtime the latency and speed-up at batch 1 on 1 thread, then PyTorch on 2 threads."""
    return [
        "variant",
        "Δ_MTL % ↑",
        "Δ_MTL − control",
        "params total",
        "params nonzero",
        "GFLOP (2/MAC)",
        "sparse GFLOP (theory)",
        "state_dict MB",
        "gzip-6 MB",
        "sparse fp16 MB",
        "ONNX MB",
        *[c for r in runtimes for c in (latency_column(r, 1, 1), speedup_column(r))],
        latency_column("torch", 1, 2),
    ]


def export_summary(
    label: str, path: Path, error: float, same_heads: SceneNet, all_heads: SceneNet
) -> dict[str, Any]:
    """One row of notebook 08's export table: the file at ``path`` in MB and against the dense
    ``state_dict`` of the model with the same heads and with all heads
    (:func:`~cutlib.export.dense_nbytes`), and its largest output ``error``."""
    from cutlib.export import dense_nbytes  # local: measuring needs no exporter

    size = path.stat().st_size
    return {
        "export": label,
        "MB": size / MB,
        "÷ dense state_dict (same heads)": size / dense_nbytes(same_heads),
        "÷ dense state_dict (all heads)": size / dense_nbytes(all_heads),
        "max |output error|": error,
    }


def _yes(holds: bool) -> str:
    return "yes" if holds else "no"


def edge_checks(
    table: pd.DataFrame,
    exports: pd.DataFrame,
    runtimes: Sequence[Runtime],
    sparsest: str,
    same_heads: str,
    structured: str,
) -> pd.DataFrame:
    """What is real and what is only theoretical, checked on notebook 08's measurements: one row
    per check with what was ``measured`` and whether it ``holds``.

    - the sparse fp16 export of the unstructured variant ``sparsest`` is at most 1/8 of the dense
      ``state_dict`` with the same heads (``exports``: rows of :func:`export_summary`);
    - of the variants named ``structured …`` (:func:`variant_label`), the one fastest under
      ``runtimes[0]`` is at least 2× faster than :data:`DENSE_ALL_HEADS` under each runtime
      (batch 1, 1 thread; ``table``: :func:`edge_table`);
    - the unstructured variants are no faster than the dense model ``same_heads`` (a variant of
      ``table`` with the same heads) under ``runtimes[0]``: a measurement, not a verdict.
    """
    main = runtimes[0]
    structured_rows = table[table["variant"].str.startswith(f"{structured} ")]
    best = structured_rows.sort_values(speedup_column(main), ascending=False).iloc[0]
    fp16 = exports.loc[exports["export"] == "sparse, fp16 values"].iloc[0]
    ratio = fp16["÷ dense state_dict (same heads)"]
    checks = [
        {
            "check": f"{sparsest}: sparse fp16 file ≤ 1/8 of the dense state_dict (same heads)",
            "measured": f"{ratio:.3f}",
            "holds": _yes(ratio <= 1 / 8),
        }
    ]
    checks += [
        {
            "check": f"{best['variant']}: ≥ 2× faster than dense all heads "
            f"({RUNTIME_LABELS[runtime]}, batch 1, 1 thread)",
            "measured": f"{best[speedup_column(runtime)]:.2f}× at Δ_MTL {best['Δ_MTL % ↑']:+.2f} %",
            "holds": _yes(best[speedup_column(runtime)] >= 2),
        }
        for runtime in runtimes
    ]
    latency = latency_column(main, 1, 1)
    dense = table.loc[table["variant"] == same_heads, latency].item()
    unstructured = table[table["variant"].str.contains(UNSTRUCTURED, regex=False)]
    checks.append(
        {
            "check": "unstructured CUT runs no faster than the dense model with the same heads "
            f"({RUNTIME_LABELS[main]})",
            "measured": ", ".join(f"{dense / t:.2f}×" for t in unstructured[latency]),
            "holds": "(a measurement)",
        }
    )
    return pd.DataFrame(checks)
