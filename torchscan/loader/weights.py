"""Module weights made on the ``meta`` device as a builder registers them (:func:`meta_weights`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_parameter_registration_hook,
)
from torch.nn.parameter import UninitializedTensorMixin
from torch.overrides import TorchFunctionMode

from torchscan.errors import CaptureError
from torchscan.graph.capture import DEFAULT_REAL_FORWARD_LIMIT, state_bytes
from torchscan.render.units import format_bytes

__all__ = ["meta_weights", "real_forward_refused"]


def _meta_parameter(module: nn.Module, name: str, parameter: nn.Parameter | None) -> nn.Parameter | None:
    if type(parameter) is not nn.Parameter or parameter.device.type == "meta":  # None, lazy, subclasses: as is
        return None
    return nn.Parameter(parameter.detach().to("meta"), requires_grad=parameter.requires_grad)


def _meta_buffer(module: nn.Module, name: str, buffer: torch.Tensor | None) -> torch.Tensor | None:
    if (
        type(buffer) is not torch.Tensor
        or isinstance(buffer, UninitializedTensorMixin)
        or buffer.device.type == "meta"
        or buffer.is_quantized
    ):
        return None
    return buffer.to("meta")


class _EmptyOnMeta(TorchFunctionMode):
    """``torch.empty`` on the ``meta`` device, whatever device it is asked for: the allocation torch's layers make
    their weights with before registering them (``nn.Linear``, ``nn.Embedding``), and nothing else's values."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func is torch.empty:
            kwargs = {**(kwargs or {}), "device": "meta"}
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def meta_weights() -> Iterator[None]:
    """Every parameter and buffer a module registers while this is open is moved to the ``meta`` device.

    torch's registration hooks (``register_module_parameter_registration_hook``, ``…_buffer_…``)
    replace each one as it is registered, so the initialisation that follows (``reset_parameters``)
    runs on meta tensors: no memory, no arithmetic. Unlike ``with torch.device("meta")``, a builder
    that computes its configuration with tensors (torchvision's RegNets: ``torch.arange(...).tolist()``)
    still works. ``torch.empty``, which torch's layers allocate their weights with before registering them,
    makes meta tensors too (in this thread): a layer's weights never take memory, not even for a moment (a
    256,000-token embedding of 8,192 dims would take 8 GiB; ``hf:cohere`` failed so under the zoo's memory
    limit). The hooks are process-wide while open: a module registered by another thread then
    gets meta weights too; this is for the command line, one model at a time.
    """
    parameters = register_module_parameter_registration_hook(_meta_parameter)
    buffers = register_module_buffer_registration_hook(_meta_buffer)
    try:
        with _EmptyOnMeta():
            yield
    finally:
        parameters.remove()
        buffers.remove()


def real_forward_refused(
    error: Exception, spec: str, model: nn.Module, allowed: bool, limit: int | None
) -> CaptureError | None:
    """``error`` (a capture on meta weights that only a real forward could make) told why that real forward would
    be refused before real weights are built (``allowed``, ``limit``: the real-forward policy; None: the analysis's
    default limit), or None where it may run: building them would take that memory first, and a refused forward
    would leave them unused (``hf:llava``'s 25.8 GiB were built, then killed by the OOM killer, before the command
    line said no)."""
    if not allowed:
        refusal = "--no-real-forward forbids it"
    else:
        limit = DEFAULT_REAL_FORWARD_LIMIT if limit is None else int(limit)
        weights = state_bytes(model)
        if weights <= limit:
            return None
        refusal = (
            f"its parameters and buffers alone take {format_bytes(weights)} (a copy of them more for the forward), "
            f"above the limit of {format_bytes(limit)}: nothing was built (raise it with --real-forward-limit)"
        )
    return CaptureError(f"{error}. Only a real forward pass could capture {spec}; {refusal}")
