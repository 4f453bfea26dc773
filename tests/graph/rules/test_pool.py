"""Pooling rules (max, average, adaptive; modules and functions) against FakeTensor dispatch: on a
plain input (contiguous float, no indices) they answer whatever torch accepts."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from tests.graph.rules.helpers import check, sizes


@given(
    kind=st.sampled_from(["max", "avg"]),
    dims=st.integers(1, 3),
    kernel=st.integers(1, 4),
    stride=st.one_of(st.none(), st.integers(1, 3)),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    ceil=st.booleans(),
    size=sizes,
)
def test_pool(
    kind: str, dims: int, kernel: int, stride: int | None, padding: int, dilation: int, ceil: bool, size: int
) -> None:
    with FakeTensorMode():
        if kind == "max":
            module: nn.Module = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[dims - 1](
                kernel, stride, padding, dilation, ceil_mode=ceil
            )
        else:
            module = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[dims - 1](kernel, stride, padding, ceil_mode=ceil)
        result = check(module, (torch.empty(2, 3, *[size + d for d in range(dims)]),))
    assert result in ("answered", "rejected")


@given(
    dims=st.integers(1, 3), out=st.lists(st.one_of(st.none(), st.integers(1, 5)), min_size=1, max_size=3), size=sizes
)
def test_adaptive_pool(dims: int, out: list[int | None], size: int) -> None:
    output_size = out[0] if len(out) == 1 else tuple(out)
    with FakeTensorMode():
        x = torch.empty(2, 3, *[size + d for d in range(dims)])
        modules = (
            (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[dims - 1](output_size),
            (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)[dims - 1](output_size),
        )
        results = [check(module, (x,)) for module in modules]
        function = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[dims - 1]
        results.append(check(function, (x, output_size)))
    assert set(results) <= {"answered", "rejected"}, results


@given(
    shape=st.lists(st.integers(1, 3), max_size=4),
    dim=st.one_of(
        st.none(),
        st.integers(-5, 4),
        st.lists(st.integers(-4, 3), max_size=3).map(tuple),
        st.lists(st.integers(-4, 3), min_size=1, max_size=2),
    ),
    keepdim=st.sampled_from([None, False, True, 1]),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.int64]),
    strided=st.booleans(),
    spelled=st.sampled_from(["function", "method", "by_name"]),
)
def test_mean(shape: list[int], dim: Any, keepdim: Any, dtype: torch.dtype, strided: bool, spelled: str) -> None:
    """``mean`` over any dims, by position or name: answered for a contiguous floating input where torch
    accepts the call (strided inputs and ``dtype`` are torch's), rejected alike."""
    with FakeTensorMode():
        x = torch.empty(shape, dtype=dtype)
        if strided and x.dim() >= 2:
            x = x.transpose(0, -1)
        kwargs = {} if keepdim is None else {"keepdim": keepdim}
        if spelled == "by_name":
            outcome = check(torch.mean, (x,), {"dim": dim, **kwargs})
        elif dim is None:
            outcome = check(torch.mean if spelled == "function" else torch.Tensor.mean, (x,), kwargs)
        else:
            outcome = check(torch.mean if spelled == "function" else torch.Tensor.mean, (x, dim), kwargs)
    everyday = dtype.is_floating_point and x.is_contiguous() and keepdim in (None, False, True) and x.dim() > 0
    if everyday and dim not in (None, (), []) and outcome != "rejected":  # an empty dim: torch reduces all
        assert outcome == "answered", (shape, dim, keepdim)
