"""ATen ops on fake tensors run by their meta kernels, below autograd.

FakeTensor's dispatch of one ATen op costs 100–1,500 µs in Python (uncached, as recordings run it):
device logic, output wrapping, and for many ops a Python decomposition (``addmm``, ``slice_backward``)
or reference (``view``, ``slice``) run op by op. Recording a composite call at the ATen level (Swin's
shifted-window attention, ``nn.MultiheadAttention``: hundreds of ops in forward and backward) spent
most of its time there. The op's meta kernel — the function the real kernel allocates its output by,
in C++ or registered in Python — run on plain meta tensors (no Python dispatch) gives the result's
metadata, wrapped as fake tensors of the inputs' mode and device. Measured per call (2-core CPU):
``clone`` 28 against 187 µs, ``bmm`` 56 / 177, ``slice_backward`` 86 / 478, ``addmm`` 431 / 1,472,
``gelu`` 510 / 693 (elementwise ops' meta kernels are Python references: the smallest gain).

- :func:`aten_view`: a view op on one fake tensor; its result on the input's storage, as
  FakeTensor's own path returns it;
- :func:`aten_pointwise`: a pointwise op (``torch.Tag.pointwise``) on floating-point or bool
  tensors: its result is a new dense tensor of the broadcast shape, of the dtype and in the dim
  order its meta kernel gives for operands of the same *pattern* — each operand's dtype, which of
  its dims have size 1, the order, ties and zeros of its strides, the other arguments' types —
  learned once per op and pattern on meta tensors of size 2 (1 where the operand's is 1) with
  strides of that order. TensorIterator and the meta kernels decide a pointwise result's layout by
  comparing strides within each operand, by broadcasting and by which sizes are 1, so the pattern
  decides it (a hypothesis property checks it against the dispatch): 30–40 µs a call where an
  elementwise op's meta kernel, a Python reference, takes 150–500 (``add`` 39 / 188, ``gelu`` 31 / 480);
- :func:`aten_new`: an op whose results are new tensors (no view, no in-place or ``out=`` write, no
  data-dependent or dynamic output shape, no special FakeTensor implementation: constructors,
  device moves, ``index``, ``nonzero``, ``item``…), every tensor argument a fake tensor of one mode
  and device; its results on new storages, or None where a result shares an input's storage;
- :func:`aten_inplace`: an op that writes its first argument and returns it (``fill_``, ``zero_``,
  ``masked_fill_``, ``add_``…): that argument, once the meta kernel has accepted the arguments
  (FakeTensor's uncached dispatch: ~300 µs a call; Swin's attention mask is built with them);
- :func:`aten_rule`: an op whose meta kernel is a slow Python reference (``roll`` ~400–600 µs,
  ``addmm`` ~300–550, ``linalg_vector_norm`` ~370–700, ``_softmax_backward_data`` ~970): its result's
  shape, strides and dtype stated from the arguments' metadata, for the arguments its rule accepts.

For use inside a ``TorchDispatchMode`` (below autograd, which then records the results as it does
for any kernel's). Each answers None wherever it does not apply (the caller dispatches as always):
another kind of argument (a real or constant tensor, a device, a symbolic size), or an error, which
the dispatch then raises as torch words it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch._prims_common import suggest_memory_format
from torch._subclasses import fake_impls
from torch._subclasses.fake_tensor import FakeTensor
from torch.utils._mode_utils import no_dispatch

from torchscan.graph.fake import fake_tensor

__all__ = [
    "aten_inplace",
    "aten_like",
    "aten_new",
    "aten_pointwise",
    "aten_rule",
    "aten_view",
    "contiguous_strides",
    "detached",
    "pattern_value",
    "readable",
    "value_kind",
]

_ALSO = frozenset({torch.ops.aten._unsafe_view.default})
"""Ops that return their input's storage without being tagged as views."""

_SPECIAL_TAGS = frozenset({torch.Tag.dynamic_output_shape, torch.Tag.data_dependent_output, torch.Tag.inplace_view})


def readable(fake: FakeTensor) -> bool:
    """A fake tensor the shortcuts may read by its metadata alone: strided, not a FakeTensor
    constant (whose value FakeTensor tracks), no symbolic size."""
    return fake.layout == torch.strided and fake.constant is None and not fake._has_symbolic_sizes_strides


