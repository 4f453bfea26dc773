"""The dispatch memo: a repeated torch op gets exactly what dispatch gives, views, in-place results,
user functions and constants are dispatched every time, and whole-model propagation is the same
with and without it while the repeats are no longer dispatched."""

from __future__ import annotations

import collections
import dataclasses
import operator
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.fx.immutable_collections import immutable_list
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode

from tests.profiles import examples
from tests.strategies import random_nets
from torchscan.graph.calls import module_path_of
from torchscan.graph.dispatch_memo import DispatchMemo
from torchscan.graph.shapes import propagate
from torchscan.graph.trace import capture
from torchscan.inputs import model_inputs
from torchscan.ops import DEFAULT_REGISTRY

_OPS: dict[str, tuple[str, Any, Callable[[torch.Tensor, torch.Tensor], tuple[Any, ...]], dict[str, Any]]] = {
    "mul": ("call_function", operator.mul, lambda x, y: (x, y), {}),
    "add": ("call_function", torch.add, lambda x, y: (x, y), {"alpha": 2}),
    "neg": ("call_function", operator.neg, lambda x, y: (x,), {}),
    "exp": ("call_function", torch.exp, lambda x, y: (x,), {}),
    "cat": ("call_function", torch.cat, lambda x, y: ((x, y),), {"dim": -1}),
    "maximum": ("call_function", torch.maximum, lambda x, y: (x, y), {}),
    "half": ("call_method", "half", lambda x, y: (x,), {}),
    "sum": ("call_method", "sum", lambda x, y: (x, -1), {"keepdim": True}),
}
"""Calls no shape rule answers on strided inputs: (fx op, target, arguments, keyword arguments)."""


def _run(op: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return getattr(args[0], target)(*args[1:], **kwargs) if op == "call_method" else target(*args, **kwargs)


def _strided(fake: FakeTensorMode, shape: tuple[int, ...], order: list[int]) -> torch.Tensor:
    """A fake tensor of ``shape`` laid out in ``order`` (a permutation of a contiguous one)."""
    with fake:
        return torch.empty([shape[i] for i in order]).permute([order.index(i) for i in range(len(shape))])


def _storage(tensor: torch.Tensor) -> int:
    return StorageWeakRef(tensor.untyped_storage()).cdata


@settings(max_examples=examples(40))
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
    data=st.data(),
    name=st.sampled_from(sorted(_OPS)),
)
def test_a_repeated_call_gets_what_dispatch_gives(shape: tuple[int, ...], data: st.DataObject, name: str) -> None:
    fake = FakeTensorMode()
    orders = st.permutations(range(len(shape))).map(list)
    x_order, y_order = data.draw(orders), data.draw(orders)
    first_x, first_y = _strided(fake, shape, x_order), _strided(fake, shape, y_order)
    memo = DispatchMemo(fake)
    op, target, arguments, kwargs = _OPS[name]
    first = arguments(first_x, first_y)
    key = memo.key(op, target, first, kwargs)
    assert key is not None
    assert memo.answer(key) is None  # not seen yet
    with fake:
        memo.learn(key, first, kwargs, _run(op, target, first, kwargs))
    # the same metadata on other storages: the same signature, answered without a dispatch
    x, y = _strided(fake, shape, x_order), _strided(fake, shape, y_order)
    assert memo.key(op, target, arguments(x, y), kwargs) == key
    answered = memo.answer(key)
    with fake:
        dispatched = _run(op, target, arguments(x, y), kwargs)
    assert isinstance(answered, type(dispatched))
    assert answered.shape == dispatched.shape and answered.stride() == dispatched.stride()
    assert (answered.dtype, answered.device, answered.requires_grad) == (dispatched.dtype, dispatched.device, False)
    assert answered.storage_offset() == dispatched.storage_offset() == 0
    assert answered.untyped_storage().nbytes() == dispatched.untyped_storage().nbytes()
    assert _storage(answered) not in {_storage(x), _storage(y), _storage(memo.answer(key))}  # a new storage each time


def test_views_in_place_results_and_grad_outputs_are_dispatched_every_time() -> None:
    fake = FakeTensorMode()
    with fake:
        x, y = torch.empty(4, 6), torch.empty(4, 6)
        w = torch.empty(4, 6, requires_grad=True)
    calls: list[tuple[str, Any, tuple[Any, ...], Callable[[], Any]]] = [
        ("call_method", "transpose", (x, 0, 1), lambda: x.transpose(0, 1)),  # a view
        ("call_function", operator.getitem, (x, 0), lambda: x[0]),  # a view
        ("call_function", torch.chunk, (x, 2), lambda: torch.chunk(x, 2)),  # views
        ("call_method", "add_", (x, y), lambda: x.add_(y)),  # in place: the input itself
        ("call_function", torch.mul, (w, y), lambda: torch.mul(w, y)),  # requires grad
        ("call_method", "size", (x,), lambda: x.size()),  # no tensor out
    ]
    for op, target, args, run in calls:
        memo = DispatchMemo(fake)
        key = memo.key(op, target, args, {})
        assert key is not None, target
        with fake:
            memo.learn(key, args, {}, run())
        assert memo.answer(key) is None, target


def _user_function(x: torch.Tensor) -> torch.Tensor:
    return x * 2


def test_user_functions_constants_and_opaque_arguments_are_not_keyed() -> None:
    fake = FakeTensorMode()
    with fake:
        x = torch.empty(3, 4)
    values = torch.tensor([1.0, 2.0])  # a fake tensor that knows its values (small constants traced)
    constant = FakeTensor(fake, torch.empty(2, device="meta"), torch.device("cpu"), constant=values)
    memo = DispatchMemo(fake)
    assert constant.constant is not None
    assert memo.key("call_function", _user_function, (x,), {}) is None  # may read or change Python state
    assert memo.key("call_function", torch.add, (constant, constant), {}) is None
    assert memo.key("call_function", torch.add, (x, object()), {}) is None
    assert memo.key("call_method", "append", ([], x), {}) is None  # a method of something else
    assert memo.key("call_function", torch.add, (x, torch.empty(3, 4)), {}) is None  # a real tensor


