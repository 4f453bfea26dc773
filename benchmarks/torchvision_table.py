"""Print the torchvision table: params, GFLOPs, GMACs, GDMAs, analysis time and plain forward time.

    python benchmarks/torchvision_table.py            # the models of the published torchscan table
    python benchmarks/torchvision_table.py --all      # every torchvision classifier
    python benchmarks/torchvision_table.py resnet50 vit_b_16

Times are medians over ``--repeat`` interleaved runs in one process (analysis = ``crawl_module``;
forward = one CPU forward pass of batch 1 under ``torch.no_grad``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch
import torchvision

from torchscan import crawl_module

PUBLISHED = Path(__file__).resolve().parents[1] / "tests" / "golden" / "published.json"


def input_shape(name: str) -> tuple[int, int, int]:
    return (3, 299, 299) if name == "inception_v3" else (3, 224, 224)


def measure(name: str, repeat: int) -> dict[str, float | int | str]:
    model = torchvision.models.get_model(name, weights=None).eval()
    shape = input_shape(name)
    sample = torch.randn(1, *shape)
    analysis, forward = [], []
    report = None
    for _ in range(repeat):
        start = time.perf_counter()
        report = crawl_module(model, shape)
        analysis.append(time.perf_counter() - start)
        start = time.perf_counter()
        with torch.no_grad():
            model(sample)
        forward.append(time.perf_counter() - start)
    assert report is not None
    totals = report.totals
    return {
        "model": name,
        "params_m": totals.params / 1e6,
        "gflops": totals.flops / 1e9,
        "gmacs": totals.macs / 1e9,
        "gdmas": totals.dmas / 1e9,
        "complete": "yes" if totals.complete else f"no ({totals.unknown_ops} ops)",
        "analysis_s": statistics.median(analysis),
        "forward_s": statistics.median(forward),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*")
    parser.add_argument("--all", action="store_true", help="every torchvision classification model")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.models:
        names = args.models
    elif args.all:
        names = torchvision.models.list_models(module=torchvision.models)
    else:
        names = list(json.loads(PUBLISHED.read_text())["models"])
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; "
        "batch 1, 3x224x224 (inception_v3 3x299x299)\n"
    )
    print("| Model | Params (M) | GFLOPs | GMACs | GDMAs | Complete | Analysis (s) | Forward (s) |")
    print("|---|---:|---:|---:|---:|---|---:|---:|")
    for name in names:
        row = measure(name, args.repeat)
        print(
            f"| {row['model']} | {row['params_m']:.2f} | {row['gflops']:.2f} | {row['gmacs']:.2f} | "
            f"{row['gdmas']:.2f} | {row['complete']} | {row['analysis_s']:.3f} | {row['forward_s']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
