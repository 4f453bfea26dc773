"""Convolution (gather: each output sums its window) and transposed convolution (scatter: each
input element is multiplied into its window of the output), 1-D/2-D/3-D, any groups, stride,
dilation and padding (``padding="same"`` and ``"valid"`` too)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tests.reference.counting import Counted, Num, Sink, Source, Tally, indices, mac

__all__ = ["conv", "conv_transpose", "same_padding"]


def _per_dim(value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    return (value,) * dims if isinstance(value, int) else tuple(value)


def same_padding(kernel: Sequence[int], dilation: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """``padding="same"``: ``d·(k − 1)`` per dim, the odd one on the right (as torch pads)."""
    pads = []
    for k, d in zip(kernel, dilation, strict=True):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | str = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> Counted:
    """``y[b, o, p] = bias[o] + Σ_{c, t} x_pad[b, g·C_in/g + c, p·s + t·d] · w[o, c, t]`` with zero
    padding: every output reads its whole window (taps in the padding read as zeros) and starts its
    sum with the window's first product."""
    tally = Tally()
    dims = weight.ndim - 2
    kernel = tuple(weight.shape[2:])
    stride_, dilation_ = _per_dim(stride, dims), _per_dim(dilation, dims)
    if padding == "same":
        pads = same_padding(kernel, dilation_)
    elif padding == "valid":
        pads = ((0, 0),) * dims
    else:
        pads = tuple((p, p) for p in _per_dim(padding, dims))  # type: ignore[arg-type]
    batch, _, *size = x.shape
    out_channels, group_in = weight.shape[:2]
    group_out = out_channels // groups
    out_size = [
        (n + left + right - d * (k - 1) - 1) // s + 1
        for n, (left, right), d, k, s in zip(size, pads, dilation_, kernel, stride_, strict=True)
    ]
    source, weights = Source("input", x, tally), Source("weight", weight, tally)
    biases = Source("bias", bias, tally) if bias is not None else None
    out = Sink("output", (batch, out_channels, *out_size), tally)
    for b, o in indices((batch, out_channels)):
        first = o // group_out * group_in
        for position in indices(out_size):
            acc: Num | None = None
            for c in range(group_in):
                for tap in indices(kernel):
                    at = tuple(
                        p * s - left + t * d
                        for p, s, (left, _), t, d in zip(position, stride_, pads, tap, dilation_, strict=True)
                    )
                    acc = mac(acc, source.padded((b, first + c, *at)), weights[(o, c, *tap)])
            assert acc is not None
            if biases is not None:
                acc = acc + biases[(o,)]
            out[(b, o, *position)] = acc
    return Counted(out.tensor(), tally)


def conv_transpose(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    groups: int = 1,
    dilation: int | Sequence[int] = 1,
) -> Counted:
    """Scatter: each input element ``x[b, c, p]`` adds ``x·w[c, o, t]`` into the zero-initialised
    accumulator at ``p·s + t·d`` of the full output, for every output channel ``o`` of its group and
    every tap ``t`` (each product is read, multiplied and added); the output is the full one cropped
    by ``padding`` on both sides (extended by ``output_padding`` on the right), plus the bias."""
    tally = Tally()
    dims = weight.ndim - 2
    kernel = tuple(weight.shape[2:])
    stride_, dilation_ = _per_dim(stride, dims), _per_dim(dilation, dims)
    pads, extra = _per_dim(padding, dims), _per_dim(output_padding, dims)
    batch, in_channels, *size = x.shape
    group_in, group_out = in_channels // groups, weight.shape[1]
    out_channels = group_out * groups
    full = [
        (n - 1) * s + d * (k - 1) + 1 + e for n, s, d, k, e in zip(size, stride_, dilation_, kernel, extra, strict=True)
    ]
    out_size = [f - 2 * p for f, p in zip(full, pads, strict=True)]
    source, weights = Source("input", x, tally), Source("weight", weight, tally)
    biases = Source("bias", bias, tally) if bias is not None else None
    acc = {index: Num(0.0, tally) for index in indices((batch, out_channels, *full))}  # registers, not memory
    for b, c in indices((batch, in_channels)):
        first = c // group_in * group_out
        for position in indices(size):
            for o in range(group_out):
                for tap in indices(kernel):
                    at = tuple(p * s + t * d for p, s, t, d in zip(position, stride_, tap, dilation_, strict=True))
                    key = (b, first + o, *at)
                    acc[key] = mac(acc[key], source[(b, c, *position)], weights[(c, o, *tap)])
    out = Sink("output", (batch, out_channels, *out_size), tally)
    for b, o in indices((batch, out_channels)):
        for position in indices(out_size):
            value = acc[(b, o, *(p + pad for p, pad in zip(position, pads, strict=True)))]
            out[(b, o, *position)] = value + biases[(o,)] if biases is not None else value
    return Counted(out.tensor(), tally)
