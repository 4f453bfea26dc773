"""Analysis time against one plain CPU forward pass, and growth with the number of nodes.

    python benchmarks/speed.py                     # both parts, every torchvision classifier
    python benchmarks/speed.py ratio resnet18 vit_b_16 --sizes 224
    python benchmarks/speed.py growth --blocks 250 2500 25000
    python benchmarks/speed.py sweep resnet50 mobilenet_v3_large vit_b_16
    python benchmarks/speed.py phases resnet50 mobilenet_v3_large vit_b_16
    python benchmarks/speed.py floors shufflenet_v2_x0_5 mobilenet_v3_large growth

``ratio``: for each torchvision classifier, the median ``crawl_module`` time over the median time of
one ``torch.no_grad`` CPU forward of the same model (batch 1), measured in one process with the two
interleaved, and the same with the whole report read (rows, diagnostics, memory: each made on its first read); then the
geometric mean over the models, at 224x224 and 1024x1024 (goals: < 1 and < 0.1, issue 7). Models that
cannot take the size (inception_v3 below 299, the ViTs and MaxViT fixed at 224 positions) are skipped at
that size.

``growth``: an ``nn.Sequential`` of N blocks (conv-bn-relu and a residual add: 4 graph nodes
each) on a 16x16 input: the analysis time (the whole report read) per graph node at each N must stay
flat (no quadratic pass) from 1k to 100k nodes.

``sweep``: ``torchscan.sweep`` over 8 input shapes (the model's 224x224 and other sizes or batch
sizes) against one ``crawl_module`` call: the cost of each extra shape as a share of a first
analysis (issue 13's goal: at most 20%), in process CPU time (this part is for shared machines,
where the wall clock measures the neighbours), medians of ``--repeat`` interleaved rounds; once as
called (a report makes its rows, diagnostics and memory section on their first read) and once with every report
read whole.

``phases``: where one sweep item's time goes — ``torchscan.sweep`` over the same 8 inputs as ``sweep``, its passes
timed (process CPU) around their calls by wrappers installed in this benchmark process for the measurement and
removed after (``unittest.mock.patch``): the shape pass of an item after the first (``with_inputs``; the first's is
its capture), its records (``build_graph``), counts, rows and memory (its ATen-level recordings and its training
estimate inside), in ms per item.

``floors``: what the building blocks of any fx-based analysis cost on the same model, per graph node of our
capture, next to ours (process CPU time, medians of ``--repeat`` interleaved rounds): ``torch.fx.symbolic_trace``
alone, fx's graph alone (``torch.fx.Tracer().trace``: no ``GraphModule``, no generated code, as our capture makes
none), fx's ``ShapeProp`` over that graph on a ``meta`` copy (shapes by torch's meta kernels, the cheapest shape
propagation torch has), ``copy.deepcopy`` of the model, and a ``no_grad`` forward (of the ``meta`` copy for
``growth``: the ``Block`` chain of the growth part, 1,000 blocks, on ``meta``). A model fx cannot trace gets "—".
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import math
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torchvision
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from torchscan import Report, crawl_module, sweep


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
    print(
        "| Model | Size | Analysis (s) | Forward (s) | Ratio | Read whole (s) | Ratio read whole |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    by_size: dict[int, list[float]] = {size: [] for size in sizes}
    read_whole_ratios: dict[int, list[float]] = {size: [] for size in sizes}
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

            def analyse_whole(model: nn.Module = model, size: int = size) -> None:
                read_whole(crawl_module(model, (3, size, size)))

            analysis, forward_time, full = median_times([analyse, forward, analyse_whole], repeat)
            by_size[size].append(analysis / forward_time)
            read_whole_ratios[size].append(full / forward_time)
            print(
                f"| {name} | {size} | {analysis:.3f} | {forward_time:.3f} | {analysis / forward_time:.2f} | "
                f"{full:.3f} | {full / forward_time:.2f} |",
                flush=True,
            )
    for size, values in by_size.items():
        if values:
            mean = math.exp(statistics.fmean(math.log(value) for value in values))
            full_mean = math.exp(statistics.fmean(math.log(value) for value in read_whole_ratios[size]))
            print(
                f"\ngeometric mean of analysis/forward at {size}x{size}: {mean:.3f} ({full_mean:.3f} with the whole "
                f"report read) over {len(values)} models"
            )


def read_whole(report: Report) -> None:
    """Read every part of a report made on its first read: its rows, its diagnostics (since the fiftieth session)
    and its memory section (since the forty-seventh); at a revision that made them eagerly, only reads them."""
    if not isinstance(report.rows, tuple) or not isinstance(report.diagnostics, tuple):
        raise RuntimeError("the report has no rows or no diagnostics")
    if report.memory is None:
        raise RuntimeError("the report has no memory section")


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
            report = crawl_module(model, (8, 16, 16))
            read_whole(report)  # end to end: rows and memory section too
            nodes = report.records.number_of_nodes()

        (seconds,) = median_times([analyse], repeat if count < 10_000 else 1)
        print(f"| {count:,} | {nodes:,} | {seconds:.2f} | {seconds / nodes * 1e6:.0f} |", flush=True)


SWEEP_SIZES = (224, 160, 192, 256, 288, 320, 128, 96)
"""Square input sizes of the sweep part (fixed-size models sweep these as batch sizes instead)."""


def median_cpu_times(functions: list[Callable[[], object]], repeat: int) -> list[float]:
    """Median process CPU time of each function over ``repeat`` interleaved rounds (after one warm-up)."""
    times: list[list[float]] = [[] for _ in functions]
    for function in functions:
        function()
    for _ in range(repeat):
        for position, function in enumerate(functions):
            start = time.process_time()
            function()
            times[position].append(time.process_time() - start)
    return [statistics.median(values) for values in times]


def sweeps(names: list[str], repeat: int) -> None:
    print(
        "| Model | Items | One analysis (ms) | Sweep (ms) | Per extra item (ms) | Extra / first | "
        "Extra / first, read whole |\n"
        "|---|---|---:|---:|---:|---:|---:|"
    )
    for name in names:
        model = torchvision.models.get_model(name, weights=None).eval()
        items = _sweep_items(model)
        kind = "batch sizes" if isinstance(items[0], dict) else "sizes"
        first = items[0] if isinstance(items[0], dict) else {"input_shape": items[0]}

        def one_read(first: dict = first, model: nn.Module = model) -> None:
            read_whole(crawl_module(model, **first))

        def swept_read(items: list = items, model: nn.Module = model) -> None:
            for report in sweep(model, items):
                read_whole(report)

        one, swept, one_full, swept_full = median_cpu_times(
            [
                functools.partial(crawl_module, model, **first),
                functools.partial(sweep, model, items),
                one_read,
                swept_read,
            ],
            repeat,
        )
        extra = (swept - one) / (len(items) - 1)
        extra_full = (swept_full - one_full) / (len(items) - 1)
        print(
            f"| {name} | {len(items)} {kind} | {one * 1e3:.1f} | {swept * 1e3:.1f} | {extra * 1e3:.1f} | "
            f"{extra / one:.2f} | {extra_full / one_full:.2f} |",
            flush=True,
        )


_PHASES = (
    ("torchscan.api", "with_inputs", "Shape pass"),
    ("torchscan.api", "estimate_memory", "Memory"),
    ("torchscan.passes.memory.context", "recorded_calls", "of which recordings"),
    ("torchscan.passes.memory.estimate", "training_step", "of which training"),
    ("torchscan.api", "build_graph", "Records"),
    ("torchscan.api", "build_rows", "Rows"),
    ("torchscan.api", "count_costs", "Counts"),
)
"""(module the caller looks the function up in, function, column) of ``phases``."""


def phases(names: list[str], repeat: int) -> None:
    import importlib
    from unittest import mock

    print(
        "| Model | Sweep (ms) | Per item (ms) | " + " | ".join(label for _, _, label in _PHASES) + " |\n"
        "|---|---:|---:|" + "---:|" * len(_PHASES)
    )
    for name in names:
        model = torchvision.models.get_model(name, weights=None).eval()
        items = _sweep_items(model)
        spent = dict.fromkeys((label for _, _, label in _PHASES), 0.0)

        sweep(model, items)  # warm-up
        with contextlib.ExitStack() as stack:
            for module, function, label in _PHASES:
                owner = importlib.import_module(module)
                wrapper = timed(getattr(owner, function), label, spent)
                stack.enter_context(mock.patch.object(owner, function, wrapper))
            start = time.process_time()
            for _ in range(repeat):
                sweep(model, items)
            total = (time.process_time() - start) / repeat
        # the shape pass of the first item is its capture's (not timed here): the others' is per extra item
        per = {label: value / repeat / (len(items) - (label == "Shape pass")) * 1e3 for label, value in spent.items()}
        print(
            f"| {name} | {total * 1e3:.1f} | {total / len(items) * 1e3:.1f} | "
            + " | ".join(f"{per[label]:.1f}" for _, _, label in _PHASES)
            + " |",
            flush=True,
        )


def timed(function: Callable[..., object], label: str, spent: dict[str, float]) -> Callable[..., object]:
    """``function``, adding the process CPU time of each call to ``spent[label]``."""

    @functools.wraps(function)
    def run(*args: object, **kwargs: object) -> object:
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] += time.process_time() - start

    return run


def _sweep_items(model: nn.Module) -> list:
    """``sweep``'s inputs: 8 sizes, or 8 batch sizes at 224x224 for a model fixed at that size."""
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, 160, 160))
        return [(3, size, size) for size in SWEEP_SIZES]
    except Exception:  # fixed-size models (ViT, Swin position tables): batch sizes instead
        return [{"input_shape": (3, 224, 224), "batch_size": batch} for batch in range(1, len(SWEEP_SIZES) + 1)]


