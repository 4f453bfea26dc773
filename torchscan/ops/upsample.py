"""Resampling: ``nn.Upsample``/``F.interpolate`` and pixel (un)shuffle, fold/unfold.

Interpolation over ``d`` spatial dims (``d = rank − 2``) reads ``taps`` input elements per output
element and blends them: nearest reads 1 and does no arithmetic; (bi/tri)linear reads ``2^d`` and
does ``2^d − 1`` lerps ``a + w·(b − a)`` (3 FLOPs, 1 MAC each); bicubic (2-D) reads 16 and does
5 four-tap cubic blends (7 FLOPs, 4 MACs each); area is an adaptive average pool.
``grid_sample`` blends the same taps at the grid's points, plus the grid coordinates' own
unnormalising and clipping (once per point, shared by the channels). ``affine_grid`` makes the grid
grid_sample reads as ATen does: a base grid of homogeneous coordinates times each batch's affine matrix.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops.common import adaptive_taps, argument
from torchscan.ops.pool import averaged_to_one
from torchscan.ops.registry import FormulaTable, Saves
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("upsample")

aten = torch.ops.aten


def interpolation_cost(mode: str, n_out: int, dims: int) -> Cost:
    """Per-output taps, FLOPs and MACs of one interpolation mode (module docstring)."""
    if mode in ("linear", "bilinear", "trilinear"):
        lerps = 2**dims - 1
        taps, flops, macs = 2**dims, 3 * lerps, lerps
    elif mode == "bicubic":
        taps, flops, macs = 16, 35, 20
    else:  # nearest, nearest-exact
        taps, flops, macs = 1, 0, 0
    return Cost(flops=n_out * flops, macs=n_out * macs, dmas=n_out * taps + n_out)


@TABLE.register(nn.Upsample, F.interpolate, F.upsample, mode=None, saves=Saves.RESAMPLE)
@TABLE.register(
    nn.UpsamplingNearest2d,
    F.upsample_nearest,
    aten.upsample_nearest1d.default,
    aten.upsample_nearest1d.vec,
    aten.upsample_nearest2d.default,
    aten.upsample_nearest2d.vec,
    aten.upsample_nearest3d.default,
    aten.upsample_nearest3d.vec,
    mode="nearest",
)
@TABLE.register(aten.upsample_linear1d.default, aten.upsample_linear1d.vec, mode="linear")
@TABLE.register(
    nn.UpsamplingBilinear2d,
    F.upsample_bilinear,
    aten.upsample_bilinear2d.default,
    aten.upsample_bilinear2d.vec,
    mode="bilinear",
)
@TABLE.register(aten.upsample_trilinear3d.default, aten.upsample_trilinear3d.vec, mode="trilinear")
@TABLE.register(aten.upsample_bicubic2d.default, aten.upsample_bicubic2d.vec, mode="bicubic")
def interpolate(call: OpCall, mode: str | None) -> Cost:
    """Upsample / interpolate (``taps`` per output, module docstring):
    nearest ``FLOPs = MACs = 0``; linear family ``FLOPs = 3·(2^d − 1)·N_out``,
    ``MACs = (2^d − 1)·N_out``; bicubic ``FLOPs = 35·N_out``, ``MACs = 20·N_out``;
    ``DMAs = taps·N_out + N_out``; area (torch's adaptive average pool windows, ``T`` taps in all,
    ``pool.py``): ``T − N_out`` adds and ``N_out`` divisions, ``FLOPs = T``, ``MACs = 0``,
    ``DMAs = T + N_out``."""
    spec, out = call.input, call.output
    dims = max(spec.ndim - 2, 1)
    name = mode or str(argument(call, "mode", None, "nearest"))
    if name == "area":  # adaptive windows: T taps over all outputs, T / N_out on average
        grids = call.output.numel // max(math.prod(out.shape[2:]), 1)
        taps = grids * adaptive_taps(spec.shape[2:], out.shape[2:])
        return Cost(flops=taps, dmas=taps + out.numel)
    return interpolation_cost(name, out.numel, dims)


def resample_keeps_input(call: OpCall) -> bool:
    """Whether autograd keeps the input of ``nn.Upsample`` / ``F.interpolate``: in ``area`` mode (an adaptive
    average pool, whose backward takes it) to a size other than 1 in some dim (to size 1 in every dim torch
    takes a ``mean``); never in the other modes (their backward needs only sizes)."""
    if str(argument(call, "mode", None, "nearest")) != "area" or len(call.outputs) != 1:
        return False
    return not averaged_to_one(call.output.shape, max(call.output.ndim - 2, 1))


_GRID_MODES = ("bilinear", "nearest", "bicubic")
_GRID_PADDINGS = ("zeros", "border", "reflection")
_CLIP_FLOPS = {"zeros": 0, "border": 2, "reflection": 4}


@TABLE.register(
    F.grid_sample,
    torch.grid_sampler,
    aten.grid_sampler.default,
    aten.grid_sampler_2d.default,
    aten.grid_sampler_3d.default,
)
def grid_sample(call: OpCall) -> Cost:
    """grid_sample (``d`` = grid coordinates per point, ``N_grid`` = grid elements): each output
    element reads ``taps`` inputs and blends them as interpolate does (bilinear on 5-D input is
    trilinear: ``2^d`` taps, ``2^d − 1`` lerps; nearest 1 tap; bicubic 16); each grid coordinate is
    unnormalised once for all channels (2 FLOPs) and clipped (border 2, reflection 4, zeros 0):
    ``FLOPs = interpolation FLOPs + N_grid·(2 + clip)``, ``MACs`` = interpolation MACs,
    ``DMAs = taps·N_out + N_grid + N_out``."""
    spec, grid, out = call.input, call.inputs[1], call.output
    mode = argument(call, "mode", None) or argument(call, "interpolation_mode", 1, "bilinear")
    mode = _GRID_MODES[mode] if isinstance(mode, int) else str(mode)  # ATen spells modes as enums
    padding = argument(call, "padding_mode", 2, "zeros")
    padding = _GRID_PADDINGS[padding] if isinstance(padding, int) else str(padding)
    blend = interpolation_cost(mode, out.numel, max(spec.ndim - 2, 1))
    coordinates = Cost(flops=grid.numel * (2 + _CLIP_FLOPS[padding]), dmas=grid.numel)  # torch's three modes
    return blend + coordinates


@TABLE.register(F.affine_grid, torch.affine_grid_generator, aten.affine_grid_generator.default)
def affine_grid(call: OpCall) -> Cost:
    """affine_grid (``θ`` of ``N × d × (d + 1)``, a grid of ``P`` points per batch over ``d`` spatial dims of sizes
    ``s_i``, ``N_out = N·P·d``), as ATen computes it: a line of coordinates per spatial dim (``linspace(-1, 1,
    s_i)``, ``ℓ_i = s_i`` elements, one where ``s_i ≤ 1``), each scaled by ``(s_i − 1)/s_i`` (a product and a
    division an element) unless ``align_corners`` or ``s_i ≤ 1``; a base grid of ``B = N·P·(d + 1)`` homogeneous
    coordinates written from them; its product with ``θᵀ`` per batch (bmm, ``k = d + 1``).
    ``L = Σ ℓ_i``, ``S = Σ ℓ_i`` over the scaled lines: ``FLOPs = N_out·(2d + 1) + 2S``, ``MACs = N_out·(d + 1)``,
    ``DMAs = 2L + 4S + B + (B + N_θ + N_out)`` (the lines written and read, each scaling reading and writing its
    line, the base grid written, the product's operands read and its result written)."""
    theta, out = call.input, call.output
    dims = out.shape[-1]
    sizes = out.shape[1:-1]
    align = bool(argument(call, "align_corners", 2, False))
    lines = sum(size if size > 1 else 1 for size in sizes)
    scaled = 0 if align else sum(size for size in sizes if size > 1)
    base = out.numel // max(dims, 1) * (dims + 1)
    return Cost(
        flops=out.numel * (2 * dims + 1) + 2 * scaled,
        macs=out.numel * (dims + 1),
        dmas=2 * lines + 4 * scaled + base + base + theta.numel + out.numel,
    )


@TABLE.register(
    nn.PixelShuffle,
    nn.PixelUnshuffle,
    F.pixel_shuffle,
    F.pixel_unshuffle,
    aten.pixel_shuffle.default,
    aten.pixel_unshuffle.default,
    nn.ChannelShuffle,
    F.channel_shuffle,
    aten.channel_shuffle.default,
    aten.native_channel_shuffle.default,
)
def pixel_shuffle(call: OpCall) -> Cost:
    """PixelShuffle / PixelUnshuffle / ChannelShuffle (a permuting copy): ``FLOPs = MACs = 0``,
    ``DMAs = N_in + N_out``."""
    return Cost(dmas=call.input.numel + call.output.numel)


@TABLE.register(nn.Unfold, F.unfold, aten.im2col.default)
def unfold(call: OpCall) -> Cost:
    """Unfold (im2col, each output element copied from one input element or padding):
    ``FLOPs = MACs = 0``, ``DMAs = 2·N_out``."""
    return Cost(dmas=2 * call.output.numel)


@TABLE.register(nn.Fold, F.fold, aten.col2im.default)
def fold(call: OpCall) -> Cost:
    """Fold (col2im, overlapping blocks summed): ``FLOPs = N_in − N_out`` (at most; counted as
    every input added into its output), ``MACs = 0``, ``DMAs = N_in + N_out``."""
    n_in, n_out = call.input.numel, call.output.numel
    return Cost(flops=max(n_in - n_out, 0), dmas=n_in + n_out)
