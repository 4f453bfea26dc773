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
from torchscan.graph.rules import RULES, answer


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


@given(
    data=st.data(),
    letters=st.lists(st.sampled_from("abcdef"), min_size=1, max_size=4, unique=True),
    operands=st.integers(1, 3),
    as_list=st.booleans(),
    explicit=st.booleans(),
)
def test_einsum_is_what_torch_makes(
    data: st.DataObject, letters: list[str], operands: int, as_list: bool, explicit: bool
) -> None:
    """Random equations over shared letters (sizes 1–3 per letter, operands contiguous or laid out in
    reverse, given one by one or as a list, an explicit or implicit output): the rule's result has the
    shape and dtype torch's einsum gives real tensors of that layout, their strides and dispatch's on
    every dim of size > 1, and a storage of its own; a result einsum makes as a view of its operand is
    left to the dispatch."""
    sizes = {letter: data.draw(st.integers(1, 3)) for letter in letters}
    terms = [
        data.draw(st.lists(st.sampled_from(letters), min_size=1, max_size=3, unique=True)) for _ in range(operands)
    ]
    used = sorted({letter for term in terms for letter in term})
    output = data.draw(st.permutations(used))[: data.draw(st.integers(0, len(used)))]
    equation = ",".join("".join(term) for term in terms) + ("->" + "".join(output) if explicit else "")
    reversed_layout = [data.draw(st.booleans()) for _ in terms]

    def operand(term: list[str], reverse: bool) -> torch.Tensor:
        tensor = torch.empty([sizes[letter] for letter in reversed(term)]).permute(*range(len(term) - 1, -1, -1))
        return tensor if reverse else tensor.contiguous()

    real = torch.einsum(equation, *[operand(t, r).normal_() for t, r in zip(terms, reversed_layout, strict=True)])
    with FakeTensorMode():
        tensors = [operand(t, r) for t, r in zip(terms, reversed_layout, strict=True)]
        args = (equation, tensors) if as_list else (equation, *tensors)
        got = answer(RULES.rule_for(torch.einsum), torch.einsum, args, {})
        expected = torch.einsum(*args)
    if got is None:  # a view of its operand
        assert any(expected.untyped_storage()._cdata == t.untyped_storage()._cdata for t in tensors)
        return
    # a size-1 dim's stride is read by no layout question (contiguity, views, storage size), and torch's CPU
    # and meta kernels disagree on it (``"ad,abc->ab"`` at a=2, b=c=d=1: CPU (1, 1), meta (1, 2)): compared
    # on the dims that move, as with the dispatch
    moving = [d for d, n in enumerate(got.shape) if n > 1]
    assert (got.shape, got.dtype) == (real.shape, real.dtype)
    assert [got.stride(d) for d in moving] == [real.stride(d) for d in moving]
    assert (got.shape, got.device) == (expected.shape, expected.device)
    assert [got.stride(d) for d in moving] == [expected.stride(d) for d in moving]
    assert all(got.untyped_storage()._cdata != t.untyped_storage()._cdata for t in tensors)


_GROUPED = ("2d-3d", "3d-2d", "2d-2d", "3d-3d")


def _grouped_operands(layout: str, groups: int, m: int, k: int, n: int, transposed: bool, dtype: Any) -> tuple:
    """``grouped_mm``'s operands for a layout (``transposed``: ``b`` a transposed view, as Hugging Face's experts
    hold their weights)."""

    def matrix(*shape: int) -> torch.Tensor:
        made = torch.empty(*shape[:-2], shape[-1], shape[-2], dtype=dtype) if transposed else None
        return made.transpose(-2, -1) if made is not None else torch.empty(*shape, dtype=dtype)

    offs = torch.empty(groups, dtype=torch.int32)
    a, b = {
        "2d-3d": (torch.empty(m, k, dtype=dtype), matrix(groups, k, n)),
        "3d-2d": (torch.empty(groups, m, k, dtype=dtype), matrix(k, n)),
        "2d-2d": (torch.empty(m, k, dtype=dtype), matrix(k, n)),
        "3d-3d": (torch.empty(groups, m, k, dtype=dtype), matrix(groups, k, n)),
    }[layout]
    return a, b, None if layout == "3d-3d" else offs


