"""Window rules: adaptive pools global only when every pooled position is one; positional
arguments read where torch's signatures put them; ``F.unfold`` and ``Tensor.unfold`` against the
gradient footprint of their blocks (the oracle of ``test_oracle.py`` compares spatial outputs only)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.passes.receptive.helpers import rf_report, rule_outcomes
from torchscan.passes.receptive import Marker, receptive_fields
from torchscan.passes.receptive.geometry import Field


def test_adaptive_pool_global_only_when_every_spatial_dim_pools_to_one() -> None:
    report = rf_report(nn.Sequential(nn.AdaptiveAvgPool2d((1, 2))), (1, 4, 4))
    assert report.row("0").receptive_field == (4, 2)


# -- positional arguments -----------------------------------------------------------------------
X1, X2, X3 = torch.ones(1, 2, 9), torch.ones(1, 2, 9, 8), torch.ones(1, 2, 7, 8, 6)

POSITIONAL = {
    "max_pool1d": (F.max_pool1d, X1, 3, 2, 1, 2),
    "max_pool2d": (F.max_pool2d, X2, (3, 2), (2, 1), (1, 0), (2, 3)),
    "max_pool3d": (F.max_pool3d, X3, 2, 1, 1, (1, 2, 2)),
    "avg_pool1d": (F.avg_pool1d, X1, 3, 1, 1, False),
    "avg_pool2d": (F.avg_pool2d, X2, (3, 2), 1, (1, 0), False),
    "avg_pool3d": (F.avg_pool3d, X3, 3, 2, 1, True),
    "lp_pool1d": (F.lp_pool1d, X1, 2.0, 3, 2),
    "lp_pool2d": (F.lp_pool2d, X2, 2.0, (3, 2), (1, 2)),
    "adaptive_avg_pool2d": (F.adaptive_avg_pool2d, X2, (3, 2)),
    "interpolate nearest": (F.interpolate, X2, None, 2.0, "nearest"),
    "interpolate linear": (F.interpolate, X1, None, 2.0, "linear", False),
    "interpolate to a size": (F.interpolate, X2, (18, 24), None, "nearest", None, None, False),
    "interpolate linear, align_corners unset": (F.interpolate, X1, None, 2.0, "linear"),
    "interpolate, recomputed scale": (F.interpolate, torch.ones(1, 2, 9), None, 2.1, "nearest", None, True),
    "pixel_shuffle": (F.pixel_shuffle, torch.ones(1, 8, 3, 4), 2),
    "unfold": (F.unfold, X2, (2, 3), (1, 2), (1, 0), (2, 1)),
    "unfold, defaults": (F.unfold, X2, (3, 2)),
    "pad": (F.pad, X2, (1, 2, 3, 0)),
}


REFUSED = {
    "interpolate linear, align_corners": (F.interpolate, X1, None, 2.0, "linear", True),
    "interpolate antialiased": (F.interpolate, X2, None, 2.0, "bilinear", False, None, True),
    "interpolate by 2.1": (F.interpolate, torch.ones(1, 2, 9), None, 2.1, "nearest"),  # 9 → 18, sampled at i/2.1
}


@pytest.mark.parametrize("case", POSITIONAL.values(), ids=POSITIONAL.keys())
def test_positional_arguments_are_read_where_torch_puts_them(case: tuple) -> None:
    """An unbound call (its arguments by position) gets the field of the same call bound by name
    (the spelling the oracle tests check); an argument read at the wrong position would change the
    window, fail, or be refused."""
    function, *args = case
    by_name, by_position = rule_outcomes(function, *args)
    assert isinstance(by_name, Field), by_name
    assert by_position == by_name


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_positional_arguments_that_stop_the_field(case: tuple) -> None:
    """Resampling the rule does not follow (align_corners, antialiasing, a non-integer scale) is
    refused whether its arguments come by name or by position."""
    function, *args = case
    by_name, by_position = rule_outcomes(function, *args)
    assert isinstance(by_name, str)
    assert by_position == by_name


TORCH_SPELLINGS = {
    "max_pool1d": ((F.max_pool1d, X1, 3, 2, 1, 2), (torch.max_pool1d, X1, 3, 2, 1, 2)),
    "max_pool1d, stride []": ((F.max_pool1d, X1, 3), (torch.max_pool1d, X1, 3, [])),
    "max_pool2d": (
        (F.max_pool2d, X2, (3, 2), (2, 1), (1, 0), (2, 3)),
        (torch.max_pool2d, X2, (3, 2), (2, 1), (1, 0), (2, 3)),
    ),
    "max_pool2d, stride []": ((F.max_pool2d, X2, 2, None, 1), (torch.max_pool2d, X2, 2, [], 1)),
    "max_pool3d": ((F.max_pool3d, X3, 2, 1, 1, (1, 2, 2)), (torch.max_pool3d, X3, 2, 1, 1, (1, 2, 2))),
    "max_pool3d, stride []": ((F.max_pool3d, X3, 2), (torch.max_pool3d, X3, 2)),
    "adaptive_max_pool1d": ((F.adaptive_max_pool1d, X1, 4), (torch.adaptive_max_pool1d, X1, 4)),
}


@pytest.mark.parametrize(("functional", "own"), TORCH_SPELLINGS.values(), ids=TORCH_SPELLINGS.keys())
def test_torch_own_pool_functions_window_as_their_functional_spellings(functional: tuple, own: tuple) -> None:
    """``torch.max_pool2d`` (what ``F.max_pool2d`` calls; its ``stride=[]`` is the kernel's) and the others: the
    field of ``F``'s spelling, by name and by position (an unknown op before)."""
    expected, _ = rule_outcomes(*functional)
    assert isinstance(expected, Field), expected
    assert rule_outcomes(*own) == (expected, expected)


def test_pixel_unshuffle_positional_factor() -> None:
    by_name, by_position = rule_outcomes(F.pixel_unshuffle, torch.ones(1, 2, 6, 4), 2)
    assert by_position == by_name
    assert [span.summary().size for span in by_name.spans] == [2, 2]


# -- unfold -------------------------------------------------------------------------------------
def _footprint(function: Any, shape: tuple[int, ...], index: tuple[Any, ...]) -> list[tuple[int, int]]:
    """Per spatial dim, the first and last input position with a non-zero gradient of
    ``function(x)[index]`` (an all-ones input: unfold copies, so the gradient is 1 exactly where a
    copied element came from)."""
    x = torch.ones(shape, dtype=torch.float64, requires_grad=True)
    function(x)[index].sum().backward()
    nonzero = (x.grad[0].abs().sum(0) > 0).nonzero()
    return [(int(nonzero[:, j].min()), int(nonzero[:, j].max())) for j in range(len(shape) - 2)]


class Unfold(nn.Module):
    def __init__(
        self, kernel: tuple[int, int], dilation: tuple[int, int], padding: tuple[int, int], stride: tuple[int, int]
    ) -> None:
        super().__init__()
        self.kernel, self.dilation, self.padding, self.stride = kernel, dilation, padding, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.unfold(x, self.kernel, self.dilation, self.padding, self.stride)


def _field(report: Any, node: str) -> Field:
    field = receptive_fields(report.records).outcomes[node]
    assert isinstance(field, Field), field
    return field


@pytest.mark.parametrize(
    ("kernel", "dilation", "padding", "stride"),
    [((2, 3), (1, 2), (1, 0), (2, 1)), ((3, 1), (2, 1), (2, 1), (1, 2)), ((1, 2), (1, 1), (0, 0), (3, 3))],
)
@pytest.mark.parametrize("spelling", ["module", "function"])
def test_unfold_blocks_against_the_gradient_footprint(
    kernel: tuple[int, int], dilation: tuple[int, int], padding: tuple[int, int], stride: tuple[int, int], spelling: str
) -> None:
    """``F.unfold`` on 9×8: block ``(r, c)`` of the ``R × C`` grid is column ``r·C + c`` of the output
    and reads rows ``s·r − p … s·r − p + d·(k − 1)`` (and columns likewise) — its field, clipped to
    the input; the field's grid is the block grid, flattened into the last axis."""
    unfold = (
        nn.Unfold(kernel, dilation, padding, stride)
        if spelling == "module"
        else Unfold(kernel, dilation, padding, stride)
    )
    model = nn.Sequential(nn.Identity(), unfold)
    report = rf_report(model, (2, 9, 8))
    assert [d.code for d in report.diagnostics if d.code.startswith("rf-")] == []
    (node,) = [n for n in report.records.nodes if "unfold" in n or n == "_1" or n.startswith("1")][-1:]
    field = _field(report, node)
    grid = [
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, d, p, s in zip((9, 8), kernel, dilation, padding, stride, strict=True)
    ]
    assert field.flat and field.axes == (-1,) and list(field.sizes) == grid
    checked = 0
    for r in range(grid[0]):
        for c in range(grid[1]):
            expected = _inside(field, (r, c), (9, 8))
            if expected is not None:
                assert _footprint(unfold, (1, 2, 9, 8), (0, slice(None), r * grid[1] + c)) == expected
                checked += 1
    assert checked >= 4


class TensorUnfold(nn.Module):
    def __init__(self, dim: int, size: int, step: int) -> None:
        super().__init__()
        self.dim, self.size, self.step = dim, size, step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unfold(self.dim, self.size, self.step)


@pytest.mark.parametrize(("dim", "size", "step"), [(2, 3, 1), (3, 2, 3), (-2, 4, 2), (-1, 1, 2)])
def test_tensor_unfold_against_the_gradient_footprint(dim: int, size: int, step: int) -> None:
    """``x.unfold(dim, size, step)`` on 9×8: window ``i`` along ``dim`` reads ``step·i … step·i + size − 1``
    (the whole window is the unit: its elements sit on the appended last axis)."""
    unfold = TensorUnfold(dim, size, step)
    report = rf_report(nn.Sequential(nn.Identity(), unfold), (2, 9, 8))
    assert [d.code for d in report.diagnostics if d.code.startswith("rf-")] == []
    node = [n for n in report.records.nodes if "unfold" in n][-1]
    field = _field(report, node)
    out = unfold(torch.ones(1, 2, 9, 8))
    assert field.sizes == tuple(out.shape[2:4]) and field.axes == (-3, -2)
    for r in range(out.shape[2]):
        for c in range(out.shape[3]):
            assert _footprint(unfold, (1, 2, 9, 8), (0, slice(None), r, c)) == _inside(field, (r, c), (9, 8))


class UnfoldFirst(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[0].t().unfold(0, 3, 1)  # (C, L) -> (L, C) -> windows of 3 positions along dim 0


def test_tensor_unfold_along_dim_zero() -> None:
    """A 3-wide conv1d on 9 positions (7 out), sample 0 transposed to ``(7, 2)``, then
    ``unfold(0, 3, 1)`` -> ``(5, 2, 3)``: window ``i`` covers conv outputs ``i … i + 2``, so inputs
    ``i … i + 4``, on axis -3."""
    report = rf_report(nn.Sequential(nn.Conv1d(1, 2, 3), UnfoldFirst()), (1, 9))
    assert [d.code for d in report.diagnostics if d.code.startswith("rf-")] == []
    node = [n for n in report.records.nodes if "unfold" in n][-1]
    field = _field(report, node)
    assert field.axes == (-3,) and field.sizes == (5,)
    (span,) = field.spans
    assert span.extent_at(0) == (0, 4) and span.extent_at(4) == (4, 8)


def _inside(field: Field, unit: tuple[int, int], sizes: tuple[int, int]) -> list[tuple[int, int]] | None:
    """The field of ``unit`` when it lies inside the input (a dilated window clipped by the border
    would not end on a tap, so only unclipped units are compared); None otherwise."""
    bounds = [span.extent_at(i) for span, i in zip(field.spans, unit, strict=True)]
    return bounds if all(0 <= lo <= hi < n for (lo, hi), n in zip(bounds, sizes, strict=True)) else None


# -- adaptive pools -----------------------------------------------------------------------------
class Unbatch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[0]


def test_adaptive_pool_global_over_a_size_one_dim_it_does_not_pool() -> None:
    """A 1×5 grid (H = 1), unbatched to (C, 1, 5), then AdaptiveAvgPool1d(1) over W as (N, C, L):
    W pools to 1 and H has one position, so every output reads the whole input: global."""
    model = nn.Sequential(nn.Conv2d(1, 2, 1), Unbatch(), nn.AdaptiveAvgPool1d(1))
    report = rf_report(model, (1, 1, 5))
    fields = receptive_fields(report.records)
    assert fields.outcomes["_2"] is Marker.GLOBAL, fields.outcomes["_2"]


def test_lp_pool1d_windows_the_last_axis_only() -> None:
    """A 3×3 conv on 9×8, unbatched to (C, H, W), then LPPool1d(2) as (N, C, L): the windows run
    along W only. H keeps the conv's field (3, jump 1); W grows to 3 + 1 = 4, jump 2."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), Unbatch(), nn.LPPool1d(2, 2))
    report = rf_report(model, (1, 9, 8))
    field = receptive_fields(report.records).outcomes["_2"]
    assert isinstance(field, Field), field
    assert [(s.summary().size, s.summary().jump) for s in field.spans] == [(3, 1), (4, 2)]


class _Tokens(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2)


@pytest.mark.parametrize("window", [nn.Conv1d(2, 2, 3, padding=1), nn.MaxPool1d(2)], ids=["conv", "pool"])
def test_a_window_over_flattened_positions_is_refused(window: nn.Module) -> None:
    """After ``flatten(2)`` the 6×6 grid is one axis of 36 tokens, row-major: a 1-D window over it
    mixes the end of one row with the start of the next, which no per-dim span describes."""
    report = rf_report(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), _Tokens(), window), (1, 6, 6))
    messages = [d.message for d in report.diagnostics if d.code == "rf-unsupported"]
    assert len(messages) == 1 and "a window over flattened spatial positions" in messages[0], messages
