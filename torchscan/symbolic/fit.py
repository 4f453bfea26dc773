"""Derive exact formulas from concrete analyses: sample a grid of sizes, interpolate every number
of the report, verify at sizes off the grid, raise the degree until every number checks.

A report's numbers are polynomials in its sizes wherever the sizes keep every ``floor``/``ceil``
exact (a resolution that is a multiple of the network's stride) and the model does not branch on a
size: then the interpolating polynomial through ``d + 1`` values per size is the number, for any
``d`` at least its degree. Each candidate is checked at random sizes off the grid; a number that
fails at the highest degree tried has no formula (a maximum that moves between layers, a branch on
a size) and is reported as such, never replaced by one case's value; so are the places where the
report's structure itself changes with the sizes (a row that appears, an output that is None at one
size and a shape at another).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from torchscan.records.frozen import frozen_record
from torchscan.report import Report
from torchscan.symbolic.dims import Dim, grid_values, verification_values
from torchscan.symbolic.leaves import Path, flat, is_number, leaves
from torchscan.symbolic.poly import Interpolator, evaluate, grid

__all__ = ["Fitted", "Sampler", "fit_report"]

Sampler = Callable[[Sequence[Mapping[str, int]]], list[Report]]
"""Concrete reports of the model at the given sizes (one per point, in order)."""

DEGREES = (2, 3)
"""Degrees per size tried in turn (``d + 1`` grid values per size): quadratic covers the counts of
convolutions (``H·W``), attention (``L²``) and batch-linear memory; cubic is tried where a number
fails at quadratic, and the search stops there or as soon as a higher degree fixes nothing."""

CHECKS = 4
"""Random sizes off the grid at which every formula is checked (besides the first sizes past it)."""

SPAN = 24
"""Small checks draw each size among its first ``SPAN`` values (or all, with a nearer ``max``)."""

FAR = 3
"""Far checks: sizes drawn log-uniformly up to each size's ``max`` (or ``FAR_STEPS`` steps)."""

FAR_STEPS = 4096
"""How far the far checks reach for a size without a ``max`` (in steps of its ``multiple_of``)."""


@frozen_record
class Fitted:
    """What :func:`fit_report` found: the report at the first grid point, a formula per number that
    changes with the sizes, the leaves without one, and where the formulas were checked."""

    template: Report
    formulas: Mapping[Path, Mapping[tuple[int, ...], Fraction]]
    unfitted: tuple[Path, ...]
    grid: tuple[Mapping[str, int], ...]
    checks: tuple[Mapping[str, int], ...]
    degree: int

    @property
    def unfitted_values_only(self) -> bool:
        """Whether every leaf without a formula is a value of the template's structure (the structure
        itself, container lengths and keys, is the same at every size)."""
        template = leaves(self.template)
        return all(path in template and not str(path[-1]).startswith("#") for path in self.unfitted)


def fit_report(dims: Sequence[Dim], sample: Sampler, seed: int = 0) -> Fitted:
    """Formulas in ``dims`` for every number of the reports ``sample`` gives (see the module doc).

    Deterministic: the check sizes come from a private generator seeded with ``seed``.
    """
    names = [dim.name for dim in dims]
    rng = random.Random(seed)
    done: dict[tuple[int, ...], Report] = {}

    def analysed(wanted: Sequence[Mapping[str, int]]) -> list[Report]:
        """``sample``'s reports, each point analysed once per fit: the grid of a higher degree holds the
        lower one's (its first sizes), and its first size past that grid too."""
        keys = [tuple(point[name] for name in names) for point in wanted]
        missing = [(key, point) for key, point in zip(keys, wanted, strict=True) if key not in done]
        missing = list(dict(missing).items())  # a point asked for twice: once
        if missing:
            done.update(zip((key for key, _ in missing), sample([point for _, point in missing]), strict=True))
        return [done[key] for key in keys]

    failed: set[Path] | None = None
    for degree in DEGREES:
        axes = [grid_values(dim, degree + 1) for dim in dims]
        cells = grid(axes)
        interpolate = Interpolator(axes)  # one linear map for every number fitted on this grid
        points = [dict(zip(names, point, strict=True)) for _, point in cells]
        beyond = [_after(dim, axis) for dim, axis in zip(dims, axes, strict=True)]
        drawn = [
            dict(zip(names, values, strict=True))
            for values in zip(
                *(verification_values(dim, CHECKS, axis, rng, SPAN) for dim, axis in zip(dims, axes, strict=True)),
                strict=True,
            )
        ]
        far = [dict(zip(names, [_far(dim, rng, k == 0) for dim in dims], strict=True)) for k in range(FAR)]
        # the first sizes past the grid (where a small-size special case ends), random small ones, far ones up
        # to each size's max (fake tensors: an analysis costs the same at any size), and the edges of that box
        checks = [
            *([dict(zip(names, beyond, strict=True))] if None not in beyond else []),
            *drawn,
            *far,
            *_edges(dims, rng),
        ]
        reports = analysed([*points, *checks])
        unfitted, columns = _columns(reports, len(points))
        formulas: dict[Path, dict[tuple[int, ...], Fraction]] = {}
        at = [[point[name] for name in names] for point in checks]
        for path, values, checked in columns:
            value = values[0]
            if all(other == value for other in values[1:]):
                if any(other != value for other in checked):
                    unfitted.append(path)
                continue
            if not all(is_number(other) for other in values):
                unfitted.append(path)
                continue
            formula = interpolate({index: one for (index, _), one in zip(cells, values, strict=True)})
            if all(
                is_number(actual) and evaluate(formula, point) == actual
                for point, actual in zip(at, checked, strict=True)
            ):
                formulas[path] = formula
            else:
                unfitted.append(path)
        if not unfitted or degree == DEGREES[-1] or failed == set(unfitted):
            return Fitted(reports[0], formulas, tuple(unfitted), tuple(points), tuple(checks), degree)
        failed = set(unfitted)
    raise AssertionError("unreachable")  # the loop returns at the last degree


