"""Upsample / interpolate (nearest, bilinear, bicubic), pixel (un)shuffle."""

from __future__ import annotations

import pytest
import torch.nn.functional as F
from torch import nn

from tests.ops.helpers import cost, spec
from torchscan import crawl_module
from torchscan.records import Cost

X = spec(1, 2, 3, 3)
Y = spec(1, 2, 6, 6)  # N_out = 72


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("nearest", Cost(dmas=72 + 72)),
        ("bilinear", Cost(flops=72 * 9, macs=72 * 3, dmas=72 * 4 + 72)),
        ("bicubic", Cost(flops=72 * 35, macs=72 * 20, dmas=72 * 16 + 72)),
    ],
)
def test_interpolate_modes(mode: str, expected: Cost) -> None:
    assert cost(nn.Upsample, (X,), (Y,), mode=mode, scale_factor=2.0) == expected
    assert cost(F.interpolate, (X,), (Y,), mode=mode, scale_factor=2) == expected


def test_trilinear_and_fixed_mode_modules() -> None:
    volume = cost(F.interpolate, (spec(1, 1, 2, 2, 2),), (spec(1, 1, 4, 4, 4),), mode="trilinear")
    assert volume == Cost(flops=64 * 3 * 7, macs=64 * 7, dmas=64 * 8 + 64)
    assert cost(nn.UpsamplingBilinear2d, (X,), (Y,)) == cost(nn.Upsample, (X,), (Y,), mode="bilinear")


def test_pixel_shuffle() -> None:
    assert cost(nn.PixelShuffle, (spec(1, 8, 2, 2),), (spec(1, 2, 4, 4),)) == Cost(dmas=64)
    assert cost(F.pixel_unshuffle, (spec(1, 2, 4, 4),), (spec(1, 8, 2, 2),)) == Cost(dmas=64)


@pytest.mark.parametrize(
    "module", [nn.Upsample(scale_factor=2), nn.Upsample(scale_factor=2, mode="bicubic"), nn.PixelShuffle(2)]
)
def test_complete(module: nn.Module) -> None:
    assert crawl_module(module, (4, 3, 3)).totals.complete
