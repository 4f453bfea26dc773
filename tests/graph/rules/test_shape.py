"""Concatenation and views: what the op's own meta kernel makes (sizes, strides, storage sharing)."""

from __future__ import annotations

import operator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from tests.graph.rules.helpers import check
from torchscan import crawl_module
from torchscan.graph.rules import RULES, Fresh, Pending, answer


@given(
    shapes=st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=3), min_size=1, max_size=3),
    dim=st.integers(-3, 3),
    keyword=st.booleans(),
)
def test_cat(shapes: list[list[int]], dim: int, keyword: bool) -> None:
    with FakeTensorMode():
        tensors = [torch.empty(shape) for shape in shapes]
        check(torch.cat, (tensors,), {"dim": dim}) if keyword else check(torch.cat, (tensors, dim))
        same = [torch.empty(shapes[0]) for _ in shapes]
        assert check(torch.cat, (same, 0)) == "answered" or 0 in shapes[0][:0]


@given(
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=5),
    count=st.integers(1, 3),
    dim=st.integers(-5, 4),
    layouts=st.lists(st.tuples(st.permutations(range(5)), st.booleans()), min_size=3, max_size=3),
)
def test_cat_of_strided_inputs(shape: list[int], count: int, dim: int, layouts: list[tuple[list[int], bool]]) -> None:
    """Inputs of any layout (dims in any order, sliced): answered as dispatch lays the result out for
    up to 3 dims; a strided 4-D or 5-D input is torch's (channels-last in, channels-last out)."""
    with FakeTensorMode():
        tensors = []
        for order, sliced in layouts[:count]:
            dims = [d for d in order if d < len(shape)]
            sizes = [shape[d] * (2 if sliced and d == len(shape) - 1 else 1) for d in dims]
            x = torch.empty(sizes).permute([dims.index(d) for d in range(len(shape))])
            tensors.append(x[..., ::2] if sliced else x)
        outcome = check(torch.cat, (tensors, dim))
        if -len(shape) <= dim < len(shape) and (len(shape) <= 3 or all(t.is_contiguous() for t in tensors)):
            assert outcome == "answered"


def test_items_of_sizes_and_tuples(fake: FakeTensorMode) -> None:
    """``x.shape[1]``, ``x.shape[-2:]``, an item of a tuple of tensors: the item itself, as dispatch."""
    x = torch.empty(2, 3, 4)
    assert check(operator.getitem, (x.shape, 1)) == "answered"
    assert check(operator.getitem, (x.shape, slice(-2, None))) == "answered"
    assert check(operator.getitem, (x.chunk(2, -1), 1)) == "answered"
    assert check(operator.getitem, (x.shape, 3)) == "rejected"
    assert check(operator.getitem, ((1, 2), 0.5)) == "rejected"


VIEWS = [
    (torch.Tensor.view, (6, -1)),
    (torch.Tensor.view, (-1,)),
    (torch.Tensor.reshape, (2, 3, -1)),
    (torch.Tensor.permute, (0, 2, 3, 1)),
    (torch.Tensor.permute, ([0, 2, 3, 1],)),  # sizes as one list, as code often passes them
    (torch.Tensor.view, ([6, -1],)),
    (torch.Tensor.reshape, ([2, 3, -1],)),
    (torch.Tensor.split, ([1, 2], 1)),
    (torch.Tensor.expand, ([2, 2, 3, 4, 5],)),
    (torch.Tensor.transpose, (1, 2)),
    (torch.Tensor.flatten, (1,)),
    (torch.Tensor.unflatten, (1, (3, 1))),
    (torch.Tensor.contiguous, ()),
    (torch.Tensor.unsqueeze, (1,)),
    (torch.Tensor.squeeze, ()),
    (torch.Tensor.expand, (2, 2, 3, 4, 5)),
    (torch.Tensor.chunk, (2, -1)),
    (torch.Tensor.split, (2, 3)),
    (torch.Tensor.unbind, ()),
    (torch.Tensor.unbind, (-2,)),
    (torch.Tensor.narrow, (2, 1, 2)),
    (torch.Tensor.select, (1, 0)),
    (torch.Tensor.movedim, (1, -1)),
    (torch.Tensor.__getitem__, ((slice(None), slice(1, None), None, Ellipsis, 0),)),
    (operator.getitem, ((Ellipsis, slice(None, None, 2)),)),
    (torch.flatten, (1, 2)),
    (torch.reshape, ((2, -1),)),
    (torch.permute, ((3, 2, 1, 0),)),
    (torch.transpose, (0, 3)),
    (torch.squeeze, (0,)),
    (torch.unsqueeze, (-1,)),
    (torch.chunk, (3, 1)),
    (torch.split, ([1, 2], 1)),
    (torch.unbind, (1,)),
    (torch.unbind, (4,)),
    (torch.narrow, (3, 0, 1)),
    (torch.select, (0, -1)),
    (torch.movedim, (0, 2)),
]


