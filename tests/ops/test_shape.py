"""Views, metadata and attribute reads are free."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from tests.ops.helpers import cost, spec
from torchscan import crawl_module
from torchscan.records import Cost


def test_attribute_reads_are_free() -> None:
    assert cost(getattr, (spec(4, 8),), (spec(4, 8),)) == Cost()


class _Sorts(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ordered = torch.sort(x, dim=-1)
        top = torch.topk(x, 2)
        return ordered.values + 1, ordered.indices, top.values, x.max(dim=1).values, x.mT


def test_fields_of_returned_structures_leave_the_totals_complete() -> None:
    report = crawl_module(_Sorts(), (4, 8))
    assert report.totals.complete and report.totals.unknown_ops == 0
    assert not [diagnostic for diagnostic in report.diagnostics if diagnostic.code == "unknown-op"]


class _Passes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.same = nn.Conv2d(1, 2, 3), nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.same(self.conv(x))
        return torch.detach(y.detach()).requires_grad_()


def test_identity_and_detach_keep_the_receptive_field() -> None:
    """Identity, detach (both spellings) and requires_grad_ pass a 3×3 conv's field on as is."""
    report = crawl_module(_Passes(), (1, 6, 6), receptive_field=True)
    assert [d.code for d in report.diagnostics if d.code.startswith("rf-")] == []
    assert {row.receptive_field for row in report.rows if row.node} == {(3, 3)}


class _Casts(nn.Module):
    def __init__(self, cast: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.first, self.second = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3)
        self.cast = cast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.cast(self.first(x)))


@pytest.mark.parametrize(
    "cast",
    [
        lambda x: x.double().float(),
        lambda x: x.to(torch.float64).type(torch.float32),
        lambda x: x.half().type_as(x),
        lambda x: x.bfloat16().cpu().float(),
    ],
)
def test_casts_keep_the_receptive_field(cast: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """A cast moves no element: two 3×3 convs around it still see 5×5, with no receptive-field
    diagnostic."""
    report = crawl_module(_Casts(cast), (1, 9, 9), receptive_field=True)
    assert [d.code for d in report.diagnostics if d.code.startswith("rf-")] == []
    assert report.row("second").receptive_field == (5, 5)
