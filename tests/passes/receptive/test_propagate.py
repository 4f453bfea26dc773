"""The propagation stops at an unknown op, and needs a spatial input, with a diagnostic either way."""

from __future__ import annotations

from torch import nn

from tests.passes.receptive.helpers import Unknown, rf_report


def test_unknown_op_stops_with_a_diagnostic() -> None:
    report = rf_report(Unknown(), (1, 8, 8))
    codes = {diagnostic.code for diagnostic in report.diagnostics}
    assert "rf-unknown-op" in codes
    assert report.row("cumsum").receptive_field == "unknown"


def test_no_spatial_input() -> None:
    report = rf_report(nn.Sequential(nn.Linear(4, 2)), (4,))
    assert report.row("0").receptive_field is None
    assert "rf-no-spatial-input" in {diagnostic.code for diagnostic in report.diagnostics}
