"""Embedding, matmul and ``F.linear`` (with softmax and reflected arithmetic) against FakeTensor dispatch."""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from tests.graph.rules.helpers import check


@given(shape=st.lists(st.integers(0, 3), max_size=3), dtype=st.sampled_from([torch.int64, torch.int32, torch.float32]))
def test_embedding(shape: list[int], dtype: torch.dtype) -> None:
    with FakeTensorMode():
        ids = torch.empty(shape, dtype=dtype)
        result = check(nn.Embedding(10, 4), (ids,))
        assert result == ("answered" if dtype != torch.float32 else "rejected")
        assert check(nn.Embedding(10, 4, max_norm=1.0), (ids,)) in ("declined", "rejected")


@given(
    first=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    second=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    transposed=st.booleans(),
)
def test_matmul(first: list[int], second: list[int], transposed: bool) -> None:
    with FakeTensorMode():
        a = torch.empty(first)
        b = torch.empty(second).transpose(-1, -2) if transposed and len(second) > 1 else torch.empty(second)
        for function in (torch.matmul, operator.matmul, torch.Tensor.__matmul__):
            result = check(function, (a, b))
        if len(first) >= 2 and len(b.shape) >= 2 and first[-1] == b.shape[-2] and first[:-2] == list(b.shape[:-2]):
            assert result == "answered"


@given(
    n=st.integers(0, 3),
    k=st.integers(1, 3),
    m=st.integers(1, 3),
    bias=st.sampled_from(["row", "full", "column", "scalar", "wrong"]),
    transposed=st.booleans(),
    scaled=st.booleans(),
    grad=st.booleans(),
)
def test_addmm(n: int, k: int, m: int, bias: str, transposed: bool, scaled: bool, grad: bool) -> None:
    """``torch.addmm(bias, a, b)`` (GPT-2's ``Conv1D``), its matrices of any strides, its parameters
    requiring grad or not: a new contiguous ``(n, m)`` tensor; a bias that does not broadcast, torch's error."""
    shapes = {"row": (m,), "full": (n, m), "column": (n, 1), "scalar": (), "wrong": (m + 1,)}
    with FakeTensorMode():
        a = torch.empty(n, k)
        b = torch.empty(m, k).t() if transposed else torch.empty(k, m)
        vector = torch.empty(shapes[bias])
        if grad:
            b, vector = nn.Parameter(b), nn.Parameter(vector)
        kwargs = {"beta": 0.5, "alpha": 2} if scaled else {}
        result = check(torch.addmm, (vector, a, b), kwargs)
        assert result in (("declined", "rejected") if bias == "wrong" else ("answered",))
        assert check(torch.addmm, (vector, a, torch.empty(k + 1, m))) == "rejected"


@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=4), dim=st.integers(-4, 3), bias=st.booleans())
def test_functional_linear_and_softmax(shape: list[int], dim: int, bias: bool) -> None:
    with FakeTensorMode():
        x = torch.empty(shape)
        weight, vector = torch.empty(5, shape[-1]), torch.empty(5) if bias else None
        assert check(F.linear, (x, weight, vector)) == "answered"
        check(F.linear, (x,), {"weight": weight, "bias": vector})
        assert check(F.linear, (x, torch.empty(5, shape[-1] + 1))) == "rejected"
        in_range = -len(shape) <= dim < len(shape)
        for result in (
            check(torch.softmax, (x, dim)),
            check(torch.Tensor.softmax, (x, dim)),
            check(F.softmax, (x,), {"dim": dim}),
        ):
            assert result == "answered" if in_range else result in ("declined", "rejected")
        assert check(torch.Tensor.__radd__, (x, 2.0)) == "answered"
        assert check(torch.Tensor.__rmul__, (x, 3)) == "answered"


@given(
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    order=st.randoms(use_true_random=False),
    sliced=st.booleans(),
    bias=st.booleans(),
    device=st.sampled_from(["cpu", "meta"]),
    dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.int64]),
)
def test_linear_of_an_input_of_any_layout(
    shape: list[int], order: Any, sliced: bool, bias: bool, device: str, dtype: torch.dtype
) -> None:
    """A permuted (channels-last style) or sliced input: a new contiguous result, as torch gives."""
    permutation = list(range(len(shape)))
    order.shuffle(permutation)
    with FakeTensorMode():
        stored = torch.empty([shape[i] for i in permutation], dtype=dtype, device=device)
        x = stored.permute([permutation.index(i) for i in range(len(shape))])  # ``shape``, another layout
        if sliced:
            x = torch.empty(*shape[:-1], 2 * shape[-1], dtype=dtype, device=device)[..., : shape[-1]]
        module = nn.Linear(shape[-1], 5, bias=bias, dtype=dtype if dtype.is_floating_point else None, device=device)
        expected = "answered" if dtype.is_floating_point else None
        assert check(module, (x,)) == expected or expected is None
        assert check(F.linear, (x, module.weight, module.bias)) == expected or expected is None
