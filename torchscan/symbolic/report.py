"""The symbolic report: every number of a report as an exact formula of the named sizes, the report
at any size (:meth:`SymbolicReport.at`), and the largest size that fits a memory budget."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import networkx as nx
import sympy

from torchscan.errors import InputError
from torchscan.records.frozen import frozen_record
from torchscan.render.units import parse_size
from torchscan.report import Report
from torchscan.symbolic.dims import Dim
from torchscan.symbolic.fit import Fitted, Sampler, value_at
from torchscan.symbolic.leaves import NO_FORMULA, NoFormula, Path, leaves, rebuild
from torchscan.symbolic.poly import to_sympy

__all__ = ["NO_FORMULA", "Fit", "NoFormula", "SymbolicReport", "parse_bytes"]


def parse_bytes(budget: int | str) -> int:
    """``80GiB``, ``"16 GB"`` or an int: bytes (:func:`torchscan.render.units.parse_size`)."""
    if isinstance(budget, int) and not isinstance(budget, bool):
        return budget
    try:
        return parse_size(str(budget))
    except ValueError as error:
        raise InputError(f"cannot read {budget!r} as a memory size: {error}") from None


@frozen_record
class Fit:
    """The answer of :meth:`SymbolicReport.max_fit`: the largest ``value`` of ``name`` whose static
    estimate (``peak_bytes``, reached in ``phase``) fits ``budget_bytes``; the next admitted value
    ``next_value`` needs ``next_peak_bytes``, more than the budget (None where ``value`` is the size's
    ``max``). ``value`` is None when even the smallest size does not fit."""

    name: str
    value: int | None
    peak_bytes: int | None
    phase: str | None
    next_value: int | None
    next_peak_bytes: int | None
    budget_bytes: int
    optimizer: str | None


@dataclass(frozen=True)
class SymbolicReport:
    """A report whose numbers are exact formulas (sympy) of the sizes ``dims``.

    ``totals``, ``rows``, ``context`` and ``memory`` mirror :class:`~torchscan.Report`'s with a sympy
    expression wherever a number changes with the sizes (expanded polynomials with rational
    coefficients, exact on every admitted size, see :class:`~torchscan.Dim`; :data:`NO_FORMULA` where
    there is none). The formulas were derived
    from concrete analyses on a grid of sizes (``grid``) and checked at sizes off it (``checks``);
    numbers with no formula over the admitted sizes are listed in :attr:`conditions` (a memory peak that
    moves between layers as a size grows, a branch on a size), never replaced by one case's value.
    """

    dims: tuple[Dim, ...]
    fitted: Fitted = field(repr=False)
    sample: Sampler = field(repr=False, compare=False)

    @functools.cached_property
    def symbols(self) -> dict[str, sympy.Symbol]:
        """The sympy symbol of each size (positive integers)."""
        return {dim.name: sympy.Symbol(dim.name, positive=True, integer=True) for dim in self.dims}

    @functools.cached_property
    def formulas(self) -> dict[Path, sympy.Expr]:
        """Path of a report leaf (``("totals", "flops")``, ``("rows", 3, "macs")``) -> its formula, for
        the numbers that change with the sizes."""
        symbols = list(self.symbols.values())
        return {path: sympy.expand(to_sympy(poly, symbols)) for path, poly in self.fitted.formulas.items()}

    @functools.cached_property
    def _symbolic(self) -> Report:
        formulas, unfitted = self.formulas, set(self.fitted.unfitted)

        def leaf(path: Path, value: Any) -> Any:
            return NO_FORMULA if path in unfitted else formulas.get(path, value)

        return _peaks_from_phases(rebuild(self.fitted.template, leaf, records=nx.DiGraph()))

    @property
    def totals(self) -> Any:
        """The totals, with formulas (``report.totals.flops``)."""
        return self._symbolic.totals

    @property
    def rows(self) -> tuple[Any, ...]:
        """The rows, with formulas."""
        return self._symbolic.rows

    @property
    def context(self) -> Any:
        """The context: input and output shapes with formulas."""
        return self._symbolic.context

    @property
    def memory(self) -> Any:
        """The memory section, with formulas."""
        return self._symbolic.memory

    @property
    def diagnostics(self) -> tuple[Any, ...]:
        return self._symbolic.diagnostics

    def row(self, name: str) -> Any:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    @property
    def unfitted(self) -> tuple[str, ...]:
        """The values (report paths, dotted; totals first, then memory, context, rows, diagnostics)
        that have no formula over the admitted sizes."""
        order = {"totals": 0, "memory": 1, "context": 2, "rows": 3, "diagnostics": 4}
        paths = sorted(self.fitted.unfitted, key=lambda path: (order.get(path[0], 5), str(path)))
        return tuple(_dotted(path) for path in paths if not str(path[-1]).startswith("#"))

    @property
    def conditions(self) -> tuple[str, ...]:
        """Under which sizes the formulas hold, where they were checked, and what has none."""
        found = [f"{dim.describe()}" for dim in self.dims]
        axes = {dim.name: sorted({point[dim.name] for point in self.fitted.grid}) for dim in self.dims}
        grid = " × ".join(f"{name} ∈ {{{', '.join(map(str, values))}}}" for name, values in axes.items())
        checks = "; ".join(", ".join(f"{k}={v}" for k, v in point.items()) for point in self.fitted.checks)
        found.append(
            f"derived on the grid {grid} ({len(self.fitted.grid)} analyses, degree ≤ {self.fitted.degree} per size); "
            f"every formula checked at {checks}"
        )
        if self.unfitted:
            shown = ", ".join(self.unfitted[:8]) + (
                f" and {len(self.unfitted) - 8} more" if len(self.unfitted) > 8 else ""
            )
            found.append(
                f"no exact formula over the admitted sizes for {shown} (piecewise: a maximum that moves between "
                "layers or phases, or a branch on a size); at() computes them by one analysis at the size asked"
            )
        return tuple(found)

    def _point(self, values: Mapping[str, int]) -> dict[str, int]:
        names = [dim.name for dim in self.dims]
        missing = [name for name in names if name not in values]
        extra = [name for name in values if name not in names]
        if missing or extra:
            raise InputError(
                f"give every size, and only those: {', '.join(names)}"
                + (f" (missing {', '.join(missing)})" if missing else "")
                + (f" (unknown {', '.join(extra)})" if extra else "")
            )
        for dim in self.dims:
            value = values[dim.name]
            if isinstance(value, bool) or not isinstance(value, int) or not dim.admits(value):
                raise InputError(f"{dim.name}={value!r} is not an admitted size ({dim.describe()})")
        return {name: values[name] for name in names}

    def at(self, **values: int) -> Report:
        """The concrete report at these sizes (``report.at(B=8, L=2048)``): every number from its formula
        (numbers without one, listed in :attr:`conditions`, from one analysis at that size; where the
        report's structure changes with the sizes, that analysis is the answer). The graph of
        node records is not derived: ``records`` is empty (analyse the size itself for graph exports)."""
        point = self._point(values)
        ordered = [point[dim.name] for dim in self.dims]
        fill: Mapping[Path, Any] = {}
        if self.fitted.unfitted:
            (concrete,) = self.sample([point])
            if not self.fitted.unfitted_values_only:  # the structure changes with the sizes: that analysis
                return dataclasses.replace(concrete, records=nx.DiGraph())
            fill = leaves(concrete)
        formulas = self.fitted.formulas

        def leaf(path: Path, value: Any) -> Any:
            if path in formulas:
                return value_at(formulas[path], ordered)
            return fill.get(path, value) if path in self.fitted.unfitted else value

        return _peaks_from_phases(rebuild(self.fitted.template, leaf, records=nx.DiGraph()))

    def max_fit(self, name: str, memory: int | str, optimizer: str | None = None, **fixed: int) -> Fit:
        """The largest admitted value of size ``name`` whose static memory estimate fits ``memory`` bytes
        (``"80GiB"``), the other sizes ``fixed``: the training step's peak with ``optimizer`` (``"sgd"``,
        ``"adam"``…, see ``report.memory.training``), or the inference peak (model + activations) when
        None. Assumes the estimate grows with the size; each step of the search is one exact analysis, and
        the answer's successor is checked not to fit. The search (:func:`_search`) aims where the line
        through the last two sizes analysed crosses the budget: an estimate linear in the size is answered
        in a handful of analyses (doubling then bisection took ~16 on a range of a few thousand sizes)."""
        budget = parse_bytes(memory)
        dim = next((dim for dim in self.dims if dim.name == name), None)
        if dim is None:
            raise InputError(f"no size named {name!r}; the sizes are {', '.join(d.name for d in self.dims)}")
        others = self._point({**fixed, name: dim.first})
        cache: dict[int, tuple[int, str]] = {}

        def peak(value: int) -> tuple[int, str]:
            if value not in cache:
                (report,) = self.sample([{**others, name: value}])
                cache[value] = _peak(report, optimizer)
            return cache[value]

        low = dim.first
        if peak(low)[0] > budget:
            return Fit(name, None, None, None, low, peak(low)[0], budget, optimizer)
        step = dim.multiple_of
        last = None if dim.max is None else dim.first + (dim.max - dim.first) // step * step
        low, high = _search(lambda value: peak(value)[0], budget, low, step, last)
        value, phase = peak(low)
        if high is None:
            return Fit(name, low, value, phase, None, None, budget, optimizer)
        return Fit(name, low, value, phase, high, peak(high)[0], budget, optimizer)

    def __str__(self) -> str:
        lines = [f"{self.fitted.template.context.model} in {', '.join(self.symbols)}"]
        totals = self.totals
        for key in ("params", "flops", "macs", "dmas"):
            lines.append(f"  {key:<8} {getattr(totals, key)}")
        if self.memory is not None:
            lines.append(f"  {'activation peak (bytes)':<8} {self.memory.activation_peak_bytes}")
            for estimate in self.memory.training:
                lines.append(f"  training peak, {estimate.optimizer} (bytes): {estimate.peak_bytes}")
        lines.append("conditions:")
        lines.extend(f"  - {condition}" for condition in self.conditions)
        return "\n".join(lines)

    def __repr__(self) -> str:
        model, sizes = self.fitted.template.context.model, ", ".join(self.symbols)
        return f"<torchscan SymbolicReport {model} in {sizes}: FLOPs = {self.totals.flops}>"

    def to_html(self, path: str | None = None, symbol: str | None = None, **fixed: int) -> str:
        """A self-contained HTML page (written to ``path`` if given): the formulas, the conditions and
        an inline SVG chart against ``symbol`` (see :func:`torchscan.symbolic.html.to_html`)."""
        from torchscan.symbolic.html import to_html

        page = to_html(self, symbol, **fixed)
        if path is not None:
            with open(path, "w", encoding="utf-8") as file:
                file.write(page)
        return page

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the sizes, every formula as text by report path, and the conditions."""
        return {
            "dims": [dataclasses.asdict(dim) for dim in self.dims],
            "formulas": {_dotted(path): str(expr) for path, expr in self.formulas.items()},
            "unfitted": list(self.unfitted),
            "conditions": list(self.conditions),
        }


