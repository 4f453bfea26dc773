"""Exact interpolation: any polynomial of degree ≤ d per symbol is recovered from a (d+1)^n grid."""

from __future__ import annotations

import math
from fractions import Fraction

import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.profiles import examples
from torchscan.symbolic.poly import Interpolator, evaluate, grid, interpolate, to_sympy


@st.composite
def _polys(draw: st.DrawFn) -> tuple[int, int, dict[tuple[int, ...], Fraction]]:
    symbols = draw(st.integers(1, 3))
    degree = draw(st.integers(0, 3))
    exponents = st.tuples(*[st.integers(0, degree)] * symbols)
    coefficients = st.fractions(min_value=-50, max_value=50, max_denominator=7).filter(bool)
    return symbols, degree, draw(st.dictionaries(exponents, coefficients, max_size=6))


@given(_polys(), st.lists(st.integers(1, 40), min_size=4, max_size=4, unique=True), st.integers(-9, 99))
@settings(max_examples=examples(40), deadline=None)
def test_a_polynomial_is_recovered_from_its_values_on_a_grid(case: tuple, xs: list[int], probe: int) -> None:
    symbols, degree, poly = case
    axes = [sorted(xs)[: degree + 1]] * symbols
    values = {index: evaluate(poly, point) for index, point in grid(axes)}
    assert interpolate(axes, values) == poly
    point = [probe + k for k in range(symbols)]
    assert evaluate(interpolate(axes, values), point) == evaluate(poly, point)


def test_a_worked_example_and_its_sympy_form() -> None:
    # f(B, L) = 3·B·L² − 7·L + 5·B + 11 on B ∈ {1, 2, 3}, L ∈ {4, 5, 6}
    axes = [[1, 2, 3], [4, 5, 6]]
    values = {index: 3 * b * n * n - 7 * n + 5 * b + 11 for index, (b, n) in grid(axes)}
    poly = interpolate(axes, values)
    assert poly == {(1, 2): 3, (0, 1): -7, (1, 0): 5, (0, 0): 11}
    b, n = sympy.symbols("B L")
    assert sympy.expand(to_sympy(poly, [b, n]) - (3 * b * n**2 - 7 * n + 5 * b + 11)) == 0
    assert evaluate(poly, (10, 100)) == 3 * 10 * 100**2 - 700 + 50 + 11


def test_a_degree_too_high_for_the_grid_is_not_recovered() -> None:
    axes = [[1, 2, 3]]
    poly = interpolate(axes, {(i,): x**3 for i, x in enumerate(axes[0])})
    assert evaluate(poly, (4,)) != 64  # a cubic through three points: the quadratic misses the fourth


@st.composite
def _grids(draw: st.DrawFn) -> tuple[list[list[int]], dict[tuple[int, ...], int | Fraction]]:
    """A grid of 1 to 3 axes of 1 to 4 distinct sizes each (lengths differ), and a value per cell:
    integers far beyond a machine word, or fractions."""
    axes = [
        sorted(draw(st.lists(st.integers(-20, 200), min_size=1, max_size=4, unique=True)))
        for _ in range(draw(st.integers(1, 3)))
    ]
    number = st.one_of(
        st.integers(-(10**30), 10**30), st.fractions(min_value=-(10**6), max_value=10**6, max_denominator=97)
    )
    return axes, {index: draw(number) for index, _ in grid(axes)}


@given(_grids())
@settings(max_examples=examples(60), deadline=None)
def test_the_interpolant_passes_through_every_cell_within_the_degrees(case: tuple) -> None:
    # the polynomial of degree < len(axis) per symbol through the grid's values is unique: passing through
    # every cell within those degrees is the whole check, whatever the values (no reference algorithm)
    axes, values = case
    poly = interpolate(axes, values)
    assert all(type(coefficient) is Fraction and coefficient for coefficient in poly.values())
    assert all(e < len(axis) for exponents in poly for e, axis in zip(exponents, axes, strict=True))
    assert list(poly) == sorted(poly)  # exponents in lexicographic order, as to_sympy and to_dict read them
    for index, point in grid(axes):
        assert evaluate(poly, point) == values[index]


@given(_grids(), st.lists(st.integers(-50, 50), min_size=3, max_size=3))
@settings(max_examples=examples(30), deadline=None)
def test_one_interpolator_serves_many_value_sets_and_evaluate_is_exact(case: tuple, probe: list[int]) -> None:
    axes, values = case
    reused = Interpolator(axes)
    shifted = {index: value * 3 - 7 for index, value in values.items()}
    assert reused(values) == interpolate(axes, values)
    assert reused(shifted) == interpolate(axes, shifted)
    point = probe[: len(axes)]
    poly = reused(values)
    naive = sum(
        (c * math.prod(Fraction(x) ** e for x, e in zip(point, exps, strict=True)) for exps, c in poly.items()),
        Fraction(0),
    )
    assert evaluate(poly, point) == naive
