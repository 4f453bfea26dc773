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

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

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


def _literal_affine_grid(theta: torch.Tensor, size: tuple[int, ...], align: bool) -> torch.Tensor:
    """ATen's ``affine_grid_generator``, step by step: a line of coordinates per spatial dim (a 0 for a size of
    one), scaled unless ``align_corners``; the base grid of homogeneous coordinates (x along the last dim); its
    product with θᵀ per batch."""

    def line(steps: int) -> torch.Tensor:
        if steps <= 1:
            return torch.zeros(1, dtype=theta.dtype)
        points = torch.linspace(-1, 1, steps, dtype=theta.dtype)
        return points if align else points * (steps - 1) / steps

    batch, dims, spatial = theta.shape[0], theta.shape[1], size[2:]
    axes = torch.meshgrid(*[line(steps) for steps in spatial], indexing="ij")
    base = torch.stack([*reversed(axes), torch.ones_like(axes[0])], -1).expand(batch, *spatial, dims + 1)
    return base.reshape(batch, -1, dims + 1).bmm(theta.transpose(1, 2)).view(batch, *spatial, dims)


def test_a_hand_worked_affine_grid() -> None:
    """θ of 2 × 2 × 3, a grid of 5 × 7 points: N_out = 140; the base grid B = 2·35·3 = 210 elements, the lines
    7 + 5 = 12 elements, each scaled (2 FLOPs, 4 DMAs an element) unless ``align_corners``; the product 3 MACs and
    5 FLOPs a grid value: 700 + 24 FLOPs, 420 MACs, 24 + 48 + 210 + (210 + 12 + 140) DMAs."""
    theta = torch.randn(2, 2, 3)
    assert function_cost(F.affine_grid, theta, (2, 3, 5, 7), align_corners=False) == Cost(724, 420, 644)
    assert function_cost(F.affine_grid, theta, (2, 3, 5, 7), align_corners=True) == Cost(700, 420, 596)


@given(
    batch=st.integers(1, 3),
    spatial=st.lists(st.integers(1, 6), min_size=2, max_size=3),
    align=st.booleans(),
)
def test_affine_grid_counts_aten_s_algorithm(batch: int, spatial: list[int], align: bool) -> None:
    """The algorithm the formula counts is ATen's (the literal one's values are ``F.affine_grid``'s); its MACs are
    FlopCounterMode's of that product (FlopCounterMode counts ``affine_grid_generator`` itself as 0); the analysis
    of a module calling it reports the closed form."""
    dims = len(spatial)
    size = (batch, 3, *spatial)
    theta = torch.randn(batch, dims, dims + 1, dtype=torch.float64)
    with FlopCounterMode(display=False) as counter:
        literal = _literal_affine_grid(theta, size, align)
    assert_same(literal, F.affine_grid(theta, size, align_corners=align))

    class Grid(nn.Module):
        def forward(self, theta: torch.Tensor) -> torch.Tensor:
            return F.affine_grid(theta, size, align_corners=align)

    totals = crawl_module(Grid(), args=(theta,)).totals
    points, lines = batch * math.prod(spatial), sum(steps if steps > 1 else 1 for steps in spatial)
    scaled = 0 if align else sum(steps for steps in spatial if steps > 1)
    n_out, base = points * dims, points * (dims + 1)
    assert totals.complete and totals.macs == n_out * (dims + 1) == counter.get_total_flops() // 2
    assert totals.flops == n_out * (2 * dims + 1) + 2 * scaled
    assert totals.dmas == 2 * lines + 4 * scaled + 2 * base + theta.numel() + n_out
