"""The ``cutlib`` command (docs/architecture.md#the-command-line).

``cutlib run`` runs one experiment; ``cutlib grid`` runs a profile's experiment grid (on this
machine, or as cluster jobs with ``--executor submitit``);
``cutlib reproduce`` executes the notebooks; ``cutlib export`` writes a ``model.pt`` as a sparse
file or as ONNX; ``cutlib data info`` and ``cutlib data check NAME`` say which real datasets are
present and what is wrong with one (one line per problem, exit status 2 if any). Bad input
(unknown dataset, task, method, profile, notebook or notebook parameter; a sparsity outside
[0, 1); an unknown export format or values option, a malformed input size, a missing checkpoint
or one of another format version; a real dataset that is missing or malformed; a grid's cluster
option without ``--executor submitit``, or that executor without submitit) prints one line naming
the valid choices (or how to get the data) and exits with status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import yaml

from cutlib.cluster import (
    CLUSTERS,
    EXECUTORS,
    RESOURCE_OPTIONS,
    SubmititRunner,
    cluster_resources,
    log_folder,
    option_name,
)
from cutlib.methods import DENSE
from cutlib.profiles import DEFAULT_PROFILE, PROFILE_NAMES

if TYPE_CHECKING:
    from cutlib.grid import GridCell

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _count(text: str) -> int:
    """A count of something (≥ 0), for argparse."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _add_scale_options(parser: argparse.ArgumentParser) -> None:
    """``--log-dir``, ``--precision``, ``--workers`` and ``--checkpoint-every``, shared by ``run``
    and ``grid``."""
    parser.add_argument(
        "--log-dir",
        type=Path,
        help="log training curves there for TensorBoard (tensorboard --logdir)",
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "fp16"),
        help="fp32, or bf16 / fp16 mixed precision (CUDA only)",
    )
    parser.add_argument(
        "--workers",
        type=_count,
        help="DataLoader worker processes per run (default: the profile's runtime.workers; "
        "0 on a CPU, several on a GPU); the results do not depend on it",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=_count,
        metavar="N",
        help="iterations between resumable checkpoints (default: the profile's "
        "runtime.checkpoint_every; 0: at stage ends only)",
    )


def _check_device_options(args: argparse.Namespace, here: bool = True) -> None:
    """``--device`` must exist here and ``--precision`` other than fp32 needs CUDA (unless the
    runs train on other machines, ``here`` false, whose jobs check them), ``--log-dir`` needs
    TensorBoard: ValueError (bad input) otherwise."""
    from cutlib.train import autocast_dtype, checked_device

    if here:
        autocast_dtype(args.precision, checked_device(args.device))
    if args.log_dir is not None:
        from cutlib.curves import check_available

        check_available()


def _add_executor_options(parser: argparse.ArgumentParser) -> None:
    """``--executor``, ``--cluster`` and each job's resources, of ``grid``."""
    parser.add_argument(
        "--executor",
        default="local",
        choices=EXECUTORS,
        help="local: on this machine (--jobs); submitit: one cluster job per run "
        "(pip install -e .[cluster])",
    )
    parser.add_argument(
        "--cluster",
        choices=CLUSTERS,
        help="where submitit's jobs go: slurm, local (this machine) or auto (default: SLURM if "
        "it is there, else local)",
    )
    resources = parser.add_argument_group(
        "each job's resources (--executor submitit; default: the profile's runtime.cluster)"
    )
    for name, (kind, text) in RESOURCE_OPTIONS.items():
        metavar = "N" if kind is int else "NAME"
        resources.add_argument(option_name(name), type=kind, metavar=metavar, help=text)


