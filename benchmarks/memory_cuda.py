"""Static memory estimates vs real CUDA measurements; prints a markdown table.

    python benchmarks/memory_cuda.py          # exits 2 without CUDA, 1 if a check misses 15%
    python benchmarks/memory_cuda.py --cases  # memory_cpu.py's sixteen cases on CUDA
    python benchmarks/memory_cuda.py --cases --device cpu   # the same on CPU (a dry run: no allocator column)

Rows: inference activation peak (``max_memory_allocated`` − allocated before the inputs, one
no-grad forward, batch 32, 224×224) for ResNet-50 and ViT-B/16; the whole peak of a
steady-state ResNet-50 training step with Adam at batch 32 (second step, foreach Adam, loss =
output sum). Random weights; no download. Runs in well under 3 minutes on an H100.

``--cases``: each model of ``benchmarks/memory_cpu.py`` (train mode, the inputs given) is analysed
sitting on the device — the report a CUDA user gets, its fake tensors on that device — and measured there:
an inference forward and a steady-state SGD and Adam step (``torchscan.measure.cpu``'s step and loss), as
live tensor bytes (the dispatch mode of ``torchscan.measure.cpu``) and as the allocator's peak
(``max_memory_allocated``: workspaces that kernels allocate outside any tensor included). It also says
what the analysis allocated on the device (it must be nothing: fake tensors only), how long it took and
whether its counts equal those of the same model analysed on CPU. Exits 1 when a case fails one of those.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torch.utils._pytree import tree_leaves, tree_map

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memory_cpu import ISSUE

from tests.measure.accuracy_cases import CASES, Case, analyse, instance
from torchscan import crawl_module
from torchscan.measure.cpu import OPTIMIZER_FACTORIES, _linear_loss, measure_inference, measure_training
from torchscan.measure.cuda import measure_cuda, measure_cuda_training

TOLERANCE = 0.15
BATCH = 32
SHAPE = (3, 224, 224)


def _mib(nbytes: int, digits: int = 1) -> str:
    return f"{nbytes / 2**20:,.{digits}f}"


def main() -> int:
    if not torch.cuda.is_available():
        print("memory_cuda: no CUDA device, nothing measured", file=sys.stderr)
        return 2
    rows: list[tuple[str, int, int]] = []
    for name in ("resnet50", "vit_b_16"):
        model = torchvision.models.get_model(name, weights=None).eval()
        static = crawl_module(model, SHAPE, batch_size=BATCH).memory
        assert static is not None
        model = model.cuda()
        measured = measure_cuda(model, [(BATCH, *SHAPE)], [torch.float32], static.activation_peak_bytes)
        rows.append((f"{name} inference activation peak", static.activation_peak_bytes, measured.activation_peak_bytes))
        del model
        torch.cuda.empty_cache()
    model = torchvision.models.resnet50(weights=None).train()
    static = crawl_module(model, SHAPE, batch_size=BATCH).memory
    assert static is not None
    inputs = [torch.randn(BATCH, *SHAPE, device="cuda")]
    measured_step = measure_cuda_training(model, inputs, lambda params: torch.optim.Adam(params, foreach=True))
    rows.append(("resnet50 training step peak (Adam)", static.training_for("adam").peak_bytes, measured_step))

    device = torch.cuda.get_device_name()
    print(f"Device: {device}, torch {torch.__version__}, batch {BATCH}, input {SHAPE}\n")
    print("| check | static (MiB) | measured (MiB) | error |")
    print("|---|---:|---:|---:|")
    failed = 0
    for label, static_bytes, measured_bytes in rows:
        error = static_bytes / measured_bytes - 1
        failed += abs(error) > TOLERANCE
        print(f"| {label} | {_mib(static_bytes)} | {_mib(measured_bytes)} | {error:+.1%} |")
    return 1 if failed else 0


def _on(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor in it moved to ``device``."""
    return tree_map(lambda leaf: leaf.to(device) if isinstance(leaf, torch.Tensor) else leaf, value)