def _search(peak: Callable[[int], int], budget: int, low: int, step: int, last: int | None) -> tuple[int, int | None]:
    """``(low, high)``: the largest size from ``low`` on (in steps of ``step``, at most ``last``) whose
    ``peak`` fits ``budget`` and the next one, which does not (None where ``last`` fits); ``peak(low)``
    fits. Assumes ``peak`` grows with the size.

    Each probe aims where the line through the last two sizes probed crosses the budget (the secant
    method, snapped to a step): an estimate linear in the size is answered at once, a smooth one in a
    few probes. Growing, a probe reaches at least twice as far past the last fitting size as the one
    before (doubling's floor) and at most eight times as far as that size lies past the start (or to
    the last size, where the line crosses beyond it); once a size that does not fit is known, a probe
    stays strictly inside the bracket, and after two probes in a row that each left more than half of
    it, one bisection (at worst about three probes per halving).
    """
    start, previous, reach, high = low, None, step, None

    def crossing(a: int, b: int) -> Fraction | None:
        """Where the line through ``(a, peak(a))`` and ``(b, peak(b))`` reaches the budget (None: flat)."""
        rise = peak(b) - peak(a)
        return None if rise == 0 else b + Fraction((budget - peak(b)) * (b - a), rise)

    while high is None:  # growing: find a size that does not fit
        ahead = reach
        aim = crossing(previous, low) if previous is not None else None
        if aim is not None and aim > low:  # the first step past where the line crosses, within the cap
            ahead = max(ahead, min((math.floor((aim - low) / step) + 1) * step, 8 * (low - start + step)))
        candidate = low + ahead
        if last is not None and aim is not None and aim > last:  # the line stays under the budget: the last size
            candidate = last
        if last is not None and candidate >= last:
            if last == low or peak(last) <= budget:
                return last, None
            candidate = last
        if peak(candidate) > budget:
            high = candidate
        else:
            previous, low, reach = low, candidate, reach * 2
    recent = (previous if previous is not None else low, high)  # the last two sizes probed
    if recent[0] == high:
        recent = (low, high)
    slow = 0  # probes in a row that left more than half of the bracket
    while high - low > step:  # bracketed: peak(low) fits, peak(high) does not
        width = high - low
        aim = crossing(*recent) if slow < 2 else None
        if aim is None:  # a flat line, or two slow probes: bisect
            guess, slow = low + width // step // 2 * step, 0
        else:
            guess = min(max(low + math.floor((aim - low) / step) * step, low + step), high - step)
        if peak(guess) <= budget:
            low = guess
        else:
            high = guess
        recent = (recent[1], guess)
        slow = slow + 1 if 2 * (high - low) > width else 0
    return low, high


