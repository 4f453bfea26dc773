"""The capture chain: fx, then a recorded forward on fake tensors, then one real forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.test_api import assert_same, snapshot
from torchscan import CaptureError, ShapeError, crawl_module


class Traceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        y = y + x.mean(1, keepdim=True)
        return self.fc(y.mean((2, 3)))


class Untraceable(Traceable):
    """Same computation, with Python control flow on a tensor value fx cannot trace."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        for _ in range(int(x.shape[1]) // 3):  # int() of a proxy
            y = y + x.mean(1, keepdim=True)
        self.last_width = int(y.shape[-1])  # state cached during forward (must not reach the user's model)
        return self.fc(y.mean((2, 3)))


def test_untraceable_model_gets_the_same_report_by_recording() -> None:
    traced = crawl_module(Traceable().eval(), (3, 16, 16), batch_size=2)
    model = Untraceable().eval()
    before = snapshot(model)
    recorded = crawl_module(model, (3, 16, 16), batch_size=2)
    assert_same(before, snapshot(model))
    assert not hasattr(model, "last_width")
    assert traced.context.capture == "torch.fx" and recorded.context.capture == "eager-record"
    assert recorded.totals == traced.totals
    assert [(r.name, r.flops, r.output_shape) for r in recorded.rows if r.kind == "module"] == [
        (r.name, r.flops, r.output_shape) for r in traced.rows if r.kind == "module"
    ]
    fallback = [d for d in recorded.diagnostics if d.code == "capture-fallback"]
    assert len(fallback) == 1 and "control flow is fixed" in fallback[0].message


def test_kwargs_forward_and_dict_output() -> None:
    class KwargsDict(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor, **kwargs: object) -> dict[str, torch.Tensor]:
            h = self.fc(x)
            if kwargs.get("activate", True):
                h = torch.sigmoid(h)
            return {"logits": h, "hidden": x}

    report = crawl_module(KwargsDict(), (8,), batch_size=3)
    assert report.context.output_shapes == ((3, 4), (3, 8))
    assert report.totals.macs == 3 * 4 * 8 and report.totals.complete


def test_data_dependent_model_falls_back_to_one_real_forward() -> None:
    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.fc(x)
            return y[torch.nonzero(y > -1e9, as_tuple=True)]  # data-dependent shape

    model = DataDependent()
    before = snapshot(model)
    report = crawl_module(model, (4,), batch_size=2)
    assert_same(before, snapshot(model))
    assert report.context.capture == "real-forward"
    assert report.context.output_shapes == ((8,),)
    assert any("REAL forward" in d.message for d in report.diagnostics)
    with torch.device("meta"):
        meta_model = DataDependent()
    with pytest.raises(CaptureError):  # never a real forward of a meta model
        crawl_module(meta_model, (4,))


def test_genuine_shape_errors_still_raise() -> None:
    with pytest.raises(ShapeError, match=r"layer .conv."):
        crawl_module(Traceable(), (3, 16, 16, 2))
