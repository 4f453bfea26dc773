"""Command line: ``torchscan MODEL [--input-shape C H W] [--max-depth N] [--batch-size B] [--format F]
[-o FILE] [--measure] [--no-real-forward | --real-forward-limit SIZE] [--traceback]``.

A user mistake (a model that cannot be built, a bad shape, an unusable ``-o``) is one line on stderr,
``torchscan: error: …``, and exit status 2; a bug of torchscan's is one line and exit status 1.
``--traceback`` prints the full traceback instead.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import traceback
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn

from torchscan.api import crawl_module, with_measurement
from torchscan.errors import TorchscanError
from torchscan.inputs import model_inputs
from torchscan.loader import call_user_code, load_model
from torchscan.render.table import render_table
from torchscan.report import Report

__all__ = ["build_model", "check_output_path", "main", "parse_size"]


def build_model(name: str) -> nn.Module:
    """A torchvision model by name, randomly initialised (no weights are downloaded), in eval mode.

    ``timm:NAME``, ``path/to/file.py:factory`` and ``package.module:factory`` load other models
    (see :func:`torchscan.loader.load_model`).
    """
    if ":" in name:
        return load_model(name)
    try:
        import torchvision
    except ImportError as error:
        raise TorchscanError("model names are torchvision models: install it with `pip install torchvision`") from error
    available = torchvision.models.list_models()
    if name not in available:
        close = [candidate for candidate in available if name.lower() in candidate][:8]
        hint = f" Did you mean: {', '.join(close)}?" if close else " See torchvision.models.list_models()."
        raise TorchscanError(f"unknown model '{name}'.{hint}")
    model = call_user_code(f"torchvision model {name}", lambda: torchvision.models.get_model(name, weights=None))
    return model.eval()


_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``4GiB``, ``512MiB``, ``1.5GB``, ``100kB`` or a plain byte count; ``ValueError`` else.

    Units (any case): B, kB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB (powers of 1024); fractions round down.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*", text)
    if match is None:
        raise ValueError(f"'{text}' is not a size: give bytes or a number and a unit (512MiB, 4GiB, 2GB)")
    number, unit = match.groups()
    factor = _UNITS.get(unit.lower()) if unit else 1
    if factor is None:
        raise ValueError(f"unknown unit '{unit}' in '{text}': use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB")
    return int(Decimal(number) * factor)


def _size_argument(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def check_output_path(output: str) -> Path:
    """The file ``-o`` names, checked before any work is done; the file is neither created nor truncated.

    Raises :class:`TorchscanError` when its folder is missing, when it is a directory, or when it
    cannot be written (an existing file without write permission, a folder without it).
    """
    path = Path(output)
    if not output or output.endswith(("/", os.sep)) or path.is_dir():
        raise TorchscanError(f"-o {output or repr(output)}: is a directory, give a file path")
    folder = path.parent
    if not folder.exists():
        raise TorchscanError(f"-o {output}: folder {folder} does not exist")
    if not folder.is_dir():
        raise TorchscanError(f"-o {output}: {folder} is not a folder")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise TorchscanError(f"-o {output}: file is not writable (permission denied)")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise TorchscanError(f"-o {output}: cannot create a file in {folder} (permission denied)")
    return path


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:  # checked before the analysis; still possible (disk full, a race)
        raise TorchscanError(f"cannot write -o {path}: {error.strerror or error}") from error


def _real_forward_options(args: argparse.Namespace) -> dict[str, Any]:
    """``crawl_module``'s real-forward keywords the user set (none when no flag is given)."""
    options: dict[str, Any] = {}
    if args.no_real_forward:
        options["real_forward"] = False
    if args.real_forward_limit is not None:
        options["real_forward_limit"] = args.real_forward_limit
    return options


_FORMATS = ("table", "csv", "json", "dot", "svg", "html")