def floors(names: list[str], repeat: int) -> None:
    print(
        "| Model | Graph nodes | Ours (µs/node) | fx.symbolic_trace | fx graph alone | + ShapeProp (meta) | deepcopy "
        "| Forward |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for name in names:
        if name == "growth":
            with torch.device("meta"):
                model = nn.Sequential(*(Block(8) for _ in range(1000))).eval()
            shape: tuple[int, ...] = (8, 16, 16)
            sample = torch.empty(1, *shape, device="meta")
        else:
            model = torchvision.models.get_model(name, weights=None).eval()
            shape = (3, 224, 224)
            sample = torch.randn(1, *shape)
        nodes = crawl_module(model, shape).records.number_of_nodes()
        meta = copy.deepcopy(model).to("meta")
        meta_sample = torch.empty(sample.shape, device="meta")

        def propagate(meta: nn.Module = meta, meta_sample: torch.Tensor = meta_sample) -> None:
            ShapeProp(fx.symbolic_trace(meta)).propagate(meta_sample)

        def forward(model: nn.Module = model, sample: torch.Tensor = sample) -> None:
            with torch.no_grad():
                model(sample)

        functions: list[Callable[[], object]] = [
            functools.partial(crawl_module, model, shape),
            functools.partial(fx.symbolic_trace, model),
            lambda model=model: fx.Tracer().trace(model),
            propagate,
            functools.partial(copy.deepcopy, model),
            forward,
        ]
        try:
            fx.symbolic_trace(model)
        except Exception:  # fx cannot trace it: ours, the copy and the forward only
            functions[1] = functions[2] = functions[3] = lambda: None
            traced = False
        else:
            traced = True
        times = median_cpu_times(functions, repeat)
        cells = [f"{seconds / nodes * 1e6:.0f}" for seconds in times]
        if not traced:
            cells[1] = cells[2] = cells[3] = "—"
        print(f"| {name} | {nodes:,} | {' | '.join(cells)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = ["ratio", "growth", "sweep", "phases", "floors", "both"]
    parser.add_argument("part", nargs="?", choices=parts, default="both")
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
    if args.part == "sweep":
        sweeps(args.models or ["resnet50", "mobilenet_v3_large", "efficientnet_b0", "vit_b_16"], args.repeat)
    if args.part == "phases":
        phases(args.models or ["resnet50", "mobilenet_v3_large", "vit_b_16"], args.repeat)
    if args.part == "floors":
        floors(
            args.models or ["growth", "shufflenet_v2_x0_5", "mobilenet_v3_large", "resnet50", "vit_b_16"], args.repeat
        )


if __name__ == "__main__":
    main()