def _base(layout: str) -> torch.Tensor:
    """A (2, 3, 4, 5) fake: contiguous, its dims permuted in memory, or every other column of a wider one."""
    if layout == "permuted":
        return torch.empty(2, 4, 5, 3).permute(0, 3, 1, 2)
    if layout == "sliced":
        return torch.empty(2, 3, 4, 10)[..., ::2]
    return torch.empty(2, 3, 4, 5)


@pytest.mark.parametrize("layout", ["contiguous", "permuted", "sliced"])
@pytest.mark.parametrize(("function", "arguments"), VIEWS, ids=range(len(VIEWS)))
def test_views_are_what_dispatch_makes(function: Any, arguments: tuple[Any, ...], layout: str) -> None:
    with FakeTensorMode():
        base = _base(layout)
        result = check(function, (base, *arguments))
    assert result in ("answered", "rejected")  # a view torch refuses (non-viewable strides) is declined


def test_views_decline_tensor_indices(fake: FakeTensorMode) -> None:
    x = torch.empty(4, 3)
    index = torch.zeros(2, dtype=torch.long)
    assert answer(RULES.rule_for(operator.getitem), operator.getitem, (x, index), {}) is None
    assert answer(RULES.rule_for(operator.getitem), operator.getitem, ({1: 2}, 1), {}) is None


@given(
    shape=st.lists(st.integers(1, 4), max_size=4),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.int64]),
    target=st.sampled_from([torch.float32, torch.bfloat16, torch.int64, torch.bool]),
    keyword=st.booleans(),
    transposed=st.booleans(),
)
def test_to_dtype(shape: list[int], dtype: torch.dtype, target: torch.dtype, keyword: bool, transposed: bool) -> None:
    """``x.to(dtype)`` against dispatch: the tensor itself for its own dtype (of any strides), else a
    new contiguous one (a contiguous input); a strided input cast, a device or ``copy=True`` are torch's."""
    with FakeTensorMode():
        x = torch.empty(shape, dtype=dtype)
        if transposed and x.dim() >= 2:
            x = x.transpose(0, -1)
        args, kwargs = ((x,), {"dtype": target}) if keyword else ((x, target), {})
        outcome = check(torch.Tensor.to, args, kwargs)
        assert outcome == "answered" or (not x.is_contiguous() and target != dtype)
        assert check(torch.Tensor.to, (x, target), {"copy": True}) == "declined"
        assert check(torch.Tensor.to, (x, "cpu"), {}) == "declined"


@given(
    shape=st.lists(st.integers(1, 4), max_size=4),
    dtypes=st.tuples(*[st.sampled_from([torch.float32, torch.float16, torch.int64])] * 2),
    transposed=st.tuples(st.booleans(), st.booleans()),
    meta=st.booleans(),
)
def test_type_as(
    shape: list[int], dtypes: tuple[torch.dtype, torch.dtype], transposed: tuple[bool, bool], meta: bool
) -> None:
    """``x.type_as(other)`` against dispatch: ``x`` itself where ``other`` has its dtype and device (of
    any strides either), else torch's (a cast; another device)."""
    with FakeTensorMode():
        made = [torch.empty(shape, dtype=dtype) for dtype in dtypes]
        x, other = (t.mT if flip and t.dim() >= 2 else t for t, flip in zip(made, transposed, strict=True))
        if meta:
            other = torch.empty(shape, dtype=dtypes[1], device="meta")
        outcome = check(torch.Tensor.type_as, (x, other))
        assert (outcome == "answered") == (dtypes[0] == dtypes[1] and not meta)


