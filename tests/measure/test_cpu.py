"""Static inference peak vs the live tensor bytes of a real CPU run (15% goal of the memory issue)."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tests.measure.accuracy_cases import CASES, Case, Figures, figures, under_autocast
from tests.profiles import examples
from tests.strategies import random_nets
from torchscan import crawl_module, summary
from torchscan.measure.cpu import (
    OPTIMIZER_FACTORIES,
    measure_cpu,
    measure_inference,
    measure_training,
    random_inputs,
)
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

_TRAINING_OFF: dict[str, str] = {}
"""Cases whose training-step estimate is not within 3% of a real step (none at this commit; the LSTM's
SGD step was -18.0% until oneDNN's workspace was declared with ``aten.mkldnn_rnn_layer``)."""

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


@pytest.mark.parametrize("case", _accuracy_params({}))
def test_adam_step_adds_exactly_its_state(case: Case) -> None:
    """Adam's estimate is off a real step by SGD's error (both peak in the backward, where Adam only adds its
    state: ``exp_avg``, ``exp_avg_sq`` and a 4-byte step counter per parameter tensor) or by nothing (its
    peak in the step: the gradients, ``sqrt(exp_avg_sq)`` and the batch the caller holds). Before the step
    phase held the inputs and the state the counters, Adam was 98,552 bytes under on ResNet-18 (64², batch 2:
    the input's 98,304 + 62 counters) where SGD was 68,104."""
    result = _figures(case.name)
    off = {name: result.measured_training[name] - result.static_training[name] for name in ("sgd", "adam")}
    assert off["adam"] in (0, off["sgd"]), off


@pytest.mark.parametrize("case", _accuracy_params({}))
def test_under_autocast_inference_within_half_a_percent_and_training_within_2(case: Case) -> None:
    """The forward under ``torch.autocast`` (bfloat16; the backward and the step outside, as PyTorch's recipe
    has it): the ops' dtypes, the casts inside each call, and the low-precision copies of the parameters that
    autocast's cache keeps to the region's end (:mod:`torchscan.passes.memory.casts`). Without those copies the
    inference peak was 79% under on ResNet-18, 32% on the small ViT, 14% on GPT-2, 6% on the UNet; measured
    here: exact on eleven of the twelve, the LSTM 0.28% under, and every SGD step within 0.8%."""
    if case.needs:
        pytest.importorskip(case.needs)
    result = figures(under_autocast(case), ("sgd",))
    errors = result.errors()
    assert abs(errors["inference"]) <= 0.005 and abs(errors["sgd"]) <= 0.02, result


class _LinearProbe(nn.Module):
    """A frozen backbone run under ``no_grad`` (its parameters still require grad), a trained head."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = self.backbone(x)
        return self.head(features)


class _Distilled(nn.Module):
    """A student and a teacher of transformer layers (DINO's shape), the teacher under ``no_grad``."""

    def __init__(self) -> None:
        super().__init__()

        def encoder() -> nn.Module:
            layers = [nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True) for _ in range(2)]
            return nn.Sequential(nn.Linear(32, 64), *layers, nn.Linear(64, 16))

        self.student, self.teacher = encoder(), encoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.teacher(x).softmax(-1)
        return (self.student(x).log_softmax(-1) * target).sum(-1)


@pytest.mark.parametrize(("build", "shape"), [(_LinearProbe, (4, 3, 32, 32)), (_Distilled, (2, 10, 32))])
def test_no_grad_regions_in_the_forward_train_nothing(build: Callable[[], nn.Module], shape: tuple[int, ...]) -> None:
    """What a forward runs under ``no_grad`` saves nothing and gets no gradient nor optimizer state, its
    parameters requiring grad or not. Before, the linear probe's SGD step was estimated 71% over a real one
    (3,802,096 bytes against 2,226,472) and its backward FLOPs were the backbone's; now both steps are exact
    but for the loss's scalar."""
    torch.manual_seed(0)
    model = build().train()
    x = random_inputs([shape])
    memory = crawl_module(model, args=tuple(x), batch_size=None).memory
    assert memory is not None
    for name in ("sgd", "adam"):
        measured = measure_training(model, x, OPTIMIZER_FACTORIES[name]).total_bytes
        assert 0 <= measured - memory.training_for(name).peak_bytes <= 8, name
    trained = [module for name, module in model.named_children() if name in ("head", "student")]
    assert memory.training_for("sgd").grad_bytes == sum(p.numel() * 4 for m in trained for p in m.parameters())


class _Recurrent(nn.Module):
    """A recurrent layer (its output sequence) and a linear head per step."""

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(rnn.hidden_size * (2 if rnn.bidirectional else 1), 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def _recurrent_errors(rnn: nn.RNNBase, steps: int, batch: int) -> list[float]:
    model = _Recurrent(rnn).train()
    x = random_inputs([(batch, steps, rnn.input_size) if rnn.batch_first else (steps, batch, rnn.input_size)])
    memory = crawl_module(model, args=tuple(x), batch_size=None).memory
    assert memory is not None
    return [
        memory.training_for(name).peak_bytes / measure_training(model, x, OPTIMIZER_FACTORIES[name]).total_bytes - 1
        for name in ("sgd", "adam")
    ]


@settings(max_examples=examples(4))
@given(
    inputs=st.integers(8, 48),
    hidden=st.integers(16, 96),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    steps=st.integers(4, 24),
    batch=st.integers(1, 4),
)
def test_lstm_training_steps_within_3_percent(
    inputs: int, hidden: int, layers: int, bidirectional: bool, batch_first: bool, steps: int, batch: int
) -> None:
    """Stacked and bidirectional LSTMs on CPU: one oneDNN workspace per layer and direction is kept
    for the backward and freed as the backward passes that layer (a 3-layer bidirectional LSTM was
    -36% with SGD before the workspace was declared)."""
    rnn = nn.LSTM(inputs, hidden, layers, batch_first=batch_first, bidirectional=bidirectional)
    assert all(abs(error) <= 0.03 for error in _recurrent_errors(rnn, steps, batch))


@pytest.mark.slow
def test_gru_training_step_within_3_percent() -> None:
    """A GRU runs ATen's own kernels on CPU (no oneDNN workspace): measured +0.6% (SGD), -0.4% (Adam)."""
    errors = _recurrent_errors(nn.GRU(32, 64, 2, bidirectional=True), steps=16, batch=4)
    assert all(abs(error) <= 0.03 for error in errors), errors


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


class _Keyword(nn.Module):
    """Token ids by keyword, an image positional, a flag by keyword (a multimodal model's call)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.conv = nn.Embedding(32, 8), nn.Conv2d(3, 8, 3)

    def forward(self, image: torch.Tensor, *, ids: torch.Tensor, pooled: bool = False) -> torch.Tensor:
        x = self.conv(image).flatten(2).transpose(1, 2)  # (B, 36, 8)
        y = torch.cat([self.embed(ids), x], dim=1)
        return y.mean(1) if pooled else y


def test_a_model_called_by_keyword_is_measured_as_it_was_analysed() -> None:
    """``summary(..., kwargs=..., measure="cpu")`` skipped the measurement without a word (it called models with
    their inputs positional only); ``with_measurement`` takes the call as ``crawl_module`` does, tensors or
    ``TensorSpec`` at any depth and other values as they are."""
    from torchscan import TensorSpec
    from torchscan.api import with_measurement

    model = _Keyword()
    call = {"args": (TensorSpec((2, 3, 8, 8)),), "kwargs": {"ids": TensorSpec((2, 5), torch.long), "pooled": True}}
    report = summary(model, **call, measure="cpu", file=io.StringIO())
    measured = report.memory.measured
    assert isinstance(measured, CpuMeasurement) and measured.available, measured
    assert measured.activation_peak_bytes == report.memory.activation_peak_bytes
    assert all(0 <= step.measured_bytes - step.static_bytes <= 8 for step in measured.training), measured  # loss
    again = with_measurement(crawl_module(model, **call), model, "cpu", **call).memory.measured
    assert again == measured
