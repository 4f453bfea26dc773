"""The receptive field through padding: every mode, module and functional, crops, TF-"same" convolutions."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tests.passes.receptive.test_oracle import _predicted, check_oracle, footprint
from torchscan import crawl_module

_MODES = ("constant", "reflect", "replicate", "circular")


class _Pad(nn.Module):
    def __init__(self, pads: tuple[int, ...], mode: str) -> None:
        super().__init__()
        self.pads, self.mode = pads, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads, mode=self.mode)


def test_zero_padding_shifts_the_field_per_axis() -> None:
    # ZeroPad2d((left, right, top, bottom)) = (1, 2, 3, 4), then a 3x3 convolution: output unit 0
    # reads input rows -3..-1 and columns -1..1, so the effective padding is (3, 1) (H, W)
    report = crawl_module(
        nn.Sequential(nn.ZeroPad2d((1, 2, 3, 4)), nn.Conv2d(3, 4, 3)), (3, 16, 16), receptive_field=True
    )
    assert report.row("0").receptive_field == (1, 1) and report.row("0").effective_padding == (3, 1)
    conv = report.row("1")
    assert (conv.receptive_field, conv.effective_stride, conv.effective_padding) == ((3, 3), (1, 1), (3, 1))
    assert not [d for d in report.diagnostics if d.code.startswith("rf-")]


def test_a_negative_pad_crops() -> None:
    # pad (2, -1) on a 1-D signal then a conv of 3 with stride 2: unit 0 reads -2..0, unit i starts at 2i - 2
    model = nn.Sequential(_Pad((2, -1), "constant"), nn.Conv1d(3, 3, 3, stride=2))
    row = crawl_module(model, (3, 16), receptive_field=True).row("1")
    assert (row.receptive_field, row.effective_stride, row.effective_padding) == ((3,), (2,), (2,))


@pytest.mark.parametrize("mode", _MODES)
@pytest.mark.parametrize("functional", [False, True])
def test_every_mode_matches_the_gradient_footprint(mode: str, functional: bool) -> None:
    modules = {
        "constant": nn.ZeroPad2d((2, 1, 0, 3)),
        "reflect": nn.ReflectionPad2d((2, 1, 0, 3)),
        "replicate": nn.ReplicationPad2d((2, 1, 0, 3)),
        "circular": nn.CircularPad2d((2, 1, 0, 3)),
    }
    pad = _Pad((2, 1, 0, 3), mode) if functional else modules[mode]
    check_oracle(nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), pad, nn.Conv2d(2, 2, (3, 5), dilation=(1, 2))), 2)


@pytest.mark.parametrize("dims", [1, 3])
def test_one_and_three_dimensional_padding(dims: int) -> None:
    conv = nn.Conv1d if dims == 1 else nn.Conv3d
    pads = (1, 2) if dims == 1 else (1, 0, 2, 1, 0, 2)
    module = nn.ReflectionPad1d(pads) if dims == 1 else nn.ReplicationPad3d(pads)
    check_oracle(nn.Sequential(conv(1, 2, 3), module, conv(2, 1, 3, stride=2)), dims)


@given(
    st.lists(
        st.tuples(st.sampled_from(_MODES), st.lists(st.integers(-1, 3), min_size=4, max_size=4)),
        min_size=1,
        max_size=3,
    ),
    st.integers(1, 2),
)
def test_random_chains_with_pads_match_the_gradient_footprint(pads: list[tuple[str, list[int]]], stride: int) -> None:
    layers: list[nn.Module] = [nn.Conv2d(1, 2, 3, stride=stride)]
    for mode, amounts in pads:
        if mode != "constant":  # reflection, replication and circular padding take non-negative pads
            amounts = [max(amount, 0) for amount in amounts]
        layers += [_Pad(tuple(amounts), mode), nn.Conv2d(2, 2, 3)]
    check_oracle(nn.Sequential(*layers), 2)


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
def test_tf_same_convolutions() -> None:
    from timm.layers import Conv2dSame

    # TF "same" padding depends on the input size (total pad = (ceil(n/s) − 1)·s + d·(k − 1) + 1 − n,
    # the larger half on the right): predicted and measured at the same size, odd and even
    model = nn.Sequential(Conv2dSame(1, 2, 3, stride=2), Conv2dSame(2, 2, 5, stride=2, dilation=2))
    for size in (41, 44):
        field = _predicted(crawl_module(model, (1, size, size), receptive_field=True))
        bounds, unit = footprint(model, (1, size, size))
        assert bounds == [span.extent_at(i) for span, i in zip(field.spans, unit, strict=True)]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
@pytest.mark.parametrize("name", ["tf_efficientnet_b0", "tf_mobilenetv3_small_100"])
def test_tf_models_have_a_receptive_field(name: str) -> None:
    import timm

    report = crawl_module(timm.create_model(name, pretrained=False).eval(), (3, 224, 224), receptive_field=True)
    assert not [d for d in report.diagnostics if d.code.startswith("rf-")]
    assert isinstance(report.rows[-1].receptive_field, (tuple, str))
    assert report.row("conv_stem").receptive_field == (3, 3)