@given(
    bounds=st.lists(st.integers(-6, 6), min_size=1, max_size=3),
    dtype=st.sampled_from([None, torch.int64, torch.int32, torch.float32, torch.float64, torch.int8, torch.float16]),
    device=st.sampled_from(["cpu", "meta", None]),
    as_object=st.booleans(),
)
def test_arange(bounds: list[int], dtype: torch.dtype | None, device: str | None, as_object: bool) -> None:
    """``torch.arange`` against dispatch: integer bounds with a CPU or meta device are answered for
    the dtypes that hold them exactly (a wrong-signed step and a zero step are torch's errors)."""
    kwargs: dict[str, Any] = {}
    if device is not None:
        kwargs["device"] = torch.device(device) if as_object else device
    if dtype is not None:
        kwargs["dtype"] = dtype
    with FakeTensorMode():
        outcome = check(torch.arange, tuple(bounds), kwargs)
    exact = dtype in (None, torch.int64, torch.int32, torch.float32, torch.float64)
    if device is not None and exact:
        assert outcome in ("answered", "rejected")
    else:
        assert outcome in ("declined", "rejected")


def test_views_of_a_parameter_are_dispatched_views_of_a_result_that_requires_grad_are_not() -> None:
    """A view of a parameter that requires grad is autograd's (an in-place op on it is refused: only the
    dispatch makes that view), and so is one of several views (``split``, ``chunk``, ``unbind``). A view of
    a result that requires grad (``w.clone()``, a product with a weight) is answered by the meta kernel,
    without grad — the shape pass's values carry no autograd graph, as a layer's rule's never did — so
    that one such tensor does not send every later op to FakeTensor's dispatch (GPT-2's ``Conv1D``
    results sent every view, add and split after them there)."""
    getitem, split = RULES.rule_for(operator.getitem), RULES.rule_for(torch.Tensor.split)
    with FakeTensorMode():
        weight = torch.nn.Parameter(torch.empty(12))
        copy = weight.clone()
        assert answer(getitem, operator.getitem, (weight, slice(4, 8)), {}) is None
        assert answer(split, torch.Tensor.split, (copy, 4), {}) is None
        view = answer(getitem, operator.getitem, (copy, slice(4, 8)), {})
        expected = copy[4:8]
        assert (view.shape, view.stride(), view.storage_offset()) == (
            expected.shape,
            expected.stride(),
            expected.storage_offset(),
        )
        assert view.untyped_storage()._cdata == copy.untyped_storage()._cdata and not view.requires_grad
        assert check(operator.getitem, (copy.detach(), slice(4, 8))) == "answered"


def test_a_model_writing_a_slice_of_a_cloned_parameter_is_traced() -> None:
    class Masked(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(12))
            self.linear = torch.nn.Linear(4, 12)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            bias = self.bias.clone()
            bias[4:8].zero_()
            return self.linear(x) + bias

    report = crawl_module(Masked(), (4,))
    assert report.context.capture == "torch.fx" and not report.diagnostics
    assert report.totals.macs == 4 * 12


METADATA_CALLS = [
    (getattr, ("shape",), {}),
    (getattr, ("dtype",), {}),
    (getattr, ("device",), {}),
    (getattr, ("ndim",), {}),
    (getattr, ("requires_grad",), {}),  # not read by the rule: declined
    (torch.Tensor.size, (), {}),
    (torch.Tensor.size, (0,), {}),
    (torch.Tensor.size, (-1,), {}),
    (torch.Tensor.size, (3,), {}),
    (torch.Tensor.size, (), {"dim": -2}),
    (torch.Tensor.size, (True,), {}),
    (torch.Tensor.dim, (), {}),
    (torch.Tensor.numel, (), {}),
]


