"""Shared by the shape-rule tests: compare a rule with FakeTensor dispatch."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st
from torch._subclasses.fake_tensor import FakeTensor
from torch.fx.immutable_collections import immutable_list

from torchscan.graph.rules import RULES, Fresh, Pending, answer
from torchscan.graph.writes import written


def check(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> str:
    """Compare the rule of ``target`` with dispatching it; returns 'answered', 'declined' or 'rejected'."""
    kwargs = kwargs or {}
    rule = RULES.rule_for(target)
    assert rule is not None
    got = answer(rule, target, args, kwargs)
    check_pending(target, args, kwargs, got)
    check_fx_lists(target, args, kwargs, got)
    try:
        expected = written(target, args, target(*args, **kwargs))  # an index write: the tensor written
    except Exception:
        assert got is None, f"torch rejects this call, the rule answered {got}"
        return "rejected"
    if got is None:
        return "declined"
    if not _holds_tensor(got):  # a value read off a tensor (a size, a dtype): the same value and type
        assert got == expected and type(got) is type(expected), (got, expected)
        return "answered"
    if isinstance(got, Fresh):
        assert isinstance(expected, torch.Tensor)
        assert (got.shape, got.dtype, got.device) == (tuple(expected.shape), expected.dtype, expected.device)
        assert expected.is_contiguous()
        inputs = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        assert all(expected.untyped_storage()._cdata != a.untyped_storage()._cdata for a in inputs)
    elif isinstance(got, (tuple, list)) or not any(got is a for a in (*args, *kwargs.values())):
        assert_same_views(got, expected, [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)])
    else:
        assert got is expected
    return "answered"


def check_pending(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any], got: Any) -> None:
    """The rule answers alike when each new contiguous fake argument is a :class:`Pending` one instead
    (what the shape pass passes on for a rule's answer): the same answer, the same argument returned,
    views of the same shape, strides and storage."""
    twins: dict[int, Any] = {}
    args_p, kwargs_p = _twin(args, twins), _twin(kwargs, twins)
    rule = RULES.rule_for(target)
    assert rule is not None
    mine = answer(rule, target, args_p, kwargs_p)
    if got is None or isinstance(got, Fresh) or not _holds_tensor(got):
        assert mine == got and type(mine) is type(got)
        return
    given = [*args, *kwargs.values()]
    if not isinstance(got, (tuple, list)) and any(got is a for a in given):
        position = next(i for i, a in enumerate(given) if got is a)
        assert mine is [*args_p, *kwargs_p.values()][position]
        return
    storages = {id(pending): pending.meta().untyped_storage()._cdata for pending in twins.values() if pending}
    bases = {a.untyped_storage()._cdata for a in given if isinstance(a, torch.Tensor)}
    got_all = list(got) if isinstance(got, (tuple, list)) else [got]
    mine_all = list(mine) if isinstance(mine, (tuple, list)) else [mine]
    assert type(mine) is type(got) and len(mine_all) == len(got_all)
    for theirs, ours in zip(got_all, mine_all, strict=True):
        assert (ours.shape, ours.stride(), ours.storage_offset(), ours.dtype, ours.device) == (
            theirs.shape,
            theirs.stride(),
            theirs.storage_offset(),
            theirs.dtype,
            theirs.device,
        )
        shared = theirs.untyped_storage()._cdata in bases
        assert shared == (ours.untyped_storage()._cdata in {*storages.values(), *bases})


def as_fx_lists(value: Any) -> Any:
    """``value`` with each list made fx's ``immutable_list``, as the shape pass hands a node's arguments
    over (``map_arg``), tuples and dicts walked."""
    if isinstance(value, list):
        return immutable_list(as_fx_lists(item) for item in value)
    if type(value) is tuple:
        return tuple(as_fx_lists(item) for item in value)
    if isinstance(value, dict):
        return {key: as_fx_lists(item) for key, item in value.items()}
    return value


def check_fx_lists(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any], got: Any) -> None:
    """The rule answers alike when each list argument is fx's ``immutable_list`` (``x.mean([2, 3])``,
    ``F.pad(x, [0, 1])`` in a traced forward): a rule that declines it sends the call through
    FakeTensor (~0.3–1 ms a call) for nothing."""
    fx_args, fx_kwargs = as_fx_lists(args), as_fx_lists(kwargs)
    if fx_args == args and fx_kwargs == kwargs and not _has_list((args, kwargs)):
        return
    rule = RULES.rule_for(target)
    assert rule is not None
    mine = answer(rule, target, fx_args, fx_kwargs)
    if got is None or isinstance(got, Fresh) or not _holds_tensor(got):
        assert mine == got and type(mine) is type(got), (mine, got)
        return
    got_all = list(got) if isinstance(got, (tuple, list)) else [got]
    mine_all = list(mine) if isinstance(mine, (tuple, list)) else [mine]
    assert len(mine_all) == len(got_all)
    for theirs, ours in zip(got_all, mine_all, strict=True):
        assert (ours.shape, ours.stride(), ours.storage_offset(), ours.dtype) == (
            theirs.shape,
            theirs.stride(),
            theirs.storage_offset(),
            theirs.dtype,
        )


def _has_list(value: Any) -> bool:
    if isinstance(value, list):
        return True
    if isinstance(value, tuple):
        return any(_has_list(item) for item in value)
    if isinstance(value, dict):
        return any(_has_list(item) for item in value.values())
    return False


def _holds_tensor(value: Any) -> bool:
    """A tensor (or a rule's answer for one), or a tuple or list holding one."""
    if isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
        return any(_holds_tensor(item) for item in value)
    return isinstance(value, (torch.Tensor, Fresh, Pending))


def _row_major(shape: torch.Size) -> tuple[int, ...]:
    stride, step = [0] * len(shape), 1
    for dim in range(len(shape) - 1, -1, -1):
        stride[dim] = step
        step *= shape[dim]
    return tuple(stride)


def _twin(value: Any, twins: dict[int, Any]) -> Any:
    """``value`` with each fake tensor a new contiguous tensor could be (offset 0, storage of its size,
    no grad) replaced by its :class:`Pending` twin (one twin per tensor)."""
    if type(value) is FakeTensor:
        if id(value) not in twins:
            fresh = (
                value.layout == torch.strided
                and value.stride() == _row_major(value.shape)  # a Pending's fake is torch.empty's: size-1 dims too
                and value.storage_offset() == 0
                and not value.requires_grad
                and value.untyped_storage().nbytes() == value.numel() * value.element_size()
            )
            spec = Fresh(tuple(value.shape), value.dtype, value.device)
            twins[id(value)] = Pending(spec, value.fake_mode) if fresh else None
        return twins[id(value)] or value
    if isinstance(value, (tuple, list)):
        return type(value)(_twin(item, twins) for item in value)
    if isinstance(value, dict):
        return {key: _twin(item, twins) for key, item in value.items()}
    return value


def assert_same_views(got: Any, expected: Any, inputs: list[torch.Tensor]) -> None:
    """Same type, and per tensor: shape, strides, offset, dtype, device and storage (shared or not)."""
    got_all = list(got) if isinstance(got, (tuple, list)) else [got]
    expected_all = list(expected) if isinstance(expected, (tuple, list)) else [expected]
    assert type(got) is type(expected) and len(got_all) == len(expected_all)
    for mine, theirs in zip(got_all, expected_all, strict=True):
        assert type(mine) is type(theirs)
        assert (mine.shape, mine.stride(), mine.storage_offset()) == (
            theirs.shape,
            theirs.stride(),
            theirs.storage_offset(),
        )
        assert (mine.dtype, mine.device, mine.is_contiguous()) == (theirs.dtype, theirs.device, theirs.is_contiguous())
        storages = [a.untyped_storage()._cdata for a in inputs]
        assert (mine.untyped_storage()._cdata in storages) == (theirs.untyped_storage()._cdata in storages)


sizes = st.integers(1, 9)


def laid_out(shape: list[int], data: st.DataObject, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A tensor of ``shape`` (made in the caller's fake mode) in a drawn layout: its dims in a drawn
    memory order, and maybe every other element of a drawn dim (a gapped view of a wider tensor)."""
    order = data.draw(st.permutations(range(len(shape))))
    stored = [shape[dim] for dim in order]
    gapped = data.draw(st.sampled_from([None, *range(len(shape))])) if shape else None
    if gapped is not None:
        stored[order.index(gapped)] *= 2
    x = torch.empty(stored, dtype=dtype).permute([order.index(dim) for dim in range(len(shape))])
    if gapped is not None:
        index = [slice(None)] * len(shape)
        index[gapped] = slice(None, None, 2)
        x = x[tuple(index)]
    assert list(x.shape) == list(shape)
    return x


def dense(x: torch.Tensor) -> bool:
    """A permutation of a contiguous layout, a size-1 dim's stride too the product of the sizes inner to
    it (what :func:`laid_out` makes unless it gaps a dim): with contiguous tensors (a size-1 dim's
    stride aside), the layouts whose pointwise results the rules lay out."""
    step = 1
    for size, stride in sorted(zip(x.shape, x.stride(), strict=True), key=lambda pair: (pair[1], pair[0] != 1)):
        if stride != step:
            return False
        step *= size
    return True
