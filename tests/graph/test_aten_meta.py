"""ATen ops by their meta kernels: the same result as FakeTensor's dispatch (shape, strides, offset,
dtype, device; a view's storage, a new tensor's storage bytes), and None wherever the shortcut does not
apply."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch._prims_common import suggest_memory_format
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._mode_utils import no_dispatch
from torch.utils._pytree import tree_leaves

from tests.profiles import examples
from torchscan.graph.aten_meta import (
    aten_inplace,
    aten_like,
    aten_new,
    aten_pointwise,
    aten_rule,
    aten_view,
    contiguous_strides,
    detached,
)

aten = torch.ops.aten


def _storage(tensor: torch.Tensor) -> int:
    return StorageWeakRef(tensor.untyped_storage()).cdata


def _calls(x: torch.Tensor, data: st.DataObject) -> list[tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    """View ops on ``x`` with arguments drawn to fit its shape."""
    dims, shape = x.dim(), list(x.shape)
    dim = data.draw(st.integers(-dims, dims - 1))
    start = data.draw(st.integers(0, shape[dim]))
    end = data.draw(st.integers(start, shape[dim]))
    permutation = data.draw(st.permutations(range(dims)))
    calls: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = [
        (aten.view.default, (x, [x.numel()]), {}),
        (aten._unsafe_view.default, (x, [x.numel()]), {}),
        (aten._reshape_alias.default, (x, shape, list(x.stride())), {}),
        (aten.permute.default, (x, permutation), {}),
        (aten.transpose.int, (x, 0, dim), {}),
        (aten.slice.Tensor, (x, dim, start, end, data.draw(st.integers(1, 3))), {}),
        (aten.select.int, (x, dim, data.draw(st.integers(-shape[dim], shape[dim] - 1))), {}),
        (aten.unsqueeze.default, (x, data.draw(st.integers(-dims - 1, dims))), {}),
        (aten.expand.default, (x, [3, *shape]), {}),
        (aten.split.Tensor, (x, data.draw(st.integers(1, 4)), dim), {}),
        (aten.unbind.int, (x, dim), {}),
        (aten.alias.default, (x,), {}),
    ]
    if dims > 1:
        calls.append((aten.diagonal.default, (x,), {"dim1": 0, "dim2": dims - 1}))
    if x.is_contiguous():
        calls.append((aten.view.default, (x, [*shape[:-1], 1, shape[-1]]), {}))
        calls.append((aten.view.dtype, (x, torch.int32), {}))
    return calls


def _strides(tensor: torch.Tensor) -> tuple[int, ...]:
    """Strides of the dims of size > 1: a size-1 dim's stride is never used to address an element, and
    the meta kernel (the real kernels' C++ code) and FakeTensor's Python references may set it apart."""
    return tuple(step for size, step in zip(tensor.shape, tensor.stride(), strict=True) if size > 1)


def _same(answered: Any, dispatched: Any) -> None:
    if isinstance(dispatched, torch.Tensor):
        assert type(answered) is FakeTensor and answered.fake_mode is dispatched.fake_mode
        assert answered.shape == dispatched.shape and _strides(answered) == _strides(dispatched)
        assert answered.storage_offset() == dispatched.storage_offset()
        assert (answered.dtype, answered.device) == (dispatched.dtype, dispatched.device)
        assert _storage(answered) == _storage(dispatched)  # the input's storage, as dispatch shares it
    else:
        assert type(answered) is type(dispatched) and len(answered) == len(dispatched)
        for one, other in zip(answered, dispatched, strict=True):
            _same(one, other)


@settings(max_examples=examples(60))
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
    data=st.data(),
    device=st.sampled_from(["cpu", "meta"]),
)
def test_views_equal_fake_tensor_dispatch(shape: tuple[int, ...], data: st.DataObject, device: str) -> None:
    fake = FakeTensorMode()
    order = data.draw(st.permutations(range(len(shape))))
    with fake:
        base = torch.empty([shape[i] for i in order], device=device)
        x = base.permute([order.index(i) for i in range(len(shape))])
        if data.draw(st.booleans()):
            x = x[(slice(None),) * (len(shape) - 1) + (slice(0, None, 2),)]  # gaps: a non-dense view
    for func, args, kwargs in _calls(x, data):
        answered = aten_view(func, args, kwargs)
        try:
            with fake:
                dispatched = func(*args, **kwargs)
        except (RuntimeError, IndexError, ValueError):  # torch rejects it: the shortcut must not answer
            assert answered is None, func
            continue
        if answered is None:  # declined: only where the meta kernel itself rejects it (then dispatched)
            with no_dispatch():
                alias = x.as_strided(x.shape, x.stride(), x.storage_offset())
                with pytest.raises((RuntimeError, IndexError, ValueError)):
                    func(alias, *args[1:], **kwargs)
            continue
        _same(answered, dispatched)


def test_other_ops_and_inputs_are_dispatched() -> None:
    fake = FakeTensorMode()
    with fake:
        x = torch.empty(2, 3)
    assert aten_view(aten.add.Tensor, (x, x), {}) is None  # not a view
    assert aten_view(aten.clone.default, (x,), {}) is None
    assert aten_view(aten.view.default, (torch.empty(2, 3), [6]), {}) is None  # a real tensor
    assert aten_view(aten.index_select.default, (x, 0, x), {}) is None
    assert aten_view(aten.view.default, (x, [4]), {}) is None  # torch's own error comes from the dispatch
    constant = FakeTensor(fake, torch.empty(2, device="meta"), torch.device("cpu"), constant=torch.ones(2))
    assert aten_view(aten.view.default, (constant, [2, 1]), {}) is None  # a view of a constant stays one


def _storages(value: Any) -> set[int]:
    """The storages of the tensors in ``value`` (a call's arguments)."""
    return {_storage(leaf) for leaf in tree_leaves(value) if isinstance(leaf, torch.Tensor)}


def _laid_out(
    shape: tuple[int, ...], data: st.DataObject, device: str, dtype: torch.dtype
) -> tuple[FakeTensorMode, torch.Tensor]:
    """A fake mode without its dispatch cache (as recordings run it: a cache hit skips the path the op
    takes) and a tensor of ``shape`` in it, its dims in a drawn memory order, with gaps or not."""
    fake = FakeTensorMode()
    fake.cache_enabled = False
    order = data.draw(st.permutations(range(len(shape))))
    with fake:
        base = torch.empty([shape[i] for i in order], device=device, dtype=dtype)
        x = base.permute([order.index(i) for i in range(len(shape))])
        if data.draw(st.booleans()):
            x = x[(slice(None),) * (len(shape) - 1) + (slice(0, None, 2),)]  # gaps: a non-dense view
    return fake, x


def _new_calls(x: torch.Tensor, data: st.DataObject) -> list[tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    """Ops making new tensors from ``x`` (any layout) and tensors drawn to fit it."""
    dims, shape = x.dim(), list(x.shape)
    dim = data.draw(st.integers(-dims, dims - 1))
    other = torch.empty(shape[-1:], dtype=x.dtype, device=x.device)  # broadcast along the last dim
    square = torch.empty(5, shape[-1], dtype=x.dtype, device=x.device).t()  # a weight laid out transposed
    flat = x.reshape(-1, shape[-1])
    calls: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = [
        (aten.add.Tensor, (x, other), {"alpha": 2}),
        (aten.mul.Tensor, (x, 3.0), {}),
        (aten.sub.Tensor, (other, x), {}),
        (aten.div.Tensor, (x, x), {}),
        (aten.gelu.default, (x,), {"approximate": data.draw(st.sampled_from(["none", "tanh"]))}),
        (aten.sigmoid.default, (x,), {}),
        (aten.relu.default, (x,), {}),
        (aten.clone.default, (x,), {"memory_format": data.draw(st.sampled_from(list(_FORMATS)))}),
        (aten.sum.dim_IntList, (x, [dim], data.draw(st.booleans())), {}),
        (aten.mean.dim, (x, [dim]), {}),
        (aten.amax.default, (x, [dim]), {}),
        (aten._softmax.default, (x, dim, False), {}),
        (aten._log_softmax.default, (x, dim, False), {}),
        (aten.roll.default, (x, [data.draw(st.integers(-3, 3))], [dim]), {}),
        (aten.constant_pad_nd.default, (x, [1, 2]), {}),
        (aten.cat.default, ([x, x], dim), {}),
        (aten.mm.default, (flat, square), {}),
        (aten.addmm.default, (other[:1].expand(5).contiguous(), flat, square), {}),
        (aten.slice_backward.default, (x, [*shape[:-1], shape[-1] + 2], dims - 1, 1, shape[-1] + 1, 1), {}),
        (aten.select_backward.default, (x, [*shape, 2], dims, 1), {}),
        (aten._softmax_backward_data.default, (x, x, dim, x.dtype), {}),
        (aten.masked_fill.Scalar, (x, torch.empty(shape, dtype=torch.bool, device=x.device), 0.5), {}),
    ]
    if dims == 3:
        calls.append((aten.bmm.default, (x, x.transpose(1, 2)), {}))
        calls.append((aten.baddbmm.default, (torch.empty(1, dtype=x.dtype, device=x.device), x, x.transpose(1, 2)), {}))
    return calls


_FORMATS = (torch.preserve_format, torch.contiguous_format)


def _same_new(answered: Any, dispatched: Any, inputs: set[int]) -> None:
    if isinstance(dispatched, torch.Tensor):
        assert type(answered) is FakeTensor and answered.fake_mode is dispatched.fake_mode
        assert answered.shape == dispatched.shape and _strides(answered) == _strides(dispatched)
        assert answered.storage_offset() == dispatched.storage_offset()
        assert (answered.dtype, answered.device) == (dispatched.dtype, dispatched.device)
        assert answered.untyped_storage().nbytes() == dispatched.untyped_storage().nbytes()
        assert _storage(answered) not in inputs  # a new storage, as the kernel makes it
    elif dispatched is None:
        assert answered is None
    else:
        assert type(answered) is type(dispatched) and len(answered) == len(dispatched)
        for one, other in zip(answered, dispatched, strict=True):
            _same_new(one, other, inputs)


_LAID_OUT = {
    "shape": st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
    "data": st.data(),
    "device": st.sampled_from(["cpu", "meta"]),
    "dtype": st.sampled_from([torch.float32, torch.float16]),
}
"""What :func:`_laid_out` draws a tensor from."""


@settings(max_examples=examples(40))
@given(**_LAID_OUT)
def test_new_tensors_equal_fake_tensor_dispatch(
    shape: tuple[int, ...], data: st.DataObject, device: str, dtype: torch.dtype
) -> None:
    """Uncached dispatch, as the recording runs it: a cache hit skips the path the op takes."""
    fake, x = _laid_out(shape, data, device, dtype)
    with fake:
        calls = _new_calls(x, data)
    for func, args, kwargs in calls:
        inputs = _storages((args, kwargs))
        answered = aten_new(func, args, kwargs)
        try:
            with fake:
                dispatched = func(*args, **kwargs)
        except (RuntimeError, IndexError, ValueError, TypeError):  # torch rejects it: the shortcut must not answer
            assert answered is None, func
            continue
        assert answered is not None, func  # every op here is one the shortcut takes
        _same_new(answered, dispatched, inputs)


_LIKE_KWARGS: list[dict[str, Any]] = [
    {},
    {"memory_format": torch.preserve_format},
    {"memory_format": torch.contiguous_format},
    {"dtype": torch.float64},
    {"dtype": torch.int32, "memory_format": torch.preserve_format},
]


@settings(max_examples=examples(40))
@given(
    **_LAID_OUT,
    func=st.sampled_from([aten.empty_like.default, aten.zeros_like.default, aten.ones_like.default]),
    kwargs=st.sampled_from(_LIKE_KWARGS),
)
def test_like_tensors_equal_fake_tensor_dispatch(
    shape: tuple[int, ...], data: st.DataObject, device: str, dtype: torch.dtype, func: Any, kwargs: dict[str, Any]
) -> None:
    """``empty_like`` and kin of a row-major input: every stride (a size-1 dim's too) as FakeTensor's
    uncached constructor path makes it, on a new storage of the same size; any other layout declined
    (FakeTensor's reading of a size-1 dim's stride and the meta kernel's differ there: a gapped ``(1,)``
    of stride 2 gets stride 1 from FakeTensor, 2 from the meta kernel)."""
    fake, x = _laid_out(shape, data, device, dtype)
    if data.draw(st.booleans()):
        kwargs = {**kwargs, "device": torch.device(device)}  # the input's own device, asked explicitly
    answered = aten_like(func, (x,), kwargs)
    with fake:
        dispatched = func(x, **kwargs)
    row_major = torch.empty(shape, device="meta").stride()
    if x.stride() != row_major:
        assert answered is None
        return
    _same_new(answered, dispatched, {_storage(x)})
    assert answered.fake_mode is fake and answered.stride() == dispatched.stride()  # a size-1 dim's stride too
    assert not answered.requires_grad


def test_like_tensors_declined_where_the_constructor_path_decides() -> None:
    fake = FakeTensorMode()
    with fake:
        x = torch.empty(2, 3)
    constant = FakeTensor(fake, torch.empty(2, device="meta"), torch.device("cpu"), constant=torch.ones(2))
    assert aten_like(aten.empty_like.default, (x,), {"device": torch.device("meta")}) is None  # another device
    assert aten_like(aten.empty_like.default, (x,), {"pin_memory": True}) is None
    assert aten_like(aten.empty_like.default, (x,), {"layout": torch.sparse_coo}) is None
    assert aten_like(aten.empty_like.default, (torch.empty(2, 3),), {}) is None  # a real tensor
    assert aten_like(aten.empty_like.default, (constant,), {}) is None  # a constant: FakeTensor's to track
    assert aten_like(aten.full_like.default, (x, 1.0), {}) is None  # not one of the three
    assert aten_like(aten.add.Tensor, (x, x), {}) is None
    assert aten_like(aten.empty_like.default, (x.t(),), {}) is None  # not row-major
    assert aten_like(aten.empty_like.default, (x,), {"memory_format": torch.channels_last}) is None


@settings(max_examples=examples(30))
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
    data=st.data(),
    device=st.sampled_from(["cpu", "meta"]),
    grad=st.booleans(),
)
def test_detached_equals_detach(shape: tuple[int, ...], data: st.DataObject, device: str, grad: bool) -> None:
    fake, x = _laid_out(shape, data, device, torch.float32)
    if grad:
        with fake:
            x = x.detach().requires_grad_(True)
    answered = detached(x)
    with fake:
        dispatched = x.detach()
    assert type(answered) is FakeTensor and answered.fake_mode is fake
    assert answered.shape == dispatched.shape and answered.stride() == dispatched.stride()
    assert answered.storage_offset() == dispatched.storage_offset()
    assert (answered.dtype, answered.device) == (dispatched.dtype, dispatched.device)
    assert _storage(answered) == _storage(x)  # an alias, as detach makes
    assert not answered.requires_grad and answered.grad_fn is None
    real = torch.ones(2, requires_grad=True)
    assert type(detached(real)) is torch.Tensor and not detached(real).requires_grad  # any other tensor: detach


def test_other_ops_and_inputs_are_dispatched_not_made() -> None:
    fake = FakeTensorMode()
    with fake:
        x, y = torch.empty(2, 3), torch.empty(3, device="meta")
    assert aten_new(aten.view.default, (x, [6]), {}) is None  # a view
    assert aten_new(aten.add_.Tensor, (x, x), {}) is None  # in place
    assert aten_new(aten.add.out, (x, x), {"out": x}) is None  # out=
    assert aten_new(aten.nonzero.default, (x,), {}) is None  # data-dependent shape
    assert aten_new(aten.empty_like.default, (x,), {}) is None  # FakeTensor's own (constructors)
    assert aten_new(aten._to_copy.default, (x,), {"device": torch.device("meta")}) is None  # a device
    assert aten_new(aten.add.Tensor, (x, y), {}) is None  # two devices
    assert aten_new(aten.add.Tensor, (x, torch.empty(2, 3)), {}) is None  # a real tensor
    constant = FakeTensor(fake, torch.empty(2, device="meta"), torch.device("cpu"), constant=torch.ones(2))
    assert aten_new(aten.mul.Tensor, (constant, 2.0), {}) is None  # a constant's value is FakeTensor's to track
    assert aten_new(aten.mm.default, (x, x), {}) is None  # torch's own error comes from the dispatch
    assert aten_new(aten.sym_size.int, (x, 0), {}) is None  # not a tensor result
    with fake:
        weight = torch.empty(3)
    # FakeTensor's own implementation (CPU's mean and rstd in the input's dtype, the meta kernel's in float)
    assert aten_new(aten.native_layer_norm.default, (x, [3], weight, weight, 1e-5), {}) is None


def _pointwise_calls(x: torch.Tensor, data: st.DataObject) -> list[tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    """Pointwise ops on ``x``, tensors of its shape and strides, and tensors broadcasting to it
    (a row, a keepdim reduction's shape, a transposed copy, a gapped view)."""
    dims = x.dim()
    y = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)
    mask = torch.empty_strided(x.shape, x.stride(), dtype=torch.bool, device=x.device)
    half = torch.empty_strided(x.shape, x.stride(), dtype=torch.float16, device=x.device)
    row = torch.empty(x.shape[-1:], dtype=x.dtype, device=x.device)
    kept = torch.empty([*x.shape[:-1], 1], dtype=x.dtype, device=x.device)  # a keepdim norm's shape
    other = torch.empty(list(reversed(x.shape)), dtype=x.dtype, device=x.device).permute(list(reversed(range(dims))))
    gapped = torch.empty([*x.shape[:-1], 2 * x.shape[-1]], dtype=x.dtype, device=x.device)[..., ::2]
    lead = torch.empty([1] * dims, dtype=torch.bool, device=x.device)
    number = data.draw(st.sampled_from([2, 0.5, True]))
    return [
        (aten.add.Tensor, (x, y), {"alpha": number}),
        (aten.mul.Tensor, (x, number), {}),
        (aten.div.Tensor, (x, y), {}),
        (aten.sub.Tensor, (x, half), {}),  # promotion: the wider float
        (aten.where.self, (mask, x, y), {}),
        (aten.masked_fill.Scalar, (x, mask, 0.5), {}),
        (aten.eq.Tensor, (x, y), {}),  # a bool result
        (aten.gelu.default, (x,), {"approximate": data.draw(st.sampled_from(["none", "tanh"]))}),
        (aten.gelu_backward.default, (y, x), {}),
        (aten.sigmoid.default, (x,), {}),
        (aten.rsqrt.default, (x,), {}),
        (aten.clamp.default, (x, None, 1.0), {}),
        (aten.threshold_backward.default, (y, x, 0), {}),
        (aten.pow.Tensor_Scalar, (x, number), {}),
        (aten.logical_not.default, (mask,), {}),
        (aten.add.Tensor, (x, row), {}),
        (aten.mul.Tensor, (row, x), {}),
        (aten.div.Tensor, (x, kept), {}),
        (aten.add.Tensor, (x, other), {}),
        (aten.mul.Tensor, (other, x), {}),
        (aten.sub.Tensor, (gapped, x), {}),
        (aten.where.self, (lead, x, row), {}),
        (aten.clone.default, (x,), {}),
        (aten.clone.default, (x,), {"memory_format": torch.contiguous_format}),
        (aten.clone.default, (gapped,), {"memory_format": torch.preserve_format}),
        (aten.div.Tensor, (x, kept.expand(x.shape)), {}),  # normalize: a norm expanded
        (aten.mul.Tensor, (row.expand(x.shape), x), {}),
    ]


@settings(max_examples=examples(40))
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
    data=st.data(),
    device=st.sampled_from(["cpu", "meta"]),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.float64]),
)
def test_pointwise_results_equal_fake_tensor_dispatch(
    shape: tuple[int, ...], data: st.DataObject, device: str, dtype: torch.dtype
) -> None:
    """Same layouts, permuted ones, broadcasting, mixed and gapped operands: shape, strides, dtype,
    device and storage bytes of FakeTensor's uncached dispatch."""
    fake = FakeTensorMode()
    fake.cache_enabled = False
    order = data.draw(st.permutations(range(len(shape))))
    with fake:
        x = torch.empty([shape[i] for i in order], device=device, dtype=dtype).permute(
            [order.index(i) for i in range(len(shape))]
        )
        calls = _pointwise_calls(x, data)
    answers = 0
    for func, args, kwargs in calls:
        answered = aten_pointwise(func, args, kwargs)
        try:
            with fake:
                dispatched = func(*args, **kwargs)
        except (RuntimeError, ValueError, TypeError):  # torch rejects it (a bool alpha): the shortcut must not answer
            assert answered is None, func
            continue
        if answered is not None:
            answers += 1
            _same_new(answered, dispatched, _storages((args, kwargs)))
    assert answers >= len(calls) - 2  # masked_fill and alpha=True may be left to the dispatch


