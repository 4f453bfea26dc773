"""Shared by the receptive-field tests: a report with receptive fields, a model with an unknown op."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from torchscan import crawl_module
from torchscan.report import Report


def rf_report(model: nn.Module, shape: Sequence[int]) -> Report:
    return crawl_module(model.eval(), tuple(shape), receptive_field=True)


class Unknown(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cumsum(x, dim=2))
