"""Convolutions and transposed convolutions (1-D, 2-D, 3-D; module and functional spellings).

Notation: ``N_in``/``N_out`` input/output elements, ``K`` product of kernel sizes, ``g`` groups,
``P`` parameter elements (weight + bias). The weight of a convolution has shape
``(C_out, C_in/g, *k)`` and of a transposed one ``(C_in, C_out/g, *k)``, so
``prod(weight.shape[1:])`` is ``(C_in/g)·K`` resp. ``(C_out/g)·K`` for both spellings.

A parametrized convolution (``torch.nn.utils.parametrize``, e.g. Wav2Vec2's weight-norm
``ParametrizedConv1d``) is a subclass made on the fly that keeps its base's ``forward``, so the
registry finds its base's formula along the MRO; its ``weight`` is no parameter of its own (it is
computed from ``parametrizations.weight.original*``), so the weight shape is rebuilt from
``in_channels``/``out_channels``/``groups``/``kernel_size`` and ``P`` counts that shape. The cost
of the parametrization itself (weight norm: ``‖v‖`` and the rescale, about ``3·P`` FLOPs per
forward) is not in the call record and is not counted.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops.registry import FormulaTable, Saves
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("conv")

aten = torch.ops.aten


def _weight_shape(call: OpCall) -> tuple[int, ...]:
    """The weight's shape: its spec, else (a parametrized module, whose ``weight`` is computed
    from ``parametrizations.weight.original*``) rebuilt from the module's configuration."""
    weight = call.spec("weight")
    if weight is not None:
        return weight.shape
    if call.kind == "module" and call.attrs.get("kernel_size") is not None:
        in_channels, out_channels = int(call.attrs["in_channels"]), int(call.attrs["out_channels"])
        groups = int(call.get("groups", 1))
        first, second = (in_channels, out_channels) if call.get("transposed", False) else (out_channels, in_channels)
        return (first, second // groups, *call.attrs["kernel_size"])
    raise ValueError("convolution without a weight")


def _weight_fan(call: OpCall) -> tuple[int, int]:
    shape = _weight_shape(call)
    return math.prod(shape[1:]), math.prod(shape) + call.numel("bias")


@TABLE.register(
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    F.conv1d,
    F.conv2d,
    F.conv3d,
    aten.conv1d.default,
    aten.conv2d.default,
    aten.conv3d.default,
)
def conv(call: OpCall) -> Cost:
    """ConvNd: ``FLOPs = N_out·(2·(C_in/g)·K − 1 + [bias])``, ``MACs = N_out·(C_in/g)·K``,
    ``DMAs = N_out·(C_in/g)·K + P + N_out`` (each output reads its whole window)."""
    fan_in, params = _weight_fan(call)
    n_out = call.output.numel
    has_bias = call.spec("bias") is not None
    macs = n_out * fan_in
    return Cost(flops=n_out * (2 * fan_in - 1 + has_bias), macs=macs, dmas=macs + params + n_out)


TABLE.declare(nn.Conv1d, nn.Conv2d, nn.Conv3d, F.conv1d, F.conv2d, F.conv3d, saves=Saves.WEIGHTED)


@TABLE.register(
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    F.conv_transpose1d,
    F.conv_transpose2d,
    F.conv_transpose3d,
    aten.conv_transpose1d.default,
    aten.conv_transpose2d.input,
    aten.conv_transpose3d.input,
)
def conv_transpose(call: OpCall) -> Cost:
    """ConvTransposeNd: each input element is multiplied into ``(C_out/g)·K`` outputs.

    ``MACs = N_in·(C_out/g)·K``, ``FLOPs = 2·MACs + N_out·[bias]``, ``DMAs = MACs + P + N_out``.
    """
    fan_out, params = _weight_fan(call)
    n_out = call.output.numel
    macs = call.input.numel * fan_out
    has_bias = call.spec("bias") is not None
    return Cost(flops=2 * macs + n_out * has_bias, macs=macs, dmas=macs + params + n_out)


TABLE.declare(
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    F.conv_transpose1d,
    F.conv_transpose2d,
    F.conv_transpose3d,
    saves=Saves.WEIGHTED,
)


@TABLE.register(aten.convolution.default, aten._convolution.default)
def aten_convolution(call: OpCall) -> Cost:
    """``aten.convolution(input, weight, bias, stride, padding, dilation, transposed, …)``: the
    ConvNd formula, or the ConvTransposeNd one when ``transposed``."""
    return conv_transpose(call) if call.get("transposed", False) else conv(call)
