"""Spans, bounds and hulls per spatial dim: the classic recurrence and literal tables."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.profiles import examples
from torchscan.passes.receptive.geometry import Bound, Span, Unsupported


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


# Property tests against brute force: every input unit an output unit reads, enumerated.

_offsets = st.lists(st.integers(-6, 6), min_size=1, max_size=6)


@st.composite
def _bounds(draw: st.DrawFn) -> Bound:
    offsets = draw(_offsets)
    return Bound(tuple(offsets), draw(st.integers(-4, 8)))


def _spans(slope: tuple[int, int] | None = None) -> st.SearchStrategy[Span]:
    """Spans reached from the identity by a few windows, transposed windows and remaps."""

    @st.composite
    def build(draw: st.DrawFn) -> Span:
        span = Span.identity()
        for _ in range(draw(st.integers(0, 3))):
            stride, extent = draw(st.integers(1, 3)), draw(st.integers(1, 5))
            padding = draw(st.integers(0, 2))
            if draw(st.booleans()) and extent >= stride:
                span = span.transposed(stride, padding, extent)
            else:
                span = span.window(stride, padding, extent)
        return span

    return build()


@given(_bounds(), st.integers(0, 6), st.integers(-8, 8), st.integers(1, 5))
@example(Bound((0, 1, 5), 3), 0, 5, 2)  # a constant: f(⌊5/2⌋) = f(2) = 5
@example(Bound((0, 1), 2), 1, 0, 1)  # i ↦ i written over 2 units: period 1
@example(Bound((0, 1, 2, 3), 4), 1, 1, 1)
@settings(max_examples=examples(3))
def test_composed_bound_is_the_composition_in_its_smallest_period(bound: Bound, a: int, b: int, d: int) -> None:
    composed = bound.compose(a, b, d)
    values = [composed.at(i) for i in range(-12, 40)]
    assert values == [bound.at((a * i + b) // d) for i in range(-12, 40)]
    # no shorter period describes the same function (the result is reduced)
    for p in range(1, composed.period):
        if composed.period % p == 0:
            shorter = [composed.at(i + p) - composed.at(i) for i in range(-12, 40)]
            assert len(set(shorter)) > 1


def _read_by_window(i: int, stride: int, padding: int, extent: int) -> list[int]:
    return [stride * i - padding + t for t in range(extent)]


def _read_by_transposed(o: int, stride: int, padding: int, extent: int) -> list[int]:
    # input unit j writes outputs s·j − p + t, t in [0, extent)
    return [j for j in range(-40, 40) if 0 <= o + padding - stride * j < extent]


@given(_spans(), st.integers(1, 4), st.integers(0, 3), st.integers(1, 6), st.booleans())
@settings(max_examples=examples(3))
def test_windows_read_the_units_brute_force_finds(span: Span, stride: int, padding: int, extent: int, up: bool) -> None:
    if up and extent >= stride:
        after, read = span.transposed(stride, padding, extent), _read_by_transposed
    else:
        after, read = span.window(stride, padding, extent), _read_by_window
    for i in range(-3, 12):
        units = read(i, stride, padding, extent)
        expected = (min(span.left.at(j) for j in units), max(span.right.at(j) for j in units))
        assert after.extent_at(i) == expected


@given(_spans(), _spans(), st.integers(0, 3), st.integers(1, 4), st.booleans())
@example(Span.identity().transposed(2, 0, 3), Span.identity(), 0, 2, False)  # period 2 on both sides
@settings(max_examples=examples(3))
def test_hull_is_the_union_per_unit_and_summary_its_widest(
    first: Span, other: Span, shift: int, extent: int, independent: bool
) -> None:
    # a second path from the same input (same strides, often periodic), or an unrelated one
    second = other if independent else first.window(1, 0, extent)
    second = second.remap((1, shift, 1), (1, shift, 1))  # misaligned by a few units
    if first.left.slope != second.left.slope or first.right.slope != second.right.slope:
        with pytest.raises(Unsupported):
            first.hull(second)
        return
    hull = first.hull(second)
    for i in range(-3, 40):
        assert hull.extent_at(i) == (
            min(first.left.at(i), second.left.at(i)),
            max(first.right.at(i), second.right.at(i)),
        )
    summary = hull.summary()
    assert summary.start == hull.left.at(0)
    assert summary.size == max(hull.right.at(i) - hull.left.at(i) + 1 for i in range(0, 120))
    period = 5 * hull.left.period
    assert summary.jump == Fraction(hull.left.at(period) - hull.left.at(0), period)


def test_a_bound_of_period_four_reduces_to_period_two() -> None:
    # f(i) = 2·⌊i/2⌋ written over 4 units (offsets 0, 0, 2, 2, rise 4): period 2, rise 2
    assert Bound((0, 0, 2, 2), 4).compose(1, 0) == Bound((0, 0), 2)


def test_a_bound_of_constant_step_reduces_to_period_one() -> None:
    assert Bound((0, 1), 2).compose(1, 0) == Bound((0,), 1)
    assert Bound((3, 5, 7, 9), 8).compose(1, 0) == Bound((3,), 2)


def test_degenerate_windows_are_refused_and_a_transposed_window_of_extent_stride_is_not() -> None:
    for stride, extent in ((0, 3), (2, 0), (0, 0)):
        with pytest.raises(Unsupported):
            Span.identity().window(stride, 0, extent)
    with pytest.raises(Unsupported):
        Span.identity().transposed(3, 0, 2)  # gaps: output 2 reads no input
    span = Span.identity().transposed(2, 0, 2)  # every output reads one input: o ↦ ⌊o/2⌋
    assert [span.extent_at(o) for o in range(4)] == [(0, 0), (0, 0), (1, 1), (1, 1)]


def test_hull_refuses_bounds_of_different_strides_on_either_side() -> None:
    affine = Span(Bound((0,), 1), Bound((0,), 1))
    for other in (Span(Bound((0,), 2), Bound((0,), 1)), Span(Bound((0,), 1), Bound((0,), 2))):
        with pytest.raises(Unsupported):
            affine.hull(other)


def test_effective_padding_and_centre() -> None:
    # k7 s2 p3 then k3 s2 p1 (ResNet stem and pool): unit 0 reads [-5, 5]
    field = Span.identity().window(2, 3, 7).window(2, 1, 3).summary()
    assert (field.size, field.effective_padding, field.center) == (11, 5, 0)
    field = Span.identity().window(1, 0, 4).summary()  # unit 0 reads [0, 3]
    assert (field.effective_padding, field.center) == (0, Fraction(3, 2))
