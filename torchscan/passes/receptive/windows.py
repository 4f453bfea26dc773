"""Receptive-field rules of window ops: convolutions, pools, resampling, unfold, pixel shuffle.

Each op windows the last ``k`` axes of its input; per windowed spatial axis, output unit ``i``
reads input units ``a(i) … b(i)`` (see :mod:`torchscan.passes.receptive.geometry`):

- ConvNd / Max, Avg and LP pools (kernel ``k``, stride ``s``, padding ``p``, dilation ``d``):
  ``a = s·i − p``, ``b = a + d·(k − 1)``; ``padding="same"`` is ``p = d·(k − 1) // 2``.
- ConvTransposeNd (dilation 1, ``k ≥ s``): ``a = ceil((i + p − k + 1)/s)``, ``b = floor((i + p)/s)``
  — the jump shrinks by ``s``.
- Adaptive pools (``n_in → n_out``): ``a = floor(i·n_in/n_out)``, ``b = ceil((i + 1)·n_in/n_out) − 1``;
  global when every spatial dim pools to 1.
- Interpolate / Upsample with an integer ratio (``in/out = α/β``, ``α = 1`` or ``β = 1``): nearest
  ``a = b = floor(i·α/β)``; linear modes (``align_corners=False``) sample ``x = (i + ½)·α/β − ½``,
  ``a = floor(x)``, ``b = ceil(x)``; ``area`` is an adaptive average pool.
- PixelShuffle ``r``: ``a = b = floor(i/r)``; PixelUnshuffle ``r``: a window ``k = s = r``.
- Padding, every mode (``F.pad``; ``Zero``/``Constant``/``Reflection``/``Replication``/``CircularPadNd``),
  left pad ``p`` on an axis (negative: a crop): ``a = b = i − p``. Reflection, replication and circular
  padding copy input values into the border: the field is reported as for zero padding (the classic
  definition, exact for every unit whose window stays inside the input); a unit whose window reaches
  into the border reads the mirrored, repeated or wrapped inputs instead.
- ``F.unfold``: the convolution window, then the block grid flattened into the last axis;
  ``Tensor.unfold(dim, size, step)``: a window ``k = size``, ``s = step`` on ``dim`` (the unit is
  the whole window).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from torchscan.passes.receptive.geometry import Field, Marker, Span, Unsupported
from torchscan.passes.receptive.table import Operand, Outcome, RuleTable, arg, ints, token_dim
from torchscan.records import OpCall

__all__ = ["TABLE", "data_operand", "through"]

TABLE = RuleTable("windows")

SpanMap = Callable[[Span], Span]


def data_operand(call: OpCall, operands: Sequence[Operand]) -> Field:
    """The field of the data input: the only input-dependent operand, and the call's first input."""
    if len(operands) != 1:
        raise Unsupported("more than one operand depends on the input (e.g. a computed kernel)")
    operand = operands[0]
    if operand.spec is not None and operand.spec.shape != call.input.shape:
        raise Unsupported("the input-dependent operand is not the data input")
    return operand.field


def through(call: OpCall, field: Field, maps: Sequence[SpanMap]) -> Field:
    """Apply ``maps[j]`` to the spatial dim on axis ``j − len(maps)`` (the windowed trailing axes).

    A window over a flattened token axis is one over the dim the tokens run along when they run
    along one only (:func:`~torchscan.passes.receptive.table.token_dim`: every other dim has size 1);
    over tokens of several dims it is refused."""
    k = len(maps)
    spans = list(field.spans)
    sizes = list(field.sizes)
    shape = call.output.shape
    if field.flat and field.axes[0] is not None and field.axes[0] >= -k:
        j = token_dim(field)
        if j is None:
            raise Unsupported("a window over flattened spatial positions")
        axis = field.axes[0]
        spans[j] = maps[axis + k](spans[j])
        sizes[j] = shape[axis]
        return replace(field, spans=tuple(spans), sizes=tuple(sizes))
    for j, axis in enumerate(field.axes):
        if field.flat or axis is None or axis < -k:
            continue
        spans[j] = maps[axis + k](spans[j])
        sizes[j] = shape[axis]
    return replace(field, spans=tuple(spans), sizes=tuple(sizes))


def _padding(value: object, kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[int, ...]:
    if value == "valid":
        return (0,) * len(kernel)
    if value == "same":
        return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))
    return ints(value, len(kernel), 0)


