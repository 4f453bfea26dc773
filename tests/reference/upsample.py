"""Interpolation (``F.interpolate``): nearest, linear / bilinear / trilinear, bicubic.

Each output element reads its taps and blends them: nearest reads 1 tap; the d-linear modes read
``2^d`` and blend them with ``2^d − 1`` lerps ``a + w·(b − a)`` (dim by dim); bicubic reads 16 and
blends each of the 4 rows, then the column, with a 4-tap dot product. Source coordinates and
blending weights depend on positions only (plain Python, not counted), as in torch's kernels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import product

import torch

from tests.reference.counting import Counted, Num, Sink, Source, Tally, dot, indices, lerp

__all__ = ["interpolate"]

_CUBIC = -0.75  # torch's bicubic coefficient A


def _scale(size: int, out: int, align_corners: bool) -> float:
    if align_corners:
        return (size - 1) / (out - 1) if out > 1 else 0.0
    return size / out


def _linear_source(position: int, size: int, out: int, align_corners: bool) -> tuple[int, int, float]:
    """The two taps and the weight of the second for output ``position`` (torch's source index)."""
    scale = _scale(size, out, align_corners)
    real = scale * position if align_corners else max(scale * (position + 0.5) - 0.5, 0.0)
    low = min(int(real), size - 1)
    return low, min(low + 1, size - 1), real - low


def _nearest_source(position: int, size: int, out: int) -> int:
    return min(math.floor(position * (size / out)), size - 1)


def _cubic_weights(t: float) -> tuple[float, float, float, float]:
    def near(x: float) -> float:  # |x| <= 1
        return ((_CUBIC + 2) * x - (_CUBIC + 3)) * x * x + 1

    def far(x: float) -> float:  # 1 < |x| < 2
        return ((_CUBIC * x - 5 * _CUBIC) * x + 8 * _CUBIC) * x - 4 * _CUBIC

    return far(t + 1), near(t), near(1 - t), far(2 - t)


def _cubic_source(position: int, size: int, out: int, align_corners: bool) -> tuple[list[int], tuple[float, ...]]:
    scale = _scale(size, out, align_corners)
    real = scale * position if align_corners else scale * (position + 0.5) - 0.5
    low = math.floor(real)
    taps = [min(max(low + offset, 0), size - 1) for offset in (-1, 0, 1, 2)]
    return taps, _cubic_weights(real - low)


def interpolate(x: torch.Tensor, size: Sequence[int], mode: str, align_corners: bool = False) -> Counted:
    """``F.interpolate(x, size=size, mode=mode, align_corners=align_corners)``."""
    tally = Tally()
    source = Source("input", x, tally)
    spatial = tuple(x.shape[2:])
    out = Sink("output", (*x.shape[:2], *size), tally)
    for lead in indices(x.shape[:2]):
        for position in indices(size):
            axes = list(zip(position, spatial, size, strict=True))
            if mode == "nearest":
                out[(*lead, *position)] = source[(*lead, *(_nearest_source(p, n, o) for p, n, o in axes))]
            elif mode in ("linear", "bilinear", "trilinear"):
                sources = [_linear_source(p, n, o, align_corners) for p, n, o in axes]
                # the 2^d corners, then one lerp per pair along the last dim, the next… (2^d − 1 lerps)
                values: list[Num] = [
                    source[(*lead, *(pair[bit] for pair, bit in zip(sources, bits, strict=True)))]
                    for bits in product((0, 1), repeat=len(sources))
                ]
                for _, _, weight in reversed(sources):
                    values = [lerp(values[i], values[i + 1], weight) for i in range(0, len(values), 2)]
                out[(*lead, *position)] = values[0]
            elif mode == "bicubic":
                (rows, row_weights), (columns, column_weights) = (
                    _cubic_source(p, n, o, align_corners) for p, n, o in axes
                )
                blended = [
                    dot((source[(*lead, r, c)], w) for c, w in zip(columns, column_weights, strict=True)) for r in rows
                ]
                out[(*lead, *position)] = dot(zip(blended, row_weights, strict=True))
            else:
                raise ValueError(f"mode {mode!r} is not in the reference")
    return Counted(out.tensor(), tally)
