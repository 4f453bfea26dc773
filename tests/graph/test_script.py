"""TorchScript models (``torch.jit.script``, ``torch.jit.load``): recorded op by ATen op on fake tensors, every
layer counted as its Python spelling counts it, wherever ATen runs it as one op."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from torchscan import crawl_module

LAYERS: dict[str, tuple[nn.Module, tuple[int, ...]]] = {
    "linear": (nn.Linear(8, 6), (5, 8)),
    "linear on tokens": (nn.Linear(8, 6), (4, 5, 8)),
    "conv": (nn.Conv2d(3, 4, 3, padding=1), (3, 8, 8)),
    "transposed conv": (nn.ConvTranspose2d(3, 4, 3, stride=2), (3, 8, 8)),
    "batch norm": (nn.BatchNorm2d(3), (3, 8, 8)),
    "layer norm": (nn.LayerNorm(8), (5, 8)),
    "group norm": (nn.GroupNorm(2, 4), (4, 6, 6)),
    "max pool": (nn.MaxPool2d(2), (3, 8, 8)),
    "average pool": (nn.AvgPool2d(2), (3, 8, 8)),
    "relu": (nn.ReLU(), (3, 8)),
    "gelu": (nn.GELU(), (3, 8)),
    "silu": (nn.SiLU(), (3, 8)),
    "hardswish": (nn.Hardswish(), (3, 8)),
    "leaky relu": (nn.LeakyReLU(), (3, 8)),
    "elu": (nn.ELU(), (3, 8)),
    "prelu": (nn.PReLU(), (3, 8)),
    "sigmoid": (nn.Sigmoid(), (3, 8)),
    "tanh": (nn.Tanh(), (3, 8)),
    "softmax": (nn.Softmax(-1), (3, 8)),
    "upsample nearest 1d": (nn.Upsample(scale_factor=2, mode="nearest"), (3, 4)),
    "upsample nearest 2d": (nn.Upsample(scale_factor=2, mode="nearest"), (3, 4, 4)),
    "upsample nearest 3d": (nn.Upsample(scale_factor=2, mode="nearest"), (3, 4, 4, 4)),
    "upsample linear": (nn.Upsample(scale_factor=2, mode="linear"), (3, 4)),
    "upsample bilinear": (nn.Upsample(scale_factor=2, mode="bilinear"), (3, 4, 4)),
    "upsample trilinear": (nn.Upsample(scale_factor=2, mode="trilinear"), (3, 4, 4, 4)),
    "upsample bicubic": (nn.Upsample(scale_factor=2, mode="bicubic"), (3, 4, 4)),
    "reflection pad": (nn.ReflectionPad2d(1), (3, 4, 4)),
    "replication pad": (nn.ReplicationPad1d(1), (3, 4)),
    "pixel shuffle": (nn.PixelShuffle(2), (8, 4, 4)),
    "channel shuffle": (nn.ChannelShuffle(3), (6, 4, 4)),
    "unfold": (nn.Unfold(2), (3, 4, 4)),
    "fold": (nn.Fold((4, 4), 2), (12, 9)),
}
"""Layers that ATen runs as one op: a scripted model of one counts as the layer. Others are decomposed by ATen and
counted op by op (an InstanceNorm's repeated weights, a LocalResponseNorm's pool of squares, Softsign's three ops),
so their counts differ by what the decomposition does."""


@pytest.mark.parametrize(("layer", "shape"), LAYERS.values(), ids=LAYERS.keys())
def test_a_scripted_layer_counts_as_the_layer(layer: nn.Module, shape: tuple[int, ...]) -> None:
    """Its ATen op has a formula (leaky_relu, elu, the upsamplings' ``.default`` overloads, reflection and replication
    pads, channel_shuffle, im2col and col2im were unknown ops before), read with ATen's argument order."""
    layer = layer.eval()
    plain = crawl_module(layer, shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        scripted = torch.jit.script(layer)
    report = crawl_module(scripted, shape)
    assert report.context.capture == "torchscript-aten"
    assert plain.totals.complete and report.totals.complete, [d.message for d in report.diagnostics]
    counts = (report.totals.flops, report.totals.macs, report.totals.dmas)
    assert counts == (plain.totals.flops, plain.totals.macs, plain.totals.dmas)