def test_pointwise_declines_what_its_layout_rule_does_not_cover() -> None:
    fake = FakeTensorMode()
    with fake:
        x, ints = torch.empty(2, 3), torch.empty(2, 3, dtype=torch.long)
        gapped, scalar = torch.empty(2, 6)[:, ::2], torch.empty(())
    assert aten_pointwise(aten.add.Tensor, (x, torch.empty(0, 3)), {}) is None  # a real (and empty) tensor
    assert aten_pointwise(aten.add.Tensor, (x, torch.empty(3, device="meta")), {}) is None  # a plain meta tensor
    assert aten_pointwise(aten.add.Tensor, (x, gapped[:, :2]), {}) is None  # no broadcast: torch's error
    assert aten_pointwise(aten.add.Tensor, (ints, ints), {}) is None  # integer promotion and errors: dispatched
    assert aten_pointwise(aten.add.Tensor, (x, scalar), {}) is None  # a 0-dim operand
    assert aten_pointwise(aten.add_.Tensor, (x, x), {}) is None  # in place
    assert aten_pointwise(aten.mm.default, (x, x.t()), {}) is None  # not pointwise
    assert aten_pointwise(aten.add.Tensor, (x, torch.empty(2, 3)), {}) is None  # a real tensor


def _inplace_calls(
    x: torch.Tensor, data: st.DataObject, fake: FakeTensorMode
) -> list[tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    """In-place ops on ``x`` (any layout) with operands drawn to fit it, broadcast to it, or not."""
    shape = list(x.shape)
    with fake:
        last = torch.empty(shape[-1:], dtype=x.dtype, device=x.device)  # broadcasts to x
        wider = torch.empty([2, *shape], dtype=x.dtype, device=x.device)  # does not: x cannot grow
        mask = torch.empty(shape, dtype=torch.bool, device=x.device)
        # a constant on the CPU, as ``attn_mask[...] = count`` makes it (a meta tensor has no value to keep)
        count = torch.tensor(3.0) if x.device.type == "cpu" else torch.full((), 3.0, device=x.device)
        ints = torch.empty(shape, dtype=torch.int64, device=x.device)
    operand = data.draw(st.sampled_from([last, wider, x]))
    return [
        (aten.fill_.Tensor, (x, count), {}),
        (aten.fill_.Scalar, (x, 0.5), {}),
        (aten.zero_.default, (x,), {}),
        (aten.masked_fill_.Scalar, (x, mask, -100.0), {}),
        (aten.add_.Tensor, (x, operand), {"alpha": 2}),
        (aten.mul_.Tensor, (x, operand), {}),
        (aten.clamp_.default, (x, 0.0, 1.0), {}),
        (aten.relu_.default, (x,), {}),
        (aten.add_.Tensor, (ints, x), {}),  # a float result cannot be written into integers
    ]


@settings(max_examples=examples(40))
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
    data=st.data(),
    device=st.sampled_from(["cpu", "meta"]),
)
def test_in_place_results_equal_fake_tensor_dispatch(shape: tuple[int, ...], data: st.DataObject, device: str) -> None:
    """The written argument itself, where FakeTensor's (uncached) dispatch returns it; None where the
    dispatch raises (a shape that does not broadcast into it, a dtype it cannot hold)."""
    fake, x = _laid_out(shape, data, device, torch.float32)
    for func, args, kwargs in _inplace_calls(x, data, fake):
        before = (args[0].shape, args[0].stride(), args[0].storage_offset(), _storage(args[0]))
        answered = aten_inplace(func, args, kwargs)
        try:
            with fake:
                dispatched = func(*args, **kwargs)
        except (RuntimeError, IndexError, ValueError, TypeError):  # torch rejects it: the shortcut must not answer
            assert answered is None, func
            continue
        assert answered is not None, func  # every op here is one the shortcut takes
        assert answered is dispatched is args[0], func
        assert (args[0].shape, args[0].stride(), args[0].storage_offset(), _storage(args[0])) == before


