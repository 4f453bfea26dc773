"""Checks and helpers the shape rules share (a rule declines unless its arguments are plain)."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.fx.immutable_collections import immutable_list
from torch.utils._mode_utils import no_dispatch
from torch.utils._python_dispatch import _disable_current_modes

from torchscan.graph.aten_meta import pattern_value, readable, value_kind
from torchscan.graph.fake import fake_tensor
from torchscan.graph.rules.table import Answer, Fresh, Pending

__all__ = [
    "SEQUENCES",
    "as_tuple",
    "bound",
    "broadcast",
    "fresh",
    "in_place",
    "like",
    "meta_stand_in",
    "one_input",
    "plain",
    "strided_fake",
    "strided_pointwise",
    "trained_parameter",
    "window_size",
]


SEQUENCES = frozenset({tuple, list, immutable_list, torch.Size})
"""The exact types of a sequence argument a rule reads item by item: fx hands every list of a node's
arguments over as its ``immutable_list`` (``x.split([16, 16, 32], dim=3)``, ``torch.cat([a, b])``)."""


def plain(value: Any) -> bool:
    """A fake, dense, contiguous tensor (or a :class:`Pending` one)."""
    return type(value) is Pending or (
        type(value) is FakeTensor and value.layout == torch.strided and value.is_contiguous()
    )


def strided_fake(value: Any) -> bool:
    """A fake, dense (strided) tensor, of any strides (or a :class:`Pending` one)."""
    return type(value) is Pending or (type(value) is FakeTensor and value.layout == torch.strided)


def trained_parameter(value: torch.Tensor) -> bool:
    """A parameter's fake (``isinstance(fake, nn.Parameter)``, as ``FakeTensor`` marks it) that requires
    grad. Any other tensor that requires grad is a result: rules answer for it without an autograd graph
    (their results require no grad, as a layer's rule's never did)."""
    return value.requires_grad and bool(getattr(value, "_is_param", False))


def in_place(x: torch.Tensor) -> torch.Tensor | None:
    """``x`` as the result of an in-place op on it (None where torch refuses: a leaf requiring grad)."""
    return None if x.requires_grad and x.is_leaf else x


def like(tensor: torch.Tensor, *others: torch.Tensor | None) -> bool:
    """``tensor`` is plain and every other tensor (parameters) matches its dtype and device."""
    return plain(tensor) and all(
        other is None or (other.dtype == tensor.dtype and other.device == tensor.device) for other in others
    )


def fresh(shape: Sequence[int], like: torch.Tensor) -> Fresh | None:
    shape = tuple(int(size) for size in shape)
    return Fresh(shape, like.dtype, like.device) if all(size >= 0 for size in shape) else None


def one_input(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> torch.Tensor | None:
    """The single positional tensor of a module call (``None`` if called otherwise)."""
    return args[0] if len(args) == 1 and not kwargs and plain(args[0]) else None


def bound(
    names: Sequence[str], args: tuple[Any, ...], kwargs: Mapping[str, Any], keywords: Sequence[str] = ()
) -> dict[str, Any] | None:
    """A call's arguments by parameter name (``names`` by position or keyword, in order; ``keywords`` by
    keyword only), or None when one is unknown, given twice or one too many: torch's error to raise."""
    if len(args) > len(names) or any(name not in names and name not in keywords for name in kwargs):
        return None
    if any(name in kwargs for name in names[: len(args)]):
        return None
    return {**dict(zip(names, args, strict=False)), **kwargs}


def as_tuple(value: Any, dims: int) -> tuple[int, ...]:
    return tuple(int(item) for item in value) if isinstance(value, (tuple, list)) else (int(value),) * dims


def window_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil: bool) -> int:
    """Pool/conv output length: ``⌊(L + 2p − d(k − 1) − 1)/s⌋ + 1`` (``⌈·⌉`` with ``ceil_mode``,
    minus one when the last window would start in the right padding)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def broadcast(shapes: Sequence[Sequence[int]]) -> tuple[int, ...] | None:
    """The broadcast shape, or None when the shapes do not broadcast."""
    rank = max(len(shape) for shape in shapes)
    out = []
    for position in range(rank):
        sizes = {shape[position - rank + len(shape)] for shape in shapes if position - rank + len(shape) >= 0}
        sizes.discard(1)
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _strides_in(order: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    """The dense strides of ``shape`` with its dims laid out in ``order`` (innermost first)."""
    stride, step = [0] * len(shape), 1
    for dim in order:
        stride[dim] = step
        step *= shape[dim]
    return tuple(stride)


def _row_major(shape: Sequence[int]) -> tuple[int, ...]:
    return _strides_in(range(len(shape) - 1, -1, -1), shape)


def _memory_order(shape: tuple[int, ...], stride: tuple[int, ...]) -> tuple[int, ...] | None:
    """The dims from innermost to outermost when ``stride`` lays ``shape`` out densely in that order,
    each dim's stride the product of the sizes inner to it (a dim of size 1 too: a permuted contiguous
    tensor, channels-last); None for any other layout (gapped, overlapping, expanded)."""
    order = sorted(range(len(shape)), key=lambda dim: (stride[dim], shape[dim] != 1))
    step = 1
    for dim in order:
        if stride[dim] != step:
            return None
        step *= shape[dim]
    return tuple(order)


@functools.lru_cache(maxsize=4096)
def _pointwise_layout(
    function: Any, kinds: tuple[Any, ...], names: tuple[str, ...], device: torch.device
) -> tuple[Any, ...] | None:
    """The dtype and strides of ``function``'s result, as FakeTensor's dispatch makes it on ``device``, for
    arguments of ``kinds``: a tensor's ``(dtype, memory order, sizes)`` with its sizes 1 where the operand's
    are and 2 elsewhere, laid out in that order; a number's type; any other value itself (the last
    ``len(names)`` by keyword). None where the dispatch refuses them. A pure function of torch's op, a
    device, dtypes and layout patterns: cached for the process, nothing of a user's."""
    values: list[Any] = []
    try:
        with _disable_current_modes(), FakeTensorMode(allow_fallback_kernels=False):  # a private mode alone
            for kind in kinds:
                if type(kind) is tuple and len(kind) == 3:
                    dtype, order, sizes = kind
                    values.append(torch.empty_strided(sizes, _strides_in(order, sizes), dtype=dtype, device=device))
                else:
                    values.append(pattern_value(kind))
            positional = values[: len(values) - len(names)]
            out = function(*positional, **dict(zip(names, values[len(positional) :], strict=True)))
    except (RuntimeError, IndexError, TypeError, ValueError, NotImplementedError):
        return None
    if not isinstance(out, torch.Tensor) or _memory_order(tuple(out.shape), out.stride()) is None:
        return None
    return out.dtype, tuple(out.stride())