def _window_maps(stride: Sequence[int], padding: Sequence[int], extent: Sequence[int]) -> list[SpanMap]:
    return [lambda span, s=s, p=p, e=e: span.window(s, p, e) for s, p, e in zip(stride, padding, extent, strict=True)]


@TABLE.register(nn.Conv1d, nn.Conv2d, nn.Conv3d, F.conv1d, F.conv2d, F.conv3d)
def conv(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """ConvNd: kernel from the weight shape ``(C_out, C_in/g, *k)``, ``k_eff = d·(k − 1) + 1``."""
    field = data_operand(call, operands)
    weight = call.spec("weight")
    if weight is None:
        raise Unsupported("convolution without a weight spec")
    kernel = weight.shape[2:]
    n = len(kernel)
    stride = ints(arg(call, "stride", 2), n, 1)
    dilation = ints(arg(call, "dilation", 4), n, 1)
    padding = _padding(arg(call, "padding", 3, 0), kernel, dilation)
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    return through(call, field, _window_maps(stride, padding, extent))


@TABLE.register(
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    F.conv_transpose1d,
    F.conv_transpose2d,
    F.conv_transpose3d,
)
def conv_transpose(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """ConvTransposeNd (weight ``(C_in, C_out/g, *k)``; dilation 1 and ``k ≥ s`` are followed exactly)."""
    field = data_operand(call, operands)
    weight = call.spec("weight")
    if weight is None:
        raise Unsupported("transposed convolution without a weight spec")
    kernel = weight.shape[2:]
    n = len(kernel)
    stride = ints(arg(call, "stride", 2), n, 1)
    padding = ints(arg(call, "padding", 3), n, 0)
    if any(d != 1 for d in ints(arg(call, "dilation", 6), n, 1)):
        raise Unsupported("dilated transposed convolution")
    maps: list[SpanMap] = [
        lambda span, s=s, p=p, k=k: span.transposed(s, p, k) for s, p, k in zip(stride, padding, kernel, strict=True)
    ]
    return through(call, field, maps)


def _pool(call: OpCall, operands: tuple[Operand, ...], dims: int, dilated: bool, padded: bool = True) -> Outcome:
    field = data_operand(call, operands)
    kernel = ints(arg(call, "kernel_size", 0), dims)
    stride = ints(arg(call, "stride", 1), dims, 0)
    stride = tuple(s or k for s, k in zip(stride, kernel, strict=True))
    padding = ints(arg(call, "padding", 2), dims, 0) if padded else (0,) * dims
    dilation = ints(arg(call, "dilation", 3), dims, 1) if dilated else (1,) * dims
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    return through(call, field, _window_maps(stride, padding, extent))


@TABLE.register(
    nn.MaxPool1d, F.max_pool1d, torch.max_pool1d, F.max_pool1d_with_indices, torch.max_pool1d_with_indices
)  # torch's: what F's call
def max_pool1d(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """MaxPool1d: window ``k``, ``s`` (default ``k``: ``torch.max_pool1d``'s ``stride=[]`` too), ``p``, ``d``."""
    return _pool(call, operands, 1, dilated=True)


@TABLE.register(nn.MaxPool2d, F.max_pool2d, torch.max_pool2d, F.max_pool2d_with_indices)  # torch's: what F's call
def max_pool2d(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """MaxPool2d: window ``k``, ``s`` (default ``k``: ``torch.max_pool2d``'s ``stride=[]`` too), ``p``, ``d``."""
    return _pool(call, operands, 2, dilated=True)


@TABLE.register(nn.MaxPool3d, F.max_pool3d, torch.max_pool3d, F.max_pool3d_with_indices)  # torch's: what F's call
def max_pool3d(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """MaxPool3d: window ``k``, ``s`` (default ``k``: ``torch.max_pool3d``'s ``stride=[]`` too), ``p``, ``d``."""
    return _pool(call, operands, 3, dilated=True)


@TABLE.register(nn.AvgPool1d, F.avg_pool1d)
def avg_pool1d(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """AvgPool1d: window ``k``, ``s`` (default ``k``), ``p``."""
    return _pool(call, operands, 1, dilated=False)


@TABLE.register(nn.AvgPool2d, F.avg_pool2d)
def avg_pool2d(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """AvgPool2d: window ``k``, ``s`` (default ``k``), ``p``."""
    return _pool(call, operands, 2, dilated=False)


@TABLE.register(nn.AvgPool3d, F.avg_pool3d)
def avg_pool3d(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """AvgPool3d: window ``k``, ``s`` (default ``k``), ``p``."""
    return _pool(call, operands, 3, dilated=False)


@TABLE.register(nn.LPPool1d, F.lp_pool1d)
def lp_pool1d(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """LPPool1d: window ``k``, ``s`` (default ``k``), no padding."""
    return _lp_pool(call, operands, 1)


@TABLE.register(nn.LPPool2d, F.lp_pool2d)
def lp_pool2d(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """LPPool2d: window ``k``, ``s`` (default ``k``), no padding."""
    return _lp_pool(call, operands, 2)


@TABLE.register(nn.LPPool3d, F.lp_pool3d)
def lp_pool3d(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """LPPool3d: window ``k``, ``s`` (default ``k``), no padding."""
    return _lp_pool(call, operands, 3)


def _lp_pool(call: OpCall, operands: tuple[Operand, ...], dims: int) -> Outcome:
    field = data_operand(call, operands)
    kernel = ints(arg(call, "kernel_size", 1), dims)
    stride = tuple(s or k for s, k in zip(ints(arg(call, "stride", 2), dims, 0), kernel, strict=True))
    return through(call, field, _window_maps(stride, (0,) * dims, kernel))


def _adaptive_maps(call: OpCall, dims: int) -> list[SpanMap]:
    sizes = zip(call.input.shape[-dims:], call.output.shape[-dims:], strict=True)
    return [lambda span, n=n, m=m: span.remap((n, 0, m), (n, n - 1, m)) for n, m in sizes]


def _adaptive(call: OpCall, operands: tuple[Operand, ...], dims: int) -> Outcome:
    field = data_operand(call, operands)
    if not field.flat:
        moving = [
            (axis, size) for axis, size in zip(field.axes, field.sizes, strict=True) if axis is not None and size > 1
        ]
        if moving and all(axis >= -dims and call.output.shape[axis] == 1 for axis, _ in moving):
            return Marker.GLOBAL
    return through(call, field, _adaptive_maps(call, dims))


@TABLE.register(
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveMaxPool1d,
    F.adaptive_avg_pool1d,
    F.adaptive_max_pool1d,
    torch.adaptive_max_pool1d,
    F.adaptive_max_pool1d_with_indices,
)
def adaptive_pool1d(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """AdaptivePool1d: bins ``floor(i·n/m) … ceil((i + 1)·n/m) − 1``; global at output size 1."""
    return _adaptive(call, operands, 1)


@TABLE.register(
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool2d_with_indices,
)
def adaptive_pool2d(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """AdaptivePool2d: bins ``floor(i·n/m) … ceil((i + 1)·n/m) − 1`` per dim; global at output 1x1."""
    return _adaptive(call, operands, 2)


@TABLE.register(
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool3d,
    F.adaptive_avg_pool3d,
    F.adaptive_max_pool3d,
    F.adaptive_max_pool3d_with_indices,
)
def adaptive_pool3d(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """AdaptivePool3d: bins ``floor(i·n/m) … ceil((i + 1)·n/m) − 1`` per dim; global at output 1x1x1."""
    return _adaptive(call, operands, 3)


_LINEAR_MODES = frozenset({"linear", "bilinear", "trilinear"})


@TABLE.register(nn.Upsample, F.interpolate, F.upsample)
def interpolate(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """Resampling by an integer ratio per dim (see the module docstring); other ratios, bicubic,
    ``align_corners=True`` and antialiasing are not followed."""
    field = data_operand(call, operands)
    dims = call.input.ndim - 2
    mode = arg(call, "mode", 2, "nearest")
    if mode == "area":
        return _adaptive(call, operands, dims)
    if arg(call, "antialias", 5, False):
        raise Unsupported("antialiased resampling")
    if mode in _LINEAR_MODES and arg(call, "align_corners", 3, False):
        raise Unsupported(f"{mode} resampling with align_corners=True")
    scale = arg(call, "scale_factor", 1)
    recompute = arg(call, "recompute_scale_factor", 4, False)
    scales = (
        [None] * dims
        if scale is None or recompute
        else [float(s) for s in (scale if isinstance(scale, Sequence) else [scale] * dims)]
    )
    maps: list[SpanMap] = []
    for n_in, n_out, factor in zip(call.input.shape[-dims:], call.output.shape[-dims:], scales, strict=True):
        ratio = Fraction(n_out, n_in) if factor is None else Fraction(factor).limit_denominator(10_000)
        alpha, beta = ratio.denominator, ratio.numerator  # source step per output unit: alpha / beta
        if alpha != 1 and beta != 1:
            raise Unsupported(f"resampling by the non-integer ratio {ratio}")
        if mode == "nearest":
            maps.append(lambda span, a=alpha, b=beta: span.remap((a, 0, b), (a, 0, b)))
        elif mode == "nearest-exact":
            maps.append(lambda span, a=alpha, b=beta: span.remap((2 * a, a, 2 * b), (2 * a, a, 2 * b)))
        elif mode in _LINEAR_MODES:
            maps.append(lambda span, a=alpha, b=beta: span.remap((2 * a, a - b, 2 * b), (2 * a, a + b - 1, 2 * b)))
        else:
            raise Unsupported(f"{mode} resampling")
    return through(call, field, maps)


@TABLE.register(nn.PixelShuffle, F.pixel_shuffle)
def pixel_shuffle(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """PixelShuffle ``r``: output unit ``i`` comes from input unit ``floor(i/r)``."""
    field = data_operand(call, operands)
    r = int(arg(call, "upscale_factor", 0))
    return through(call, field, [lambda span: span.remap((1, 0, r), (1, 0, r))] * 2)


@TABLE.register(nn.PixelUnshuffle, F.pixel_unshuffle)
def pixel_unshuffle(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """PixelUnshuffle ``r``: a window ``k = s = r``."""
    field = data_operand(call, operands)
    r = int(arg(call, "downscale_factor", 0))
    return through(call, field, _window_maps((r, r), (0, 0), (r, r)))


@TABLE.register(nn.Unfold, F.unfold)
def unfold(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """``F.unfold``: the convolution window on the last two axes; the block grid is flattened into
    the last output axis (tokens)."""
    field = data_operand(call, operands)
    if field.flat or field.axes != (-2, -1):
        raise Unsupported("unfold over axes that are not the two spatial dims")
    kernel = ints(arg(call, "kernel_size", 0), 2)
    dilation = ints(arg(call, "dilation", 1), 2, 1)
    padding = ints(arg(call, "padding", 2), 2, 0)
    stride = ints(arg(call, "stride", 3), 2, 1)
    spans = tuple(
        span.window(s, p, d * (k - 1) + 1)
        for span, k, d, p, s in zip(field.spans, kernel, dilation, padding, stride, strict=True)
    )
    sizes = tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, d, p, s in zip(call.input.shape[-2:], kernel, dilation, padding, stride, strict=True)
    )
    return replace(field, spans=spans, sizes=sizes, axes=(-1,), flat=True)


@TABLE.register(torch.Tensor.unfold)
def tensor_unfold(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """``Tensor.unfold(dim, size, step)``: a window ``k = size``, ``s = step`` on ``dim``; the
    window axis is appended last (the unit is the whole window). Over a flattened token axis, the
    window is one over the dim the tokens run along, if one only (as in :func:`through`)."""
    field = data_operand(call, operands)
    ndim = call.input.ndim
    dim = int(arg(call, "dimension", 0))
    dim = dim - ndim if dim >= 0 else dim
    size, step = int(arg(call, "size", 1)), int(arg(call, "step", 2))
    unfolded = [j for j, axis in enumerate(field.axes) if axis == dim and not field.flat]
    if field.flat and field.axes[0] == dim:
        runner = token_dim(field)
        if runner is None:
            raise Unsupported("unfold over flattened spatial positions")
        unfolded = [runner]
    spans = list(field.spans)
    sizes = list(field.sizes)
    for j in unfolded:
        spans[j] = spans[j].window(step, 0, size)
        sizes[j] = call.output.shape[dim - 1]
    axes = tuple(None if axis is None else axis - 1 for axis in field.axes)
    return replace(field, spans=tuple(spans), sizes=tuple(sizes), axes=axes)


_PAD_MODULES = (
    nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
    nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d, nn.ReplicationPad1d, nn.ReplicationPad2d,
    nn.ReplicationPad3d, nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d,
)  # fmt: skip


@TABLE.register(F.pad, *_PAD_MODULES)
def pad(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """``pad = (left_last, right_last, left_second_last, right_second_last, …)``: each padded axis a
    window ``k = s = 1`` with padding = its left pad (module docstring)."""
    field = data_operand(call, operands)
    pads = arg(call, "padding", 99) if call.kind == "module" else arg(call, "pad", 0)
    if pads is None or isinstance(pads, int) or len(pads) % 2:
        raise Unsupported(f"padding {pads!r}")
    lefts = [int(value) for value in pads[0::2]]  # last axis first
    return through(call, field, [lambda span, p=p: span.window(1, p, 1) for p in reversed(lefts)])