def _plain(value: Any) -> bool:
    if value is None or type(value) in (int, bool, float, str, torch.dtype, torch.memory_format):
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
    if type(x) is not FakeTensor or not readable(x):
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
        return fake_tensor(x.fake_mode, out, x.fake_device)
    if isinstance(out, (tuple, list)) and all(isinstance(item, torch.Tensor) for item in out):
        return type(out)(fake_tensor(x.fake_mode, item, x.fake_device) for item in out)
    return None


_LIKE = frozenset(
    {
        torch.ops.aten.empty_like.default,
        torch.ops.aten.zeros_like.default,
        torch.ops.aten.ones_like.default,
    }
)
"""Constructors of a tensor laid out like another (the gradients a recording gives autograd, the zeros a
backward formula starts from): FakeTensor sends them through its constructor path, ~0.3–1.5 ms a call
with its dispatch cache off (as recordings run it)."""


def aten_like(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``empty_like``/``zeros_like``/``ones_like`` of one readable, row-major fake tensor, on its device:
    a new row-major meta tensor of its shape (and the dtype asked) wrapped as a fake of its mode and
    device, as FakeTensor's constructor path makes it; None elsewhere (another op, another device or a
    memory format asked, a non-strided layout, pinned memory, another layout of the input: there
    FakeTensor's reading of a size-1 dim's stride and the meta kernel's may differ)."""
    if func not in _LIKE or len(args) != 1 or type(args[0]) is not FakeTensor or not readable(args[0]):
        return None
    x = args[0]
    device = kwargs.get("device")
    if (device is not None and torch.device(device) != x.fake_device) or kwargs.get("pin_memory"):
        return None
    given = {key: value for key, value in kwargs.items() if key != "device"}
    if given.get("layout") not in (None, torch.strided) or not all(_plain(value) for value in given.values()):
        return None
    if given.get("memory_format") not in (None, torch.preserve_format, torch.contiguous_format):
        return None
    if x.stride() != contiguous_strides(tuple(x.shape)):
        return None
    with no_dispatch():
        out = torch.empty(tuple(x.shape), dtype=given.get("dtype") or x.dtype, device="meta")
    return fake_tensor(x.fake_mode, out, x.fake_device)


def detached(x: torch.Tensor) -> torch.Tensor:
    """``x.detach()``: of a readable fake tensor by the op's meta kernel (:func:`aten_view`), without
    FakeTensor's dispatch (~0.3 ms a call with its cache off); any other tensor by ``detach``."""
    made = aten_view(torch.ops.aten.detach.default, (x,), {}) if type(x) is FakeTensor else None
    return x.detach() if made is None else made


def _tensor_type(kind: Any) -> bool:
    """A schema type that is a tensor, an optional tensor or a list of (optional) tensors."""
    if isinstance(kind, torch.OptionalType | torch.ListType):
        return _tensor_type(kind.getElementType())
    return isinstance(kind, torch.TensorType)


@functools.lru_cache(maxsize=2048)
def _makes_new(func: Any) -> bool:
    """Whether ``func`` (an ATen op overload) returns new tensors by its meta kernel exactly where
    FakeTensor's dispatch would too: a tensor-returning ATen op that writes no argument, is no view,
    has no data-dependent output, a meta kernel, and no implementation of FakeTensor's own (a pure
    function of torch's op tables: cached for torch's op objects, nothing of a user's)."""
    if not isinstance(func, torch._ops.OpOverload) or func.namespace != "aten":
        return False
    schema = func._schema
    if schema.is_mutable or not schema.returns or func.is_view or func in _ALSO:
        return False
    if any(ret.alias_info is not None or not _tensor_type(ret.type) for ret in schema.returns):
        return False
    if _SPECIAL_TAGS.intersection(func.tags):
        return False
    if not torch._C._dispatch_has_computed_kernel_for_dispatch_key(func.name(), "Meta"):
        return False
    return not any(check(func) for check, _ in fake_impls.op_implementations_checks)


def _leaves(value: Any) -> Iterator[Any]:
    """The items of nested tuples and lists (an ATen op's arguments hold no other structure; torch's
    ``tree_leaves`` would cost more per op, and leave a reference cycle per call)."""
    if type(value) in (tuple, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _one_mode(args: tuple[Any, ...], kwargs: dict[str, Any], others_plain: bool) -> tuple[Any, torch.device] | None:
    """The fake mode and device every fake tensor among an op's arguments shares, each readable by its
    metadata (:func:`readable`); None where they differ, one is not readable, there is none, or (with
    ``others_plain``) another argument is not a plain value."""
    mode = device = None
    for value in (*_leaves(args), *_leaves(tuple(kwargs.values()))):
        if type(value) is FakeTensor:
            if not readable(value):
                return None
            if mode is None:
                mode, device = value.fake_mode, value.fake_device
            elif value.fake_mode is not mode or value.fake_device != device:
                return None
        elif others_plain and not _plain(value):
            return None
    return None if mode is None else (mode, device)


def aten_new(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The result of the ATen op ``func`` (new tensors, see the module docstring) on fake tensors of
    one mode and device, by its meta kernel; None where this does not apply."""
    if not _makes_new(func):
        return None
    found = _one_mode(args, kwargs, others_plain=True)
    if found is None:
        return None
    mode, device = found

    stand_ins: dict[int, torch.Tensor] = {}  # one meta tensor per fake one: a tensor passed twice stays one
    try:
        with no_dispatch():  # a fake tensor's own keys are its device's: the kernels run on meta tensors
            out = func(*_meta(args, stand_ins), **{key: _meta(value, stand_ins) for key, value in kwargs.items()})
    except (RuntimeError, IndexError, TypeError, ValueError, NotImplementedError):
        return None
    made = [out] if isinstance(out, torch.Tensor) else list(_leaves(out)) if type(out) in (tuple, list) else None
    inputs = {tensor.untyped_storage()._cdata for tensor in stand_ins.values()}
    if made is None or any(
        item is not None and (not isinstance(item, torch.Tensor) or item.untyped_storage()._cdata in inputs)
        for item in made
    ):
        return None
    return _wrapped(out, mode, device)


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Row-major strides of ``shape``, as ``torch.empty(shape)`` has them (a size-0 or size-1 dim steps as size 1)."""
    stride, step = [0] * len(shape), 1
    for dim in range(len(shape) - 1, -1, -1):
        stride[dim] = step
        step *= max(shape[dim], 1)
    return tuple(stride)


def _dims(dims: Any, rank: int) -> tuple[int, ...] | None:
    """``dims`` (ints in ``[-rank, rank)``) made non-negative; None where one is not such an int."""
    if type(dims) not in (list, tuple) or not all(type(dim) is int and -rank <= dim < rank for dim in dims):
        return None
    return tuple(dim % rank for dim in dims)


_Layout = tuple[tuple[int, ...], tuple[int, ...], torch.dtype]
"""A new result's shape, strides and dtype."""


def _reduced(shape: tuple[int, ...], axes: tuple[int, ...], keepdim: bool) -> tuple[int, ...]:
    """``shape`` reduced over ``axes``: those dims kept as 1 with ``keepdim``, dropped otherwise."""
    return tuple(1 if axis in axes else int(size) for axis, size in enumerate(shape) if keepdim or axis not in axes)


def _roll(x: Any, shifts: Any, dims: Any = ()) -> _Layout | None:
    """``roll(x, shifts, dims)`` with one shift per dim: a new row-major tensor of ``x``'s shape
    (torch's reference makes it so whatever ``x``'s layout; an empty ``x`` is cloned instead)."""
    if type(x) is not FakeTensor or x.dim() == 0 or x.numel() == 0:
        return None
    shape = tuple(x.shape)
    axes = _dims(dims, len(shape))
    if not axes or type(shifts) not in (list, tuple) or len(shifts) != len(axes):
        return None
    if not all(type(shift) is int for shift in shifts):
        return None
    return shape, contiguous_strides(shape), x.dtype


def _addmm(bias: Any, left: Any, right: Any, *, beta: Any = 1, alpha: Any = 1) -> _Layout | None:
    """``addmm(bias, left, right)`` with a 1-D bias (a linear layer's): a new row-major ``(n, p)``."""
    tensors = (bias, left, right)
    if not all(type(tensor) is FakeTensor for tensor in tensors) or type(beta) not in (int, float):
        return None
    if type(alpha) not in (int, float) or len({tensor.dtype for tensor in tensors}) != 1:
        return None
    if not bias.dtype.is_floating_point or bias.dim() != 1 or left.dim() != 2 or right.dim() != 2:
        return None
    (rows, inner), (depth, columns) = left.shape, right.shape
    if inner != depth or bias.shape[0] not in (1, columns):
        return None
    shape = (int(rows), int(columns))
    return shape, contiguous_strides(shape), bias.dtype


def _vector_norm(x: Any, ord: Any = 2, dim: Any = None, keepdim: Any = False, *, dtype: Any = None) -> _Layout | None:
    """``linalg_vector_norm`` of a non-empty real floating-point ``x`` in its own dtype: a new row-major
    tensor of the reduced shape (torch's reference reduces to row-major whatever ``x``'s layout)."""
    if type(x) is not FakeTensor or dtype is not None or type(ord) not in (int, float) or type(keepdim) is not bool:
        return None
    if not x.dtype.is_floating_point or x.numel() == 0:
        return None
    rank = x.dim()
    axes = tuple(range(rank)) if dim is None else _dims(dim, rank) if rank else None
    if axes is None or len(set(axes)) != len(axes) or (dim is not None and not axes):
        return None
    shape = _reduced(tuple(x.shape), axes, keepdim)
    return shape, contiguous_strides(shape), x.dtype


def _softmax_backward(gradient: Any, output: Any, dim: Any, input_dtype: Any) -> _Layout | None:
    """``_softmax_backward_data`` of a gradient and the softmax's output of one shape and floating-point
    dtype: a new row-major tensor of that shape (torch's reference makes it so whatever their layouts)."""
    if type(gradient) is not FakeTensor or type(output) is not FakeTensor or type(dim) is not int:
        return None
    shape = tuple(gradient.shape)
    if tuple(output.shape) != shape or not shape or not -len(shape) <= dim < len(shape):
        return None
    if not (gradient.dtype == output.dtype == input_dtype) or not gradient.dtype.is_floating_point:
        return None
    return shape, contiguous_strides(shape), gradient.dtype


def _sizes(value: Any) -> tuple[int, ...] | None:
    """A list of non-negative ints as a shape, else None."""
    if type(value) not in (list, tuple) or not all(type(size) is int and size >= 0 for size in value):
        return None
    return tuple(value)


def _slice_backward(gradient: Any, input_sizes: Any, dim: Any, start: Any, end: Any, step: Any) -> _Layout | None:
    """``slice_backward``: a new row-major tensor of ``input_sizes``, where ``gradient`` has the shape of
    that slice (Python's slice rules: ``start`` and ``end`` clamped, ``step`` positive)."""
    sizes = _sizes(input_sizes)
    if type(gradient) is not FakeTensor or sizes is None or len(sizes) != gradient.dim() or not sizes:
        return None
    if (
        not all(type(value) is int for value in (dim, start, end, step))
        or step < 1
        or not -len(sizes) <= dim < len(sizes)
    ):
        return None
    dim %= len(sizes)
    expected = list(sizes)
    expected[dim] = len(range(*slice(start, end, step).indices(sizes[dim])))
    if tuple(gradient.shape) != tuple(expected):
        return None
    return sizes, contiguous_strides(sizes), gradient.dtype


def _select_backward(gradient: Any, input_sizes: Any, dim: Any, index: Any) -> _Layout | None:
    """``select_backward``: a new row-major tensor of ``input_sizes``, where ``gradient`` has their shape
    without ``dim`` and ``index`` is within it."""
    sizes = _sizes(input_sizes)
    if type(gradient) is not FakeTensor or sizes is None or len(sizes) != gradient.dim() + 1:
        return None
    if type(dim) is not int or type(index) is not int or not -len(sizes) <= dim < len(sizes):
        return None
    dim %= len(sizes)
    if not -sizes[dim] <= index < sizes[dim] or tuple(gradient.shape) != sizes[:dim] + sizes[dim + 1 :]:
        return None
    return sizes, contiguous_strides(sizes), gradient.dtype


def _sum(x: Any, dim: Any, keepdim: Any = False, *, dtype: Any = None) -> _Layout | None:
    """``sum`` of a floating-point ``x`` over a non-empty list of distinct valid dims, in its own dtype:
    a new row-major tensor of the reduced shape (an empty list would reduce every dim: not taken)."""
    if type(x) is not FakeTensor or dtype is not None or type(keepdim) is not bool or not x.dtype.is_floating_point:
        return None
    axes = _dims(dim, x.dim()) if x.dim() else None
    if not axes or len(set(axes)) != len(axes):
        return None
    shape = _reduced(tuple(x.shape), axes, keepdim)
    return shape, contiguous_strides(shape), x.dtype


def _constant_pad(x: Any, pad: Any, value: Any = 0) -> _Layout | None:
    """``constant_pad_nd`` by non-negative amounts, not all 0, on the last dims: a new row-major tensor of
    the padded shape (a 4-D or 5-D input whose strides torch reads as channels-last keeps that memory format,
    ``suggest_memory_format``: not taken — a contiguous one too, where sizes of 1 make it both)."""
    amounts = _sizes(pad)
    if type(x) is not FakeTensor or amounts is None or len(amounts) % 2 or len(amounts) > 2 * x.dim():
        return None
    if type(value) not in (int, float, bool) or not any(amounts):
        return None  # no padding at all: a clone, in the input's layout
    if x.dim() in (4, 5) and (not x.is_contiguous() or suggest_memory_format(x) is not torch.contiguous_format):
        return None
    shape = [int(size) for size in x.shape]
    for position in range(len(amounts) // 2):
        shape[-1 - position] += amounts[2 * position] + amounts[2 * position + 1]
    return tuple(shape), contiguous_strides(tuple(shape)), x.dtype


def _new_zeros(
    x: Any, size: Any, *, dtype: Any = None, layout: Any = None, device: Any = None, pin_memory: Any = None
) -> _Layout | None:
    """``x.new_zeros(size)`` with no other option: a new row-major tensor of ``x``'s dtype."""
    shape = _sizes(size)
    if type(x) is not FakeTensor or shape is None or not (dtype is layout is device is None) or pin_memory:
        return None
    return shape, contiguous_strides(shape), x.dtype


_RULES: dict[Any, Any] = {
    torch.ops.aten.roll.default: _roll,
    torch.ops.aten.addmm.default: _addmm,
    torch.ops.aten.linalg_vector_norm.default: _vector_norm,
    torch.ops.aten._softmax_backward_data.default: _softmax_backward,
    torch.ops.aten.slice_backward.default: _slice_backward,
    torch.ops.aten.select_backward.default: _select_backward,
    torch.ops.aten.sum.dim_IntList: _sum,
    torch.ops.aten.constant_pad_nd.default: _constant_pad,
    torch.ops.aten.new_zeros.default: _new_zeros,
}
"""ATen ops whose meta kernel is a Python reference or decomposition slow enough (60–1,000 µs a call on
meta tensors; ``new_zeros``: FakeTensor's constructor path, ~450) that their result's layout is stated here,
for the arguments each rule accepts (a hypothesis property checks each against FakeTensor's dispatch)."""


def aten_rule(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The new tensor the ATen op ``func`` makes from fake tensors of one mode and device, by the
    op's rule in :data:`_RULES` (shape, strides and dtype from the arguments' metadata); None where
    there is no rule or it does not accept the arguments (the op is then run as before)."""
    rule = _RULES.get(func)
    if rule is None:
        return None
    found = _one_mode(args, kwargs, others_plain=False)
    if found is None:
        return None
    mode, device = found
    try:
        layout = rule(*args, **kwargs)
    except TypeError:  # arguments the op's schema does not take: the dispatch says so
        return None
    if layout is None:
        return None
    shape, stride, dtype = layout
    with no_dispatch():
        made = torch.empty_strided(shape, stride, dtype=dtype, device="meta")
    return fake_tensor(mode, made, device)


@functools.lru_cache(maxsize=2048)
def _writes_self(func: Any) -> bool:
    """Whether ``func`` (an ATen op overload) is an in-place op of the plain kind: it writes its first
    argument only, returns that argument and nothing else, changes no metadata (no ``inplace_view``:
    ``transpose_``, ``resize_``…), has no data-dependent output, a meta kernel, and no implementation of
    FakeTensor's own (a pure function of torch's op tables: cached for torch's op objects)."""
    if not isinstance(func, torch._ops.OpOverload) or func.namespace != "aten" or func.is_view:
        return False
    schema = func._schema
    arguments, returns = schema.arguments, schema.returns
    if not arguments or len(returns) != 1:
        return False
    first, result = arguments[0].alias_info, returns[0].alias_info
    if first is None or not first.is_write or result is None or result.before_set != first.before_set:
        return False
    if any(argument.alias_info is not None and argument.alias_info.is_write for argument in arguments[1:]):
        return False  # an ``out=`` or a second written argument
    if _SPECIAL_TAGS.intersection(func.tags) or func in _NOT_IN_PLACE:
        return False
    if not torch._C._dispatch_has_computed_kernel_for_dispatch_key(func.name(), "Meta"):
        return False
    return not any(check(func) for check, _ in fake_impls.op_implementations_checks)


_NOT_IN_PLACE = frozenset({torch.ops.aten.set_.source_Tensor, torch.ops.aten.resize_.default})
"""In-place ops that change their argument's size, strides or storage: FakeTensor's dispatch decides."""


def aten_inplace(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The result of the in-place ATen op ``func`` (``fill_``, ``zero_``, ``masked_fill_``, ``add_``…: it
    writes its first argument and returns it, see :func:`_writes_self`) on fake tensors of
    one mode and device: that argument itself, once the op's meta kernel has accepted the arguments'
    shapes and dtypes (run on meta stand-ins, no Python dispatch); None where this does not apply.
    The written tensor must be a plain fake (no constant value: FakeTensor tracks what a write does to
    it); the others are only read, so a constant's value (``attn_mask[...] = count``) does not matter."""
    if not _writes_self(func) or not args or type(args[0]) is not FakeTensor or not readable(args[0]):
        return None
    target = args[0]
    mode, device = target.fake_mode, target.fake_device
    for value in (*_leaves(args[1:]), *_leaves(tuple(kwargs.values()))):
        if type(value) is FakeTensor:
            if value.layout != torch.strided or value._has_symbolic_sizes_strides:
                return None
            if value.fake_mode is not mode or value.fake_device != device:
                return None
        elif not _plain(value):
            return None
    stand_ins: dict[int, torch.Tensor] = {}
    try:
        with no_dispatch():
            out = func(*_meta(args, stand_ins), **{key: _meta(value, stand_ins) for key, value in kwargs.items()})
    except (RuntimeError, IndexError, TypeError, ValueError, NotImplementedError):
        return None
    return target if out is stand_ins.get(id(target)) else None


def _meta(value: Any, stand_ins: dict[int, torch.Tensor]) -> Any:
    """``value`` with each fake tensor replaced by a plain meta tensor of its metadata, one per object
    (module-level recursion, not a closure: nothing left in a reference cycle per call)."""
    if type(value) is FakeTensor:
        made = stand_ins.get(id(value))
        if made is None:
            elements = value.untyped_storage().nbytes() // value.element_size()
            base = torch.empty(elements, dtype=value.dtype, device="meta")
            made = stand_ins[id(value)] = base.as_strided(value.shape, value.stride(), value.storage_offset())
        return made
    if type(value) in (tuple, list):
        return type(value)(_meta(item, stand_ins) for item in value)
    return value


def _wrapped(value: Any, mode: Any, device: torch.device) -> Any:
    """``value`` with each meta tensor wrapped as a fake tensor of ``mode`` on ``device``."""
    if isinstance(value, torch.Tensor):
        return fake_tensor(mode, value, device)
    if type(value) in (tuple, list):
        return type(value)(_wrapped(item, mode, device) for item in value)
    return value


_NUMBERS = (bool, int, float)


def value_kind(value: Any) -> Any:
    """A non-tensor argument's part of a pointwise layout pattern: a number's type, a None, string,
    dtype or memory format as ``("value", value)``; None for anything else (not covered)."""
    kind = type(value)
    if kind in _NUMBERS:
        return kind
    if value is None or kind in (str, torch.dtype, torch.memory_format):
        return ("value", value)
    return None


def pattern_value(kind: Any) -> Any:
    """The argument a learning call passes for a non-tensor :func:`value_kind`: 1 of a number's type,
    else the value itself."""
    return kind(1) if kind in _NUMBERS else kind[1]


def _ranks(stride: tuple[int, ...]) -> tuple[int, ...]:
    """Strides with the same order, ties and zeros as ``stride``, as small as can be: the layout
    comparisons of TensorIterator and of the meta kernels (which dim is outer, which is
    broadcast) come out the same."""
    rank = {step: place for place, step in enumerate(sorted(set(stride) - {0}), start=1)}
    return tuple(rank.get(step, 0) for step in stride)


def _order(stride: tuple[int, ...]) -> tuple[int, ...]:
    """The dims from outermost to innermost (decreasing stride; ties keep the dims' order)."""
    return tuple(sorted(range(len(stride)), key=lambda dim: -stride[dim]))


@functools.lru_cache(maxsize=4096)
def _pointwise_layout(
    func: Any, kinds: tuple[Any, ...], names: tuple[str, ...]
) -> tuple[torch.dtype, tuple[int, ...]] | None:
    """The dtype and dim order (outermost first) of the pointwise op ``func``'s result for arguments
    of ``kinds`` — a tensor's ``(dtype, sizes, ranks)`` (per dim 1 where its size is 1, else 2;
    :func:`_ranks` of its strides), a number's type, any other plain value itself; the last
    ``len(names)`` are keywords — found by its meta kernel on meta tensors of that pattern; None
    where the kernel refuses them or makes a result that is not dense.
    A pure function of torch's op, dtypes and layout patterns: cached for the process, nothing of a
    user's."""
    values = []
    try:
        with no_dispatch():  # plain meta tensors, whatever mode the caller runs under
            for kind in kinds:
                if type(kind) is tuple and len(kind) == 3:
                    dtype, sizes, ranks = kind
                    values.append(torch.empty_strided(sizes, ranks, dtype=dtype, device="meta"))
                else:
                    values.append(pattern_value(kind))
            positional = values[: len(values) - len(names)]
            keywords = dict(zip(names, values[len(values) - len(names) :], strict=True))
            out = func(*positional, **keywords)
    except (RuntimeError, IndexError, TypeError, ValueError, NotImplementedError):
        return None
    if not isinstance(out, torch.Tensor) or not _dense(tuple(out.shape), out.stride()):
        return None
    return out.dtype, _order(out.stride())


def _dense(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    """Whether a layout is non-overlapping and dense: the dims of size > 1, by increasing stride,
    step by the product of the sizes before them (a permutation of a contiguous layout)."""
    expected = 1
    for size, step in sorted((pair for pair in zip(shape, stride, strict=True) if pair[0] != 1), key=lambda p: p[1]):
        if step != expected:
            return False
        expected *= size
    return True


@functools.lru_cache(maxsize=2048)
def _is_pointwise(func: Any) -> bool:
    """A pointwise ATen op (``torch.Tag.pointwise``) with one tensor result making a new tensor."""
    return _makes_new(func) and torch.Tag.pointwise in func.tags and len(func._schema.returns) == 1


def aten_pointwise(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The result of the pointwise ATen op ``func`` on fake tensors of one mode and device
    (floating-point or bool, broadcasting to at least one dim, none empty; other arguments numbers,
    None, strings, dtypes, memory formats): a dense tensor of the broadcast shape laid out as the op
    lays out the pattern of its operands (see the module docstring); None where this does not apply."""
    if not _is_pointwise(func):
        return None
    mode = device = None
    kinds: list[Any] = []
    shapes = []
    for value in (*args, *kwargs.values()):
        kind = type(value)
        if kind is FakeTensor:
            if not readable(value):
                return None
            if not (value.dtype.is_floating_point or value.dtype == torch.bool) or value.dim() == 0:
                return None  # integer promotion and errors, 0-dim operands' promotion: dispatched
            if mode is None:
                mode, device = value.fake_mode, value.fake_device
            elif value.fake_mode is not mode or value.fake_device != device:
                return None
            shape, stride = tuple(value.shape), value.stride()
            if 0 in shape:
                return None  # an empty operand
            shapes.append(shape)
            kinds.append((value.dtype, tuple(1 if size == 1 else 2 for size in shape), _ranks(stride)))
        elif (described := value_kind(value)) is not None:
            kinds.append(described)
        else:
            return None
    if mode is None:
        return None
    try:
        shape = tuple(torch.broadcast_shapes(*shapes))
    except RuntimeError:  # torch's own error comes from the dispatch
        return None
    learned = _pointwise_layout(func, tuple(kinds), tuple(kwargs))
    if learned is None:
        return None
    dtype, order = learned
    stride, step = [0] * len(shape), 1
    for dim in reversed(order):
        stride[dim] = step
        step *= shape[dim]
    with no_dispatch():
        made = torch.empty_strided(shape, stride, dtype=dtype, device="meta")
    return fake_tensor(mode, made, device)
