"""Compact export of a ``model.pt``: a sparse file for storage and transmission, and ONNX.

**Sparse file** (:func:`save_sparse`, :func:`load_sparse`;
docs/method/efficiency.md#storage-of-sparse-weights). The prunable weights (every Conv2d / Linear
``weight``, :func:`~cutlib.pruning.masks.prunable_weights`) are stored as one bitmask of their
non-zero entries (8 entries per byte) plus the non-zero values in fp16 or fp32; biases and BatchNorm
parameters and buffers are stored dense. At density ``d`` the weights cost ``n/8 + 2dn`` bytes
(fp16) or ``n/8 + 4dn`` (fp32) instead of ``4n``: at 90 % sparsity about 8 % (fp16) or 13 % (fp32)
of the dense ``state_dict``. The file is read with ``torch.load(weights_only=True)``, like
``model.pt``.

**ONNX** (:func:`export_onnx`, :func:`onnx_parity`): the model with the heads it has, one named
output per task, a dynamic batch dimension and dense initialisers.

What this does *not* buy (docs/method/efficiency.md#what-unstructured-masks-buy): the sparse file
only shrinks what is stored and sent to the device. :func:`load_sparse` re-materialises every weight
dense (zeros included), so memory and latency at inference are those of the dense model: dense conv
kernels do the same work whatever the zeros. ONNX Runtime likewise runs dense kernels on dense
initialisers. Real compute savings come from dropping heads and from structured pruning
(docs/method/efficiency.md#what-gives-real-savings).

``onnx``, ``onnxscript`` (the exporter) and ``onnxruntime`` (the parity check) are imported only
when an ONNX function is called, so ``cutlib`` works without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cutlib.checkpoint import load_model
from cutlib.io import _atomic_write, save_torch
from cutlib.models import SceneNet
from cutlib.pruning.masks import copy_model, deployed, fold_masks, prunable_weights

#: The ``format`` field of a sparse export, and the version this cutlib writes and reads.
SPARSE_FORMAT = "cutlib-sparse"
SPARSE_FORMAT_VERSION = 1
#: ``values`` option → dtype of the stored non-zero values.
VALUE_DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "fp32": torch.float32}
EXPORT_FORMATS = ("sparse", "onnx")
#: ONNX input size (H, W) when none is given; the batch dimension is dynamic, H and W are fixed.
DEFAULT_INPUT_SIZE = (96, 96)
ONNX_INSTALL = "pip install onnx onnxscript onnxruntime"

_BIT_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)
_BIT_SHIFTS = torch.arange(7, -1, -1, dtype=torch.uint8)
# Smallest positive fp16 (subnormal): a non-zero weight that would round to 0 is stored as this.
_FP16_TINY = 2.0**-24


def pack_bits(mask: Tensor) -> Tensor:
    """Pack a boolean tensor (flattened, row-major) into uint8, 8 entries per byte, first entry in
    the most significant bit (``numpy.packbits`` order); the last byte is zero-padded.

    Example:
        >>> pack_bits(torch.tensor([1, 0, 1, 1, 0, 0, 0, 1, 1, 1], dtype=torch.bool)).tolist()
        [177, 192]
    """
    flat = mask.reshape(-1).to(torch.uint8)
    padded = torch.nn.functional.pad(flat, (0, -flat.numel() % 8))
    return (padded.view(-1, 8) * _BIT_WEIGHTS).sum(1, dtype=torch.uint8)


def unpack_bits(packed: Tensor, numel: int) -> Tensor:
    """Inverse of :func:`pack_bits`: the first ``numel`` bits as a flat boolean tensor.

    Example:
        >>> unpack_bits(torch.tensor([177, 192], dtype=torch.uint8), 10).int().tolist()
        [1, 0, 1, 1, 0, 0, 0, 1, 1, 1]
    """
    if packed.dtype != torch.uint8 or packed.dim() != 1 or packed.numel() != -(-numel // 8):
        raise ValueError(f"expected {-(-numel // 8)} packed uint8 bytes for {numel} entries")
    bits = (packed.unsqueeze(1) >> _BIT_SHIFTS) & 1
    return bits.reshape(-1)[:numel].bool()


def _deployable(model: SceneNet) -> SceneNet:
    """An eval-mode copy of ``model`` with installed masks folded into plain zeros."""
    copy = fold_masks(copy_model(model))
    return copy.eval()


def _state_without_masks(model: SceneNet) -> dict[str, Tensor]:
    """``model``'s state dict with masks folded, as CPU tensors; the caller's model is untouched."""
    return {k: v.detach().cpu() for k, v in deployed(model).state_dict().items()}


def _check_values(values: str) -> torch.dtype:
    if values not in VALUE_DTYPES:
        raise ValueError(f"unknown values {values!r}; valid values: {', '.join(VALUE_DTYPES)}")
    return VALUE_DTYPES[values]


def save_sparse(model: SceneNet, path: Path, values: str = "fp16") -> Path:
    """Write ``model`` to ``path`` (atomically) as a sparse export and return ``path``.

    Layout (a dict of plain tensors, lists and strings; ``torch.load(weights_only=True)``):
    ``format`` (``"cutlib-sparse"``), ``format_version``, ``config`` (``model.config()``),
    ``tasks``, ``values`` (``"fp16"`` / ``"fp32"``), ``weights`` and ``dense``. ``weights`` holds
    the prunable weights concatenated in :func:`~cutlib.pruning.masks.prunable_weights` order:
    ``names``, ``shapes``, ``mask`` (:func:`pack_bits` of ``weight != 0``, one bitmask for all) and
    ``values`` (the non-zero entries, row-major). ``dense`` holds every other ``state_dict`` entry
    as is. Installed pruning masks are folded first, on a copy.

    With fp16, a non-zero weight too small for fp16 is stored as ±2⁻²⁴ so the sparsity pattern
    survives exactly; every weight is within ``2⁻¹¹·|w| + 2⁻²⁴`` of the original.

    Raises:
        ValueError: if ``values`` is not ``"fp16"`` or ``"fp32"``, or a weight is outside the fp16
            range with ``values="fp16"``.

    Example:
        >>> import tempfile
        >>> from cutlib.tasks import TaskSpec
        >>> net = SceneNet([TaskSpec("depth", "depth", 1)], "resnet18", 0.125, 8, (1, 2, 3, 4))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     back = load_sparse(save_sparse(net, Path(tmp) / "net.sparse.pt", values="fp32"))
        >>> back.task_names
        ('depth',)
    """
    dtype = _check_values(values)
    state = _state_without_masks(model)
    names = [w.name for w in prunable_weights(model)]
    sparse = set(names)
    flat = torch.cat([state[name].reshape(-1).float() for name in names])
    keep = flat != 0
    kept = flat[keep]
    if dtype == torch.float16:
        if kept.numel() and kept.abs().max().item() > torch.finfo(torch.float16).max:
            raise ValueError("a weight exceeds the fp16 range (65504); export with values='fp32'")
        kept16 = kept.to(torch.float16)
        underflow = kept16 == 0
        kept16[underflow] = (kept[underflow].sign() * _FP16_TINY).to(torch.float16)
        kept = kept16
    payload: dict[str, Any] = {
        "format": SPARSE_FORMAT,
        "format_version": SPARSE_FORMAT_VERSION,
        "config": model.config(),
        "tasks": list(model.task_names),
        "values": values,
        "weights": {
            "names": names,
            "shapes": [list(state[name].shape) for name in names],
            "mask": pack_bits(keep),
            "values": kept,
        },
        "dense": {k: v.clone() for k, v in state.items() if k not in sparse},
    }
    path = Path(path)
    save_torch(path, payload)
    return path


def _read_torch(path: Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unpickling failure means: not a readable torch file
        raise ValueError(
            f"{path} is not a readable {what} ({type(err).__name__}); pass a file written by cutlib"
        ) from err


def load_sparse(path: Path, device: str | torch.device = "cpu") -> SceneNet:
    """Rebuild the model of a sparse export (dense weights, zeros included) on ``device``.

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        ValueError: if the file is not a cutlib sparse export of this format version.
    """
    payload = _read_torch(path, "sparse export")
    if not isinstance(payload, dict) or payload.get("format") != SPARSE_FORMAT:
        raise ValueError(
            f"{path} is not a cutlib sparse export; make one with "
            "`cutlib export --checkpoint model.pt --format sparse --out FILE`"
        )
    if payload.get("format_version") != SPARSE_FORMAT_VERSION:
        raise ValueError(
            f"{path} has sparse format_version {payload.get('format_version')}; this cutlib reads "
            f"{SPARSE_FORMAT_VERSION}: re-export it from its model.pt with `cutlib export`"
        )
    weights = payload["weights"]
    numels = [int(torch.Size(shape).numel()) for shape in weights["shapes"]]
    keep = unpack_bits(weights["mask"], sum(numels))
    if int(keep.sum()) != weights["values"].numel():
        raise ValueError(f"{path} is corrupt: the mask and the stored values disagree; re-export")
    flat = torch.zeros(keep.numel(), dtype=torch.float32)
    flat[keep] = weights["values"].float()
    state = dict(payload["dense"])
    for name, shape, chunk in zip(
        weights["names"], weights["shapes"], flat.split(numels), strict=True
    ):
        state[name] = chunk.view(shape)
    model = SceneNet.from_config(payload["config"])
    model.load_state_dict(state)
    return model.to(device)


class _TupleOutputs(nn.Module):
    """``SceneNet`` with its outputs as a tuple in ``task_names`` order (ONNX needs positions)."""

    def __init__(self, model: SceneNet) -> None:
        super().__init__()
        self.model = model
        self.names = model.task_names

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        outputs = self.model(image)
        return tuple(outputs[name] for name in self.names)


def _require(modules: Sequence[str]) -> None:
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ImportError(f"ONNX export needs {name}: {ONNX_INSTALL}") from err


def export_onnx(
    model: SceneNet, path: Path, input_size: tuple[int, int], opset: int | None = None
) -> Path:
    """Export ``model`` (eval mode, masks folded, the heads it has) to ONNX at ``path``.

    The graph has one input ``image`` of shape ``(batch, 3, H, W)`` with a dynamic ``batch``, and
    one output per task named after it, in ``model.task_names`` order. It uses the
    ``torch.export``-based exporter (``dynamo=True``; the TorchScript exporter is deprecated),
    writes the weights inside the file (no external data, so the model must be < 2 GB) and
    ``opset`` ``None`` means the exporter's default. The exporter's per-node debugging metadata is
    dropped (:func:`_strip_node_metadata`), so the file carries no path of the exporting machine
    and the same model gives the same bytes wherever cutlib is installed. The caller's model is
    not modified.

    Raises:
        ImportError: if ``onnx`` or ``onnxscript`` is not installed.
        ValueError: if ``input_size`` is not two positive integers.
    """
    _check_size(input_size)
    _require(["onnx", "onnxscript"])
    wrapper = _TupleOutputs(_deployable(model)).eval()
    example = torch.zeros(2, 3, *input_size, device=next(model.parameters()).device)
    program = torch.onnx.export(
        wrapper,
        (example,),
        input_names=["image"],
        output_names=list(model.task_names),
        opset_version=opset,
        dynamic_shapes={"image": {0: torch.export.Dim("batch")}},
        dynamo=True,
        verbose=False,
    )
    _strip_node_metadata(program.model)
    path = Path(path)
    _atomic_write(path, lambda tmp: program.save(tmp, external_data=False))
    return path


def _strip_node_metadata(model: Any) -> None:
    """Clear every node's ``metadata_props`` in an ``onnx_ir`` model (graph, subgraphs and
    functions): the exporter records there the Python stack trace of each operator (absolute
    source paths of the exporting machine), FX node names and module hierarchies, useful to debug
    an export and out of place in a graph shipped to a device. Graph-level metadata stays."""
    graphs = [model.graph, *model.functions.values()]
    for graph in graphs:
        for node in graph.all_nodes():
            node.metadata_props.clear()


def onnx_session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for the graph at ``path``, with all graph optimisations.

    ``threads`` fixes the intra-op thread count (one inter-op thread, sequential execution), as a
    latency measurement needs; ``None`` leaves ONNX Runtime's defaults.

    Raises:
        ImportError: if ``onnxruntime`` is not installed.
    """
    _require(["onnxruntime"])
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_parity(model: SceneNet, path: Path, input: Tensor) -> dict[str, float]:
    """Max absolute difference per task between the ONNX graph at ``path`` (ONNX Runtime, CPU)
    and ``model`` in eval mode (masks folded) on ``input``.

    Raises:
        ImportError: if ``onnxruntime`` is not installed.
        ValueError: if the graph's outputs are not ``model``'s tasks.
    """
    session = onnx_session(path)
    names = [o.name for o in session.get_outputs()]
    if names != list(model.task_names):
        raise ValueError(
            f"{path} outputs {', '.join(names)}; the model's tasks are "
            f"{', '.join(model.task_names)}: export this model again"
        )
    image = input.detach().cpu().float()
    outputs = session.run(names, {"image": image.numpy()})
    with torch.no_grad():
        reference = _deployable(model).cpu()(image)
    return {
        name: float((torch.from_numpy(out) - reference[name]).abs().max())
        for name, out in zip(names, outputs, strict=True)
    }