def test_other_ops_and_inputs_are_dispatched_not_written() -> None:
    fake = FakeTensorMode()
    with fake:
        x, y = torch.empty(2, 3), torch.empty(3, device="meta")
    assert aten_inplace(aten.add.Tensor, (x, x), {}) is None  # not in place
    assert aten_inplace(aten.add.out, (x, x), {"out": x}) is None  # out=
    assert aten_inplace(aten.transpose_.default, (x, 0, 1), {}) is None  # changes metadata
    assert aten_inplace(aten.resize_.default, (x, [6]), {}) is None
    assert aten_inplace(aten.copy_.default, (x, x), {}) is None  # FakeTensor's own (devices)
    assert aten_inplace(aten.add_.Tensor, (x, y), {}) is None  # two devices
    assert aten_inplace(aten.add_.Tensor, (x, torch.empty(3)), {}) is None  # a real tensor
    constant = FakeTensor(fake, torch.empty(2, device="meta"), torch.device("cpu"), constant=torch.ones(2))
    assert aten_inplace(aten.mul_.Scalar, (constant, 2.0), {}) is None  # a write to a constant: FakeTensor's
    assert aten_inplace(aten.add_.Tensor, (x, torch.empty(4)), {}) is None  # a real operand, not broadcastable
    with fake:
        wide = torch.empty(4, 2, 3)
    assert aten_inplace(aten.add_.Tensor, (x, wide), {}) is None  # torch's own error comes from the dispatch


