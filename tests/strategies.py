"""Hypothesis strategies: random small nets with skip connections, and their inputs.

The nets are 1-D, 2-D or 3-D, on non-square inputs, with non-square kernels and strides, grouped
and dilated convolutions, ``padding="same"`` (even kernels included: torch pads asymmetrically),
max pools (dilated, ``ceil_mode``) and average pools, batch norms with and without running
statistics, in train or eval mode. Every drawn net runs at any batch size, 1 included: each block
keeps at least two spatial positions, so a batch norm using batch statistics never sees a single
value per channel (which torch rejects).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

__all__ = ["Block", "RandomNet", "pool_size", "random_nets", "window_size"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVGPOOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
_ADAPTIVE = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
_SIZES = {1: (8, 40), 2: (5, 20), 3: (4, 9)}


@dataclass(frozen=True)
class Block:
    """One block of a :class:`RandomNet`.

    ``plain``: conv(kernel, stride, padding, dilation, groups) - batch norm - ReLU6 (in place);
    ``residual``: ``x + ReLU(BN(conv(x)))`` with a size-keeping padding; ``concat``: ``cat`` of a
    1x1 conv and a ReLU'd conv with ``padding="same"``; ``pool``: a max pool (dilated) or an average
    pool. ``padding`` is ``"same"`` or per-dim integers.
    """

    kind: str
    channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: str | tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int = 1
    bias: bool = True
    pool: str = "max"
    ceil_mode: bool = False
    running_stats: bool = True
    momentum: float | None = 0.1


class RandomNet(nn.Module):
    """A chain of :class:`Block`, then a global average pool and a linear head."""

    def __init__(self, dims: int, in_channels: int, blocks: list[Block], classes: int) -> None:
        super().__init__()
        self.dims = dims
        self.kinds = [block.kind for block in blocks]
        layers = nn.ModuleList()
        channels = in_channels
        conv, norm = _CONV[dims], _NORM[dims]
        for b in blocks:
            bn = {"track_running_stats": b.running_stats, "momentum": b.momentum}
            if b.kind == "residual":
                main = conv(channels, channels, b.kernel, 1, b.padding, b.dilation, b.groups, b.bias)
                layers.append(nn.Sequential(main, norm(channels, **bn), nn.ReLU()))
            elif b.kind == "concat":
                pointwise = conv(channels, b.channels, 1, bias=b.bias)
                wide = conv(channels, b.channels, b.kernel, 1, "same", b.dilation, b.groups, b.bias)
                layers.append(nn.ModuleList([pointwise, wide]))
                channels = 2 * b.channels
            elif b.kind == "pool" and b.pool == "max":
                layers.append(_MAXPOOL[dims](b.kernel, b.stride, b.padding, b.dilation, ceil_mode=b.ceil_mode))
            elif b.kind == "pool":
                layers.append(_AVGPOOL[dims](b.kernel, b.stride, b.padding, ceil_mode=b.ceil_mode))
            else:
                main = conv(channels, b.channels, b.kernel, b.stride, b.padding, b.dilation, b.groups, b.bias)
                layers.append(nn.Sequential(main, norm(b.channels, **bn), nn.ReLU6(inplace=True)))
                channels = b.channels
        self.blocks = layers
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for kind, block in zip(self.kinds, self.blocks, strict=True):
            if kind == "residual":
                x = x + block(x)
            elif kind == "concat":
                x = torch.cat([block[0](x), F.relu(block[1](x))], dim=1)
            else:
                x = block(x)
        x = _ADAPTIVE[self.dims](x, 1)
        return self.head(torch.flatten(x, 1))


def window_size(n: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution window: ``floor((n + 2p − d·(k − 1) − 1)/s) + 1``."""
    return (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pool_size(n: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """Output length of a pool: the convolution's, or with ``ceil_mode`` ``ceil(…) + 1`` less one
    when the last window would start past the input and its left padding (``(out − 1)·s ≥ n + p``)."""
    span = n + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    return out - 1 if (out - 1) * stride >= n + padding else out


def _divisors(n: int) -> list[int]:
    return [g for g in range(1, n + 1) if n % g == 0]


def _per_dim(dims: int, values: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[int, ...]]:
    return st.tuples(*[values] * dims)


@st.composite
def _block(draw: st.DrawFn, dims: int, channels: int, sizes: tuple[int, ...]) -> tuple[Block, int, tuple[int, ...]]:
    """A block valid on ``channels`` x ``sizes``; returns it with its output channels and sizes."""
    kind = draw(st.sampled_from(["plain", "residual", "concat", "pool"]))
    kernel = draw(_per_dim(dims, st.sampled_from([1, 2, 3, 5])))
    dilation = draw(_per_dim(dims, st.integers(1, 2)))
    bias = draw(st.booleans())
    stats = {"running_stats": draw(st.booleans()), "momentum": draw(st.sampled_from([0.1, None]))}
    if kind == "residual":
        odd = all(k % 2 for k in kernel)
        padding: str | tuple[int, ...] = (
            tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))
            if odd and draw(st.booleans())
            else "same"
        )
        groups = draw(st.sampled_from(_divisors(channels)))
        return Block(kind, channels, kernel, (1,) * dims, padding, dilation, groups, bias, **stats), channels, sizes
    out = draw(st.integers(1, 8))
    if kind == "concat":
        groups = draw(st.sampled_from(_divisors(math.gcd(channels, out))))
        block = Block(kind, out, kernel, (1,) * dims, "same", dilation, groups, bias)
        return block, 2 * out, sizes
    stride = draw(_per_dim(dims, st.integers(1, 2)))
    if kind == "pool":
        pool = draw(st.sampled_from(["max", "avg"]))
        if pool == "avg":
            dilation = (1,) * dims
        # torch's 3-D pools want the window inside the unpadded input: shrink it where it is not
        dilation = tuple(d if d * (k - 1) < n else 1 for n, k, d in zip(sizes, kernel, dilation, strict=True))
        kernel = tuple(min(k, n) for n, k in zip(sizes, kernel, strict=True))
        padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
        ceil_mode = draw(st.booleans())
        new = tuple(
            pool_size(n, k, s, p, d, ceil_mode)
            for n, k, s, p, d in zip(sizes, kernel, stride, padding, dilation, strict=True)
        )
        if min(new) < 1 or math.prod(new) < 2:  # keep two positions: stride 1 and padding k // 2
            stride, padding, dilation = (1,) * dims, tuple(k // 2 for k in kernel), (1,) * dims
            new = tuple(
                pool_size(n, k, 1, p, d, ceil_mode) for n, k, p, d in zip(sizes, kernel, padding, dilation, strict=True)
            )
        return Block(kind, channels, kernel, stride, padding, dilation, pool=pool, ceil_mode=ceil_mode), channels, new
    groups = draw(st.sampled_from(_divisors(math.gcd(channels, out))))
    choice = draw(st.sampled_from(["same", "half", "zero"]))
    if choice == "same":
        stride = (1,) * dims
        padding = "same"
    else:
        padding = tuple(d * (k - 1) // 2 if choice == "half" else 0 for k, d in zip(kernel, dilation, strict=True))
    new = (
        sizes
        if padding == "same"
        else tuple(
            window_size(n, k, s, p, d) for n, k, s, p, d in zip(sizes, kernel, stride, padding, dilation, strict=True)
        )
    )
    if min(new) < 1 or math.prod(new) < 2:  # keep two positions: fall back to a size-keeping conv
        stride, padding, new = (1,) * dims, "same", sizes
    return Block(kind, out, kernel, stride, padding, dilation, groups, bias, **stats), out, new


@st.composite
def random_nets(draw: st.DrawFn, dims: int | None = None) -> tuple[RandomNet, tuple[int, ...]]:
    """A random :class:`RandomNet` (train or eval mode) and a valid input shape without batch dim
    (``(C, *spatial)``, 1 to 3 spatial dims unless ``dims`` is given)."""
    dims = draw(st.integers(1, 3)) if dims is None else dims
    in_channels = draw(st.integers(1, 4))
    low, high = _SIZES[dims]
    sizes = draw(_per_dim(dims, st.integers(low, high)))
    channels, current = in_channels, sizes
    blocks = []
    for _ in range(draw(st.integers(1, 5))):
        block, channels, current = draw(_block(dims, channels, current))
        blocks.append(block)
    net = RandomNet(dims, in_channels, blocks, draw(st.integers(1, 5)))
    return net.train(draw(st.booleans())), (in_channels, *sizes)