@torch.inference_mode()
def output_error(model: SceneNet, other: SceneNet, input: Tensor) -> float:
    """The largest absolute difference between the outputs of ``model`` and ``other`` (both put
    in eval mode) on ``input``, over all of ``model``'s tasks: how exactly a re-loaded export
    (:func:`load_sparse`) reproduces the original.

    Example:
        >>> from cutlib.tasks import TaskSpec
        >>> net = SceneNet([TaskSpec("depth", "depth", 1)], "resnet18", 0.125, 8, (1,))
        >>> output_error(net, net, torch.randn(1, 3, 16, 16))
        0.0
    """
    ours, theirs = model.eval()(input), other.eval()(input)
    return max(float((theirs[t] - ours[t]).abs().max()) for t in ours)


def _check_size(input_size: tuple[int, int]) -> None:
    if len(input_size) != 2 or not all(isinstance(s, int) and s > 0 for s in input_size):
        raise ValueError(f"input size must be two positive integers (H, W), got {input_size}")


def dense_nbytes(model: SceneNet) -> int:
    """Bytes of ``torch.save(state_dict)`` of ``model`` with masks folded (nothing is written)."""

    class _Count:
        def __init__(self) -> None:
            self.n = 0

        def write(self, data: bytes) -> int:
            self.n += len(data)
            return len(data)

        def flush(self) -> None:
            pass

    sink = _Count()
    torch.save(_state_without_masks(model), sink)
    return sink.n


