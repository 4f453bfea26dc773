"""The capture chain: torch.fx first, then a recorded forward on fake tensors; shapes for either.

Whatever captured the model, the result is the same kind of fx graph with shapes of every node,
so the passes do not care. The capture used is named in the report's context and a fallback is
explained in a diagnostic.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from torchscan.errors import CaptureError, ShapeError
from torchscan.graph.calls import module_path_of
from torchscan.graph.record import record
from torchscan.graph.script import is_scripted, record_scripted
from torchscan.graph.shapes import NodeValues, propagate, quiet_fake_tensor_log
from torchscan.graph.trace import Capture, capture, drop_hooks, fake_copy
from torchscan.inputs import InputSpec, ModelInputs
from torchscan.ops.registry import Registry
from torchscan.report import Diagnostic

__all__ = ["Captured", "capture_with_fallback"]


@dataclass(frozen=True, slots=True)
class Captured:
    """A captured graph, the described values of its nodes, and what the capture had to give up."""

    capture: Capture
    values: dict[str, NodeValues]
    diagnostics: tuple[Diagnostic, ...]


def _propagate(captured: Capture, inputs: ModelInputs, device: torch.device) -> dict[str, NodeValues]:
    graph_module = captured.graph_module
    paths = {node.name: module_path_of(node) for node in graph_module.graph.nodes}
    with captured.fake_mode:
        tensors = [_tensor(spec, device, real=False) for spec in inputs.specs]
        return propagate(graph_module, tensors, paths, fakes=captured.fakes)


def capture_with_fallback(model: nn.Module, registry: Registry, inputs: ModelInputs, device: torch.device) -> Captured:
    """:func:`capture_chain` with autograd on, whatever the caller's mode (``no_grad`` and
    ``inference_mode`` send some modules, e.g. ``nn.MultiheadAttention``, down other paths)."""
    with torch.inference_mode(False), torch.enable_grad():
        return capture_chain(model, registry, inputs, device)


def capture_chain(model: nn.Module, registry: Registry, inputs: ModelInputs, device: torch.device) -> Captured:
    """torch.fx first; else record one forward on fake tensors; else (data-dependent ops such as
    NMS) record one real forward on a copy of the model.

    A shape error from a traced graph is re-checked by a recorded forward (fx graphs can be wrong
    where Python control flow depends on values): if that works its graph is used; if every
    capture fails, the first error stands. A TorchScript module is recorded at the ATen level.
    """
    if is_scripted(model):
        captured, values = record_scripted(model, registry, inputs, _make_inputs(inputs, device, real=False))
        return Captured(captured, values, (Diagnostic("scripted-module", _SCRIPTED),))
    try:
        traced = capture(model, registry, inputs)
        return Captured(traced, _propagate(traced, inputs, device), ())
    except CaptureError as error:
        reason = f"the torch.fx capture failed ({error})"
        first_error: Exception = error
    except ShapeError as error:
        reason = f"the torch.fx graph failed shape propagation ({error.message.splitlines()[0]})"
        first_error = error
    try:
        captured, values = _record_fake(model, registry, inputs, device)
        return Captured(captured, values, (Diagnostic("capture-fallback", f"{reason}; {_RECORDED}"),))
    except CaptureError as error:
        fake_error = error
    if device.type == "meta":
        raise first_error from None
    try:
        captured, values = _record_real(model, registry, inputs, device)
    except CaptureError:
        raise first_error from None
    message = (
        f"{reason}; recording on fake tensors failed too ({fake_error}); captured by ONE REAL forward pass "
        f"on a copy of the model with random inputs: {_RECORDED}, and this analysis did real arithmetic "
        "(its time and memory grow with the input)"
    )
    return Captured(captured, values, (Diagnostic("capture-fallback", message),))


_SCRIPTED = (
    "a TorchScript module hides its Python code from tracing and hooks: one forward of a copy was recorded "
    "op by ATen op on fake tensors; shapes and counts are exact for this input, but every op is attributed "
    "to the root module (sub-module rows show their parameters only)"
)

_RECORDED = (
    "captured instead by recording one forward pass: Python control flow is fixed to this input "
    "(branches not taken are absent) and size arithmetic is constant"
)


def _tensor(spec: InputSpec, device: torch.device, real: bool) -> torch.Tensor:
    """An input tensor for ``spec`` on ``device``: empty (fake), or for the real forward a copy of
    the example tensor, else random floats / zeros (token ids, masks)."""
    example = spec.example
    if real and example is not None and example.device.type != "meta":
        return example.detach().clone().to(device)
    if real and spec.dtype.is_floating_point:
        return torch.randn(spec.shape, dtype=spec.dtype, device=device)
    if real:
        return torch.zeros(spec.shape, dtype=spec.dtype, device=device)
    return torch.empty(spec.shape, dtype=spec.dtype, device=device)


def _make_inputs(
    inputs: ModelInputs, device: torch.device, real: bool
) -> Callable[[], tuple[tuple[Any, ...], dict[str, Any], list[tuple[str, torch.Tensor]]]]:
    def make() -> tuple[tuple[Any, ...], dict[str, Any], list[tuple[str, torch.Tensor]]]:
        args, kwargs, tensors = inputs.build(lambda spec: _tensor(spec, device, real))
        names = [spec.name or "input" for spec in inputs.specs]
        return args, kwargs, list(zip(names, tensors, strict=True))

    return make


def _record_fake(
    model: nn.Module, registry: Registry, inputs: ModelInputs, device: torch.device
) -> tuple[Capture, dict[str, NodeValues]]:
    fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
    clone = fake_copy(model, fake_mode)
    with quiet_fake_tensor_log():  # a failure here is reported by the fallback's diagnostic
        return record(clone, registry, fake_mode, _make_inputs(inputs, device, real=False))


def _record_real(
    model: nn.Module, registry: Registry, inputs: ModelInputs, device: torch.device
) -> tuple[Capture, dict[str, NodeValues]]:
    try:
        clone = copy.deepcopy(model)
    except Exception as error:
        raise CaptureError(f"cannot copy {type(model).__name__}: {error}") from error
    for module in clone.modules():
        drop_hooks(module)
    return record(clone, registry, torch.no_grad(), _make_inputs(inputs, device, real=True), "real-forward")
