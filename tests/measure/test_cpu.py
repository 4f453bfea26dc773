"""Static inference peak vs the live tensor bytes of a real CPU run (15% goal of the memory issue)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from hypothesis import given, settings
from torch import nn

from tests.profiles import examples
from tests.strategies import random_nets
from torchscan import crawl_module
from torchscan.measure.cpu import measure_inference, measure_training, random_inputs


def _check(model: nn.Module, shape: tuple[int, ...], batch: int = 2) -> tuple[int, int]:
    static = crawl_module(model, shape, batch_size=batch).memory.activation_peak_bytes
    measured = measure_inference(model, random_inputs([(batch, *shape)])).total_bytes
    assert abs(static / measured - 1) <= 0.15, (static, measured)
    return static, measured


@settings(max_examples=examples(10))
@given(random_nets())
def test_random_nets_within_15_percent(case: tuple[nn.Module, tuple[int, int, int]]) -> None:
    _check(*case)


def test_resnet18_within_15_percent() -> None:
    _check(torchvision.models.resnet18(weights=None).eval(), (3, 64, 64))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "densenet121"])
def test_torchvision_within_15_percent(name: str) -> None:
    _check(torchvision.models.get_model(name, weights=None).eval(), (3, 64, 64))


def test_measurement_leaves_model_untouched() -> None:
    model = torchvision.models.resnet18(weights=None).train()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    measure_inference(model, random_inputs([(2, 3, 32, 32)]))
    assert all(torch.equal(tensor, before[name]) for name, tensor in model.state_dict().items())


def test_resnet18_training_step_within_15_percent() -> None:
    model = torchvision.models.resnet18(weights=None).train()
    estimate = crawl_module(model, (3, 64, 64), batch_size=4).memory.training_for("adam")
    measured = measure_training(
        model, random_inputs([(4, 3, 64, 64)]), lambda params: torch.optim.Adam(params, foreach=True)
    )
    assert abs(estimate.peak_bytes / measured.total_bytes - 1) <= 0.15, (estimate, measured)