def _ruled_calls(x: torch.Tensor, data: st.DataObject) -> list[tuple[Any, tuple[Any, ...], dict[str, Any], bool]]:
    """Calls of the ops :func:`aten_rule` states, with arguments drawn to fit ``x`` (any layout), and
    whether the rule must answer (True) or may decline."""
    dims, shape = x.dim(), list(x.shape)
    dim = data.draw(st.integers(-dims, dims - 1))
    axes = data.draw(st.lists(st.integers(-dims, dims - 1), min_size=1, max_size=dims, unique_by=lambda d: d % dims))
    flat = x.reshape(-1, shape[-1])
    columns = data.draw(st.integers(1, 4))
    right = torch.empty(columns, shape[-1], dtype=x.dtype, device=x.device).t()  # a weight laid out transposed
    if data.draw(st.booleans()):
        right = right.contiguous()
    bias = torch.empty(data.draw(st.sampled_from([columns, 1])), dtype=x.dtype, device=x.device)
    return [
        (aten.roll.default, (x, [data.draw(st.integers(-3, 3))], [dim]), {}, True),
        (aten.roll.default, (x, [1, 2], [dim, (dim + 1) % dims]), {}, True),
        (aten.roll.default, (x, [1], []), {}, False),  # no dims: flattened, declined
        (aten.addmm.default, (bias, flat, right), {"beta": data.draw(st.sampled_from([1, 0, 0.5]))}, True),
        (aten.addmm.default, (bias, flat, right.t()), {}, False),  # the inner sizes differ (unless square)
        (
            aten.linalg_vector_norm.default,
            (x, data.draw(st.sampled_from([2, 1, 0.5, float("inf")])), axes, data.draw(st.booleans())),
            {},
            True,
        ),
        (aten.linalg_vector_norm.default, (x,), {}, True),
        (aten.linalg_vector_norm.default, (x, 2, None, False), {"dtype": torch.float64}, False),
        (aten._softmax_backward_data.default, (x, x, dim, x.dtype), {}, True),
        (aten._softmax_backward_data.default, (x.contiguous(), x, dim, x.dtype), {}, True),
        (aten._softmax_backward_data.default, (x, x[..., :1], dim, x.dtype), {}, False),  # two shapes
        (aten.slice_backward.default, (x, [*shape[:-1], shape[-1] + 2], dims - 1, 1, shape[-1] + 1, 1), {}, True),
        (aten.slice_backward.default, (x, [*shape[:-1], 2 * shape[-1]], dims - 1, 0, 1 << 40, 2), {}, True),
        (aten.slice_backward.default, (x, [*shape[:-1], shape[-1] + 2], dims - 1, 0, 1, 1), {}, False),
        (aten.select_backward.default, (x, [*shape, 2], dims, data.draw(st.integers(-2, 1))), {}, True),
        (aten.select_backward.default, (x, [2, *shape], 0, 1), {}, True),
        (aten.sum.dim_IntList, (x, axes, data.draw(st.booleans())), {}, True),
        (aten.sum.dim_IntList, (x, []), {}, False),  # every dim: not taken
        (aten.constant_pad_nd.default, (x, data.draw(st.lists(st.integers(0, 2), min_size=2, max_size=2))), {}, False),
        (aten.constant_pad_nd.default, (x, [0, 0]), {}, False),  # no padding: a clone in x's layout
        (
            aten.constant_pad_nd.default,
            (x, [1, 1, 0, 2][: 2 * min(dims, 2)], 0.5),
            {},
            # torch pads a 4-D/5-D tensor into the layout its strides suggest: the rule answers a row-major one
            x.dim() not in (4, 5) or (x.is_contiguous() and suggest_memory_format(x) is torch.contiguous_format),
        ),
        (aten.new_zeros.default, (x, [data.draw(st.integers(0, 3)), 2]), {}, True),
        (aten.new_zeros.default, (x, [2]), {"dtype": torch.int64}, False),
    ]


