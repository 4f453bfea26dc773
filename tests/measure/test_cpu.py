"""Static inference peak vs the live tensor bytes of a real CPU run (15% goal of the memory issue)."""

from __future__ import annotations

import functools
import io
from typing import Any

import pytest
import torch
import torchvision
from hypothesis import given, settings
from torch import nn

from tests.measure.accuracy_cases import CASES, Case, Figures, figures
from tests.profiles import examples
from tests.strategies import random_nets
from torchscan import crawl_module, summary
from torchscan.measure.cpu import measure_cpu, measure_inference, measure_training, random_inputs
from torchscan.records import CpuMeasurement


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


# -- issue 16: static figures against real CPU passes on twelve models ------------------------------
_INFERENCE_OFF: dict[str, str] = {}
"""Cases whose static inference peak is not within 2% of the measured one (none at this commit)."""

_TRAINING_OFF = {
    "lstm": "SGD -18.0% (static 2.67 MiB, measured 3.26 MiB), Adam -0.0%: on CPU nn.LSTM runs oneDNN's "
    "mkldnn_rnn_layer, which keeps a 516,096-byte workspace per layer for backward; its fake kernel "
    "returns an empty workspace, so the ATen-level recording on fake tensors cannot see it",
}
"""Cases whose training-step estimate is not within 3% of a real step (figures at this commit)."""

_FAST = ("unet", "vit (torchvision, small)", "lstm", "gpt2")


def _accuracy_params(off: dict[str, str]) -> list[Any]:
    params = []
    for case in CASES:
        marks = [] if case.name in _FAST else [pytest.mark.slow]
        if case.name in off:
            marks.append(pytest.mark.xfail(strict=True, reason=off[case.name]))
        params.append(pytest.param(case, marks=marks, id=case.name))
    return params


@functools.cache
def _figures(name: str) -> Figures:
    case = next(case for case in CASES if case.name == name)
    if case.needs:
        pytest.importorskip(case.needs)
    return figures(case)


@pytest.mark.parametrize("case", _accuracy_params(_INFERENCE_OFF))
def test_static_inference_peak_within_2_percent_of_a_real_forward(case: Case) -> None:
    result = _figures(case.name)
    assert abs(result.errors()["inference"]) <= 0.02, result


@pytest.mark.parametrize("case", _accuracy_params(_TRAINING_OFF))
def test_training_estimate_within_3_percent_of_a_real_step(case: Case) -> None:
    result = _figures(case.name)
    errors = result.errors()
    assert abs(errors["sgd"]) <= 0.03 and abs(errors["adam"]) <= 0.03, result


def test_measure_cpu_guards_memory_and_is_deterministic() -> None:
    model = torchvision.models.resnet18(weights=None).eval()
    report = crawl_module(model, (3, 32, 32), batch_size=2)
    assert report.memory is not None
    refused = measure_cpu(model, [(2, 3, 32, 32)], [torch.float32], report.memory, limit=2**20)
    assert not refused.available and "limit" in refused.note and refused.training == ()
    state = torch.get_rng_state()
    first = measure_cpu(model, [(2, 3, 32, 32)], [torch.float32], report.memory, limit=2**32)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left as found
    second = measure_cpu(model, [(2, 3, 32, 32)], [torch.float32], report.memory, limit=2**32)
    assert first == second and first.available
    assert [step.optimizer for step in first.training] == ["sgd", "adam"]
    assert first.activation_peak_bytes == measure_inference(model, random_inputs([(2, 3, 32, 32)])).total_bytes
    for step in first.training:
        assert step.static_bytes == report.memory.training_for(step.optimizer).peak_bytes
        assert abs(step.relative_error) < 0.03


def test_measure_cpu_refuses_meta_weights() -> None:
    with torch.device("meta"):
        model = nn.Linear(4, 4)
    report = crawl_module(model, (4,))
    assert report.memory is not None
    measured = measure_cpu(model, [(1, 4)], [torch.float32], report.memory, limit=2**32)
    assert not measured.available and "meta" in measured.note


def test_summary_measure_cpu_prints_the_measured_line() -> None:
    out = io.StringIO()
    report = summary(nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)), (8,), measure="cpu", file=out)
    assert isinstance(report.memory.measured, CpuMeasurement)
    assert "Measured on cpu (live tensor bytes): activation peak" in out.getvalue()
    assert report.to_dict()["memory"]["measured"]["device"] == "cpu"
