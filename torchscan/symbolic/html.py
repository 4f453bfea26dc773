"""A symbolic report as a self-contained HTML page: the formulas, the conditions, and an inline SVG
chart of FLOPs and memory against one size (offline: no script, no font, nothing fetched)."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sympy

from torchscan.symbolic.leaves import NoFormula

if TYPE_CHECKING:
    from torchscan.symbolic.report import SymbolicReport

__all__ = ["chart_svg", "to_html"]

_WIDTH, _HEIGHT, _MARGIN = 640, 320, 56
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def _ticks(high: float, count: int = 4) -> list[float]:
    return [high * k / count for k in range(count + 1)]


def _short(value: float) -> str:
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def chart_svg(name: str, xs: Sequence[int], series: Mapping[str, Sequence[float]], title: str = "") -> str:
    """An SVG line chart of each series over ``xs`` (values of size ``name``), each scaled to its own
    maximum (the legend gives the maxima), axes labelled."""
    plot_w, plot_h = _WIDTH - 2 * _MARGIN, _HEIGHT - 2 * _MARGIN
    low, high = min(xs), max(xs)
    span = (high - low) or 1

    def x_of(value: float) -> float:
        return _MARGIN + (value - low) / span * plot_w

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" role="img" '
        f'aria-label="{html.escape(title or name)}" font-family="sans-serif" font-size="11">',
        f'<rect x="{_MARGIN}" y="{_MARGIN}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
    ]
    for tick in _ticks(high - low):
        x = x_of(low + tick)
        parts.append(f'<text x="{x:.1f}" y="{_HEIGHT - _MARGIN + 16}" text-anchor="middle">{low + tick:.0f}</text>')
    parts.append(f'<text x="{_WIDTH / 2}" y="{_HEIGHT - 10}" text-anchor="middle">{html.escape(name)}</text>')
    if title:
        parts.append(f'<text x="{_MARGIN}" y="20" font-size="13">{html.escape(title)}</text>')
    for index, (label, values) in enumerate(series.items()):
        color = _COLORS[index % len(_COLORS)]
        top = max(values) or 1
        points = " ".join(
            f"{x_of(x):.1f},{_MARGIN + plot_h - value / top * plot_h:.1f}" for x, value in zip(xs, values, strict=True)
        )
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        parts.append(
            f'<text x="{_MARGIN + 8}" y="{_MARGIN + 16 + 14 * index}" fill="{color}">'
            f"{html.escape(label)} (max {_short(top)})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _curve(
    expression: Any, symbol: str, fixed: Mapping[str, int], xs: Sequence[int], at: Callable[..., Any]
) -> list[float]:
    if isinstance(expression, sympy.Expr):
        function = sympy.lambdify(list(expression.free_symbols), expression)
        return [
            float(function(*(x if str(s) == symbol else fixed[str(s)] for s in expression.free_symbols))) for x in xs
        ]
    if isinstance(expression, NoFormula):
        return [float(at(**{**fixed, symbol: x})) for x in xs]
    return [float(expression)] * len(xs)


def to_html(report: SymbolicReport, symbol: str | None = None, points: int = 12, **fixed: int) -> str:
    """The page: totals and memory as formulas, the conditions, and a chart of FLOPs, the inference
    peak and each training peak over ``points`` admitted values of ``symbol`` (default: the last size),
    the other sizes at ``fixed`` (default: their first value). Values without a formula are charted
    from analyses at each point."""
    dims = {dim.name: dim for dim in report.dims}
    symbol = symbol or report.dims[-1].name
    dim = dims[symbol]
    others = {name: fixed.get(name, d.first) for name, d in dims.items() if name != symbol}
    step = dim.multiple_of * max(1, (dim.max - dim.first) // dim.multiple_of // (points - 1) if dim.max else 4)
    xs = [dim.first + k * step for k in range(points) if dim.max is None or dim.first + k * step <= dim.max]
    memory = report.memory
    series: dict[str, list[float]] = {}
    cache: dict[int, Any] = {}

    def concrete(path: Callable[[Any], Any]) -> Callable[..., float]:
        def value(**sizes: int) -> float:
            key = sizes[symbol]
            if key not in cache:
                cache[key] = report.at(**sizes)
            return path(cache[key])

        return value

    series["FLOPs"] = _curve(report.totals.flops, symbol, others, xs, concrete(lambda r: r.totals.flops))
    if memory is not None:
        series["activation peak (bytes)"] = _curve(
            memory.activation_peak_bytes, symbol, others, xs, concrete(lambda r: r.memory.activation_peak_bytes)
        )
        for index, estimate in enumerate(memory.training[:2]):
            series[f"training peak, {estimate.optimizer} (bytes)"] = _curve(
                estimate.peak_bytes, symbol, others, xs, concrete(lambda r, i=index: r.memory.training[i].peak_bytes)
            )
    fixed_text = ", ".join(f"{name}={value}" for name, value in others.items())
    chart = chart_svg(
        symbol,
        xs,
        series,
        title=f"{report.fitted.template.context.model}" + (f" at {fixed_text}" if fixed_text else ""),
    )
    rows = [
        ("params", report.totals.params),
        ("FLOPs", report.totals.flops),
        ("MACs", report.totals.macs),
        ("DMAs", report.totals.dmas),
    ]
    if memory is not None:
        rows.append(("inference activation peak (bytes)", memory.activation_peak_bytes))
        rows.extend((f"training peak, {e.optimizer} (bytes)", e.peak_bytes) for e in memory.training)
    table = "".join(
        f"<tr><th>{html.escape(label)}</th><td><code>{html.escape(str(value))}</code></td></tr>"
        for label, value in rows
    )
    conditions = "".join(f"<li>{html.escape(text)}</li>" for text in report.conditions)
    title = html.escape(f"{report.fitted.template.context.model} in {', '.join(dims)}")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}th{text-align:left;padding-right:1em}"
        "td code{white-space:pre-wrap}</style></head>"
        f"<body><h1>{title}</h1><table>{table}</table><h2>Against {html.escape(symbol)}</h2>{chart}"
        f"<h2>Conditions</h2><ul>{conditions}</ul></body></html>"
    )
