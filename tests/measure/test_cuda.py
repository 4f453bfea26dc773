"""Static memory vs a real CUDA run (skipped without a GPU): the 15% goal of the memory issue."""

from __future__ import annotations

import pytest
import torch
import torchvision

from torchscan import crawl_module, summary
from torchscan.measure.cuda import measure_cuda, measure_cuda_training

pytestmark = pytest.mark.cuda

SHAPE = (3, 224, 224)


@pytest.mark.parametrize("name", ["resnet50", "vit_b_16"])
def test_static_activation_peak_matches_cuda(name: str) -> None:
    model = torchvision.models.get_model(name, weights=None).eval()
    static = crawl_module(model, SHAPE, batch_size=32).memory
    measured = measure_cuda(model.cuda(), [(32, *SHAPE)], [torch.float32], static.activation_peak_bytes)
    assert measured.available
    assert abs(measured.relative_error) <= 0.15, measured


def test_training_estimate_matches_cuda_step() -> None:
    model = torchvision.models.resnet50(weights=None).train()
    estimate = crawl_module(model, SHAPE, batch_size=32).memory.training_for("adam")
    inputs = [torch.randn(32, *SHAPE, device="cuda")]
    measured = measure_cuda_training(model, inputs, lambda params: torch.optim.Adam(params, foreach=True))
    assert abs(estimate.peak_bytes / measured - 1) <= 0.15, (estimate, measured)


def test_summary_measure_leaves_model_untouched() -> None:
    model = torchvision.models.resnet18(weights=None).cuda().train()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    report = summary(model, (3, 64, 64), batch_size=4, measure=True, file=open("/dev/null", "w"))  # noqa: SIM115
    assert report.memory.measured.available and report.memory.measured.activation_peak_bytes > 0
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
