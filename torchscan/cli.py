"""Command line: ``torchscan MODEL [--input-shape C H W] [--max-depth N] [--batch-size B]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from torch import nn

from torchscan.api import crawl_module
from torchscan.errors import TorchscanError
from torchscan.render.table import render_table

__all__ = ["build_model", "main"]


def build_model(name: str) -> nn.Module:
    """A torchvision model by name, randomly initialised (no weights are downloaded), in eval mode."""
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchscan",
        description="Static analysis of a PyTorch model: per-layer shapes, parameters, FLOPs, MACs, DMAs.",
    )
    parser.add_argument("model", help="a torchvision model name, e.g. resnet50")
    parser.add_argument(
        "--input-shape",
        type=int,
        nargs="+",
        default=[3, 224, 224],
        metavar="DIM",
        help="shape of one input sample, without the batch dim (default: 3 224 224)",
    )
    parser.add_argument("--batch-size", type=int, default=1, help="batch size (default: 1)")
    parser.add_argument("--max-depth", type=int, default=None, help="deepest layer level shown (default: all)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``torchscan`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        model = build_model(args.model)
        report = crawl_module(model, tuple(args.input_shape), batch_size=args.batch_size)
    except TorchscanError as error:
        print(f"torchscan: error: {error}", file=sys.stderr)
        return 2
    print(render_table(report, max_depth=args.max_depth))
    return 0
