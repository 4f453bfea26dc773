"""Command line: ``torchscan MODEL [--input-shape C H W] [--max-depth N] [--batch-size B] [--format F]
[-o FILE] [--measure]``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from torchscan.api import crawl_module, with_measurement
from torchscan.errors import TorchscanError
from torchscan.loader import load_model
from torchscan.render.table import render_table
from torchscan.report import Report

__all__ = ["build_model", "main"]


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
    return torchvision.models.get_model(name, weights=None).eval()


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``torchscan`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.max_depth is not None and args.max_depth < 1:
        parser.error("--max-depth must be at least 1")
    start = time.perf_counter()
    if not args.quiet:
        print(f"torchscan: analysing {args.model}…", file=sys.stderr, flush=True)
    try:
        model = build_model(args.model)
        report = crawl_module(
            model,
            tuple(args.input_shape),
            dtype=getattr(torch, args.dtype) if args.dtype else None,
            batch_size=args.batch_size,
            receptive_field=args.receptive_field,
        )
        if args.measure:
            report = with_measurement(report, model)
        text = _render(report, args)
    except TorchscanError as error:
        print(f"torchscan: error: {error}", file=sys.stderr)
        return 2
    measured = report.memory.measured if report.memory is not None else None
    if measured is not None and not measured.available and args.format != "table":  # the table has this line
        print(f"torchscan: {measured.note}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    if not args.quiet:
        where = f", {args.format} written to {args.output}" if args.output else ""
        print(f"torchscan: done in {time.perf_counter() - start:.1f} s{where}", file=sys.stderr)
    return 0
