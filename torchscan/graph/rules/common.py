"""Checks and helpers the shape rules share (a rule declines unless its arguments are plain)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch.fx.immutable_collections import immutable_list

from torchscan.graph.rules.table import Fresh, Pending

__all__ = [
    "SEQUENCES",
    "as_tuple",
    "bound",
    "broadcast",
    "fresh",
    "in_place",
    "like",
    "one_input",
    "plain",
    "strided_fake",
    "window_size",
]


SEQUENCES = frozenset({tuple, list, immutable_list, torch.Size})
"""The exact types of a sequence argument a rule reads item by item: fx hands every list of a node's
arguments over as its ``immutable_list`` (``x.split([16, 16, 32], dim=3)``, ``torch.cat([a, b])``)."""


def plain(value: Any) -> bool:
    """A fake, dense, contiguous tensor (or a :class:`Pending` one)."""
    return type(value) is Pending or (
        type(value) is FakeTensor and value.layout == torch.strided and value.is_contiguous()
    )


def strided_fake(value: Any) -> bool:
    """A fake, dense (strided) tensor, of any strides (or a :class:`Pending` one)."""
    return type(value) is Pending or (type(value) is FakeTensor and value.layout == torch.strided)


def in_place(x: torch.Tensor) -> torch.Tensor | None:
    """``x`` as the result of an in-place op on it (None where torch refuses: a leaf requiring grad)."""
    return None if x.requires_grad and x.is_leaf else x


def like(tensor: torch.Tensor, *others: torch.Tensor | None) -> bool:
    """``tensor`` is plain and every other tensor (parameters) matches its dtype and device."""
    return plain(tensor) and all(
        other is None or (other.dtype == tensor.dtype and other.device == tensor.device) for other in others
    )


def fresh(shape: Sequence[int], like: torch.Tensor) -> Fresh | None:
    shape = tuple(int(size) for size in shape)
    return Fresh(shape, like.dtype, like.device) if all(size >= 0 for size in shape) else None


def one_input(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> torch.Tensor | None:
    """The single positional tensor of a module call (``None`` if called otherwise)."""
    return args[0] if len(args) == 1 and not kwargs and plain(args[0]) else None


def bound(
    names: Sequence[str], args: tuple[Any, ...], kwargs: Mapping[str, Any], keywords: Sequence[str] = ()
) -> dict[str, Any] | None:
    """A call's arguments by parameter name (``names`` by position or keyword, in order; ``keywords`` by
    keyword only), or None when one is unknown, given twice or one too many: torch's error to raise."""
    if len(args) > len(names) or any(name not in names and name not in keywords for name in kwargs):
        return None
    if any(name in kwargs for name in names[: len(args)]):
        return None
    return {**dict(zip(names, args, strict=False)), **kwargs}


def as_tuple(value: Any, dims: int) -> tuple[int, ...]:
    return tuple(int(item) for item in value) if isinstance(value, (tuple, list)) else (int(value),) * dims


def window_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil: bool) -> int:
    """Pool/conv output length: ``⌊(L + 2p − d(k − 1) − 1)/s⌋ + 1`` (``⌈·⌉`` with ``ceil_mode``,
    minus one when the last window would start in the right padding)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def broadcast(shapes: Sequence[Sequence[int]]) -> tuple[int, ...] | None:
    """The broadcast shape, or None when the shapes do not broadcast."""
    rank = max(len(shape) for shape in shapes)
    out = []
    for position in range(rank):
        sizes = {shape[position - rank + len(shape)] for shape in shapes if position - rank + len(shape) >= 0}
        sizes.discard(1)
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)
