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

__all__ = ["Poly", "evaluate", "interpolate", "to_sympy"]

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


def interpolate(
    axes: Sequence[Sequence[int]], values: Mapping[tuple[int, ...], int]
) -> dict[tuple[int, ...], Fraction]:
    """The polynomial of degree ``≤ len(axes[d]) − 1`` in symbol ``d`` through ``values`` on the grid
    ``axes[0] × axes[1] × …`` (``values`` keyed by grid index tuples): one-dimensional interpolation
    along each axis in turn (tensor-product Newton interpolation), exact."""
    current: dict[tuple[int, ...], Fraction] = {index: Fraction(value) for index, value in values.items()}
    for axis, xs in enumerate(axes):
        groups: dict[tuple[int, ...], list[Fraction]] = {}
        for index in sorted(current):
            rest = index[:axis] + index[axis + 1 :]
            groups.setdefault(rest, []).append(current[index])
        updated: dict[tuple[int, ...], Fraction] = {}
        for rest, ys in groups.items():
            for power, coefficient in enumerate(_newton_to_monomial(xs, ys)):
                updated[(*rest[:axis], power, *rest[axis:])] = coefficient  # zeros kept: a full grid per axis
        current = updated
    return {exponents: coefficient for exponents, coefficient in current.items() if coefficient}


def evaluate(poly: Poly, point: Sequence[int]) -> Fraction:
    """The polynomial's exact value at ``point`` (one value per symbol)."""
    return sum(
        (
            coefficient * math.prod(x**e for x, e in zip(point, exponents, strict=True))
            for exponents, coefficient in poly.items()
        ),
        Fraction(0),
    )


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
