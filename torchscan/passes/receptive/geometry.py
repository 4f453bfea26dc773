"""Geometry of receptive fields: exact per-position bounds, per spatial dim.

The field of output unit ``i`` along one spatial dim is the input interval ``[L(i), R(i)]``
(input coordinates; negative or past the end = inside the padding). Every op the pass follows
maps unit ``i`` to a window of its input units ``[a(i), b(i)]`` with
``a(i) = floor((A·i + B) / D)`` (likewise ``b``), so the bounds compose as
``L_out(i) = L_in(a(i))`` and ``R_out(i) = R_in(b(i))``. With integer strides the bounds stay
affine (``L(i) = start + jump·i``); transposed convolutions and upsampling make them
*quasi-affine*: periodic offsets plus a constant rise per period (:class:`Bound`), which is
exact where a plain fractional jump would round.

Window of a convolution / pooling (kernel ``k``, stride ``s``, padding ``p``, dilation ``d``,
``k_eff = d·(k − 1) + 1``): ``a(i) = s·i − p``, ``b(i) = s·i − p + k_eff − 1``. In the affine
case this is the classic recurrence ``size_out = size_in + (k_eff − 1)·jump_in``,
``jump_out = jump_in·s``, ``start_out = start_in − p·jump_in`` (``start`` = left edge of unit 0,
``effective padding = −start``; the centre ``start + (size − 1)/2`` follows the centre form
``centre_out = centre_in + ((k_eff − 1)/2 − p)·jump_in``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from fractions import Fraction

from torchscan.records.frozen import frozen_record

__all__ = ["Bound", "Field", "Marker", "RField", "Span", "Unsupported"]


class Unsupported(ValueError):
    """The geometry of an op cannot be followed exactly (the field becomes unknown)."""


class Marker(enum.Enum):
    """A field that is not a window: the whole input, or not computable."""

    GLOBAL = "global"
    UNKNOWN = "unknown"


@frozen_record
class Bound:
    """Quasi-affine integer function ``f(i) = offsets[i mod q] + (i div q)·rise``, ``q = len(offsets)``."""

    offsets: tuple[int, ...]
    rise: int

    @classmethod
    def identity(cls) -> Bound:
        return cls((0,), 1)

    @property
    def period(self) -> int:
        return len(self.offsets)

    @property
    def slope(self) -> Fraction:
        """Average input units per output unit: the effective stride (jump)."""
        return Fraction(self.rise, self.period)

    def at(self, i: int) -> int:
        turns, phase = divmod(i, self.period)
        return self.offsets[phase] + turns * self.rise

    def compose(self, a: int, b: int, d: int = 1) -> Bound:
        """``i ↦ f(floor((a·i + b) / d))`` for ``a ≥ 0``, ``d > 0``, reduced to its smallest period."""
        if a == 0:
            return Bound((self.at(b // d),), 0)
        turns = self.period // math.gcd(a, self.period)  # a·turns is a multiple of the period
        period = d * turns
        offsets = tuple(self.at((a * i + b) // d) for i in range(period))
        return Bound(offsets, self.rise * a * turns // self.period)._reduced()

    def _reduced(self) -> Bound:
        q = self.period
        for p in range(1, q):
            if q % p or (self.rise * p) % q:
                continue
            step = self.rise * p // q
            if all(self.offsets[i + p] == self.offsets[i] + step for i in range(q - p)):
                return Bound(self.offsets[:p], step)
        return self


@frozen_record
class Span:
    """Left and right bounds of the field of each unit along one spatial dim."""

    left: Bound
    right: Bound

    @classmethod
    def identity(cls) -> Span:
        return cls(Bound.identity(), Bound.identity())

    def window(self, stride: int, padding: int, extent: int) -> Span:
        """Through a sliding window: ``a(i) = s·i − p``, ``b(i) = s·i − p + extent − 1``."""
        if stride < 1 or extent < 1:
            raise Unsupported(f"window with stride {stride} and extent {extent}")
        return Span(self.left.compose(stride, -padding), self.right.compose(stride, extent - 1 - padding))

    def transposed(self, stride: int, padding: int, extent: int) -> Span:
        """Through a transposed window (dilation 1, ``extent ≥ stride``): output ``o`` reads input units
        ``ceil((o + p − extent + 1)/s) … floor((o + p)/s)``."""
        if extent < stride:
            raise Unsupported(f"transposed window of extent {extent} < stride {stride} leaves gaps")
        return Span(
            self.left.compose(1, padding - extent + stride, stride),
            self.right.compose(1, padding, stride),
        )

    def remap(self, left: tuple[int, int, int], right: tuple[int, int, int]) -> Span:
        """Through any window ``a(i) = floor((A·i + B)/D)`` (left) and ``b(i)`` (right)."""
        return Span(self.left.compose(*left), self.right.compose(*right))

    def hull(self, other: Span) -> Span:
        """The union of two fields over the same output grid: ``[min L, max R]`` per unit."""
        if self.left.slope != other.left.slope or self.right.slope != other.right.slope:
            raise Unsupported("merged fields have different effective strides")
        return Span(_pointwise(min, self.left, other.left), _pointwise(max, self.right, other.right))

    def summary(self) -> RField:
        """Size (largest over unit positions), jump and start of unit 0."""
        period = math.lcm(self.left.period, self.right.period)
        size = max(self.right.at(i) - self.left.at(i) + 1 for i in range(period))
        return RField(size=size, jump=self.left.slope, start=self.left.at(0))

    def extent_at(self, i: int) -> tuple[int, int]:
        """``(L(i), R(i))``: the input interval of unit ``i``."""
        return self.left.at(i), self.right.at(i)


def _pointwise(pick: Callable[[int, int], int], f: Bound, g: Bound) -> Bound:
    period = math.lcm(f.period, g.period)
    rise = f.rise * (period // f.period)
    return Bound(tuple(pick(f.at(i), g.at(i)) for i in range(period)), rise)._reduced()


@frozen_record
class Field:
    """The receptive field of a tensor: one :class:`Span` per spatial dim of the model input.

    ``sizes`` is the grid size of each spatial dim in this tensor. ``axes`` locates them, as
    negative tensor axes: one axis per dim (``None`` for a size-1 dim that was squeezed away),
    or, when ``flat``, one single axis holding the dims flattened row-major (tokens).
    ``statistics``: an op on the way computed statistics over positions (batch norm in training,
    group or instance norm, layer norm over spatial dims), so strictly every unit also depends on the
    whole input through them; the spans are the classic field, which leaves statistics out.
    """

    spans: tuple[Span, ...]
    sizes: tuple[int, ...]
    axes: tuple[int | None, ...]
    flat: bool = False
    statistics: bool = False


@frozen_record
class RField:
    """Receptive field of a layer's output along one spatial dim, in model-input units.

    ``size``: input units covered by one output unit (the largest over unit positions);
    ``jump``: effective stride, input units between neighbouring output units (a fraction after
    upsampling); ``start``: left-most input unit seen by output unit 0 (negative = in the padding;
    ``effective padding = −start``).
    """

    size: int
    jump: Fraction
    start: int

    @property
    def effective_padding(self) -> int:
        return -self.start

    @property
    def center(self) -> Fraction:
        """Centre of the field of output unit 0: ``start + (size − 1)/2``."""
        return self.start + Fraction(self.size - 1, 2)
