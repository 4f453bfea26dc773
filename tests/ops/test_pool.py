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
- LPPool, ``(Σ_window x^p)^{1/p}``: FLOPs are the reference's (a power per input element, ``K − 1`` adds and a
  root per output), MACs its adds (the window sums, as an average pool's); DMAs its reads of the windows' taps
  and its outputs (departure: the powers' pass, a read of each input element and a write of each power, is not
  counted, as a pool's own reads are).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

from tests.ops.helpers import assert_same, crawled_cost, function_cost, module_cost, randn
from tests.reference import pool as reference
from tests.reference.counting import Counted
from torchscan import crawl_module
from torchscan.records import Cost

MAX = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
AVG = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
ADAPTIVE_MAX = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
ADAPTIVE_AVG = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
MAX_FUNCTIONS = (F.max_pool1d, F.max_pool2d, F.max_pool3d)
LP = (nn.LPPool1d, nn.LPPool2d, nn.LPPool3d)
LP_FUNCTIONS = (F.lp_pool1d, F.lp_pool2d, F.lp_pool3d)


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


@given(windows(dilated=False), st.sampled_from([1.0, 2.0, 3.0, 1.5]))
def test_lp_pools_count_as_the_reference(case: dict, norm_type: float) -> None:
    x, dims = case["x"].abs() + 0.1, case["x"].ndim - 2  # positive: a power mean of a negative sum is NaN
    assume(all(n >= k for n, k in zip(x.shape[2:], case["kernel"], strict=True)))
    # lp_pool1d takes an int window and stride only
    kernel, stride = (case["kernel"][0], case["stride"][0]) if dims == 1 else (case["kernel"], case["stride"])
    counted = reference.lp_pool(x, norm_type, kernel, stride)
    tally = counted.tally
    want = Cost(flops=tally.flops, macs=tally.ops["add"], dmas=tally.taps("powered") + tally.writes["output"])
    module = LP[dims - 1](norm_type, kernel, stride)
    assert_same(counted.output, module(x))
    assert module_cost(module, x) == want
    assert function_cost(LP_FUNCTIONS[dims - 1], x, norm_type, kernel, stride) == want
    n_in, n_out, volume = x.numel(), counted.output.numel(), math.prod(case["kernel"])
    assert want == Cost(flops=n_in + n_out * volume, macs=n_out * (volume - 1), dmas=n_out * volume + n_out)


def test_an_lp_pool_of_infinite_order_is_a_max_pool_of_magnitudes() -> None:
    """``p = ∞``: torch's ``max_pool(|x|)``: an abs per input element (18) and MaxPool1d(3)'s 2 comparisons per
    output (6·2 = 12): 30 FLOPs, 12 MACs, 6·3 + 6 = 24 DMAs; ``p = −∞`` negates the input and the output too."""
    x = randn(0, 1, 2, 9)
    assert module_cost(nn.LPPool1d(float("inf"), 3), x) == Cost(flops=30, macs=12, dmas=24)
    assert module_cost(nn.LPPool1d(-float("inf"), 3), x) == Cost(flops=30 + 18 + 6, macs=12, dmas=24)


def test_indices_returning_pools_count_as_the_plain_ones() -> None:
    """``return_indices=True`` runs ``F.max_pool2d_with_indices`` (``F.adaptive_max_pool2d_with_indices``):
    counted as the plain pool (the indices are not counted), in a whole analysis too, with its receptive field."""
    x = randn(0, 1, 2, 8, 8)
    assert function_cost(F.max_pool2d_with_indices, x, 2) == function_cost(F.max_pool2d, x, 2)
    assert function_cost(F.adaptive_max_pool2d_with_indices, x, 3) == function_cost(F.adaptive_max_pool2d, x, 3)
    for dims, pool in enumerate((F.max_pool1d_with_indices, F.max_pool2d_with_indices, F.max_pool3d_with_indices), 1):
        y = randn(1, 1, 2, *(4,) * dims)
        assert function_cost(pool, y, 2) == function_cost(MAX_FUNCTIONS[dims - 1], y, 2)
    plain = crawl_module(nn.Sequential(nn.Conv2d(2, 2, 3), nn.MaxPool2d(2)), (2, 8, 8), receptive_field=True)
    indexed = crawl_module(
        nn.Sequential(nn.Conv2d(2, 2, 3), _FirstOf(nn.MaxPool2d(2, return_indices=True))),
        (2, 8, 8),
        receptive_field=True,
    )
    assert indexed.totals == plain.totals
    assert indexed.rows[-1].receptive_field == plain.rows[-1].receptive_field == (4, 4)


class _FirstOf(nn.Module):
    """The first output of a module returning several."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)[0]


def test_fractional_max_pools_count_a_max_per_window() -> None:
    """FractionalMaxPool2d with a 3×3 window to 5×5 over 2 planes: 50 outputs of 8 comparisons (400 FLOPs and
    MACs), 50·9 + 50 = 500 DMAs; an output ratio and ``return_indices`` likewise; the function as the module; the
    3-D pool with its 2×2×2 windows. The analysis draws nothing from the global generator (a real forward draws
    each plane's steps from it)."""
    x = randn(0, 1, 2, 12, 12)
    with torch.random.fork_rng():
        assert module_cost(nn.FractionalMaxPool2d(3, output_size=5), x) == Cost(flops=400, macs=400, dmas=500)
        assert function_cost(F.fractional_max_pool2d, x, 3, output_size=5) == Cost(flops=400, macs=400, dmas=500)
        ratio = nn.FractionalMaxPool2d(2, output_ratio=0.5, return_indices=True)
        assert module_cost(ratio, x) == Cost(flops=72 * 3, macs=72 * 3, dmas=72 * 5)
        three = nn.FractionalMaxPool3d(2, output_size=(2, 3, 3))
        assert module_cost(three, randn(1, 1, 2, 6, 6, 6)) == Cost(flops=36 * 7, macs=36 * 7, dmas=36 * 9)
    model = nn.Sequential(nn.Conv2d(2, 2, 1), nn.FractionalMaxPool2d(3, output_size=5))
    before = torch.get_rng_state()
    report = crawl_module(model, (2, 12, 12))
    assert torch.equal(before, torch.get_rng_state())
    assert report.totals.complete
    assert report.row("1").flops == 400


def test_max_unpool_writes_its_output_and_scatters_its_input() -> None:
    """MaxUnpool2d(2) of a (1, 2, 4, 4) pool back to (1, 2, 8, 8): every output element written (128), each input
    value and its index read and the value written where the index says (3·32): 224 DMAs, no arithmetic; the 1-D
    and 3-D forms and the function alike."""
    x = randn(0, 1, 2, 8, 8)
    pooled, where = F.max_pool2d(x, 2, return_indices=True)
    assert module_cost(nn.MaxUnpool2d(2), pooled, where) == Cost(dmas=224)
    assert function_cost(F.max_unpool2d, pooled, where, 2) == Cost(dmas=224)
    pooled1, where1 = F.max_pool1d(randn(1, 1, 2, 8), 2, return_indices=True)
    assert module_cost(nn.MaxUnpool1d(2), pooled1, where1) == Cost(dmas=3 * 8 + 16)
    pooled3, where3 = F.max_pool3d(randn(2, 1, 1, 4, 4, 4), 2, return_indices=True)
    assert module_cost(nn.MaxUnpool3d(2), pooled3, where3) == Cost(dmas=3 * 8 + 64)

    class Autoencoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pool, self.unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.unpool(*self.pool(x))

    report = crawl_module(Autoencoder(), (2, 8, 8))
    assert report.totals.complete
    assert report.row("unpool").dmas == 224