def _render(report: Report, args: argparse.Namespace) -> str:
    """The report in ``args.format`` (depth ``args.max_depth``; for html, the graph's depth)."""
    if args.format == "csv":
        return report.to_csv(depth=args.max_depth)
    if args.format == "json":
        return report.to_json(depth=args.max_depth)
    if args.format == "dot":
        return report.to_dot(depth=args.max_depth, color_by=args.color_by)
    if args.format == "svg":
        return report.to_svg(depth=args.max_depth, color_by=args.color_by)
    if args.format == "html":
        return report.to_html(graph_depth=args.max_depth, color_by=args.color_by)
    return render_table(report, max_depth=args.max_depth) + "\n"


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line: ``torchscan: error: …`` (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="torchscan",
        description="Static analysis of a PyTorch model: per-layer shapes, parameters, FLOPs, MACs, DMAs.",
    )
    parser.add_argument(
        "model",
        help="a torchvision model name (resnet50), timm:NAME, path/to/file.py:factory or package.module:factory",
    )
    parser.add_argument(
        "--input-shape",
        type=int,
        nargs="+",
        default=[3, 224, 224],
        metavar="DIM",
        help="shape of one input sample, without the batch dim (default: 3 224 224)",
    )
    parser.add_argument("--batch-size", type=int, default=1, help="batch size (default: 1)")
    parser.add_argument(
        "--dtype",
        default=None,
        choices=("float32", "float16", "bfloat16", "float64", "long", "int32", "bool"),
        help="input dtype (default: torch's default float; long for token ids)",
    )
    parser.add_argument("--max-depth", type=int, default=None, help="deepest layer level shown (default: all)")
    parser.add_argument(
        "--format",
        choices=_FORMATS,
        default="table",
        help="table (default), csv, json, dot (Graphviz source), svg (needs graphviz) or html",
    )
    parser.add_argument("--output", "-o", default=None, metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument(
        "--color-by", choices=("flops", "memory", "params"), default="flops", help="graph colours (dot/svg/html)"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--receptive-field",
        action="store_true",
        help="add each layer's receptive field, effective stride and padding per spatial dim",
    )
    parser.add_argument(
        "--measure",
        action="store_true",
        help="also run one real forward on CUDA and report the measured memory peak (needs a CUDA device)",
    )
    real = parser.add_mutually_exclusive_group()
    real.add_argument(
        "--no-real-forward",
        action="store_true",
        help="never fall back to a real forward of the model (a model that cannot be traced is an error)",
    )
    real.add_argument(
        "--real-forward-limit",
        type=_size_argument,
        default=None,
        metavar="SIZE",
        help="largest real forward allowed as a fallback, e.g. 4GiB, 512MiB or bytes (default: torchscan's)",
    )
    parser.add_argument(
        "--traceback", action="store_true", help="on an error, print the full traceback instead of one line"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``torchscan`` command; returns the exit status (0, 2: user error, 1: bug)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.max_depth is not None and args.max_depth < 1:
        parser.error("--max-depth must be at least 1")
    try:
        return _run(args)
    except KeyboardInterrupt:
        if args.traceback:
            raise
        print("torchscan: interrupted", file=sys.stderr)
        return 130
    except TorchscanError as error:
        return _fail(args, error, 2, f"torchscan: error: {_one_line(str(error))}")
    except Exception as error:  # a bug of torchscan's (or an error it does not know yet)
        detail = _one_line(str(error))
        message = type(error).__name__ + (f": {detail}" if detail else "")
        hint = "this is a bug in torchscan: rerun with --traceback and report it"
        return _fail(args, error, 1, f"torchscan: internal error: {message} ({hint})")


def _one_line(text: str) -> str:
    """``text``'s non-blank lines, stripped and joined with `` | ``."""
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def _fail(args: argparse.Namespace, error: BaseException, status: int, line: str) -> int:
    """Report ``error`` on stderr (``line``, or the full traceback with ``--traceback``); return ``status``."""
    if args.traceback:
        traceback.print_exception(error, file=sys.stderr)
    else:
        print(line, file=sys.stderr)
    return status


def _run(args: argparse.Namespace) -> int:
    """The command once its arguments are parsed: everything the user gave is checked before any work."""
    start = time.perf_counter()
    output = check_output_path(args.output) if args.output is not None else None
    dtype = getattr(torch, args.dtype) if args.dtype else None
    model_inputs(tuple(args.input_shape), dtype=dtype, batch_size=args.batch_size)  # raises InputError
    options = _real_forward_options(args)
    if not args.quiet:
        print(f"torchscan: analysing {args.model}…", file=sys.stderr, flush=True)
    model = build_model(args.model)
    report = crawl_module(
        model,
        tuple(args.input_shape),
        dtype=dtype,
        batch_size=args.batch_size,
        receptive_field=args.receptive_field,
        **options,
    )
    if args.measure:
        report = with_measurement(report, model)
    text = _render(report, args)
    measured = report.memory.measured if report.memory is not None else None
    if measured is not None and not measured.available and args.format != "table":  # the table has this line
        print(f"torchscan: {measured.note}", file=sys.stderr)
    if output is None:
        sys.stdout.write(text)
    else:
        _write(output, text)
    if not args.quiet:
        where = f", {args.format} written to {args.output}" if args.output else ""
        print(f"torchscan: done in {time.perf_counter() - start:.1f} s{where}", file=sys.stderr)
    return 0