def strided_pointwise(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """The result of the pointwise torch function ``function`` (``operator.mul``, ``F.gelu``…) on
    tensors laid out densely in any dim order (a permuted block's output, a channels-last activation):
    a dense tensor of the broadcast shape laid out as FakeTensor's dispatch lays out the operands'
    pattern — which sizes are 1, each operand's dim order and dtype, the other arguments' types —
    learned once per pattern and device on tensors of sizes 1 and 2 (:func:`_pointwise_layout`): the
    result's dims in the learned order, each stride the product of the sizes inner to it. The kernels
    (TensorIterator, the references) decide a layout by comparing strides within an operand, sizes of 1
    against others and memory formats, all of which such a pattern keeps. A :class:`Fresh` answer where
    the layout is row-major, else a new fake tensor of the operands' fake mode and device. Tensors are
    fakes (or :class:`Pending`) of one mode and device, floating-point or bool, at least 1-D, none
    empty, none a parameter requiring grad (:func:`trained_parameter`: with grad on, its result is
    autograd's, and which kernel torch picks downstream may read that — ``scaled_dot_product_attention``
    of a mask that requires grad does; any other tensor's result here carries no autograd graph);
    other arguments numbers, None, strings, dtypes or memory formats; None otherwise (dispatched:
    FakeTensor's path, ~200–600 µs a call against ~40 here)."""
    mode = device = None
    kinds: list[Any] = []
    shapes = []
    grad_enabled = torch.is_grad_enabled()
    for value in (*args, *kwargs.values()):
        kind = type(value)
        if kind is FakeTensor or kind is Pending:
            if kind is FakeTensor and (not readable(value) or (grad_enabled and trained_parameter(value))):
                return None  # a parameter's result is autograd's (its grad read by kernel choices downstream)
            if value.dim() == 0:
                return None
            if not (value.dtype.is_floating_point or value.dtype == torch.bool):
                return None
            if mode is None:
                mode, device = value.fake_mode, value.device
            elif value.fake_mode is not mode or value.device != device:
                return None
            shape = tuple(value.shape)
            order = (
                _memory_order(shape, tuple(value.stride()))
                if kind is FakeTensor
                else tuple(range(len(shape) - 1, -1, -1))
            )
            if order is None or 0 in shape:
                return None
            shapes.append(shape)
            kinds.append((value.dtype, order, tuple(1 if size == 1 else 2 for size in shape)))
        elif (described := value_kind(value)) is not None:
            kinds.append(described)
        else:
            return None
    if mode is None:
        return None
    shape = broadcast(shapes)
    if shape is None:  # torch's own error comes from the dispatch
        return None
    learned = _pointwise_layout(function, tuple(kinds), tuple(kwargs), device)
    if learned is None:
        return None
    dtype, learned_stride = learned
    outer = [(step, size) for step, size in zip(learned_stride, shape, strict=True) if size != 1]
    stride = tuple(math.prod(size for inner, size in outer if inner < step) for step in learned_stride)
    if stride == _row_major(shape):
        return Fresh(shape, dtype, device)
    with no_dispatch():
        made = torch.empty_strided(shape, stride, dtype=dtype, device="meta")
    return fake_tensor(mode, made, device)


def meta_stand_in(value: Any, device: torch.device) -> Any:
    """A plain meta tensor of a fake's (or :class:`Pending`'s) shape, strides and dtype, in a tuple or list
    item by item, anything else as is; a ``ValueError`` for a mask, a tensor of another device or one that
    is neither."""
    if type(value) is Pending:
        if value.device != device:
            raise ValueError("another device")
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    if isinstance(value, torch.Tensor):
        if not strided_fake(value) or value.device != device or value.dtype in (torch.bool, torch.uint8):
            raise ValueError("not a fake of the destination's device, or a mask")
        return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
    if type(value) in SEQUENCES:  # a list stays a list (an index list is advanced indexing, a tuple is not)
        items = [meta_stand_in(item, device) for item in value]
        return tuple(items) if type(value) is tuple else items
    return value
