"""Process CPU time of the analysis, for a machine too loaded for wall clocks (the figures of issue 13's rounds).

    python benchmarks/cpu.py analysis resnet50 mobilenet_v3_large   # growth µs/node, then ms per model
    python benchmarks/cpu.py ratio resnet50 mobilenet_v3_large      # analysis / a one-thread forward
    python benchmarks/cpu.py stages mobilenet_v3_large              # (or: growth 1000, timm:<name>, llama) per stage
    python benchmarks/cpu.py llama                                  # Llama-2-70B on meta, analysis + table
    python benchmarks/cpu.py reuse resnet50 vit_b_16 timm:levit_128s llama   # the capture, block reuse off/on

Everything is ``time.process_time`` (this process's CPU time, both threads summed), medians after a
warm-up: other processes on the machine change it little, unlike the wall clock. ``ratio`` divides by the
CPU time of a ``torch.no_grad`` forward on **one** torch thread: not ``speed.py ratio``'s measure (the wall
time of a two-thread forward), which it approximates only on an idle machine. Compare two checkouts by
running the same command with each on ``PYTHONPATH``, alternating. Every analysis here reads its whole report
(``speed.read_whole``: rows and diagnostics made on their first read since the fiftieth session, the memory
section since the forty-seventh; before, by ``crawl_module``), so checkouts on either side of those changes are
compared on the same work.
"""

from __future__ import annotations

import argparse
import collections
import functools
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torchvision
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))

import llama
from speed import Block, read_whole, timed

import torchscan.api as api
from torchscan.render.table import render_table


def _median(function: Callable[[], object], repeat: int) -> float:
    function()
    times = []
    for _ in range(repeat):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return statistics.median(times)


def _growth_model(blocks: int) -> nn.Module:
    with torch.device("meta"):
        return nn.Sequential(*(Block(8) for _ in range(blocks))).eval()


def analysis(names: Sequence[str]) -> None:
    parts = []
    for blocks in (250, 2500):
        model = _growth_model(blocks)
        nodes = api.crawl_module(model, (8, 16, 16)).records.number_of_nodes()
        seconds = _median(
            lambda model=model: read_whole(api.crawl_module(model, (8, 16, 16))), 3 if blocks < 2000 else 1
        )
        parts.append(f"growth {nodes} nodes: {seconds / nodes * 1e6:.0f} µs/node")
    for name in names:
        model = torchvision.models.get_model(name, weights=None).eval()
        parts.append(
            f"{name}: {_median(lambda model=model: read_whole(api.crawl_module(model, (3, 224, 224))), 5) * 1e3:.1f} ms"
        )
    print("\n".join(parts))


def ratio(names: Sequence[str]) -> None:
    torch.set_num_threads(1)
    ratios = []
    print("| Model | Analysis CPU (ms) | Forward CPU, 1 thread (ms) | Ratio |\n|---|---:|---:|---:|")
    for name in names:
        model = torchvision.models.get_model(name, weights=None).eval()
        x = torch.randn(1, 3, 224, 224)

        def forward(model: nn.Module = model, x: torch.Tensor = x) -> None:
            with torch.no_grad():
                model(x)

        def analyse(model: nn.Module = model) -> None:
            read_whole(api.crawl_module(model, (3, 224, 224)))

        forward()
        analyse()
        analyses, forwards = [], []
        for _ in range(5):  # interleaved rounds
            start = time.process_time()
            analyse()
            analyses.append(time.process_time() - start)
            start = time.process_time()
            forward()
            forwards.append(time.process_time() - start)
        a, f = statistics.median(analyses), statistics.median(forwards)
        ratios.append(a / f)
        print(f"| {name} | {a * 1e3:.1f} | {f * 1e3:.1f} | {a / f:.2f} |", flush=True)
    print(f"\ngeometric mean {math.exp(sum(map(math.log, ratios)) / len(ratios)):.3f} over {len(ratios)} models")


def stages(which: str, blocks: int) -> None:
    """CPU time per stage: the functions ``crawl_module`` calls, wrapped here (this process only)."""
    import torchscan.graph.capture as capture

    spent: dict[str, float] = collections.defaultdict(float)

    def wrap(owner: object, name: str, label: str) -> None:
        setattr(owner, name, timed(getattr(owner, name), label, spent))

    wrap(api, "capture_with_fallback", "capture (trace, shapes)")
    wrap(capture, "propagate", "  shape pass")
    for name in (
        "build_graph",
        "count_costs",
        "collect_params",
        "build_rows",
        "captured_memory",
        "estimate_memory",
        "hooks_of",
    ):
        if hasattr(api, name):
            wrap(api, name, name)
    growth = (_growth_model(blocks), (8, 16, 16), torch.float32) if which == "growth" else None
    model, shape, dtype = growth or _reuse_case(which)
    api.crawl_module(model, shape, dtype=dtype)
    runs = []
    for _ in range(3):
        spent.clear()
        start = time.process_time()
        report = api.crawl_module(model, shape, dtype=dtype)
        read_whole(report)
        runs.append((time.process_time() - start, dict(spent)))
    total, by_stage = sorted(runs, key=lambda run: run[0])[1]
    nodes = report.records.number_of_nodes()
    print(f"{which}: {total * 1e3:.1f} ms, {nodes} nodes, {total / nodes * 1e6:.0f} µs/node")
    for label, seconds in by_stage.items():
        print(f"  {label:26s} {seconds * 1e3:8.1f} ms {seconds / nodes * 1e6:6.0f} µs/node {seconds / total:6.1%}")


