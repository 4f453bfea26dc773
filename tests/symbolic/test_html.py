"""The symbolic report's HTML page: formulas, conditions, and an offline SVG chart whose curves are
the formulas' values (or analyses where there is none)."""

from __future__ import annotations

import re
from pathlib import Path

import sympy
from torch import nn

from torchscan import Dim, crawl_module
from torchscan.symbolic.html import chart_svg


def test_the_page_shows_the_formulas_and_charts_them(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    report = crawl_module(model, (3, Dim("H", min=4), Dim("H", min=4)), batch_size="B")
    page = report.to_html(str(tmp_path / "page.html"), symbol="H", B=2)
    assert (tmp_path / "page.html").read_text() == page
    assert str(report.totals.flops) in page
    assert "Conditions" in page and "4 ≤ H" in page
    assert page.count("<polyline") == 4  # FLOPs, activation peak, two training peaks
    assert not re.search(r"(src|href)=", page)  # nothing fetched: offline
    # the FLOPs curve is the formula at B = 2: its last point is the top of the plot (the series' maximum)
    b, h = report.symbols["B"], report.symbols["H"]
    top = max(int(report.totals.flops.subs({b: 2, h: 4 + 4 * k})) for k in range(12))
    assert f"FLOPs (max {top / 1e6:.3g}M)" in page or f"FLOPs (max {top / 1e3:.3g}k)" in page
    assert isinstance(report.totals.flops, sympy.Expr)


def test_chart_svg_scales_each_series_to_its_maximum() -> None:
    svg = chart_svg("L", [1, 2, 3], {"a": [1.0, 2.0, 4.0], "b": [3.0, 3.0, 3.0]})
    lines = re.findall(r'points="([^"]+)"', svg)
    ys = [[float(point.split(",")[1]) for point in line.split()] for line in lines]
    assert ys[0][-1] == ys[1][0]  # each series' maximum at the top
    assert ys[0][0] > ys[0][1] > ys[0][2]
    assert "a (max 4)" in svg and "b (max 3)" in svg
