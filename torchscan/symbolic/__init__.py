"""Symbolic sizes: every number of a report as an exact formula of named input sizes.

:class:`Dim` names a size; :func:`torchscan.crawl_module` given one returns a
:class:`SymbolicReport` (formulas derived from concrete analyses on a grid of sizes, each checked
at sizes off the grid: :mod:`torchscan.symbolic.fit`), whose :meth:`~SymbolicReport.at` gives the
concrete report at any admitted size and :meth:`~SymbolicReport.max_fit` the largest size whose
static memory estimate fits a budget.

Modules: ``dims`` (the :class:`Dim` record, finding and substituting sizes in inputs), ``poly``
(exact rational polynomials: interpolation, evaluation, sympy), ``leaves`` (a report as path ->
value and back), ``fit`` (grid, interpolation, checks, degrees), ``report``
(:class:`SymbolicReport`, :class:`Fit`), ``html`` (the page with its SVG chart).
"""

from torchscan.symbolic.dims import Dim, collect_dims, has_dims, substitute
from torchscan.symbolic.fit import Fitted, Sampler, fit_report
from torchscan.symbolic.leaves import NO_FORMULA, NoFormula
from torchscan.symbolic.report import Fit, SymbolicReport, parse_bytes

__all__ = [
    "NO_FORMULA",
    "Dim",
    "Fit",
    "Fitted",
    "NoFormula",
    "Sampler",
    "SymbolicReport",
    "collect_dims",
    "fit_report",
    "has_dims",
    "parse_bytes",
    "substitute",
]
