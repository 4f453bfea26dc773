"""Upsample / interpolate against the counting reference (``tests/reference/upsample.py``):
nearest, linear / bilinear / trilinear, bicubic, ``align_corners``; pixel (un)shuffle; area
against the reference's adaptive average pool (``tests/reference/pool.py``), which torch's area
mode is.

Conventions (``torchscan/ops/upsample.py``): each output reads its taps (nearest 1, d-linear
``2^d``, bicubic 16, border taps included) and is written once; d-linear blends with ``2^d − 1``
lerps (3 FLOPs, 1 MAC each), bicubic with five 4-tap dot products (7 FLOPs, 4 MACs each) — the
reference's literal counts, source coordinates and weights being position arithmetic (not counted).
Area reads torch's adaptive windows (``K − 1`` adds and one division per output, no MACs): the
reference's literal counts too.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tests.ops.helpers import assert_same, cost, crawled_cost, function_cost, module_cost, randn, spec
from tests.reference import pool as pool_reference
from tests.reference import upsample as reference
from tests.reference.counting import Counted
from torchscan import crawl_module
from torchscan.records import Cost

X = spec(1, 2, 3, 3)
Y = spec(1, 2, 6, 6)  # N_out = 72


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        # one read and one write per output
        ("nearest", Cost(dmas=144)),
        # 3 lerps of 3 FLOPs (1 MAC) per output: 648 FLOPs, 216 MACs; 4 reads + 1 write per output
        ("bilinear", Cost(flops=648, macs=216, dmas=360)),
        # 5 dots of 4 (7 FLOPs, 4 MACs) per output: 2520 FLOPs, 1440 MACs; 16 reads + 1 write
        ("bicubic", Cost(flops=2520, macs=1440, dmas=1224)),
    ],
)
def test_interpolate_modes(mode: str, expected: Cost) -> None:
    assert cost(nn.Upsample, (X,), (Y,), mode=mode, scale_factor=2.0) == expected
    assert cost(F.interpolate, (X,), (Y,), mode=mode, scale_factor=2) == expected


def test_trilinear_and_fixed_mode_modules() -> None:
    """Trilinear 2³ → 4³: 64 outputs of 7 lerps (21 FLOPs, 7 MACs), 8 reads and 1 write each;
    UpsamplingBilinear2d is bilinear (3 lerps): 72 outputs, 648 FLOPs, 216 MACs, 360 DMAs."""
    volume = cost(F.interpolate, (spec(1, 1, 2, 2, 2),), (spec(1, 1, 4, 4, 4),), mode="trilinear")
    assert volume == Cost(flops=1344, macs=448, dmas=576)
    assert cost(nn.UpsamplingBilinear2d, (X,), (Y,)) == Cost(flops=648, macs=216, dmas=360)


def test_pixel_shuffle() -> None:
    assert cost(nn.PixelShuffle, (spec(1, 8, 2, 2),), (spec(1, 2, 4, 4),)) == Cost(dmas=64)
    assert cost(F.pixel_unshuffle, (spec(1, 2, 4, 4),), (spec(1, 8, 2, 2),)) == Cost(dmas=64)


@pytest.mark.parametrize(
    "module", [nn.Upsample(scale_factor=2), nn.Upsample(scale_factor=2, mode="bicubic"), nn.PixelShuffle(2)]
)
def test_complete(module: nn.Module) -> None:
    assert crawl_module(module, (4, 3, 3)).totals.complete


def expected(counted: Counted) -> Cost:
    tally = counted.tally
    return Cost(flops=tally.flops, macs=tally.macs, dmas=tally.dmas(per_read=["input"]))


MODES = {1: ("nearest", "linear"), 2: ("nearest", "bilinear", "bicubic"), 3: ("nearest", "trilinear")}


@st.composite
def resamplings(draw: st.DrawFn) -> tuple[torch.Tensor, tuple[int, ...], str, bool]:
    """An input (1-D/2-D/3-D, non-square), an output size (up or down), a mode, ``align_corners``."""
    dims = draw(st.integers(1, 3))
    size = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    out = tuple(draw(st.integers(1, 5 if dims < 3 else 3)) for _ in range(dims))
    mode = draw(st.sampled_from(MODES[dims]))
    align = mode != "nearest" and draw(st.booleans())
    x = randn(draw(st.integers(0, 2**31)), draw(st.integers(1, 2)), draw(st.integers(1, 2)), *size)
    return x, out, mode, align


@given(resamplings())
def test_interpolation_counts_as_the_reference(case: tuple[torch.Tensor, tuple[int, ...], str, bool]) -> None:
    x, size, mode, align = case
    counted = reference.interpolate(x, size, mode, align)
    options = {"align_corners": align} if mode != "nearest" else {}
    assert_same(counted.output, F.interpolate(x, size=size, mode=mode, **options))
    assert function_cost(F.interpolate, x, size=size, mode=mode, **options) == expected(counted)
    assert module_cost(nn.Upsample(size=size, mode=mode, **options), x) == expected(counted)


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_upsample_end_to_end(mode: str) -> None:
    x = randn(0, 1, 2, 3, 2)
    counted = reference.interpolate(x, (5, 4), mode)
    assert crawled_cost(nn.Upsample(size=(5, 4), mode=mode), x) == expected(counted)


@st.composite
def areas(draw: st.DrawFn) -> tuple[torch.Tensor, tuple[int, ...]]:
    """An input (1-D/2-D/3-D, non-square) and an area output size up or down, dividing or not."""
    dims = draw(st.integers(1, 3))
    size = tuple(draw(st.integers(1, 6 if dims < 3 else 3)) for _ in range(dims))
    out = tuple(draw(st.integers(1, 7 if dims < 3 else 4)) for _ in range(dims))
    return randn(draw(st.integers(0, 2**31)), draw(st.integers(1, 2)), draw(st.integers(1, 2)), *size), out


def expected_area(counted: Counted) -> Cost:
    tally = counted.tally
    assert tally.macs == 0
    return Cost(flops=tally.flops, dmas=tally.dmas(per_read=["input"]))


@given(areas())
def test_area_counts_as_the_adaptive_average_pool_reference(case: tuple[torch.Tensor, tuple[int, ...]]) -> None:
    x, size = case
    counted = pool_reference.adaptive_avg_pool(x, size)
    assert_same(counted.output, F.interpolate(x, size=size, mode="area"))
    assert function_cost(F.interpolate, x, size=size, mode="area") == expected_area(counted)
    assert module_cost(nn.Upsample(size=size, mode="area"), x) == expected_area(counted)


def test_a_hand_worked_area_upsampling() -> None:
    """Area 3 → 6 (1-D): output ``j`` reads ``[⌊j/2⌋, ⌈(j + 1)/2⌉)``, one element each: 6 taps, no
    adds, 6 divisions (6 FLOPs), 6 reads + 6 writes (12 DMAs). Area 10 → 3: windows [0, 4), [3, 7),
    [6, 10), 12 taps: 9 adds + 3 divisions (12 FLOPs), 12 reads + 3 writes (15 DMAs). (A uniform
    window of ``n % o + 1``, the formula before, gave 4 taps per output upsampling 3 → 6.)"""
    x = randn(0, 1, 1, 3)
    assert function_cost(F.interpolate, x, size=6, mode="area") == Cost(flops=6, dmas=12)
    assert expected_area(pool_reference.adaptive_avg_pool(x, (6,))) == Cost(flops=6, dmas=12)
    x = randn(0, 1, 1, 10)
    assert function_cost(F.interpolate, x, size=3, mode="area") == Cost(flops=12, dmas=15)
