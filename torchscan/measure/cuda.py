"""One real forward on a CUDA device: measured peak, framework overhead, error of the static peak.

Never faked: without CUDA the measurement says so and holds no numbers. The user's model is
left as found — it is run in place only when it already sits on CUDA in eval mode (a no-grad
eval forward changes no state); otherwise a deep copy is run (train-mode BatchNorm would
update its running statistics, a CPU model must be copied to the device).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from torchscan.measure import private_copy
from torchscan.records.frozen import frozen_record

__all__ = ["CudaMeasurement", "measure_cuda", "measure_cuda_training"]


@frozen_record
class CudaMeasurement:
    """What one real forward used on ``device`` (bytes).

    ``activation_peak_bytes = max_memory_allocated − allocated before the inputs`` (inputs
    included, like the static peak); ``overhead_bytes = (total − free) − reserved``: the CUDA
    context and framework libraries outside the caching allocator; ``device_used_bytes = total −
    free`` after the forward. ``relative_error = static / measured − 1`` of the activation peak.
    """

    available: bool
    note: str
    device: str = ""
    activation_peak_bytes: int = 0
    allocated_peak_bytes: int = 0
    reserved_bytes: int = 0
    overhead_bytes: int = 0
    device_used_bytes: int = 0
    static_activation_peak_bytes: int = 0
    relative_error: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _inputs(shapes: Sequence[Sequence[int]], dtypes: Sequence[torch.dtype], device: torch.device) -> list[torch.Tensor]:
    """Seeded random inputs from a private generator (the global RNG is not advanced)."""
    generator = torch.Generator(device=device).manual_seed(0)
    return [
        torch.randn(tuple(shape), dtype=dtype, device=device, generator=generator)
        if dtype.is_floating_point
        else torch.zeros(tuple(shape), dtype=dtype, device=device)
        for shape, dtype in zip(shapes, dtypes, strict=True)
    ]


def _first_device(model: nn.Module) -> torch.device | None:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return None


def measure_cuda(
    model: nn.Module,
    shapes: Sequence[Sequence[int]],
    dtypes: Sequence[torch.dtype],
    static_activation_peak: int,
    call: Callable[[Sequence[torch.Tensor]], tuple[tuple[Any, ...], dict[str, Any]]] | None = None,
) -> CudaMeasurement:
    """Run one no-grad forward with random inputs of ``shapes`` on CUDA and measure it (``call`` makes the model's
    arguments and keyword arguments of those inputs; None: the inputs positional)."""
    if not torch.cuda.is_available():
        return CudaMeasurement(available=False, note="no CUDA device: memory not measured (static estimates only)")
    own = _first_device(model)
    notes = []
    if own is not None and own.type == "cuda" and not model.training:
        runner, device = model, own
    else:
        device = own if own is not None and own.type == "cuda" else torch.device("cuda")
        if own is not None and own.type == "cuda":
            notes.append("train mode: a copy was run so BatchNorm statistics are not updated")
        runner = private_copy(model).to(device)
    with torch.cuda.device(device):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        inputs = _inputs(shapes, dtypes, device)
        torch.cuda.reset_peak_memory_stats()
        with torch.no_grad(), torch.random.fork_rng(devices=[device], device_type="cuda"):
            torch.manual_seed(0)  # ops that draw (dropout) are deterministic; the caller's RNG is restored
            args, kwargs = call(inputs) if call is not None else (tuple(inputs), {})
            output = runner(*args, **kwargs)
            del args, kwargs
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
        allocated_peak = torch.cuda.max_memory_allocated()
        reserved = torch.cuda.memory_reserved()
        free, total = torch.cuda.mem_get_info()
        del output, inputs
    used = total - free
    error = static_activation_peak / peak - 1 if peak > 0 else None
    return CudaMeasurement(
        available=True,
        note="; ".join(notes) or "one no-grad forward with random inputs",
        device=f"{device} ({torch.cuda.get_device_name(device)})",
        activation_peak_bytes=peak,
        allocated_peak_bytes=allocated_peak,
        reserved_bytes=reserved,
        overhead_bytes=used - reserved,
        device_used_bytes=used,
        static_activation_peak_bytes=static_activation_peak,
        relative_error=error,
    )


def measure_cuda_training(
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
    loss: Callable[[Any], torch.Tensor] | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> int:
    """``max_memory_allocated`` of a steady-state (second) training step of a CUDA copy of
    ``model`` (``zero_grad(set_to_none=True)``, forward, backward, step), all bytes included:
    parameters, gradients, optimizer state, activations. ``inputs`` (and the tensors of ``kwargs``,
    passed by keyword) must be on CUDA; ``loss`` defaults to the output's sum."""
    device = inputs[0].device
    clone = private_copy(model).to(device).train()
    opt = optimizer(clone.parameters())
    loss = loss or (lambda out: out.float().sum())

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        value = loss(clone(*inputs, **(kwargs or {})))
        value.backward()
        del value
        opt.step()

    step()
    opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device)
