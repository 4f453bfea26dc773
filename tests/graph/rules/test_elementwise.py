"""Binary arithmetic rules (broadcasting, scalars, dtypes) against FakeTensor dispatch."""

from __future__ import annotations

import operator
from typing import Any

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch._subclasses.fake_tensor import FakeTensorMode

from tests.graph.rules.helpers import check, dense, laid_out

broadcastable = st.lists(st.sampled_from([1, 3, 4]), min_size=0, max_size=4)


@given(
    first=broadcastable,
    second=broadcastable,
    op=st.sampled_from(
        [operator.add, operator.mul, operator.sub, operator.truediv, torch.add, torch.mul, torch.sub, torch.div]
    ),
    scalar=st.one_of(st.none(), st.sampled_from([2, 0.5, 0, True])),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.int64]),
    other_dtype=st.booleans(),
)
def test_binary(
    first: list[int], second: list[int], op: Any, scalar: Any, dtype: torch.dtype, other_dtype: bool
) -> None:
    with FakeTensorMode():
        a = torch.empty(first, dtype=dtype)
        if scalar is not None:
            number = type(scalar) in (int, float)  # a bool is declined: torch decides its promotion
            divides_by_zero = op in (operator.truediv, torch.div) and scalar == 0
            plain = dtype.is_floating_point and number
            assert (check(op, (a, scalar)) == "answered") == (plain and not divides_by_zero)
            assert check(op, (scalar, a)) in (("answered", "rejected") if plain else ("declined", "rejected"))
        else:
            b = torch.empty(second, dtype=torch.float64 if other_dtype else dtype)
            result = check(op, (a, b))
            if dtype.is_floating_point and not other_dtype and (len(first) == len(second) or min(first, second)):
                assert result in ("answered", "rejected")


@given(
    shapes=st.lists(st.integers(1, 4), min_size=1, max_size=4).flatmap(
        lambda shape: st.tuples(
            st.just(shape), st.lists(st.sampled_from([1, None]), min_size=len(shape), max_size=len(shape))
        )
    ),
    op=st.sampled_from([operator.add, operator.mul, operator.truediv, torch.sub, torch.Tensor.__rmul__]),
    dtype=st.sampled_from([torch.float32, torch.float16]),
    swap=st.booleans(),
    device=st.sampled_from(["cpu", "meta"]),
    data=st.data(),
)
def test_binary_of_any_layouts(
    shapes: tuple[list[int], list[int | None]],
    op: Any,
    dtype: torch.dtype,
    swap: bool,
    device: str,
    data: st.DataObject,
) -> None:
    """Operands in drawn layouts (dims permuted in memory, gapped), one broadcast along drawn dims: answered
    as dispatch lays the result out where both are dense (a layer scale times a permuted block, a
    channels-last residual), never otherwise."""
    shape, ones = shapes
    other = [size if one is None else 1 for size, one in zip(shape, ones, strict=True)]
    with FakeTensorMode(), torch.device(device):  # the layout is learned per device
        a, b = laid_out(shape, data, dtype), laid_out(other, data, dtype)
        outcome = check(op, (b, a) if swap else (a, b))
        contiguous = a.is_contiguous() and b.is_contiguous()
        assert outcome == "answered" if contiguous or (dense(a) and dense(b)) else outcome == "declined"
        outcome = check(op, (a, 0.5))
        assert outcome == "answered" if a.is_contiguous() or dense(a) else outcome == "declined"
        if not a.is_contiguous():  # a parameter (requires grad) and a permuted tensor: autograd's result
            assert check(op, (a, torch.nn.Parameter(b))) == "declined"


_UNARY = ("neg", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "abs", "reciprocal", "square", "erf")


@given(
    shape=st.lists(st.integers(1, 4), max_size=4),
    dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float64, torch.int64, torch.bool]),
    layout=st.sampled_from(["contiguous", "transposed", "sliced"]),
)
def test_unary(shape: list[int], dtype: torch.dtype, layout: str) -> None:
    """Every spelling against dispatch: a dense floating-point input is answered, a contiguous one with a
    new contiguous tensor, another order of its dims as the op lays it out; other dtypes declined (torch
    promotes)."""
    with FakeTensorMode():
        x = torch.empty(shape, dtype=dtype)
        if layout == "transposed" and x.dim() >= 2:
            x = x.transpose(0, -1)
        elif layout == "sliced" and x.dim() >= 1:
            x = x[..., :1]
        spellings = [getattr(torch, name) for name in _UNARY] + [getattr(torch.Tensor, name) for name in _UNARY]
        for function in (*spellings, operator.neg, torch.Tensor.__neg__):
            outcome = check(function, (x,))
            if dtype.is_floating_point and (x.is_contiguous() or dense(x)):
                assert outcome == "answered", function
            elif dtype.is_floating_point:
                assert outcome in ("answered", "declined"), function
            else:
                assert outcome in ("declined", "rejected"), function