Column = tuple[Path, Sequence[Any], Sequence[Any]]
"""A number's path, its values on the grid and its values at the checks."""


def _columns(reports: Sequence[Report], on_grid: int) -> tuple[list[Path], Iterable[Column]]:
    """The paths where the reports' structure differs (sorted), and a :data:`Column` per path every
    report has, in the first report's leaf order (``on_grid``: how many reports are the grid's). Reports
    of one structure (the usual case) are read position for position (:func:`flat`), without a path per
    value and report."""
    paths: list[Path] = []
    flats = [flat(reports[0], paths), *(flat(report) for report in reports[1:])]
    if all(one.structure == flats[0].structure for one in flats[1:]):
        rows = zip(paths, *(one.values for one in flats), strict=True)
        return [], ((row[0], row[1 : on_grid + 1], row[on_grid + 1 :]) for row in rows)
    found = [leaves(report) for report in reports]
    first = set(found[0])
    differing = sorted({path for one in found[1:] for path in first ^ set(one)}, key=str)
    common = (
        (path, [one[path] for one in found[:on_grid]], [one[path] for one in found[on_grid:]])
        for path in found[0]
        if all(path in one for one in found)
    )
    return differing, common


def _after(dim: Dim, axis: Sequence[int]) -> int | None:
    """The next admitted value of ``dim`` after its grid values (None past its ``max``)."""
    value = max(axis) + dim.multiple_of
    return value if dim.max is None or value <= dim.max else None


def _far(dim: Dim, rng: random.Random, farthest: bool) -> int:
    """A far value of ``dim``: the farthest (its ``max``, or ``FAR_STEPS`` steps of ``multiple_of`` past
    its first value), or one drawn log-uniformly up to it (so middling sizes get checked too)."""
    steps = FAR_STEPS if dim.max is None else (dim.max - dim.first) // dim.multiple_of
    return dim.first + (steps if farthest else round(steps ** rng.random())) * dim.multiple_of


def _edges(dims: Sequence[Dim], rng: random.Random) -> list[dict[str, int]]:
    """Checks on the edges of the box the far checks span: every corner but the two ends of its diagonal (each size
    at its first value or its farthest), and each size drawn far with the others at their first values. A memory
    peak is the largest of several polynomials, one per place it may be reached (a layer, a phase), and which one
    wins can change where one size is small and another large (a batch-proportional term against a spatial one):
    random checks rarely land there (a peak fitted on batch and resolution was 24 bytes short at the smallest
    resolution and batch 10)."""
    names = [dim.name for dim in dims]
    corners = [
        dict(
            zip(
                names, [_far(dim, rng, True) if mask >> i & 1 else dim.first for i, dim in enumerate(dims)], strict=True
            )
        )
        for mask in range(1, 2 ** len(dims) - 1)
    ]
    edges = [
        dict(zip(names, [_far(dim, rng, False) if i == k else dim.first for i, dim in enumerate(dims)], strict=True))
        for k in range(len(dims))
    ]
    return [*corners, *edges]


def value_at(formula: Mapping[tuple[int, ...], Fraction], point: Sequence[int]) -> Any:
    """The formula's value at ``point``: an ``int`` where it is one (every admitted size), else the
    exact fraction."""
    value = evaluate(formula, point)
    return int(value) if value.denominator == 1 else value
