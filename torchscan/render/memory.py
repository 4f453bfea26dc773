"""Footer lines of the text table for the memory section."""

from __future__ import annotations

from torchscan.records import MemoryReport
from torchscan.render.units import format_mib

__all__ = ["memory_lines"]

_OPTIMIZER_NAMES = {"sgd": "SGD", "sgd_momentum": "SGD+momentum", "adam": "Adam", "adamw": "AdamW"}


def memory_lines(memory: MemoryReport) -> list[str]:
    """Static inference peak, the training table and the measurement (if any), one per line."""
    where = f" at '{memory.peak_node}'" + (f" ({memory.peak_module_path})" if memory.peak_module_path else "")
    lines = [
        f"Activation peak on forward (static, inputs incl.): {format_mib(memory.activation_peak_bytes)}{where}",
        f"Inference memory (model + activation peak): {format_mib(memory.inference_peak_bytes)}",
        f"Training step (saved activations {format_mib(memory.saved_activation_bytes)}), "
        "params / grads / optimizer state / peak:",
    ]
    for estimate in memory.training:
        name = _OPTIMIZER_NAMES.get(estimate.optimizer, estimate.optimizer)
        lines.append(
            f"  {name:<13} {format_mib(estimate.param_bytes + estimate.buffer_bytes)} / "
            f"{format_mib(estimate.grad_bytes)} / {format_mib(estimate.optimizer_state_bytes)} / "
            f"{format_mib(estimate.peak_bytes)} (peak in {estimate.peak_phase})"
        )
    measured = memory.measured
    if measured is not None:
        if not measured.available:
            lines.append(f"Measured: {measured.note}")
        else:
            error = f"{measured.relative_error:+.1%}" if measured.relative_error is not None else "n/a"
            lines.append(
                f"Measured on {measured.device}: activation peak {format_mib(measured.activation_peak_bytes)} "
                f"(static error {error}), allocator peak {format_mib(measured.allocated_peak_bytes)}, "
                f"CUDA context + framework {format_mib(measured.overhead_bytes)}, "
                f"device total {format_mib(measured.device_used_bytes)}"
            )
    return lines
