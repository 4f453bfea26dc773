"""Spans, bounds and hulls per spatial dim: the classic recurrence and literal tables."""

from __future__ import annotations

import pytest

from torchscan.passes.receptive.geometry import Bound, Span


def test_classic_recurrence_three_3x3_convs() -> None:
    span = Span.identity()
    sizes = []
    for _ in range(3):
        span = span.window(1, 1, 3)
        sizes.append(span.summary().size)
    assert sizes == [3, 5, 7]  # the original tool's latest release shows 3, 3, 3
    assert span.summary().start == -3


@pytest.mark.parametrize(
    ("layers", "size", "jump", "start"),
    [
        ([(2, 3, 7)], 7, 2, -3),  # ResNet stem conv: k7 s2 p3
        ([(2, 3, 7), (2, 1, 3)], 11, 4, -5),  # + max pool k3 s2 p1
        ([(1, 0, 5), (1, 0, 5)], 9, 1, 0),  # dilation 2 of a 3-kernel is an extent of 5
        ([(4, 0, 4), (1, 1, 3)], 12, 4, -4),  # patchify then 3x3
    ],
)
def test_window_table(layers: list[tuple[int, int, int]], size: int, jump: int, start: int) -> None:
    span = Span.identity()
    for stride, padding, extent in layers:
        span = span.window(stride, padding, extent)
    assert span.summary().size == size
    assert span.summary().jump == jump
    assert span.summary().start == start


def test_transposed_shrinks_jump_and_varies_by_position() -> None:
    span = Span.identity().window(2, 1, 3).transposed(2, 1, 4)  # conv k3 s2 p1, then convT k4 s2 p1
    assert [span.extent_at(i) for i in range(4)] == [(-3, 1), (-1, 3), (-1, 3), (1, 5)]
    assert span.summary().size == 5
    assert span.summary().jump == 1


def test_bound_reduces_its_period() -> None:
    bound = Bound.identity().compose(1, 0, 2).compose(2, 0)  # upsample x2 then stride 2: identity
    assert bound == Bound((0,), 1)


def test_hull_of_misaligned_paths() -> None:
    left = Span.identity().window(1, 1, 3)  # [i - 1, i + 1]
    right = Span.identity().window(1, 0, 3)  # [i, i + 2]
    assert left.hull(right).extent_at(0) == (-1, 2)