def _allocated_peak(device: torch.device, run: Callable[[], None]) -> int:
    """``max_memory_allocated`` during ``run`` above what was allocated before it (CUDA only)."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    run()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


@dataclass(frozen=True)
class CaseFigures:
    """One case on the device: what the analysis allocated there and took, whether its counts equal the
    CPU analysis's, and each check's static bytes against live tensor bytes and the allocator's peak."""

    analysis_allocated: int
    analysis_seconds: float
    counts_equal: bool
    differences: tuple[str, ...]
    capture: str
    """How the analysis on the device captured the model, and its diagnostics' codes where it has any."""
    """Where the counts differ: the totals, then rows (up to eight) whose FLOPs, MACs or DMAs differ or that
    only one report has."""
    static: dict[str, int]
    live: dict[str, int]
    allocator: dict[str, int]


def case_figures(case: Case, device: torch.device, optimizers: tuple[str, ...] = ("sgd", "adam")) -> CaseFigures:
    """Analyse ``case``'s model sitting on ``device`` (the report a user of that device gets) and measure it
    there: inference (no-grad forward) and a steady-state training step per optimizer, each as live tensor
    bytes (:mod:`torchscan.measure.cpu`'s dispatch mode, any device) and, on CUDA, as the allocator's peak
    (everything the step allocates: workspaces of cuDNN and cuBLAS included, inputs and, for a step,
    parameters, gradients and optimizer state)."""
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.manual_seed(0)
        host, inputs, kwargs = instance(case)
        on_host = analyse(host, inputs, kwargs)
        model = copy.deepcopy(host).to(device)
        inputs, kwargs = _on(inputs, device), _on(kwargs, device)
        given = [leaf for leaf in [*inputs, *tree_leaves(kwargs)] if isinstance(leaf, torch.Tensor)]
        input_bytes = sum(tensor.numel() * tensor.element_size() for tensor in given)
        start = time.perf_counter()
        if cuda:
            holder: list[Any] = []
            allocated = _allocated_peak(device, lambda: holder.append(analyse(model, inputs, kwargs)))
            report = holder.pop()
        else:
            allocated, report = 0, analyse(model, inputs, kwargs)
        seconds = time.perf_counter() - start
        fields = ("flops", "macs", "dmas", "params", "unknown_ops")
        counts_equal = all(getattr(report.totals, f) == getattr(on_host.totals, f) for f in fields)
        differences = () if counts_equal else _differences(on_host, report, fields)
        memory = report.memory
        static = {"inference": memory.activation_peak_bytes}
        static.update({name: memory.training_for(name).peak_bytes for name in optimizers})
        live = {"inference": measure_inference(model, inputs, kwargs).total_bytes}
        live.update(
            {
                name: measure_training(model, inputs, OPTIMIZER_FACTORIES[name], kwargs=kwargs).total_bytes
                for name in optimizers
            }
        )
        allocator: dict[str, int] = {}
        if cuda:
            allocator["inference"] = _inference_peak(model, inputs, kwargs, device) + input_bytes
            for name in optimizers:
                allocator[name] = _training_peak(model, inputs, kwargs, OPTIMIZER_FACTORIES[name], device) + input_bytes
    codes = sorted({note.code for note in report.diagnostics})
    capture = report.context.capture + (f" ({', '.join(codes)})" if codes else "")
    return CaseFigures(allocated, seconds, counts_equal, differences, capture, static, live, allocator)


def _differences(host: Any, device: Any, fields: tuple[str, ...]) -> tuple[str, ...]:
    """What differs between the counts of the CPU analysis ``host`` and the device's ``device``."""
    found = [
        f"totals.{field}: CPU {getattr(host.totals, field):,}, device {getattr(device.totals, field):,}"
        for field in fields
        if getattr(host.totals, field) != getattr(device.totals, field)
    ]
    rows = {row.name: row for row in host.rows}
    names = {row.name for row in device.rows}
    listed = 0
    for row in device.rows:
        other = rows.get(row.name)
        if listed < 8 and (other is None or (other.flops, other.macs, other.dmas) != (row.flops, row.macs, row.dmas)):
            seen = "absent" if other is None else f"{(other.flops, other.macs, other.dmas)}"
            found.append(f"row {row.name} ({row.type}): CPU {seen}, device {(row.flops, row.macs, row.dmas)}")
            listed += 1
    found += [f"row {name} ({rows[name].type}): only on CPU" for name in list(rows.keys() - names)[:8]]
    return tuple(found)