def llama_cpu() -> None:
    config = llama.CONFIGS["llama"]
    model = llama.build(config, False)
    times = []
    for _ in range(3):
        start = time.process_time()
        render_table(api.crawl_module(model, (config.sequence,), dtype=torch.long))
        times.append(time.process_time() - start)
    print(f"Llama-2-70B on meta, analysis + table: {statistics.median(times):.2f} s CPU (runs {times})")


def _reuse_case(name: str) -> tuple[nn.Module, tuple[int, ...], torch.dtype]:
    """A torchvision name, ``timm:<name>`` (at its default resolution) or ``llama`` (the benchmark's, on meta)."""
    if name == "llama":
        config = llama.CONFIGS["llama"]
        return llama.build(config, False), (config.sequence,), torch.long
    if name.startswith("timm:"):
        import timm

        model = timm.create_model(name[5:], pretrained=False).eval()
        return model, tuple(model.pretrained_cfg.get("input_size", (3, 224, 224))), torch.float32
    return torchvision.models.get_model(name, weights=None).eval(), (3, 224, 224), torch.float32


def _graph(captured: object) -> list[tuple[object, ...]]:
    """Every node of a capture as the passes read it (name, op, target, arguments, module stack, stack trace)."""
    return [
        (node.name, node.op, str(node.target), str(node.args), str(node.kwargs), str(node.meta))
        for node in captured.graph.nodes  # type: ignore[attr-defined]
    ]


def reuse(names: Sequence[str], repeat: int = 7) -> None:
    """The capture (copy and trace) and the whole analysis (``crawl_module``, the report's table for
    ``llama``) with every block traced, then with repeated blocks replayed as ``crawl_module`` replays them
    (``torchscan/graph/reuse.py``: only where replays could skip at least ``MIN_SHARE`` of the modules):
    process CPU time, medians of interleaved rounds in this one process (the capture with the collector
    off, as ``crawl_module`` runs it); and whether the two graphs are the same node for node."""
    import gc

    import torchscan.graph.capture as chain
    from torchscan.graph.reuse import _replayable
    from torchscan.graph.trace import capture
    from torchscan.inputs import model_inputs
    from torchscan.ops import DEFAULT_REGISTRY

    print(
        "| Model | Graph nodes | Skippable share | Blocks replayed | Nodes replayed | Capture, every block traced "
        "(ms) | Capture, reuse (ms) | Analysis, every block traced (ms) | Analysis, reuse (ms) | Same graph |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    original = chain.capture
    try:
        for name in names:
            model, shape, dtype = _reuse_case(name)
            inputs = model_inputs(shape, batch_size=1, dtype=dtype)
            captures = {
                mode: functools.partial(capture, model, DEFAULT_REGISTRY, inputs, reuse=mode) for mode in (0, 1)
            }
            plain, reused = captures[0](), captures[1]()
            replayed = {path for path, _ in reused.replayed}
            nodes = sum(1 for node in reused.graph.nodes if replayed & node.meta.get("nn_module_stack", {}).keys())

            def analyse(mode: int, model: nn.Module = model, call: tuple = (shape, dtype, name == "llama")) -> None:
                chain.capture = functools.partial(capture, reuse=bool(mode))
                report = api.crawl_module(model, call[0], dtype=call[1])
                if call[2]:  # the Llama benchmark's measure: the analysis and its full table
                    render_table(report)

            times: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
            for mode in (0, 1):
                analyse(mode)
            for _ in range(repeat):
                for mode in (0, 1):
                    enabled = gc.isenabled()
                    gc.disable()
                    try:
                        start = time.process_time()
                        captures[mode]()
                        times["capture", mode].append(time.process_time() - start)
                    finally:
                        if enabled:
                            gc.enable()
                    start = time.process_time()
                    analyse(mode)
                    times["analysis", mode].append(time.process_time() - start)
            medians = {key: statistics.median(values) * 1e3 for key, values in times.items()}
            same = "yes" if _graph(plain) == _graph(reused) else "**no**"
            skippable, modules = _replayable(model)  # the bound MIN_SHARE is compared with
            print(
                f"| {name} | {len(reused.graph.nodes)} | {skippable / modules:.2f} | {len(replayed)} | {nodes} | "
                f"{medians['capture', 0]:.1f} | "
                f"{medians['capture', 1]:.1f} | {medians['analysis', 0]:.1f} | {medians['analysis', 1]:.1f} | {same} |",
                flush=True,
            )
    finally:
        chain.capture = original


def main(argv: Sequence[str] | None = None) -> int:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("analysis").add_argument("models", nargs="*")
    commands.add_parser("ratio").add_argument("models", nargs="+")
    staged = commands.add_parser("stages")
    staged.add_argument("model", help="a torchvision name, or growth")
    staged.add_argument("blocks", nargs="?", type=int, default=1000)
    commands.add_parser("llama")
    commands.add_parser("reuse").add_argument("models", nargs="+", help="torchvision names, timm:<name>, llama")
    args = parser.parse_args(argv)
    if args.command == "analysis":
        analysis(args.models)
    elif args.command == "ratio":
        ratio(args.models)
    elif args.command == "stages":
        stages(args.model, args.blocks)
    elif args.command == "reuse":
        reuse(args.models)
    else:
        llama_cpu()
    return 0


if __name__ == "__main__":
    sys.exit(main())
