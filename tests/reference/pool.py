"""Max and average pooling (dilation, padding, ``ceil_mode``) and their adaptive forms, 1-D/2-D/3-D.

A window is read whole: taps in the padding (or past it, the last window of ``ceil_mode``) read
``−∞`` for a max and ``0`` for a sum, so they never change the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from tests.reference.counting import Counted, Num, Sink, Source, Tally, indices, maximum, power

__all__ = ["adaptive_avg_pool", "adaptive_max_pool", "avg_pool", "lp_pool", "max_pool", "pool_size"]


def _per_dim(value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    return (value,) * dims if isinstance(value, int) else tuple(value)


def pool_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """Output length of a pooling window along one dim (torch's rule: with ``ceil_mode`` the last
    window must start inside the input or its left padding)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (math.ceil if ceil_mode else math.floor)(span / stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _windows(
    x: torch.Tensor,
    kernel: int | Sequence[int],
    stride: int | Sequence[int] | None,
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
    ceil_mode: bool,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Kernel, stride, padding, dilation and output size per spatial dim."""
    dims = x.ndim - 2
    kernel_ = _per_dim(kernel, dims)
    stride_ = _per_dim(stride if stride else kernel, dims)
    padding_, dilation_ = _per_dim(padding, dims), _per_dim(dilation, dims)
    out = tuple(
        pool_size(n, k, s, p, d, ceil_mode)
        for n, k, s, p, d in zip(x.shape[2:], kernel_, stride_, padding_, dilation_, strict=True)
    )
    return kernel_, stride_, padding_, dilation_, out


def max_pool(
    x: torch.Tensor,
    kernel: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
) -> Counted:
    """``y[p] = max_t x_pad[p·s − pad + t·d]``: ``K − 1`` comparisons and ``K`` reads per output."""
    tally = Tally()
    kernel_, stride_, padding_, dilation_, out_size = _windows(x, kernel, stride, padding, dilation, ceil_mode)
    source = Source("input", x, tally)
    out = Sink("output", (*x.shape[:2], *out_size), tally)
    for lead in indices(x.shape[:2]):
        for position in indices(out_size):
            best: Num | None = None
            for tap in indices(kernel_):
                at = tuple(
                    p * s - pad + t * d
                    for p, s, pad, t, d in zip(position, stride_, padding_, tap, dilation_, strict=True)
                )
                value = source.padded((*lead, *at), fill=-math.inf)
                best = value if best is None else maximum(best, value)
            assert best is not None
            out[(*lead, *position)] = best
    return Counted(out.tensor(), tally)


def avg_pool(
    x: torch.Tensor,
    kernel: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Counted:
    """``y[p] = Σ_t x_pad[p·s − pad + t] / divisor``: ``K − 1`` adds, one division and ``K`` reads
    per output. The divisor is torch's: the window clipped to the padded input
    (``count_include_pad``) or to the input; it is index arithmetic, not counted."""
    tally = Tally()
    kernel_, stride_, padding_, _, out_size = _windows(x, kernel, stride, padding, 1, ceil_mode)
    source = Source("input", x, tally)
    out = Sink("output", (*x.shape[:2], *out_size), tally)
    for lead in indices(x.shape[:2]):
        for position in indices(out_size):
            total: Num | None = None
            for tap in indices(kernel_):
                at = tuple(p * s - pad + t for p, s, pad, t in zip(position, stride_, padding_, tap, strict=True))
                value = source.padded((*lead, *at))
                total = value if total is None else total + value
            divisor = 1
            for p, s, pad, k, n in zip(position, stride_, padding_, kernel_, x.shape[2:], strict=True):
                start, end = p * s - pad, min(p * s - pad + k, n + pad)
                divisor *= end - start if count_include_pad else min(end, n) - max(start, 0)
            assert total is not None
            out[(*lead, *position)] = total / divisor
    return Counted(out.tensor(), tally)


def _adaptive_windows(size: Sequence[int], out_size: Sequence[int], position: Sequence[int]) -> list[range]:
    """torch's adaptive window: ``[⌊i·n/o⌋, ⌈(i + 1)·n/o⌉)`` per dim."""
    return [range(i * n // o, -(-(i + 1) * n // o)) for i, n, o in zip(position, size, out_size, strict=True)]


def adaptive_max_pool(x: torch.Tensor, output_size: Sequence[int]) -> Counted:
    """Max over torch's adaptive windows (their sizes vary when ``o`` does not divide ``n``)."""
    tally = Tally()
    source = Source("input", x, tally)
    out = Sink("output", (*x.shape[:2], *output_size), tally)
    for lead in indices(x.shape[:2]):
        for position in indices(output_size):
            windows = _adaptive_windows(x.shape[2:], output_size, position)
            best: Num | None = None
            for at in indices([len(r) for r in windows]):
                value = source[(*lead, *(r.start + a for r, a in zip(windows, at, strict=True)))]
                best = value if best is None else maximum(best, value)
            assert best is not None
            out[(*lead, *position)] = best
    return Counted(out.tensor(), tally)


def adaptive_avg_pool(x: torch.Tensor, output_size: Sequence[int]) -> Counted:
    """Mean over torch's adaptive windows: ``K − 1`` adds and one division per output."""
    tally = Tally()
    source = Source("input", x, tally)
    out = Sink("output", (*x.shape[:2], *output_size), tally)
    for lead in indices(x.shape[:2]):
        for position in indices(output_size):
            windows = _adaptive_windows(x.shape[2:], output_size, position)
            total: Num | None = None
            for at in indices([len(r) for r in windows]):
                value = source[(*lead, *(r.start + a for r, a in zip(windows, at, strict=True)))]
                total = value if total is None else total + value
            assert total is not None
            out[(*lead, *position)] = total / math.prod(len(r) for r in windows)
    return Counted(out.tensor(), tally)


def lp_pool(
    x: torch.Tensor, norm_type: float, kernel: int | Sequence[int], stride: int | Sequence[int] | None = None
) -> Counted:
    """``y = (Σ_window x^p)^{1/p}`` in torch's two passes: ``x^p`` of every input element (one power and one read
    each, written to ``powered``), then per output the window's ``K`` taps of ``powered`` read, ``K − 1`` adds and
    a root (one power). No padding, no ``ceil_mode`` (a partial window's sum torch rescales)."""
    tally = Tally()
    kernel_, stride_, _, _, out_size = _windows(x, kernel, stride, 0, 1, False)
    source = Source("input", x, tally)
    powered = Sink("powered", x.shape, tally)
    for index in indices(x.shape):
        powered[index] = power(source[index], norm_type)
    taps = Source("powered", powered.tensor(), tally)
    out = Sink("output", (*x.shape[:2], *out_size), tally)
    for lead in indices(x.shape[:2]):
        for position in indices(out_size):
            total: Num | None = None
            for tap in indices(kernel_):
                value = taps[(*lead, *(p * s + t for p, s, t in zip(position, stride_, tap, strict=True)))]
                total = value if total is None else total + value
            assert total is not None
            out[(*lead, *position)] = power(total, 1 / norm_type)
    return Counted(out.tensor(), tally)