def _inference_peak(model: nn.Module, inputs: list[torch.Tensor], kwargs: dict[str, Any], device: torch.device) -> int:
    """The allocator's peak of one no-grad forward of a copy of ``model``, above the copy and the inputs."""
    clone = copy.deepcopy(model)

    def forward() -> None:
        with torch.no_grad():
            output = clone(*inputs, **kwargs)
        del output

    return _allocated_peak(device, forward)


def _training_peak(
    model: nn.Module,
    inputs: list[torch.Tensor],
    kwargs: dict[str, Any],
    optimizer: Callable[[Any], torch.optim.Optimizer],
    device: torch.device,
) -> int:
    """The allocator's peak of a steady-state (second) training step of a copy of ``model`` above what
    was allocated before the copy was made, the loss's fixed weights left out: parameters, gradients,
    optimizer state and activations (the loss is :func:`torchscan.measure.cpu.measure_training`'s)."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    weights: dict[int, torch.Tensor] = {}
    peak = measure_cuda_training(model, inputs, optimizer, lambda out: _linear_loss(out, weights), kwargs)
    fixed = sum(weight.numel() * weight.element_size() for weight in weights.values())
    return peak - before - fixed


def cases_table(device: torch.device) -> int:
    """``benchmarks/memory_cpu.py``'s cases on ``device`` (its four larger models, then the twelve of
    ``tests/measure/accuracy_cases.py``); 1 where a case failed to run, its analysis allocated device
    memory or counted otherwise than on CPU."""
    print(f"Device: {_name(device)}, torch {torch.__version__}; models in train mode, analysed on the device\n")
    checks = ("inference", "sgd", "adam")
    columns = ["case", "analysis (s)", "allocated by it", "counts = CPU's"]
    for check in checks:
        columns += [f"{check} static", "live", "error", "allocator", "error"]
    print("| " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * (len(columns) - 1))
    failed = 0
    notes: list[str] = []
    for case in (*ISSUE, *CASES):
        try:
            result = case_figures(case, device)
        except Exception as error:  # a case that cannot run here: said, the others go on
            print(f"| {case.name} | {type(error).__name__}: {str(error).splitlines()[0][:160]} |", flush=True)
            failed += 1
            continue
        failed += bool(result.analysis_allocated) or not result.counts_equal
        cells = [f"{result.analysis_seconds:.2f}", f"{result.analysis_allocated:,} B", str(result.counts_equal)]
        for check in checks:
            static, live = result.static[check], result.live[check]
            cells += [_mib(static, 2), _mib(live, 2), f"{static / live - 1:+.1%}"]
            if check in result.allocator:
                allocator = result.allocator[check]
                cells += [_mib(allocator, 2), f"{static / allocator - 1:+.1%}"]
            else:
                cells += ["—", "—"]
        print(f"| {case.name} | " + " | ".join(cells) + " |", flush=True)
        notes += [f"- {case.name}: {difference}" for difference in result.differences]
        if result.analysis_allocated or result.differences:
            notes.append(f"- {case.name}: captured by {result.capture}")
    if notes:
        print("\nWhere the analysis allocated device memory or counted otherwise than on CPU:\n" + "\n".join(notes))
    return 1 if failed else 0


def _name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", action="store_true", help="memory_cpu.py's sixteen cases")
    parser.add_argument("--device", default="cuda", help="where --cases runs (cpu: a dry run, no allocator figures)")
    options = parser.parse_args()
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    if options.cases and (options.device == "cpu" or torch.cuda.is_available()):
        status = cases_table(torch.device(options.device))
    else:
        status = main()
    print(f"\n({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    sys.exit(status)
