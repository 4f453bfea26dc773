"""Static memory figures against real CPU passes (live tensor bytes), issue 16.

    python benchmarks/memory_cpu.py            # the issue's five models, then the twelve test cases
    python benchmarks/memory_cpu.py --cases    # the twelve cases only
    python benchmarks/memory_cpu.py --cases --autocast bfloat16   # their forwards under torch.autocast

Per model: the static inference peak (inputs included) against one no-grad forward, and the training
estimate (SGD, Adam; steady state) against one real training step (parameters, buffers, optimizer
state and inputs included); ``error = static / measured − 1``. Models are randomly initialised,
nothing is downloaded; the twelve cases are ``tests/measure/accuracy_cases.py``. ``--autocast DTYPE``: each
model's forward under ``torch.autocast("cpu", dtype=DTYPE)``, its backward and step outside (PyTorch's
mixed-precision recipe), the same wrapped model analysed and measured.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.measure.accuracy_cases import CASES, Case, figures, under_autocast

ISSUE = (
    Case("swin_t 128², batch 2", lambda: torchvision.models.swin_t(weights=None), ((2, 3, 128, 128),)),
    Case("mobilenet_v2 160², batch 8", lambda: torchvision.models.mobilenet_v2(weights=None), ((8, 3, 160, 160),)),
    Case(
        "vit_b_16 128², batch 2", lambda: torchvision.models.vit_b_16(weights=None, image_size=128), ((2, 3, 128, 128),)
    ),
    Case("convnext_tiny 160², batch 8", lambda: torchvision.models.convnext_tiny(weights=None), ((8, 3, 160, 160),)),
)


def _mib(count: int) -> str:
    return f"{count / 2**20:,.2f} MiB"


def table(cases: tuple[Case, ...]) -> None:
    columns = ["model", "inference static", "measured", "error"] + ["static", "measured", "error"] * 2
    columns[4], columns[7] = "SGD static", "Adam static"
    print("| " + " | ".join(columns) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case in cases:
        result = figures(case)
        errors = result.errors()
        cells = [_mib(result.static_inference), _mib(result.measured_inference), f"{errors['inference']:+.1%}"]
        for name in ("sgd", "adam"):
            cells += [_mib(result.static_training[name]), _mib(result.measured_training[name]), f"{errors[name]:+.1%}"]
        print(f"| {case.name} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", action="store_true", help="the twelve test cases only")
    parser.add_argument(
        "--autocast", choices=("bfloat16", "float16"), default=None, help="each forward under torch.autocast"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; models in train mode\n")

    def chosen(cases: tuple[Case, ...]) -> tuple[Case, ...]:
        if args.autocast is None:
            return cases
        return tuple(under_autocast(case, getattr(torch, args.autocast)) for case in cases)

    if not args.cases:
        table(chosen(ISSUE))
        print()
    table(chosen(CASES))


if __name__ == "__main__":
    main()