@settings(max_examples=examples(40))
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
    data=st.data(),
    device=st.sampled_from(["cpu", "meta"]),
    dtype=st.sampled_from([torch.float32, torch.float16]),
)
def test_ruled_results_equal_fake_tensor_dispatch(
    shape: tuple[int, ...], data: st.DataObject, device: str, dtype: torch.dtype
) -> None:
    """Uncached dispatch, as the recording runs it. Each rule answers its op's usual calls (a layout
    of any order, gaps included) and never where the dispatch raises."""
    fake, x = _laid_out(shape, data, device, dtype)
    with fake:
        calls = _ruled_calls(x, data)
    for func, args, kwargs, answers in calls:
        inputs = _storages((args, kwargs))
        answered = aten_rule(func, args, kwargs)
        try:
            with fake:
                dispatched = func(*args, **kwargs)
        except (RuntimeError, IndexError, ValueError, TypeError):  # torch rejects it: the rule must not answer
            assert answered is None, func
            continue
        if answers:
            assert answered is not None, func
        if answered is not None:
            _same_new(answered, dispatched, inputs)


@pytest.mark.parametrize("shape", [(1, 2, 1, 1), (2, 3, 1, 1), (1, 1, 1, 1), (1, 1, 1, 2)])
def test_a_pad_of_a_tensor_both_contiguous_and_channels_last_takes_torch_s_layout(shape: tuple[int, ...]) -> None:
    """Sizes of 1 can make a 4-D tensor contiguous and channels-last at once (``(1, 2, 1, 1)`` of strides
    ``(2, 1, 2, 2)``): torch pads it into the layout its strides suggest, channels-last, so the row-major rule
    must not answer for it (a hypothesis draw found this)."""
    fake = FakeTensorMode()
    with fake:
        x = torch.empty(shape, memory_format=torch.channels_last)
    args = (x, [1, 1, 0, 2], 0.5)
    answered = aten_rule(aten.constant_pad_nd.default, args, {})
    with fake:
        dispatched = aten.constant_pad_nd.default(*args)
    if answered is not None:
        _same_new(answered, dispatched, _storages(args))


