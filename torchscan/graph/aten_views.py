"""ATen view ops on fake tensors run by their C++ meta kernels, below autograd.

FakeTensor's dispatch of a view op costs 100–500 µs: ``aten.view``, ``_unsafe_view`` and
``_reshape_alias`` go through Python references (``_reshape_view_helper``, ``slice`` through its
decomposition), every op through output wrapping and device logic. Recording a composite call at
the ATen level (Swin's shifted-window attention: hundreds of views in its forward and backward)
spent most of its time there. A view's result is metadata over its input's storage: the op run on
a plain meta alias of the input (same storage, no dispatch) gives it, wrapped as a fake tensor of
the input's mode and device, on the same storage, as FakeTensor's own path returns it.

For use inside a ``TorchDispatchMode`` (below autograd, which then makes the result a view of its
input as it does for any kernel's): :func:`aten_view` answers a view op on one fake tensor with plain
arguments, None for anything else (the caller dispatches as always).
"""

from __future__ import annotations

from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch.utils._mode_utils import no_dispatch

__all__ = ["aten_view"]

_ALSO = frozenset({torch.ops.aten._unsafe_view.default})
"""Ops that return their input's storage without being tagged as views."""


def _plain(value: Any) -> bool:
    if value is None or type(value) in (int, bool, float, torch.dtype, torch.memory_format):
        return True
    if type(value) in (tuple, list, torch.Size):
        return all(_plain(item) for item in value)
    return False


def aten_view(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The result of the ATen view op ``func`` on a fake tensor, by its meta kernel; None where this
    does not apply (not a view op, another kind of input, a tensor or symbolic argument)."""
    if not (getattr(func, "is_view", False) or func in _ALSO) or not args:
        return None
    x = args[0]
    if type(x) is not FakeTensor or x.layout != torch.strided or x.constant is not None:
        return None
    if not all(_plain(value) for value in args[1:]) or not all(_plain(value) for value in kwargs.values()):
        return None
    try:
        with no_dispatch():
            alias = x.as_strided(x.shape, x.stride(), x.storage_offset())  # plain meta, same storage
            out = func(alias, *args[1:], **kwargs)
    except (RuntimeError, IndexError, TypeError, ValueError):  # torch's own error comes from the dispatch
        return None
    if isinstance(out, torch.Tensor):
        return FakeTensor(x.fake_mode, out, x.fake_device)
    if isinstance(out, (tuple, list)) and all(isinstance(item, torch.Tensor) for item in out):
        return type(out)(FakeTensor(x.fake_mode, item, x.fake_device) for item in out)
    return None
