"""Analysis time against one plain CPU forward pass, and growth with the number of nodes.

    python benchmarks/speed.py                     # both parts, every torchvision classifier
    python benchmarks/speed.py ratio resnet18 vit_b_16 --sizes 224
    python benchmarks/speed.py growth --blocks 250 2500 25000

``ratio``: for each torchvision classifier, the median ``crawl_module`` time over the median time of
one ``torch.no_grad`` CPU forward of the same model (batch 1), measured in one process with the two
interleaved; then the geometric mean over the models, at 224x224 and 1024x1024 (goals: < 1 and
< 0.1, issue 7). Models that cannot take the size (inception_v3 below 299, the ViTs and MaxViT
fixed at 224 positions) are skipped at that size.

``growth``: an ``nn.Sequential`` of N blocks (conv-bn-relu and a residual add: 4 graph nodes
each) on a 16x16 input: the analysis time per graph node at each N must stay flat (no quadratic
pass) from 1k to 100k nodes.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from torchscan import crawl_module


def median_times(functions: list[Callable[[], object]], repeat: int) -> list[float]:
    """Median wall time of each function over ``repeat`` interleaved rounds (after one warm-up)."""
    times: list[list[float]] = [[] for _ in functions]
    for function in functions:
        function()
    for _ in range(repeat):
        for position, function in enumerate(functions):
            start = time.perf_counter()
            function()
            times[position].append(time.perf_counter() - start)
    return [statistics.median(values) for values in times]


def ratios(names: list[str], sizes: list[int], repeat: int) -> None:
    print("| Model | Size | Analysis (s) | Forward (s) | Ratio |\n|---|---:|---:|---:|---:|")
    by_size: dict[int, list[float]] = {size: [] for size in sizes}
    for name in names:
        model = torchvision.models.get_model(name, weights=None).eval()
        for size in sizes:
            sample = torch.randn(1, 3, size, size)
            try:
                with torch.no_grad():
                    model(sample)
            except Exception:  # fixed-size models (ViT, Swin position tables) or too small an input
                continue

            def forward(model: nn.Module = model, sample: torch.Tensor = sample) -> None:
                with torch.no_grad():
                    model(sample)

            def analyse(model: nn.Module = model, size: int = size) -> None:
                crawl_module(model, (3, size, size))

            analysis, forward_time = median_times([analyse, forward], repeat)
            by_size[size].append(analysis / forward_time)
            print(
                f"| {name} | {size} | {analysis:.3f} | {forward_time:.3f} | {analysis / forward_time:.2f} |", flush=True
            )
    for size, values in by_size.items():
        if values:
            mean = math.exp(statistics.fmean(math.log(value) for value in values))
            print(f"\ngeometric mean of analysis/forward at {size}x{size}: {mean:.3f} over {len(values)} models")


class Block(nn.Module):
    """conv-bn-relu with a residual add."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.relu(self.bn(self.conv(x)))


def growth(blocks: list[int], repeat: int) -> None:
    print("| Blocks | Graph nodes | Analysis (s) | Per node (µs) |\n|---:|---:|---:|---:|")
    for count in blocks:
        with torch.device("meta"):
            model = nn.Sequential(*(Block(8) for _ in range(count))).eval()
        nodes = 0

        def analyse(model: nn.Module = model) -> None:
            nonlocal nodes
            nodes = crawl_module(model, (8, 16, 16)).records.number_of_nodes()

        (seconds,) = median_times([analyse], repeat if count < 10_000 else 1)
        print(f"| {count:,} | {nodes:,} | {seconds:.2f} | {seconds / nodes * 1e6:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", nargs="?", choices=["ratio", "growth", "both"], default="both")
    parser.add_argument("models", nargs="*", help="torchvision classifiers (default: all)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 1024])
    parser.add_argument("--blocks", type=int, nargs="+", default=[250, 2500, 25000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"{torch.get_num_threads()} torch threads\n"
    )
    if args.part in ("ratio", "both"):
        ratios(args.models or torchvision.models.list_models(module=torchvision.models), args.sizes, args.repeat)
    if args.part in ("growth", "both"):
        print()
        growth(args.blocks, args.repeat)


if __name__ == "__main__":
    main()
