"""Pools against the counting reference (``tests/reference/pool.py``): max (dilated, padded,
``ceil_mode``), average (padded, ``ceil_mode``, ``count_include_pad``), adaptive; 1-D/2-D/3-D.

Conventions (``torchscan/ops/pool.py``) against the literal counts:

- FLOPs: a max pool's are the reference's comparisons, ``K − 1`` per output. An average pool's
  are the reference's ``K − 1`` adds and one division per output **plus ``d − 1``** (departure:
  the convention counts the divisor as ``d`` FLOPs, the ``d − 1`` products of the window's extents
  that torch's kernel forms per output and the division; the reference takes those extents as
  index arithmetic and counts the division only).
- MACs: the convention counts every FLOP of a pool as a MAC too (departure: the reference does no
  multiply-accumulate, ``Tally.macs == 0``).
- DMAs: every tap of every window is read (padding taps included) and each output written once —
  the reference's literal reads.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

from tests.ops.helpers import assert_same, crawled_cost, function_cost, module_cost, randn
from tests.reference import pool as reference
from tests.reference.counting import Counted
from torchscan.records import Cost

MAX = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
AVG = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
ADAPTIVE_MAX = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
ADAPTIVE_AVG = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
MAX_FUNCTIONS = (F.max_pool1d, F.max_pool2d, F.max_pool3d)


def expected_max(counted: Counted) -> Cost:
    tally = counted.tally
    assert tally.macs == 0
    return Cost(flops=tally.flops, macs=tally.flops, dmas=tally.dmas(per_read=["input"]))


def expected_avg(counted: Counted, dims: int) -> Cost:
    tally = counted.tally
    assert tally.macs == 0
    divisor = tally.writes["output"] * (dims - 1)  # the departure stated in the module docstring
    flops = tally.flops + divisor
    return Cost(flops=flops, macs=flops, dmas=tally.dmas(per_read=["input"]))


@st.composite
def windows(draw: st.DrawFn, dilated: bool) -> dict:
    """A pooling window per spatial dim (non-square), the input it slides over, its padding and
    ``ceil_mode``; ``dilated`` draws dilation 1–2 (max pools only)."""
    dims = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3 if dims < 3 else 2)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims)) if dilated else (1,) * dims
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    span = [d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True)]
    size = tuple(
        draw(st.integers(max(s - 2 * p, 1), max(s - 2 * p, 1) + 3)) for s, p in zip(span, padding, strict=True)
    )
    ceil_mode = draw(st.booleans())
    batch, channels = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    x = randn(draw(st.integers(0, 2**31)), batch, channels, *size)
    return {"x": x, "kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation, "ceil": ceil_mode}


@given(windows(dilated=True))
def test_max_pools_count_as_the_reference(case: dict) -> None:
    x, dims = case["x"], case["x"].ndim - 2
    module = MAX[dims - 1](case["kernel"], case["stride"], case["padding"], case["dilation"], ceil_mode=case["ceil"])
    counted = reference.max_pool(x, case["kernel"], case["stride"], case["padding"], case["dilation"], case["ceil"])
    assert_same(counted.output, module(x))
    assert module_cost(module, x) == expected_max(counted)
    got = function_cost(
        MAX_FUNCTIONS[dims - 1],
        x,
        case["kernel"],
        case["stride"],
        case["padding"],
        case["dilation"],
        ceil_mode=case["ceil"],
    )
    assert got == expected_max(counted)


@given(windows(dilated=False), st.booleans())
def test_avg_pools_count_as_the_reference(case: dict, count_include_pad: bool) -> None:
    x, dims = case["x"], case["x"].ndim - 2
    if dims == 3:  # avg_pool3d also wants the unpadded input to cover the window
        assume(all(n >= k for n, k in zip(x.shape[2:], case["kernel"], strict=True)))
    module = AVG[dims - 1](
        case["kernel"], case["stride"], case["padding"], ceil_mode=case["ceil"], count_include_pad=count_include_pad
    )
    counted = reference.avg_pool(x, case["kernel"], case["stride"], case["padding"], case["ceil"], count_include_pad)
    assert_same(counted.output, module(x))
    assert module_cost(module, x) == expected_avg(counted, dims)


@st.composite
def divisible(draw: st.DrawFn) -> tuple[torch.Tensor, tuple[int, ...]]:
    """An input and an adaptive output size dividing it (uniform windows)."""
    dims = draw(st.integers(1, 3))
    out = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    size = tuple(o * draw(st.integers(1, 3 if dims < 3 else 2)) for o in out)
    return randn(draw(st.integers(0, 2**31)), draw(st.integers(1, 2)), draw(st.integers(1, 2)), *size), out


@st.composite
def uneven(draw: st.DrawFn) -> tuple[torch.Tensor, tuple[int, ...]]:
    """An input and any adaptive output size up to it (overlapping windows when it does not divide)."""
    dims = draw(st.integers(1, 3))
    size = tuple(draw(st.integers(1, 7 if dims < 3 else 4)) for _ in range(dims))
    out = tuple(draw(st.integers(1, n)) for n in size)
    return randn(draw(st.integers(0, 2**31)), draw(st.integers(1, 2)), draw(st.integers(1, 2)), *size), out


@given(st.one_of(divisible(), uneven()))
def test_adaptive_pools_count_as_the_reference(case: tuple[torch.Tensor, tuple[int, ...]]) -> None:
    x, out = case
    dims = x.ndim - 2
    counted = reference.adaptive_max_pool(x, out)
    module: nn.Module = ADAPTIVE_MAX[dims - 1](out)
    assert_same(counted.output, module(x))
    assert module_cost(module, x) == expected_max(counted)
    counted = reference.adaptive_avg_pool(x, out)
    module = ADAPTIVE_AVG[dims - 1](out)
    assert_same(counted.output, module(x))
    assert module_cost(module, x) == expected_avg(counted, dims)


def test_adaptive_pools_with_uneven_windows() -> None:
    """AdaptiveMaxPool1d 10 → 3: torch's windows [⌊i·10/3⌋, ⌈(i+1)·10/3⌉) are [0, 4), [3, 7), [6, 10):
    4 taps each, 3 comparisons each: 9 FLOPs; DMAs 12 reads + 3 writes. (A uniform window of
    10 % 3 + 1 = 2 taps, the formula before, gave 3 FLOPs and 9 DMAs.)"""
    x = randn(0, 1, 1, 10)
    counted = reference.adaptive_max_pool(x, (3,))
    assert_same(counted.output, nn.AdaptiveMaxPool1d(3)(x))
    assert expected_max(counted) == Cost(flops=9, macs=9, dmas=15)
    assert module_cost(nn.AdaptiveMaxPool1d(3), x) == Cost(flops=9, macs=9, dmas=15)


def test_a_hand_worked_dilated_max_pool() -> None:
    """MaxPool1d k = 2, dilation 2, stride 1 on 5 elements: windows {0, 2}, {1, 3}, {2, 4}: 3 outputs,
    1 comparison each (3 FLOPs, counted as 3 MACs), 2 reads each + 3 writes = 9 DMAs. Ignoring the
    dilation (windows of span 2) would give 4 outputs."""
    x = randn(0, 1, 1, 5)
    module = nn.MaxPool1d(2, stride=1, dilation=2)
    assert module(x).shape[-1] == 3
    assert module_cost(module, x) == expected_max(reference.max_pool(x, 2, 1, 0, 2)) == Cost(3, 3, 9)


def test_a_hand_worked_avg_pool() -> None:
    """AvgPool2d 2×3 on 2×6 → 1×2: per output 5 adds + the divisor (2 FLOPs by convention: one
    product of extents, one division) = 7 FLOPs; 2 outputs → 14 FLOPs and 14 MACs; DMAs 2·6 + 2 = 14."""
    x = randn(0, 1, 1, 2, 6)
    module = nn.AvgPool2d((2, 3))
    assert module_cost(module, x) == expected_avg(reference.avg_pool(x, (2, 3)), 2) == Cost(14, 14, 14)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pools_end_to_end(ceil_mode: bool) -> None:
    x = randn(0, 2, 3, 7, 6)
    module = nn.MaxPool2d((3, 2), (2, 2), (1, 0), (2, 1), ceil_mode=ceil_mode)
    assert crawled_cost(module, x) == expected_max(reference.max_pool(x, (3, 2), (2, 2), (1, 0), (2, 1), ceil_mode))
    module = nn.AvgPool2d((3, 2), (2, 2), (1, 0), ceil_mode=ceil_mode)
    assert crawled_cost(module, x) == expected_avg(reference.avg_pool(x, (3, 2), (2, 2), (1, 0), ceil_mode), 2)
    assert crawled_cost(nn.AdaptiveAvgPool2d((7, 2)), x) == expected_avg(reference.adaptive_avg_pool(x, (7, 2)), 2)


def test_torch_s_own_max_pool_functions_count_as_the_functional_ones() -> None:
    """``torch.max_pool2d`` (what ``F.max_pool2d`` calls; its default stride is ``[]``, the kernel's) and its 1-D
    and 3-D forms, ``torch.adaptive_max_pool1d``: counted as ``F``'s spellings."""
    x1, x2, x3 = torch.rand(1, 2, 9), torch.rand(1, 2, 8, 8), torch.rand(1, 2, 4, 6, 6)
    assert function_cost(torch.max_pool1d, x1, 3) == function_cost(F.max_pool1d, x1, 3)
    assert (
        function_cost(torch.max_pool2d, x2, 2)
        == function_cost(F.max_pool2d, x2, 2)
        == Cost(flops=96, macs=96, dmas=160)
    )
    assert function_cost(torch.max_pool3d, x3, 2, 1) == function_cost(F.max_pool3d, x3, 2, 1)
    assert function_cost(torch.adaptive_max_pool1d, x1, 4) == function_cost(F.adaptive_max_pool1d, x1, 4)