@given(
    layout=st.sampled_from(_GROUPED),
    groups=st.integers(1, 4),
    sizes=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
    transposed=st.booleans(),
)
def test_grouped_mm_is_what_torch_makes(layout: str, groups: int, sizes: tuple, transposed: bool) -> None:
    """``grouped_mm`` (mixture-of-experts layers) in its four layouts: in bfloat16 what torch's meta kernel makes;
    in float32, which the meta kernel refuses and the CPU kernel runs, the CPU kernel's shape."""
    m, k, n = (8 * size for size in sizes)  # the kernels' 16-byte alignment of rows
    with FakeTensorMode():
        a, b, offs = _grouped_operands(layout, groups, m, k, n, transposed, torch.bfloat16)
        for function in (torch._grouped_mm, F.grouped_mm):
            assert check(function, (a, b), {"offs": offs}) == "answered"
        assert check(torch._grouped_mm, (a, b, offs)) == "answered"
        a, b, offs = _grouped_operands(layout, groups, m, k, n, transposed, torch.float32)
        got = answer(RULES.rule_for(torch._grouped_mm), torch._grouped_mm, (a, b), {"offs": offs})
    a, b, offs = _grouped_operands(layout, groups, m, k, n, transposed, torch.float32)
    if offs is not None:  # even groups, the last ending at the size of the dimension they split
        split = {"2d-2d": k, "2d-3d": m, "3d-2d": n}[layout]
        offs = torch.arange(1, groups + 1, dtype=torch.int32) * (split // groups)
        offs[-1] = split
    real = torch._grouped_mm(a.normal_(), b.normal_(), offs=offs)
    assert got is not None and (got.shape, got.dtype) == (tuple(real.shape), real.dtype)


def test_grouped_mm_with_a_bias_or_another_output_dtype_is_left_to_torch() -> None:
    with FakeTensorMode():
        a, b, offs = _grouped_operands("2d-3d", 2, 8, 8, 8, False, torch.bfloat16)
        rule = RULES.rule_for(torch._grouped_mm)
        assert answer(rule, torch._grouped_mm, (a, b), {"offs": offs, "bias": torch.empty(2, 8)}) is None
        assert answer(rule, torch._grouped_mm, (a, b), {"offs": offs, "out_dtype": torch.float32}) is None


@given(
    batch=st.lists(st.integers(0, 3), min_size=1, max_size=3),
    features=st.integers(1, 6),
    out=st.integers(1, 6),
    bias=st.booleans(),
    dtype=st.sampled_from([torch.qint8, torch.float16]),
)
def test_dynamic_quantized_linear_gives_the_real_layer_s_shape(
    batch: list[int], features: int, out: int, bias: bool, dtype: torch.dtype
) -> None:
    """torch.ao's dynamically quantized ``Linear`` has no fake kernel: its rule answers the real layer's shape and
    dtype (an int8 or float16 packed weight, float32 in and out); it declines another input dtype or width, and a
    1-D input (the layer refuses one)."""
    layer = torch.ao.nn.quantized.dynamic.Linear(features, out, bias_=bias, dtype=dtype)
    x = torch.randn(*batch, features)
    expected = layer(x)
    rule = RULES.rule_for(type(layer))
    with FakeTensorMode() as mode:
        fake = mode.from_tensor(x)
        got = answer(rule, layer, (fake,), {})
        assert answer(rule, layer, (fake.double(),), {}) is None
        assert answer(rule, layer, (torch.empty(*batch, features + 1),), {}) is None
        assert answer(rule, layer, (torch.empty(features),), {}) is None
    assert got is not None and (tuple(got.shape), got.dtype) == (tuple(expected.shape), expected.dtype)