@given(
    shape=st.lists(st.integers(0, 4), max_size=4),
    call=st.sampled_from(METADATA_CALLS),
    layout=st.sampled_from(["contiguous", "transposed", "pending"]),
    dtype=st.sampled_from([torch.float32, torch.int64, torch.bool]),
)
def test_metadata_is_what_the_tensor_says(
    shape: list[int], call: tuple[Any, tuple[Any, ...], dict[str, Any]], layout: str, dtype: torch.dtype
) -> None:
    """Attributes and sizes read by a rule equal the tensor's own (value and type), for a pending
    tensor too, which is never made for them; a call torch refuses is declined."""
    function, rest, kwargs = call
    with FakeTensorMode() as mode:
        x = torch.empty(shape, dtype=dtype)
        if layout == "transposed" and len(shape) >= 2:
            x = x.transpose(0, -1)
        given = Pending(Fresh(tuple(x.shape), dtype, x.device), mode) if layout == "pending" else x
        got = answer(RULES.rule_for(function), function, (given, *rest), kwargs)
        try:
            expected = function(x, *rest, **kwargs)
        except Exception:
            assert got is None
            return
    if (function is getattr and rest[0] == "requires_grad") or rest[:1] == (True,):
        assert got is None
        return
    assert got == expected and type(got) is type(expected)
    if layout == "pending":
        assert given._fake is None and given._meta is None  # read, never made