def test_ops_without_a_rule_and_other_inputs_are_not_ruled() -> None:
    fake = FakeTensorMode()
    with fake:
        x, y = torch.empty(2, 3), torch.empty(3, device="meta")
        ints = torch.empty(2, 3, dtype=torch.int64)
    assert aten_rule(aten.add.Tensor, (x, x), {}) is None  # no rule
    assert aten_rule(aten.roll.default, (torch.empty(2, 3), [1], [0]), {}) is None  # a real tensor
    assert aten_rule(aten.addmm.default, (y, x, torch.empty(3, 3)), {}) is None  # two devices
    assert aten_rule(aten.addmm.default, (torch.empty(3, 3), x, torch.empty(3, 3)), {}) is None
    assert aten_rule(aten.linalg_vector_norm.default, (ints,), {}) is None  # integers: torch's error
    assert aten_rule(aten.roll.default, (x, [1, 2], [0]), {}) is None  # one shift per dim, else torch's error
    assert aten_rule(aten.roll.default, (x, [1], [2]), {}) is None  # no such dim
    constant = FakeTensor(fake, torch.empty(2, device="meta"), torch.device("cpu"), constant=torch.ones(2))
    assert aten_rule(aten.roll.default, (constant, [1], [0]), {}) is None  # a constant's value is FakeTensor's
    assert aten_rule(aten.sum.dim_IntList, (ints, [0]), {}) is None  # integers sum to int64: not stated
    assert aten_rule(aten.slice_backward.default, (x, [2, 9], 1, 0, 4, 1), {}) is None  # not that slice's shape
    assert aten_rule(aten.constant_pad_nd.default, (x, [-1, 0]), {}) is None  # cropping: not taken
    with fake:
        channels_last = torch.empty(1, 2, 3, 4).to(memory_format=torch.channels_last)
    assert aten_rule(aten.constant_pad_nd.default, (channels_last, [1, 1]), {}) is None  # keeps its format


@given(shape=st.lists(st.integers(0, 3), max_size=5))
def test_contiguous_strides_are_torch_s(shape: list[int]) -> None:
    assert contiguous_strides(shape) == torch.empty(shape, device="meta").stride()
