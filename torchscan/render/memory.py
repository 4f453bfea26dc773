"""The memory section: static activation peak, inference memory, training table, measurement.

The text table prints it as footer lines (:func:`memory_lines`); the HTML report lays out the same
cells (:func:`peak_where`, :func:`training_cells`, :func:`measured_line`).
"""

from __future__ import annotations

from types import MappingProxyType

from torchscan.records import CpuMeasurement, MemoryReport
from torchscan.render.units import format_bytes

__all__ = ["OPTIMIZER_NAMES", "TRAINING_HEADERS", "measured_line", "memory_lines", "peak_where", "training_cells"]

OPTIMIZER_NAMES = MappingProxyType({"sgd": "SGD", "sgd_momentum": "SGD+momentum", "adam": "Adam", "adamw": "AdamW"})

TRAINING_HEADERS = ("Optimizer", "Params + buffers", "Grads", "Optimizer state", "Peak", "Peak in")
"""Columns of the training table (one row per optimizer); all but the first and last are bytes."""


def peak_where(memory: MemoryReport) -> str:
    """Where the static activation peak is reached: ``"'bn1' (bn1)"`` (fx node, then module path)."""
    return f"'{memory.peak_node}'" + (f" ({memory.peak_module_path})" if memory.peak_module_path else "")


def training_cells(memory: MemoryReport) -> list[tuple[str, ...]]:
    """One row of :data:`TRAINING_HEADERS` per optimizer."""
    return [
        (
            OPTIMIZER_NAMES.get(estimate.optimizer, estimate.optimizer),
            format_bytes(estimate.param_bytes + estimate.buffer_bytes),
            format_bytes(estimate.grad_bytes),
            format_bytes(estimate.optimizer_state_bytes),
            format_bytes(estimate.peak_bytes),
            estimate.peak_phase,
        )
        for estimate in memory.training
    ]


def measured_line(memory: MemoryReport) -> str | None:
    """The real measurement in one line (or why there is none); None when none was asked for."""
    measured = memory.measured
    if measured is None:
        return None
    if not measured.available:
        return f"Measured: {measured.note}"
    if isinstance(measured, CpuMeasurement):
        steps = "; ".join(
            f"training step ({OPTIMIZER_NAMES.get(step.optimizer, step.optimizer)}) "
            f"{format_bytes(step.measured_bytes)} (static error {step.relative_error:+.1%})"
            for step in measured.training
        )
        return (
            f"Measured on cpu (live tensor bytes): activation peak {format_bytes(measured.activation_peak_bytes)} "
            f"(static error {measured.relative_error or 0:+.1%})" + (f"; {steps}" if steps else "")
        )
    error = f"{measured.relative_error:+.1%}" if measured.relative_error is not None else "n/a"
    return (
        f"Measured on {measured.device}: activation peak {format_bytes(measured.activation_peak_bytes)} "
        f"(static error {error}), allocator peak {format_bytes(measured.allocated_peak_bytes)}, "
        f"CUDA context + framework {format_bytes(measured.overhead_bytes)}, "
        f"device total {format_bytes(measured.device_used_bytes)}"
    )


def memory_lines(memory: MemoryReport) -> list[str]:
    """Static inference peak, the training table (aligned, byte columns right-aligned) and the
    measurement (if any), one per line."""
    lines = [
        f"Activation peak on forward (static, inputs incl.): {format_bytes(memory.activation_peak_bytes)} "
        f"at {peak_where(memory)}",
        f"Inference memory (model + activation peak): {format_bytes(memory.inference_peak_bytes)}",
        f"Training step, steady state (saved activations {format_bytes(memory.saved_activation_bytes)}):",
    ]
    table = [TRAINING_HEADERS, *training_cells(memory)]
    widths = [max(len(line[i]) for line in table) for i in range(len(TRAINING_HEADERS))]
    last = len(TRAINING_HEADERS) - 1
    for line in table:
        cells = [
            cell.ljust(width) if index in (0, last) else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append(("  " + "   ".join(cells)).rstrip())
    measured = measured_line(memory)
    if measured is not None:
        lines.append(measured)
    return lines
