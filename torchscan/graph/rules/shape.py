"""Shape rules of views (run by the ops' own meta kernels), identity and concatenation."""

from __future__ import annotations

import collections
import math
import operator
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils._mode_utils import no_dispatch

from torchscan.graph.fake import fake_tensor
from torchscan.graph.rules.common import SEQUENCES, bound, fresh, meta_stand_in, plain, strided_fake, trained_parameter
from torchscan.graph.rules.table import Answer, Fresh, Pending, RuleTable, is_tensor

__all__ = ["TABLE"]

TABLE = RuleTable("shape")


_VIEW_METHODS = (
    "view",
    "reshape",
    "permute",
    "transpose",
    "flatten",
    "unflatten",
    "contiguous",
    "unsqueeze",
    "squeeze",
    "expand",
    "chunk",
    "split",
    "unbind",
    "narrow",
    "select",
    "movedim",
    "t",
    "__getitem__",
)
"""Tensor methods answered by :func:`_view` (looked up on ``torch.Tensor``: fx's method targets)."""


@TABLE.register(
    *(getattr(torch.Tensor, name) for name in _VIEW_METHODS),
    operator.getitem,
    torch.flatten,
    torch.reshape,
    torch.permute,
    torch.transpose,
    torch.squeeze,
    torch.unsqueeze,
    torch.chunk,
    torch.split,
    torch.unbind,
    torch.narrow,
    torch.select,
    torch.movedim,
    torch.t,
)
def _view(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """A view-like op on one fake tensor that does not require grad, with plain (int, slice, None,
    Ellipsis…) arguments: the op run by its meta kernel without the FakeTensor dispatch, the result(s)
    wrapped as fakes (the argument itself where torch returns it). ``getitem`` of a tuple, list or
    size by an int or a slice (``b, c, h, w = x.shape``, a chunk of ``chunk``) is the item(s) itself."""
    if not args:
        return None
    if function is operator.getitem and type(args[0]) in SEQUENCES:
        if len(args) != 2 or kwargs or type(args[1]) not in (int, slice):
            return None
        return args[0][args[1]]  # an index out of range raises: dispatched, Python's error
    if not strided_fake(args[0]):
        return None
    x = args[0]
    if trained_parameter(x) or (x.requires_grad and function in _SEVERAL):
        # a view of a parameter that requires grad, or one of several views (``split``): autograd refuses
        # an in-place op on it, and only the dispatch makes a view autograd knows. A view of a result that
        # requires grad is its view by the meta kernel, without grad: the shape pass's values carry no
        # autograd graph (a layer's rule answers without one too), so one grad tensor does not send
        # every op after it to FakeTensor's dispatch
        return None
    if not all(_plain_argument(value) for value in (*args[1:], *kwargs.values())):
        return None
    base = x.meta() if type(x) is Pending else x
    try:
        with no_dispatch():
            # a plain meta alias of the same storage, sizes and strides, without grad: its views carry no
            # autograd graph, so no ``no_grad`` is needed (a third of the rule's time)
            alias = base.detach()
            out = function(alias, *args[1:], **kwargs)
    except (RuntimeError, IndexError, TypeError, ValueError):  # torch's own error comes from the dispatch
        return None
    if isinstance(out, torch.Tensor):  # the argument itself where torch returns it (contiguous(), flatten(1, 1))
        return x if out is alias else fake_tensor(x.fake_mode, out, x.device)
    if isinstance(out, (tuple, list)) and all(isinstance(item, torch.Tensor) for item in out):
        return type(out)(x if item is alias else fake_tensor(x.fake_mode, item, x.device) for item in out)
    return None


_SEVERAL = frozenset(
    {
        torch.Tensor.chunk,
        torch.Tensor.split,
        torch.Tensor.unbind,
        torch.chunk,
        torch.split,
        torch.unbind,
    }
)
"""Views made several at once: autograd refuses an in-place op on any of them (a multi-output view)."""


def _plain_argument(value: Any) -> bool:
    """An int, a slice of ints, None, Ellipsis, a memory format, or a tuple/list of these."""
    if value is None or value is Ellipsis or type(value) in (int, bool, torch.memory_format):
        return True
    if type(value) is slice:
        return all(part is None or type(part) is int for part in (value.start, value.stop, value.step))
    if type(value) in SEQUENCES:
        return all(_plain_argument(item) for item in value)
    return False


@TABLE.register(operator.setitem, torch.Tensor.__setitem__)
def _setitem(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """``x[index] = value`` into a fake tensor that requires no grad, by integers, slices, ``None``, ``...``
    and integer index tensors, of a value of its device: checked by torch's own indexing on plain meta
    tensors of the operands' shapes and strides (~6 µs where the FakeTensor dispatch takes ~1 ms: Swin3D's
    attention mask is 27 writes a block), its result the tensor written, as the shape pass gives any index
    write (:func:`~torchscan.graph.writes.written`). A mask (its count is data) is left to the dispatch."""
    if len(args) != 3 or kwargs or not strided_fake(args[0]) or args[0].requires_grad:
        return None
    destination, index, value = args
    with no_dispatch(), torch.no_grad():
        try:
            stand_ins = [meta_stand_in(item, destination.device) for item in (destination, index, value)]
        except ValueError:
            return None
        try:
            function(*stand_ins)
        except (RuntimeError, IndexError, ValueError, TypeError):  # torch's own error comes from the dispatch
            return None
    return destination


@TABLE.register(torch.Tensor.reshape_as, torch.Tensor.view_as)
def _as(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """``x.reshape_as(other)`` / ``x.view_as(other)``: :func:`_view` of ``reshape`` / ``view`` to
    ``other``'s shape."""
    if len(args) != 2 or kwargs or not is_tensor(args[1]):  # only its shape is read
        return None
    view = torch.Tensor.reshape if function is torch.Tensor.reshape_as else torch.Tensor.view
    return _view(view, (args[0], tuple(int(size) for size in args[1].shape)), {})


@TABLE.register(nn.Flatten, nn.Unflatten)
def _flatten_module(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """``nn.Flatten(start_dim, end_dim)`` / ``nn.Unflatten(dim, sizes)`` of one input: :func:`_view` of
    ``torch.flatten`` / ``Tensor.unflatten`` (a view where torch makes one, a copy where it cannot)."""
    if len(args) != 1 or kwargs:
        return None
    if isinstance(module, nn.Flatten):
        return _view(torch.flatten, (args[0], module.start_dim, module.end_dim), {})
    return _view(torch.Tensor.unflatten, (args[0], module.dim, module.unflattened_size), {})


_PAD = ("input", "pad", "mode", "value")


@TABLE.register(F.pad)
def _pad(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``F.pad(x, pad, mode="constant", value=None)`` of a contiguous tensor: from the last dim on, each
    dim grows by its pair ``pad[2i] + pad[2i+1]`` (negative pads crop), a new contiguous tensor; a crop past
    a dim's size, a result size below 1, a value other than a number, other modes: torch's."""
    call = bound(_PAD, args, kwargs)
    if call is None:
        return None
    x, pad, value = call.get("input"), call.get("pad"), call.get("value")
    if call.get("mode", "constant") != "constant" or not plain(x) or type(pad) not in SEQUENCES:
        return None
    if not all(type(size) is int for size in pad) or len(pad) % 2 or len(pad) // 2 > x.dim():
        return None
    if value is not None and type(value) not in (int, float):
        return None
    shape = list(x.shape)
    for index in range(len(pad) // 2):
        before, after = pad[2 * index], pad[2 * index + 1]
        if shape[-1 - index] + min(before, 0) + min(after, 0) < 0:  # torch crops the input first
            return None
        shape[-1 - index] += before + after
    return fresh(shape, x) if min(shape, default=1) >= 1 else None


@TABLE.register(nn.Identity)
def _identity(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.Identity``: its argument, whatever its layout."""
    return args[0] if len(args) == 1 and not kwargs and strided_fake(args[0]) else None


@TABLE.register(torch.cat)
def _cat(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``torch.cat(tensors, dim=0)``: sizes add along ``dim``, every other size equal; a new contiguous
    tensor of contiguous inputs, or of inputs of at most 3 dims with any strides (torch lays a result
    out in its inputs' memory format only where all are channels-last, which needs 4 dims)."""
    extra = dict(kwargs)
    if not args or len(args) > 2 or (len(args) == 2 and "dim" in extra):
        return None
    dim = args[1] if len(args) == 2 else extra.pop("dim", 0)
    tensors = args[0]
    if extra or type(dim) is not int or not isinstance(tensors, (tuple, list)) or not tensors:
        return None
    first = tensors[0]
    if first.dim() == 0 or not all(plain(tensor) or (strided_fake(tensor) and first.dim() <= 3) for tensor in tensors):
        return None  # strided 4-D/5-D inputs may give a channels-last result: torch decides
    if any(t.dtype != first.dtype or t.device != first.device or t.dim() != first.dim() for t in tensors):
        return None
    rank = first.dim()
    if not -rank <= dim < rank:
        return None
    dim %= rank
    if any(t.shape[:dim] != first.shape[:dim] or t.shape[dim + 1 :] != first.shape[dim + 1 :] for t in tensors):
        return None
    shape = list(first.shape)
    shape[dim] = sum(int(t.shape[dim]) for t in tensors)
    return fresh(shape, first)


@TABLE.register(torch.Tensor.to)
def _to(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``x.to(dtype)`` / ``x.to(dtype=…)``: ``x`` itself when it already has that dtype (whatever its
    strides: torch returns the tensor it was given), else, for a contiguous ``x``, a new contiguous
    tensor of that dtype (a device, ``copy``, a memory format, a strided ``x`` cast: torch decides)."""
    extra = dict(kwargs)
    if len(args) == 2 and not extra:
        dtype = args[1]
    elif len(args) == 1 and set(extra) == {"dtype"}:
        dtype = extra["dtype"]
    else:
        return None
    x = args[0]
    if type(dtype) is not torch.dtype or not strided_fake(x):
        return None
    if dtype == x.dtype:
        return x
    return Fresh(tuple(x.shape), dtype, x.device) if plain(x) else None


@TABLE.register(torch.Tensor.type_as)
def _type_as(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``x.type_as(other)`` where ``other`` has ``x``'s dtype and device: ``x`` itself (torch returns the
    tensor it was given); a cast is torch's."""
    if kwargs or len(args) != 2:
        return None
    x, other = args
    if not (strided_fake(x) and strided_fake(other)):
        return None
    return x if x.dtype == other.dtype and x.device == other.device else None


_ARANGE_DEVICES = frozenset({"cpu", "meta"})
_ARANGE_DTYPES = {
    torch.int64: (-(2**63), 2**63 - 1),
    torch.int32: (-(2**31), 2**31 - 1),
    torch.float32: (-(2**24), 2**24),
    torch.float64: (-(2**53), 2**53),
}
"""The dtypes :func:`_arange` answers for, each with the bounds it represents exactly."""


@TABLE.register(torch.arange)
def _arange(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``torch.arange([start,] end[, step], dtype=…, device=…)`` with integer bounds and the device
    given (CPU or meta): ``⌈(end − start) / step⌉`` values (none when negative), int64 unless ``dtype``
    says otherwise; anything else (float bounds, no device, ``requires_grad``) is torch's."""
    extra = dict(kwargs)
    device, dtype = extra.pop("device", None), extra.pop("dtype", None)
    if extra or not 1 <= len(args) <= 3 or not all(type(arg) is int for arg in args):
        return None
    start, end, step = (0, args[0], 1) if len(args) == 1 else (args[0], args[1], args[2] if len(args) == 3 else 1)
    if isinstance(device, str):
        device = torch.device(device)
    if not isinstance(device, torch.device) or device.type not in _ARANGE_DEVICES or step == 0:
        return None
    if dtype is None:
        dtype = torch.int64
    low, high = _ARANGE_DTYPES.get(dtype, (1, 0))
    if not low <= min(start, end) <= max(start, end) <= high:
        return None
    if (step > 0 and end < start) or (step < 0 and end > start):
        return None  # torch refuses a step of the wrong sign
    return Fresh((-(-(end - start) // step),), dtype, device)


_METADATA = frozenset({"shape", "dtype", "device", "ndim"})
"""Tensor attributes :func:`_metadata` reads (what size arithmetic and dtype checks ask)."""


@TABLE.register(getattr, torch.Tensor.size, torch.Tensor.dim, torch.Tensor.numel)
def _metadata(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """``x.shape`` / ``x.dtype`` / ``x.device`` / ``x.ndim`` (fx's ``getattr`` nodes), ``x.size()``,
    ``x.size(d)``, ``x.dim()``, ``x.numel()`` of a dense tensor: read off it, so a pending tensor is
    never made for them. A dim out of range, or anything else, is torch's."""
    if not args or not strided_fake(args[0]):
        return None
    x, rest = args[0], args[1:]
    if function is getattr:
        if kwargs or len(rest) != 1 or type(rest[0]) is not str or rest[0] not in _METADATA:
            return None
        return torch.Size(x.shape) if rest[0] == "shape" else getattr(x, rest[0])
    if function is torch.Tensor.size:
        extra = dict(kwargs)
        if len(rest) > 1 or (rest and extra) or set(extra) - {"dim"}:
            return None
        dim = rest[0] if rest else extra.get("dim")
        if dim is None:
            return torch.Size(x.shape)
        rank = len(x.shape)
        if type(dim) is not int or not -rank <= dim < rank:
            return None
        return int(x.shape[dim])
    if rest or kwargs:
        return None
    return len(x.shape) if function is torch.Tensor.dim else math.prod(x.shape)


@TABLE.register(torch.Tensor.register_hook)
def _register_hook(method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """``x.register_hook(hook)`` (a gradient hook a forward registers: Grad-CAM keeping an activation's gradient):
    an inert handle, nothing registered — the analysis runs no backward of the forward's values, and the tensors a
    rule answers require no grad (torch would refuse the hook there, where the model's own forward takes it)."""
    call = bound(("self", "hook"), args, kwargs)
    if call is None or not is_tensor(call.get("self")) or not callable(call.get("hook")):
        return None
    return torch.utils.hooks.RemovableHandle(collections.OrderedDict())  # of no dict: remove() does nothing
