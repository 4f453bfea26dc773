"""The capture chain: torch.fx first, then a recorded forward on fake tensors; shapes for either.

Whatever captured the model, the result is the same kind of fx graph with shapes of every node,
so the passes do not care. The capture used is named in the report's context and a fallback is
explained in a diagnostic.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from torchscan.errors import CaptureError, ShapeError
from torchscan.graph.calls import module_path_of
from torchscan.graph.record import record
from torchscan.graph.shapes import NodeValues, propagate
from torchscan.graph.trace import Capture, capture, drop_hooks, fake_copy
from torchscan.inputs import InputSpec
from torchscan.ops.registry import Registry
from torchscan.report import Diagnostic

__all__ = ["Captured", "capture_with_fallback"]


@dataclass(frozen=True, slots=True)
class Captured:
    """A captured graph, the described values of its nodes, and what the capture had to give up."""

    capture: Capture
    values: dict[str, NodeValues]
    diagnostics: tuple[Diagnostic, ...]


def _propagate(captured: Capture, specs: Sequence[InputSpec], device: torch.device) -> dict[str, NodeValues]:
    graph_module = captured.graph_module
    paths = {node.name: module_path_of(node) for node in graph_module.graph.nodes}
    with captured.fake_mode:
        inputs = [torch.empty(spec.shape, dtype=spec.dtype, device=device) for spec in specs]
        return propagate(graph_module, inputs, paths)


def capture_with_fallback(
    model: nn.Module, registry: Registry, specs: Sequence[InputSpec], device: torch.device
) -> Captured:
    """torch.fx first; else record one forward on fake tensors; else (data-dependent ops such as
    NMS) record one real forward on a copy of the model.

    A shape error from a traced graph is re-checked by a recorded forward (fx graphs can be wrong
    where Python control flow depends on values): if that works its graph is used; if every
    capture fails, the first error stands.
    """
    try:
        traced = capture(model, registry)
        return Captured(traced, _propagate(traced, specs, device), ())
    except CaptureError as error:
        reason = f"the torch.fx capture failed ({error})"
        first_error: Exception = error
    except ShapeError as error:
        reason = f"the torch.fx graph failed shape propagation ({error.message.splitlines()[0]})"
        first_error = error
    try:
        captured, values = _record_fake(model, registry, specs, device)
        return Captured(captured, values, (Diagnostic("capture-fallback", f"{reason}; {_RECORDED}"),))
    except CaptureError as error:
        fake_error = error
    if device.type == "meta":
        raise first_error from None
    try:
        captured, values = _record_real(model, registry, specs, device)
    except CaptureError:
        raise first_error from None
    message = (
        f"{reason}; recording on fake tensors failed too ({fake_error}); captured by ONE REAL forward pass "
        f"on a copy of the model with random inputs: {_RECORDED}, and this analysis did real arithmetic "
        "(its time and memory grow with the input)"
    )
    return Captured(captured, values, (Diagnostic("capture-fallback", message),))


_RECORDED = (
    "captured instead by recording one forward pass: Python control flow is fixed to this input "
    "(branches not taken are absent) and size arithmetic is constant"
)


def _inputs(specs: Sequence[InputSpec], device: torch.device, real: bool) -> list[torch.Tensor]:
    tensors = []
    for spec in specs:
        if real and spec.dtype.is_floating_point:
            tensors.append(torch.randn(spec.shape, dtype=spec.dtype, device=device))
        else:
            tensors.append(torch.zeros(spec.shape, dtype=spec.dtype, device=device))
    return tensors


def _record_fake(
    model: nn.Module, registry: Registry, specs: Sequence[InputSpec], device: torch.device
) -> tuple[Capture, dict[str, NodeValues]]:
    fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
    clone = fake_copy(model, fake_mode)
    return record(clone, registry, fake_mode, lambda: _inputs(specs, device, real=False))


def _record_real(
    model: nn.Module, registry: Registry, specs: Sequence[InputSpec], device: torch.device
) -> tuple[Capture, dict[str, NodeValues]]:
    try:
        clone = copy.deepcopy(model)
    except Exception as error:
        raise CaptureError(f"cannot copy {type(model).__name__}: {error}") from error
    for module in clone.modules():
        drop_hooks(module)
    return record(clone, registry, torch.no_grad(), lambda: _inputs(specs, device, real=True), "real-forward")
