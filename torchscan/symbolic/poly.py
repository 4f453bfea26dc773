"""Exact polynomials with rational coefficients in a few integer symbols: interpolation on a grid,
evaluation, and the sympy expression for display.

A polynomial is a mapping ``exponents -> coefficient`` (one exponent per symbol, in the order of
the report's dims), coefficients :class:`fractions.Fraction`; the zero polynomial is ``{}``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction

import sympy

__all__ = ["Interpolator", "Poly", "evaluate", "grid", "interpolate", "to_sympy"]

Poly = Mapping[tuple[int, ...], Fraction]


def _newton_to_monomial(xs: Sequence[int], ys: Sequence[Fraction]) -> list[Fraction]:
    """Coefficients ``a_0 … a_d`` of the unique polynomial of degree ``≤ d = len(xs) − 1`` through the
    points, ``p(x) = Σ a_k x^k``: Newton's divided differences, then the Newton form expanded."""
    n = len(xs)
    table = list(ys)
    newton = [table[0]]
    for level in range(1, n):
        table = [(table[i + 1] - table[i]) / (xs[i + level] - xs[i]) for i in range(n - level)]
        newton.append(table[0])
    coefficients = [Fraction(0)] * n
    basis = [Fraction(1)]  # Π_{j<k} (x − x_j), lowest power first
    for k in range(n):
        for power, value in enumerate(basis):
            coefficients[power] += newton[k] * value
        if k + 1 < n:
            shifted = [Fraction(0), *basis]
            for power, value in enumerate(basis):
                shifted[power] -= xs[k] * value
            basis = shifted
    return coefficients


class Interpolator:
    """Tensor-product interpolation on one grid ``axes[0] × axes[1] × …``, its linear map made once.

    The polynomial of degree ``≤ len(axes[d]) − 1`` in symbol ``d`` through values on the grid is
    linear in the values: along each axis, coefficient ``k`` of the unique polynomial through
    ``(x_j, y_j)`` is ``Σ_j C[k][j]·y_j`` with ``C`` the inverse of the axis's Vandermonde matrix
    (the monomial coefficients of its Lagrange basis, from Newton's form). Scaled by the lcm ``s`` of
    its denominators, ``C`` is an integer matrix, so a grid of integers (or of fractions over a common
    denominator ``q``) is interpolated in integers, one axis at a time, and each coefficient divided
    once by ``q·Π s_d`` at the end: exact, and ~13× faster than fractions through every step (40 against
    515 µs on a 4×4 grid), which
    matters where a symbolic report fits thousands of numbers on one grid (:func:`~torchscan.symbolic.fit.fit_report`).
    """

    def __init__(self, axes: Sequence[Sequence[int]]) -> None:
        self._shape = tuple(len(xs) for xs in axes)
        self._order = list(itertools.product(*(range(n) for n in self._shape)))
        """Grid indices in row-major order; after the transform, the same tuples are exponents."""
        self._matrices: list[list[list[int]]] = []
        self._scale = 1
        for xs in axes:
            n = len(xs)
            basis = [_newton_to_monomial(xs, [Fraction(int(i == j)) for i in range(n)]) for j in range(n)]
            scale = math.lcm(*(value.denominator for column in basis for value in column))
            self._matrices.append([[int(basis[j][k] * scale) for j in range(n)] for k in range(n)])
            self._scale *= scale

    def __call__(self, values: Mapping[tuple[int, ...], int | Fraction]) -> dict[tuple[int, ...], Fraction]:
        """The polynomial through ``values`` (keyed by grid index tuples): ``exponents -> coefficient``,
        zero coefficients left out, exponents in lexicographic order."""
        given = [values[index] for index in self._order]
        common = math.lcm(*(Fraction(value).denominator for value in given if type(value) is not int))
        flat = [int(value * common) if type(value) is not int else value * common for value in given]
        stride = len(flat)
        for n, matrix in zip(self._shape, self._matrices, strict=True):
            stride //= n  # row-major: this axis's neighbours lie ``stride`` apart
            block = n * stride
            out = [0] * len(flat)
            for start in range(0, len(flat), block):
                for inner in range(start, start + stride):
                    ys = flat[inner : inner + block : stride]
                    for k, row in enumerate(matrix):
                        out[inner + k * stride] = sum(c * y for c, y in zip(row, ys, strict=True))
            flat = out
        denominator = common * self._scale
        return {
            exponents: Fraction(numerator, denominator)
            for exponents, numerator in zip(self._order, flat, strict=True)
            if numerator
        }


def interpolate(
    axes: Sequence[Sequence[int]], values: Mapping[tuple[int, ...], int | Fraction]
) -> dict[tuple[int, ...], Fraction]:
    """The polynomial of degree ``≤ len(axes[d]) − 1`` in symbol ``d`` through ``values`` on the grid
    ``axes[0] × axes[1] × …`` (``values`` keyed by grid index tuples), exact: :class:`Interpolator`
    (make one to interpolate many value sets on one grid)."""
    return Interpolator(axes)(values)


def evaluate(poly: Poly, point: Sequence[int]) -> Fraction:
    """The polynomial's exact value at ``point`` (one value per symbol): its terms summed as integers
    over the coefficients' common denominator, one fraction made at the end."""
    if not poly:
        return Fraction(0)
    denominator = math.lcm(*(coefficient.denominator for coefficient in poly.values()))
    total = sum(
        coefficient.numerator
        * (denominator // coefficient.denominator)
        * math.prod(x**e for x, e in zip(point, exponents, strict=True))
        for exponents, coefficient in poly.items()
    )
    return Fraction(total, denominator)


def to_sympy(poly: Poly, symbols: Sequence[sympy.Symbol]) -> sympy.Expr:
    """The polynomial as an expanded sympy expression (rational coefficients, highest powers first
    when printed)."""
    return sympy.Add(
        *(
            sympy.Rational(coefficient.numerator, coefficient.denominator)
            * sympy.Mul(*(symbol**e for symbol, e in zip(symbols, exponents, strict=True)))
            for exponents, coefficient in poly.items()
        )
    )


def grid(axes: Sequence[Sequence[int]]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every ``(index, point)`` of the grid ``axes[0] × axes[1] × …``."""
    return [
        (index, tuple(axis[i] for axis, i in zip(axes, index, strict=True)))
        for index in itertools.product(*(range(len(axis)) for axis in axes))
    ]