def export_checkpoint(
    checkpoint: Path,
    fmt: str,
    out: Path,
    values: str = "fp16",
    input_size: tuple[int, int] | None = None,
) -> Path:
    """Export the ``model.pt`` at ``checkpoint`` as ``fmt`` (``"sparse"`` or ``"onnx"``) to ``out``.

    ``values`` applies to sparse, ``input_size`` (H, W) to ONNX (default
    :data:`DEFAULT_INPUT_SIZE`). Everything is checked before anything is written.

    Raises:
        FileNotFoundError: if there is no file at ``checkpoint``.
        ValueError: for an unknown format or values, a bad input size, an ``out`` that is a
            folder, or a file that is not a cutlib ``model.pt`` of the supported format version.
        ImportError: for ONNX without ``onnx`` / ``onnxscript`` installed.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid formats: {', '.join(EXPORT_FORMATS)}")
    _check_values(values)
    size = DEFAULT_INPUT_SIZE if input_size is None else input_size
    _check_size(size)
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file path")
    if fmt == "onnx":
        _require(["onnx", "onnxscript"])
    try:
        model = load_model(Path(checkpoint))
    except (FileNotFoundError, ValueError):
        raise
    except Exception as err:  # not a torch file, or a state dict that does not fit its config
        raise ValueError(
            f"{checkpoint} is not a readable cutlib model.pt ({type(err).__name__}); pass the "
            "model.pt of a run"
        ) from err
    if fmt == "sparse":
        return save_sparse(model, out, values=values)
    return export_onnx(model, out, size)