def test_signatures_tell_aliasing_and_plain_types_apart() -> None:
    fake = FakeTensorMode()
    with fake:
        x, y = torch.empty(3, 4), torch.empty(3, 4)
    memo = DispatchMemo(fake)
    assert memo.key("call_function", torch.add, (x, x), {}) != memo.key("call_function", torch.add, (x, y), {})
    assert memo.key("call_function", torch.add, (x, x[:]), {}) == memo.key("call_function", torch.add, (x, x), {})
    keys = {memo.key("call_function", torch.add, (x, value), {}) for value in (1, 1.0, True)}
    assert len(keys) == 3  # 1 == 1.0 == True in Python, not to torch's type promotion
    with fake:
        grad = torch.empty(3, 4, requires_grad=True)
        t = torch.empty(4, 3).t()
    assert memo.key("call_function", torch.add, (x, grad), {}) != memo.key("call_function", torch.add, (x, y), {})
    assert memo.key("call_function", torch.add, (x, t), {}) != memo.key("call_function", torch.add, (x, y), {})


class _Rotary(nn.Module):
    """Rotary embedding on transposed heads: elementwise ops on gapped slices and a ``cat`` of them,
    which no rule answers (each block dispatches four ATen ops)."""

    def __init__(self, heads: int = 2, head_dim: int = 4) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.q = nn.Linear(heads * head_dim, heads * head_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q = self.q(x).view(batch, length, self.heads, self.head_dim).transpose(1, 2)
        half = self.head_dim // 2
        angles = torch.arange(length, dtype=x.dtype, device=x.device)[:, None].expand(length, self.head_dim)
        q = q * angles.cos() + torch.cat((-q[..., half:], q[..., :half]), dim=-1) * angles.sin()
        return x + q.transpose(1, 2).reshape(batch, length, -1)


class _Dispatches(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        self.count += 1
        return func(*args, **(kwargs or {}))


def _values(model: nn.Module, shape: tuple[int, ...], memo: bool) -> tuple[dict[str, Any], int]:
    inputs = model_inputs(shape, args=None, kwargs=None, dtype=None, batch_size=2, signature=None)
    captured = capture(model, DEFAULT_REGISTRY, inputs)
    paths = {node.name: module_path_of(node) for node in captured.graph.nodes}
    device = next(model.parameters()).device
    with captured.fake_mode, torch.enable_grad():
        tensors = [torch.empty(spec.shape, dtype=spec.dtype, device=device) for spec in inputs.specs]
        with _Dispatches() as dispatches:
            values = propagate(captured.root, captured.graph, tensors, paths, fakes=captured.fakes, memo=memo)
    ids: dict[int, int] = {}  # storages numbered by first appearance (parameters are faked on first use)
    renumbered = {
        name: dataclasses.replace(
            value, storages=tuple(dataclasses.replace(s, id=ids.setdefault(s.id, len(ids))) for s in value.storages)
        )
        for name, value in values.items()
    }
    return renumbered, dispatches.count


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_repeated_blocks_propagate_the_same_with_fewer_dispatches(device: str) -> None:
    blocks = 6
    model = nn.Sequential(*[_Rotary() for _ in range(blocks)]).to(device)
    for mode in (model.eval(), model.train()):
        with_memo, memo_dispatches = _values(mode, (5, 8), memo=True)
        without, dispatches = _values(mode, (5, 8), memo=False)
        assert with_memo == without
        # each block dispatches the same ops: with the memo only the first block's are dispatched
        per_block = (dispatches - memo_dispatches) / (blocks - 1)
        assert per_block >= 4 and dispatches - memo_dispatches == per_block * (blocks - 1)


@given(net=random_nets())
def test_random_nets_propagate_the_same_with_and_without_the_memo(net: tuple[nn.Module, tuple[int, ...]]) -> None:
    model, shape = net
    for module in model.modules():  # momentum=None in training: dispatch on fakes cannot read the counter
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.momentum is None:
            module.momentum = 0.5
    assert _values(model, shape, memo=True)[0] == _values(model, shape, memo=False)[0]


_Outputs = collections.namedtuple("_Outputs", ["main", "aux"])


class _TwoHeads(nn.Module):
    """Returns its heads in a named tuple (as GoogLeNet does): a call passing rule-answered values through."""

    def __init__(self) -> None:
        super().__init__()
        self.main, self.aux = nn.Linear(8, 4), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> _Outputs:
        return _Outputs(self.main(x), self.aux(x))


def test_a_call_passing_its_arguments_through_is_seen_as_such_with_and_without_the_memo() -> None:
    for memo in (True, False):
        values, _ = _values(_TwoHeads(), (8,), memo=memo)
        assert values["_outputs"].output == (values["main"].output, values["aux"].output)
        assert values["_outputs"].passthrough, memo  # the fakes made for the call are its arguments


def test_a_list_of_tensors_as_fx_passes_it_is_keyed() -> None:
    """``torch.cat([a, b])`` in a traced forward: its operands arrive as fx's ``immutable_list``; the call
    has a key (is answered by the memo when seen again), as with a list."""
    mode = FakeTensorMode()
    with mode:
        a, b = torch.empty(2, 3), torch.empty(2, 3)
    memo = DispatchMemo(mode)
    assert memo.key("call_function", torch.cat, ([a, b],), {}) is not None
    assert memo.key("call_function", torch.cat, (immutable_list([a, b]),), {}) is not None
