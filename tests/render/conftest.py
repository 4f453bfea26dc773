"""Reports shared by the export tests (built once per session)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import torchscan
from torchscan.report import Report


class Branchy(nn.Module):
    """Residual add, a functional call, free Python shape arithmetic and a directly held parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.scale = nn.Parameter(torch.ones(1))
        self.head = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(self.block(x) + x) * self.scale
        return self.head(x.view(x.size(0), -1))


@pytest.fixture(scope="session")
def resnet18_report() -> Report:
    torchvision = pytest.importorskip("torchvision")
    return torchscan.crawl_module(torchvision.models.resnet18().eval(), (3, 224, 224))


@pytest.fixture(scope="session")
def resnet50_report() -> Report:
    torchvision = pytest.importorskip("torchvision")
    return torchscan.crawl_module(torchvision.models.resnet50().eval(), (3, 224, 224))


@pytest.fixture(scope="session")
def branchy_report() -> Report:
    return torchscan.crawl_module(Branchy().eval(), (3, 8, 8))