def _peaks_from_phases(report: Report) -> Report:
    """``report`` with each training estimate's peak made from its phases as the training pass makes it:
    ``params + buffers + state + max(phases)``, the phase the first of equal maxima (a formula, sympy's ``Max``,
    where a phase has one). A peak fitted on its own is one phase's polynomial wherever that phase wins on the
    grid and at the checks, and wrong where another wins elsewhere (the forward over the backward at ``B=10,
    S=5`` on a random net, 112 bytes under); the phases' own formulas hold wherever they were fitted."""
    memory = report.memory
    if memory is None or not memory.training:
        return report
    training = []
    for estimate in memory.training:
        parts = (estimate.param_bytes, estimate.buffer_bytes, estimate.optimizer_state_bytes)
        phases = dict(estimate.phases)
        values = [*parts, *phases.values()]
        if not phases or any(isinstance(value, NoFormula) for value in values):
            training.append(estimate)
        elif all(isinstance(value, int) for value in values):
            phase = max(phases, key=lambda name: phases[name])
            training.append(dataclasses.replace(estimate, peak_bytes=sum(parts) + phases[phase], peak_phase=phase))
        else:
            training.append(dataclasses.replace(estimate, peak_bytes=sympy.Add(*parts, sympy.Max(*phases.values()))))
    return dataclasses.replace(report, memory=dataclasses.replace(memory, training=tuple(training)))


def _peak(report: Report, optimizer: str | None) -> tuple[int, str]:
    memory = report.memory
    if memory is None:
        raise InputError("this report has no memory section: no fit can be computed")
    if optimizer is None:
        return memory.inference_peak_bytes, "inference"
    try:
        estimate = memory.training_for(optimizer)
    except KeyError:
        known = ", ".join(estimate.optimizer for estimate in memory.training)
        raise InputError(f"no training estimate for optimizer {optimizer!r}; known: {known}") from None
    return estimate.peak_bytes, estimate.peak_phase


def _dotted(path: Path) -> str:
    return ".".join(str(part) if not isinstance(part, int) else f"[{part}]" for part in path).replace(".[", "[")
