"""The propagation stops at an unknown op, and needs a spatial input, with a diagnostic either way."""

from __future__ import annotations

import torch
from torch import nn

from tests.passes.receptive.helpers import Unknown, rf_report
from tests.passes.receptive.test_oracle import footprint


def test_unknown_op_stops_with_a_diagnostic() -> None:
    report = rf_report(Unknown(), (1, 8, 8))
    codes = {diagnostic.code for diagnostic in report.diagnostics}
    assert "rf-unknown-op" in codes
    assert report.row("cumsum").receptive_field == "unknown"


def test_no_spatial_input() -> None:
    report = rf_report(nn.Sequential(nn.Linear(4, 2)), (4,))
    assert report.row("0").receptive_field is None
    assert "rf-no-spatial-input" in {diagnostic.code for diagnostic in report.diagnostics}


class _Shaped(nn.Module):
    """Tensors made from another's shape (``ones_like``, ``new_zeros``, ``zeros_like``) mixed into the path."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        y = y + torch.ones_like(y) * 0.5 + y.new_zeros(y.shape) + torch.zeros_like(y)
        return self.b(y)


def test_a_tensor_made_from_a_shape_is_a_constant() -> None:
    """No value of the input reaches ``ones_like(y)`` or ``y.new_zeros(y.shape)``: constants, as a literal factory
    is, not unknown ops that stopped the field (the two 3×3 convolutions: 5×5, the gradient footprint's)."""
    report = rf_report(_Shaped(), (1, 16, 16))
    assert not [d for d in report.diagnostics if d.code.startswith("rf-")]
    assert report.row("ones_like").receptive_field is None
    assert report.row("b").receptive_field == (5, 5)
    spans, _ = footprint(_Shaped(), (1, 16, 16))
    assert [hi - lo + 1 for lo, hi in spans] == [5, 5]