@given(
    shape=st.lists(st.integers(0, 3), min_size=1, max_size=4),
    pads=st.lists(st.integers(-2, 2), max_size=8),
    value=st.sampled_from([None, 0, 1.5, True]),
    dtype=st.sampled_from([torch.float32, torch.int64, torch.bool]),
    layout=st.sampled_from(["contiguous", "channels_last", "transposed"]),
    mode=st.sampled_from(["constant", "constant", "reflect", "replicate"]),
)
def test_pad(shape: list[int], pads: list[int], value: object, dtype: torch.dtype, layout: str, mode: str) -> None:
    """Constant padding (negative pads crop) of a contiguous tensor answered as dispatch lays it out
    (size-1 dims that make a tensor both contiguous and channels-last included); others declined."""
    with FakeTensorMode():
        x = torch.empty(shape, dtype=dtype)
        if layout == "channels_last" and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        elif layout == "transposed" and x.dim() >= 2:
            x = x.transpose(0, -1)
        outcome = check(F.pad, (x, pads), {"mode": mode, "value": value} if mode == "constant" else {"mode": mode})
        grown, cropped = list(x.shape), True
        for index in range(min(len(pads) // 2, len(shape))):
            before, after = pads[2 * index], pads[2 * index + 1]
            cropped &= grown[-1 - index] + min(before, 0) + min(after, 0) >= 0  # a crop within the dim
            grown[-1 - index] += before + after
        fits = len(pads) % 2 == 0 and len(pads) // 2 <= len(shape) and min(grown) >= 1 and cropped
        if mode == "constant" and x.is_contiguous() and fits and dtype == torch.float32 and value is not True:
            assert outcome == "answered"


@pytest.mark.parametrize(
    "module", [nn.Flatten(), nn.Flatten(0, 2), nn.Flatten(-2), nn.Unflatten(1, (3, 1)), nn.Unflatten(-1, (5, 1))]
)
@pytest.mark.parametrize("layout", ["contiguous", "permuted", "sliced"])
def test_flatten_modules_are_what_dispatch_makes(module: nn.Module, layout: str) -> None:
    with FakeTensorMode():
        base = _base(layout)
        assert check(module, (base,)) in ("answered", "rejected")


@pytest.mark.parametrize("function", [torch.Tensor.reshape_as, torch.Tensor.view_as])
@pytest.mark.parametrize("layout", ["contiguous", "permuted", "sliced"])
@pytest.mark.parametrize("target", [(6, 20), (2, 3, 20), (5, 4, 6), (7, 7)])
def test_reshape_as_and_view_as(function: Any, layout: str, target: tuple[int, ...]) -> None:
    """As ``reshape`` / ``view`` to the other tensor's shape: a view, a copy, or torch's refusal."""
    with FakeTensorMode():
        base = _base(layout)
        other = torch.empty(target, dtype=torch.int64)
        outcome = check(function, (base, other))
    assert outcome == "answered" or (layout != "contiguous" and function is torch.Tensor.view_as) or target == (7, 7)


@given(
    data=st.data(),
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    value=st.sampled_from(["number", "selection", "broadcast", "misfit"]),
    method=st.booleans(),
)
def test_index_writes_are_checked_as_dispatch_checks_them(
    data: st.DataObject, shape: list[int], value: str, method: bool
) -> None:
    """``x[index] = value`` by integers, slices, ``None``, ``...``, lists and integer index tensors, of a
    number, a tensor of the selection's shape, one broadcast to it or one that does not fit: the rule
    answers the tensor written where dispatch writes, declines nothing it could check, and answers
    nothing where torch refuses (a value that does not fit an advanced index is what FakeTensor's own
    ``index_put_`` lets through: the rule agrees with the dispatch, checked by ``check``)."""
    items: list[Any] = []
    for size in shape[: data.draw(st.integers(0, len(shape)))]:
        kind = data.draw(st.sampled_from(["int", "slice", "none", "ellipsis", "tensor", "list"]))
        if kind == "int":
            items.append(data.draw(st.integers(-size, size - 1)))
        elif kind == "slice":
            items.append(slice(data.draw(st.integers(0, size)), None, data.draw(st.integers(1, 2))))
        elif kind == "none":
            items.append(None)
        elif kind == "ellipsis" and Ellipsis not in items:
            items.append(Ellipsis)
        elif kind == "list":
            items.append([0, size - 1])
        else:
            items.append(torch.tensor([size - 1, 0]))
    key = tuple(items)
    try:
        selection = tuple(torch.zeros(shape)[key].shape)
    except IndexError:  # index tensors that do not broadcast together
        return
    with FakeTensorMode() as fake:
        destination = torch.empty(shape)
        index = tuple(fake.from_tensor(item) if isinstance(item, torch.Tensor) else item for item in key)
        written: Any = 0.5
        if value == "selection":
            written = torch.empty(selection)
        elif value == "broadcast":
            written = torch.empty(selection[1:])
        elif value == "misfit":
            written = torch.empty((*selection[:-1], selection[-1] + 2) if selection else (2,))
        function = torch.Tensor.__setitem__ if method else operator.setitem
        outcome = check(function, (destination, index, written))
    if value == "misfit":  # FakeTensor's index_put_ checks no value shape: only a basic index is refused
        assert outcome == "rejected" or any(isinstance(item, (torch.Tensor, list)) for item in key)
    else:
        assert outcome == "answered"


class _Hooked(nn.Module):
    """Grad-CAM's pattern: the forward registers a hook on an activation to keep its gradient."""

    def __init__(self, hooked: bool) -> None:
        super().__init__()
        self.hooked = hooked
        self.layer = nn.Linear(8, 8)
        self.gradients: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer(x)
        if self.hooked:
            y.register_hook(self.gradients.append)
        return y.relu()


def test_a_gradient_hook_registered_in_the_forward_is_inert() -> None:
    """``y.register_hook(fn)`` gets an inert handle (the analysis runs no backward; the rule's result requires no
    grad, so torch refused the hook: a shape error of a valid model); the report is the hook-free model's."""
    hooked = crawl_module(_Hooked(hooked=True).train(), (8,))
    plain = crawl_module(_Hooked(hooked=False).train(), (8,))
    assert hooked.totals == plain.totals
    assert hooked.to_dict()["memory"] == plain.to_dict()["memory"]
    with FakeTensorMode():
        x = torch.empty(2, 8)
    handle = answer(RULES.rule_for(torch.Tensor.register_hook), torch.Tensor.register_hook, (x, print), {})
    assert isinstance(handle, torch.utils.hooks.RemovableHandle)
    handle.remove()
