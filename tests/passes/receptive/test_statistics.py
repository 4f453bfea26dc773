"""Statistics over positions on the way to a row are marked: the classic field stays the number shown."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from torchscan import crawl_module
from torchscan.render.table import render_table


def _marks(model: nn.Module, shape: tuple[int, ...]) -> dict[str, bool]:
    report = crawl_module(model, shape, receptive_field=True)
    return {row.name: row.receptive_field_statistics for row in report.rows if row.depth == 1}


def _net(norm: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), norm, nn.Conv2d(4, 4, 3))


@pytest.mark.parametrize(
    ("norm", "train", "marked"),
    [
        (nn.BatchNorm2d(4), True, True),  # batch statistics in training
        (nn.BatchNorm2d(4), False, False),  # running statistics: a per-channel affine map
        (nn.BatchNorm2d(4, track_running_stats=False), False, True),  # batch statistics in eval too
        (nn.GroupNorm(2, 4), False, True),
        (nn.InstanceNorm2d(4), False, True),
        (nn.LayerNorm([4, 14, 14]), False, True),  # over channels and positions
    ],
)
def test_norms_over_positions_mark_every_row_after_them(norm: nn.Module, train: bool, marked: bool) -> None:
    marks = _marks(_net(norm).train(train), (3, 16, 16))
    assert marks == {"0": False, "1": marked, "2": marked}


def test_layer_norm_over_features_only_is_not_marked() -> None:
    assert not any(_marks(torchvision.models.convnext_tiny().eval(), (3, 64, 64)).values())  # LayerNorm2d over C
    report = crawl_module(_net(nn.GroupNorm(2, 4)), (3, 16, 16), receptive_field=True)
    assert report.row("2").receptive_field == (5, 5)  # the classic field is what is shown
    table = render_table(report)
    assert "5x5*" in table and "* statistics over positions on the way" in table
    assert report.to_dict()["layers"][-1]["receptive_field_statistics"] is True


def test_a_branch_with_statistics_marks_the_merge() -> None:
    class Branches(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.plain = nn.Conv2d(3, 4, 3, padding=1)
            self.normed = nn.Sequential(nn.Conv2d(3, 4, 1), nn.GroupNorm(1, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.plain(x) + self.normed(x)

    report = crawl_module(Branches(), (3, 8, 8), receptive_field=True)
    assert not report.row("plain").receptive_field_statistics and report.row("normed").receptive_field_statistics
    assert report.row("add").receptive_field_statistics and report.row("add").receptive_field == (3, 3)
