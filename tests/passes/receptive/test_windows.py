"""Window rules: an adaptive pool is global only when every spatial dim pools to one."""

from __future__ import annotations

from torch import nn

from tests.passes.receptive.helpers import rf_report


def test_adaptive_pool_global_only_when_every_spatial_dim_pools_to_one() -> None:
    report = rf_report(nn.Sequential(nn.AdaptiveAvgPool2d((1, 2))), (1, 4, 4))
    assert report.row("0").receptive_field == (4, 2)