def _bad_input(prog: str, err: Exception) -> int:
    print(f"{prog}: error: {err}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _parse_param(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), yaml.safe_load(value)


def _parse_size(text: str) -> tuple[int, int]:
    height, sep, width = text.lower().partition("x")
    try:
        size = (int(height), int(width))
    except ValueError:
        size = (0, 0)
    if not sep or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected HxW with positive integers, got {text!r}")
    return size


def _methods_help() -> str:
    """The registered methods, one line each with their options (``cutlib run --help``)."""
    from dataclasses import fields

    from cutlib.methods import METHODS

    width = max(len(name) for name in METHODS)
    lines = ["methods:"]
    for name, method in METHODS.items():
        lines.append(f"  {name:<{width}}  {method.summary}")
        if method.options is not None:
            options = ", ".join(f.name for f in fields(method.options))
            lines.append(f"  {'':<{width}}    options: {options}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cutlib`` command."""
    parser = _Parser(prog="cutlib", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser(
        "run",
        help="run one experiment (cached by configuration)",
        epilog=_methods_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--dataset", required=True, help="dataset, e.g. synth-nyuv2")
    run.add_argument("--method", default=DENSE, help=f"method (default: {DENSE}; see below)")
    run.add_argument("--tasks", type=_split_list, help="comma-separated tasks (default: all)")
    run.add_argument("--sparsity", type=float, help="fraction of zero weights in [0, 1)")
    run.add_argument(
        "--profile", default=DEFAULT_PROFILE, help=f"one of {', '.join(PROFILE_NAMES)}"
    )
    run.add_argument("--seed", type=int, default=0, help="seed for data, init and order")
    run.add_argument(
        "--protocol",
        default="fair",
        help="training budget: fair (same iterations for every method) or paper",
    )
    run.add_argument(
        "-o",
        "--option",
        type=_parse_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a method option, repeatable (each method's options are listed below)",
    )
    run.add_argument(
        "--data-root", type=Path, help="a real dataset's folder (default: data/<dataset>/)"
    )
    run.add_argument("--out", type=Path, help="also copy the run's files to this folder")
    run.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, ...")
    _add_scale_options(run)
    run.add_argument("--quiet", action="store_true", help="no progress output")

    rep = commands.add_parser("reproduce", help="execute the notebooks in order with papermill")
    rep.add_argument(
        "--profile", default=DEFAULT_PROFILE, help=f"one of {', '.join(PROFILE_NAMES)}"
    )
    rep.add_argument("--only", type=_split_list, help="notebook numbers, e.g. 03,04")
    rep.add_argument(
        "--dataset", help="the dataset of every notebook that takes one (e.g. nyuv2 with paper)"
    )
    rep.add_argument("--out", type=Path, help="results folder (default: results/)")
    rep.add_argument(
        "-p",
        "--param",
        type=_parse_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a notebook parameter (YAML value), repeatable",
    )

    grid = commands.add_parser(
        "grid", help="run the profile's experiment grid (resumable) and write its runs table"
    )
    grid.add_argument(
        "--profile", default=DEFAULT_PROFILE, help=f"one of {', '.join(PROFILE_NAMES)}"
    )
    grid.add_argument("--dataset", type=_split_list, help="only these datasets of the grid")
    grid.add_argument(
        "--seeds", type=_split_list, help="only these seeds of the profile's, e.g. 0 or 0,1"
    )
    grid.add_argument(
        "--records",
        action="store_true",
        help="also copy each finished run's metrics and history (no weights) to <out>/records/",
    )
    grid.add_argument(
        "--sparsities", type=_split_list, help="only these sparsities of the grid, e.g. 0.9"
    )
    grid.add_argument(
        "--rerun",
        action="store_true",
        help="make recorded runs again in the run store; with --records, add the per-layer "
        "counts their records lack",
    )
    grid.add_argument("--jobs", type=int, default=1, help="parallel runs (processes)")
    grid.add_argument(
        "--threads", type=int, help="CPU threads per run (default: 1 with --jobs > 1)"
    )
    grid.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, ...")
    _add_scale_options(grid)
    _add_executor_options(grid)
    grid.add_argument(
        "--out", type=Path, help="results folder (default: results/, or results/<profile>/)"
    )
    grid.add_argument("--dry-run", action="store_true", help="list the runs, make none")

    exp = commands.add_parser(
        "export", help="write a model.pt as a sparse file (bitmask + values) or as ONNX"
    )
    exp.add_argument("--checkpoint", type=Path, required=True, help="a run's model.pt")
    exp.add_argument("--format", required=True, help="sparse or onnx")
    exp.add_argument("--out", type=Path, required=True, help="the file to write")
    exp.add_argument("--values", help="sparse only: fp16 (default) or fp32 non-zero values")
    exp.add_argument(
        "--input-size",
        type=_parse_size,
        metavar="HxW",
        help="onnx only: input height x width (default: 96x96; the batch is dynamic)",
    )
    bench = commands.add_parser(
        "bench", help="time the bare and cutlib training steps of a profile's model (JSON out)"
    )
    bench.add_argument(
        "--profile", default=DEFAULT_PROFILE, help=f"one of {', '.join(PROFILE_NAMES)}"
    )
    bench.add_argument("--dataset", default="synth-nyuv2", help="dataset (default: synth-nyuv2)")
    bench.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, ...")
    bench.add_argument(
        "--variants",
        type=_split_list,
        default=["eager", "channels_last"],
        help="bare-step variants: eager, channels_last, compile (default: eager,channels_last)",
    )
    bench.add_argument("--threads", type=int, help="CPU threads (default: PyTorch's)")
    bench.add_argument(
        "--seconds", type=float, default=3.0, help="minimum time per bare timing (default: 3)"
    )
    bench.add_argument(
        "--iterations", type=int, default=30, help="timed iterations of cutlib's loop (default: 30)"
    )
    bench.add_argument(
        "--out",
        type=Path,
        help="also write the JSON to this file, and summary.md of its folder's reports",
    )
    scale = commands.add_parser(
        "throughput",
        help="time a profile's model at full size: training step per precision, input pipeline "
        "per number of workers (JSON out)",
    )
    scale.add_argument("--profile", default="paper", help=f"one of {', '.join(PROFILE_NAMES)}")
    scale.add_argument("--dataset", default="nyuv2", help="dataset (default: nyuv2)")
    scale.add_argument("--data-root", type=Path, help="a real dataset's folder")
    scale.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, ...")
    scale.add_argument(
        "--precisions",
        type=_split_list,
        default=["fp32"],
        help="fp32, bf16, fp16 (the last two on CUDA; default: fp32)",
    )
    scale.add_argument(
        "--workers",
        type=lambda text: [_count(n) for n in _split_list(text)],
        default=[0, 2],
        help="numbers of DataLoader workers to time the input pipeline with (default: 0,2)",
    )
    scale.add_argument(
        "--batches", type=int, default=20, help="input batches timed per setting (default: 20)"
    )
    scale.add_argument(
        "--steps",
        type=_count,
        default=0,
        help="also time cutlib's step over this many iterations per setting (default: 0, not)",
    )
    scale.add_argument(
        "--seconds", type=float, default=1.0, help="minimum time per bare timing (default: 1)"
    )
    scale.add_argument(
        "--out",
        type=Path,
        help="also write the JSON to this file, and summary.md of its folder's reports",
    )
    data = commands.add_parser("data", help="the real datasets: what is present, and checks")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    info = data_commands.add_parser("info", help="which datasets are present, their splits, sizes")
    info.add_argument("--root", type=Path, help="the folder of <name>/ folders (default: data/)")
    check = data_commands.add_parser(
        "check", help="validate a dataset's index and files (one line per problem)"
    )
    check.add_argument("name", help="the dataset, e.g. nyuv2")
    check.add_argument("--root", type=Path, help="its folder (default: data/<name>/)")
    check.add_argument(
        "--samples", type=int, default=8, help="entries per split whose files are decoded"
    )
    return parser


def _cmd_data(args: argparse.Namespace) -> int:
    from cutlib.data import REAL_LAYOUTS
    from cutlib.data.real import check_layout, default_root

    if args.data_command == "info":
        for name, layout in REAL_LAYOUTS.items():
            root = args.root / name if args.root else default_root(name)
            problems, sizes = check_layout(layout, root, samples=0)
            if not sizes:
                print(f"{name}: not present at {root}")
                print(f"  {layout.download}")
                continue
            splits = ", ".join(f"{split} {count}" for split, count in sizes.items())
            state = "complete" if not problems else f"{len(problems)} files missing"
            print(f"{name}: {root} ({splits}; {state})")
        return 0
    if args.name not in REAL_LAYOUTS:
        valid = ", ".join(REAL_LAYOUTS)
        return _bad_input(
            "cutlib data check", ValueError(f"unknown dataset {args.name!r}; valid: {valid}")
        )
    if args.samples < 0:
        return _bad_input("cutlib data check", ValueError("--samples must be ≥ 0"))
    layout = REAL_LAYOUTS[args.name]
    root = args.root or default_root(args.name)
    problems, sizes = check_layout(layout, root, samples=args.samples)
    for problem in problems:
        print(problem)
    if problems:
        print(f"cutlib data check: {len(problems)} problem(s) in {root}", file=sys.stderr)
        return EXIT_BAD_INPUT
    splits = ", ".join(f"{split} {count}" for split, count in sizes.items())
    print(f"{args.name}: {root} is valid ({splits}; {args.samples} entries per split decoded)")
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    import os

    from cutlib.grid import grid_cells, pending_runs, run_grid, write_runs_table
    from cutlib.io import results_dir
    from cutlib.profiles import check_profile_name
    from cutlib.reproduce import default_out

    try:
        check_profile_name(args.profile)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError(
                "torchrun trains one run on several GPUs: use it with `cutlib run`; "
                "the grid spreads whole runs (--jobs, --executor submitit)"
            )
        if args.jobs < 1 or (args.threads is not None and args.threads < 1):
            raise ValueError("--jobs and --threads must be at least 1")
        runner = _grid_runner(args)
        _check_device_options(args, here=runner is None or runner.cluster == "local")
        out = args.out if args.out is not None else default_out(args.profile)
        os.environ["CUTLIB_RESULTS"] = str(Path(out).resolve())
        cells = [
            replace(cell, config=replace(cell.config, precision=args.precision))
            for cell in grid_cells(args.profile, datasets=args.dataset, seeds=_grid_seeds(args))
        ]
        cells = _at_sparsities(cells, args.sparsities)
    except ValueError as err:
        return _bad_input("cutlib grid", err)
    if not cells:
        return _bad_input("cutlib grid", ValueError(f"the {args.profile} grid has no runs here"))
    pending = pending_runs(cells, store_only=args.rerun)
    print(
        f"{args.profile} grid: {len(cells)} cells, {len(pending)} runs to make "
        f"(run store: {results_dir() / 'runs'})"
    )
    if args.dry_run:
        for config in pending:
            print(
                f"  {config.dataset} {config.method} {'+'.join(config.tasks or ())} "
                f"s={config.sparsity:g} seed={config.seed} {config.protocol}"
            )
        return 0
    try:
        run_grid(
            cells,
            jobs=args.jobs,
            threads=args.threads,
            device=args.device,
            log_dir=args.log_dir,
            runner=runner,
            workers=args.workers,
            checkpoint_every=args.checkpoint_every,
            rerun=args.rerun,
        )
    except RuntimeError as err:  # a cluster job that failed (submitit's FailedJobError)
        if runner is None:
            raise
        lines = str(err).strip().splitlines() or [type(err).__name__]
        print(f"cutlib grid: a job failed: {lines[-1]} (logs: {log_folder()})", file=sys.stderr)
        return 1
    if args.records:
        _write_records(cells)
    _, path = write_runs_table(cells)
    print(f"runs table: {path}")
    return 0


def _grid_runner(args: argparse.Namespace) -> SubmititRunner | None:
    """The runner of ``--executor`` (``None``: this machine), its options checked.

    Raises:
        ValueError: a cluster option with ``--executor local``; with ``submitit``, ``--jobs``
            above 1, a resource below 1 (GPUs below 0), a missing submitit, or no SLURM for
            ``--cluster slurm``.
    """
    from cutlib.profiles import load_profile

    overrides = {name: getattr(args, name) for name in RESOURCE_OPTIONS}
    if args.executor == "local":
        for name, value in {"cluster": args.cluster, **overrides}.items():
            if value is not None:
                raise ValueError(f"{option_name(name)} applies to --executor submitit only")
        return None
    if args.jobs > 1:
        raise ValueError(
            "--jobs applies to --executor local only; submitit makes each run a job "
            "(--array-parallelism at once)"
        )
    resources = cluster_resources(load_profile(args.profile).runtime.cluster, **overrides)
    return SubmititRunner(resources, args.cluster or "auto")


def _write_records(cells: list[GridCell]) -> None:
    """Export the records of ``cells``'s finished runs (never replacing one), and add the
    re-runs' per-layer counts to the records without them."""
    from cutlib.grid import export_records, record_layers, records_dir

    print(f"run records: {export_records(cells)} runs in {records_dir()}")
    layers = record_layers(c.config for c in cells)
    if layers:
        print(f"per-layer counts from the re-runs added to {layers} records")


def _at_sparsities(cells: list[GridCell], sparsities: list[str] | None) -> list[GridCell]:
    """The cells at one of ``sparsities`` (``--sparsities``), with the references (dense,
    control) they are compared with; all of them without the option.

    Raises:
        ValueError: a sparsity that is not a number, or one the grid does not have.
    """
    if sparsities is None:
        return cells
    try:
        wanted = [float(s) for s in sparsities]
    except ValueError:
        raise ValueError(f"--sparsities takes numbers, got {','.join(sparsities)!r}") from None
    present = sorted({c.config.sparsity for c in cells if c.config.sparsity > 0})
    missing = [s for s in wanted if not any(math.isclose(s, p) for p in present)]
    if missing:
        valid = ", ".join(f"{p:g}" for p in present)
        raise ValueError(f"the grid has no sparsity {missing[0]:g}; its sparsities: {valid}")
    return [
        c
        for c in cells
        if c.config.sparsity == 0 or any(math.isclose(c.config.sparsity, s) for s in wanted)
    ]


def _grid_seeds(args: argparse.Namespace) -> list[int] | None:
    """The seeds ``--seeds`` keeps (``None``: all of the profile's).

    Raises:
        ValueError: a seed that is not an integer or not among the profile's seeds.
    """
    from cutlib.profiles import load_profile

    if args.seeds is None:
        return None
    known = list(load_profile(args.profile).seeds)
    try:
        seeds = [int(seed) for seed in args.seeds]
    except ValueError:
        raise ValueError(f"--seeds takes integers, got {','.join(args.seeds)!r}") from None
    unknown = [seed for seed in seeds if seed not in known]
    if unknown:
        raise ValueError(f"seed {unknown[0]} is not in the {args.profile} profile's seeds {known}")
    return seeds


def _cmd_run(args: argparse.Namespace) -> int:
    from cutlib import distributed
    from cutlib.experiments import RunConfig, check_processes, run
    from cutlib.train import resolve_device

    config = RunConfig(
        args.dataset,
        args.method,
        tuple(args.tasks) if args.tasks is not None else None,
        args.sparsity,
        args.profile,
        args.seed,
        tuple(args.option),
        args.protocol,
        str(args.data_root) if args.data_root else None,
        args.precision,
    )
    try:
        config = config.validated()
        _check_device_options(args)
        device = args.device
        if distributed.launched():  # torchrun: one process of several, on its own GPU
            device = distributed.start(resolve_device(args.device))
            check_processes(config)
    except ValueError as err:
        return _bad_input("cutlib run", err)
    writer = distributed.is_writer()  # with torchrun, rank 0 reports and writes
    try:
        record = run(
            config,
            out=args.out if writer else None,
            device=device,
            progress=not args.quiet and writer,
            log_dir=args.log_dir if writer else None,
            workers=args.workers,
            checkpoint_every=args.checkpoint_every,
        )
    finally:
        distributed.stop()
    if not writer:
        return 0
    print(f"metrics: {record.directory / 'metrics.json'}")
    for task, values in record.metrics["metrics"].items():
        shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
        print(f"  {task}: {shown}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from cutlib.profiles import check_profile_name
    from cutlib.reproduce import (
        NotebookError,
        check_dataset_present,
        check_parameters,
        list_notebooks,
        reproduce,
    )

    params = dict(args.param)
    try:
        check_profile_name(args.profile)
        if args.dataset is not None:
            check_dataset_present(args.dataset)
            params["dataset"] = args.dataset
        check_parameters(list_notebooks(args.only), params)
    except ValueError as err:
        return _bad_input("cutlib reproduce", err)
    try:
        times = reproduce(args.profile, only=args.only, out=args.out, parameters=params)
    except NotebookError as err:
        print(f"cutlib reproduce: {err}", file=sys.stderr)
        return 1
    print(f"all {len(times)} notebooks ran in {sum(times.values()):.0f} s")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from cutlib.export import (
        DEFAULT_INPUT_SIZE,
        dense_nbytes,
        export_checkpoint,
        load_sparse,
        onnx_parity,
    )

    try:
        if args.format == "onnx" and args.values is not None:
            raise ValueError("--values applies to --format sparse only")
        if args.format == "sparse" and args.input_size is not None:
            raise ValueError("--input-size applies to --format onnx only")
        out = export_checkpoint(
            args.checkpoint,
            args.format,
            args.out,
            values=args.values or "fp16",
            input_size=args.input_size,
        )
    except (FileNotFoundError, ValueError) as err:
        return _bad_input("cutlib export", err)
    except ImportError as err:
        print(f"cutlib export: {err}", file=sys.stderr)
        return 1
    size = out.stat().st_size
    print(f"{args.format}: {out} ({size / 1e6:.3f} MB)")
    if args.format == "sparse":
        dense = dense_nbytes(load_sparse(out))
        print(f"  {size / dense:.3f} of the dense state_dict ({dense / 1e6:.3f} MB)")
    else:
        import torch

        from cutlib.checkpoint import load_model

        model = load_model(args.checkpoint)
        height, width = args.input_size or DEFAULT_INPUT_SIZE
        image = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
        try:
            diffs = onnx_parity(model, out, image)
        except ImportError as err:
            print(f"  no parity check: {err}")
        else:
            shown = ", ".join(f"{task} {diff:.2g}" for task, diff in diffs.items())
            print(f"  max |onnxruntime - torch| on a random image: {shown}")
    return 0


def _report(results: dict[str, Any], out: Path | None, table: Callable[..., str]) -> int:
    """Print a ``bench`` or ``throughput`` report as JSON; with ``out``, also write it there and
    the ``table`` of every report of its folder to ``summary.md``."""
    import json

    from cutlib.bench import write_summary

    report = json.dumps(results, indent=2)
    print(report)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report + "\n")
        summary = write_summary(out.parent, table)
        print(f"reports of {out.parent} summed up in {summary}", file=sys.stderr)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from cutlib.bench import bench, check_variants, summary_table
    from cutlib.data import dataset_info
    from cutlib.profiles import check_profile_name
    from cutlib.train import checked_device

    try:
        check_profile_name(args.profile)
        dataset_info(args.dataset)
        check_variants(args.variants)
        if args.threads is not None and args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        if args.seconds <= 0 or args.iterations < 1:
            raise ValueError("--seconds must be positive and --iterations at least 1")
        device = checked_device(args.device)
    except ValueError as err:
        return _bad_input("cutlib bench", err)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    results = bench(
        args.profile, args.dataset, device, args.variants, args.seconds, args.iterations
    )
    return _report(results, args.out, summary_table)


def _cmd_throughput(args: argparse.Namespace) -> int:
    from cutlib.profiles import check_profile_name
    from cutlib.throughput import summary_table, throughput
    from cutlib.train import checked_device

    try:
        check_profile_name(args.profile)
        if args.seconds <= 0 or args.batches < 1:
            raise ValueError("--seconds must be positive and --batches at least 1")
        results = throughput(
            args.profile,
            args.dataset,
            checked_device(args.device),
            data_root=args.data_root,
            precisions=args.precisions,
            workers=args.workers,
            input_batches=args.batches,
            steps=args.steps,
            min_run_time=args.seconds,
        )
    except ValueError as err:  # DataError (missing or malformed data) included
        return _bad_input("cutlib throughput", err)
    return _report(results, args.out, summary_table)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cutlib`` console script."""
    args = build_parser().parse_args(argv)
    handlers = {
        "run": _cmd_run,
        "reproduce": _cmd_reproduce,
        "grid": _cmd_grid,
        "export": _cmd_export,
        "data": _cmd_data,
        "bench": _cmd_bench,
        "throughput": _cmd_throughput,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
