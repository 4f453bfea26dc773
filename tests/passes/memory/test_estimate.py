"""Static memory: liveness, views and in-place ops, dtypes, shared weights, training table."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from hypothesis import given
from torch import nn

from tests.strategies import random_nets
from torchscan import crawl_module
from torchscan.measure.cpu import OPTIMIZER_FACTORIES, measure_training
from torchscan.passes.memory import OPTIMIZERS, output_bytes, static_peak, workspace

F32 = 4


class Chain(nn.Module):
    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def test_chain_peak_is_largest_adjacent_pair_plus_input() -> None:
    widths = [3, 64, 8, 128, 256, 4]
    memory = crawl_module(Chain(widths), (widths[0],), batch_size=2).memory
    outs = [2 * width * F32 for width in widths[1:]]
    pairs = [outs[0], *(a + b for a, b in itertools.pairwise(outs))]
    assert memory.input_bytes == 2 * widths[0] * F32
    assert memory.activation_peak_bytes == memory.input_bytes + max(pairs)
    assert memory.peak_module_path == "layers.3"


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.a, self.b = nn.Linear(2, 100), nn.Linear(100, 10), nn.Linear(10, 100)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.b(self.a(h)) + h


def test_residual_keeps_skip_input_live() -> None:
    memory = crawl_module(Residual(), (2,)).memory
    # at the add: input + h (held since the stem for the skip) + b's output + the sum
    assert memory.activation_peak_bytes == (2 + 100 + 100 + 100) * F32
    assert memory.peak_node.startswith("add")


class Plain(nn.Module):
    def __init__(self, fancy: bool) -> None:
        super().__init__()
        self.fancy = fancy
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU(inplace=fancy)
        self.head = nn.Linear(8 * 16 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.fancy:  # views and in-place ops: no new storage
            y = y.permute(0, 2, 3, 1).permute(0, 3, 1, 2)
            y += 1
            y = torch.relu_(y)
            y = F.relu(y, inplace=True)
            y = self.act(y)
            return self.head(y.reshape(y.shape[0], -1)[:, :].flatten(1))
        y = self.act(y + 1)
        return self.head(y.flatten(1))


def test_views_and_inplace_ops_add_nothing() -> None:
    fancy = crawl_module(Plain(True), (3, 16, 16)).memory
    plain = crawl_module(Plain(False), (3, 16, 16)).memory
    conv_out = 8 * 16 * 16 * F32
    input_bytes = 3 * 16 * 16 * F32
    assert fancy.activation_peak_bytes == input_bytes + conv_out + 10 * F32
    assert plain.activation_peak_bytes >= input_bytes + 2 * conv_out  # y + 1 then ReLU each allocate


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 16)
        self.b = nn.Linear(16, 16)
        self.b.weight = self.a.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def test_shared_weights_counted_once() -> None:
    memory = crawl_module(Tied(), (16,)).memory
    assert memory.param_bytes == (16 * 16 + 2 * 16) * F32
    assert memory.training_for("adam").grad_bytes == memory.param_bytes


def _convnet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 4, 3)).eval()


def test_half_precision_halves_bytes() -> None:
    full = crawl_module(_convnet(), (3, 32, 32)).memory
    for dtype in (torch.float16, torch.bfloat16):
        half = crawl_module(_convnet().to(dtype), (3, 32, 32), dtype=dtype)
        assert half.memory.activation_peak_bytes * 2 == full.activation_peak_bytes
        assert half.memory.param_bytes * 2 == full.param_bytes
        assert half.row("0").output_bytes == 16 * 30 * 30 * 2


def test_rows_dict_and_table_carry_memory() -> None:
    report = crawl_module(_convnet(), (3, 32, 32), batch_size=2)
    assert report.row("1").output_bytes == 2 * 16 * 30 * 30 * F32
    data = report.to_dict()
    assert data["memory"]["activation_peak_bytes"] == report.memory.activation_peak_bytes
    assert [t["optimizer"] for t in data["memory"]["training"]] == list(OPTIMIZERS)
    assert all("output_bytes" in layer for layer in data["layers"])
    text = report.to_dict() and __import__("torchscan.render.table", fromlist=["x"]).render_table(report)
    assert "Activation peak on forward" in text and "AdamW" in text


def test_training_table_conventions() -> None:
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4)).train()
    memory = crawl_module(model, (8,), batch_size=4).memory
    params = (8 * 32 + 32 + 32 * 4 + 4) * F32
    states = {t.optimizer: t.optimizer_state_bytes for t in memory.training}
    counters = 4 * 4  # Adam's step counter: a float32 scalar per parameter tensor (two weights, two biases)
    assert states == {"sgd": 0, "sgd_momentum": params, "adam": 2 * params + counters, "adamw": 2 * params + counters}
    # saved: first Linear's input (weight grad), ReLU's output (= second Linear's input), once
    assert memory.saved_activation_bytes == (4 * 8 + 4 * 32) * F32
    peaks = [t.peak_bytes for t in memory.training]
    assert peaks == sorted(peaks)
    # backward: first linear only dW (1x), second dX + dW (2x); ReLU 1x its forward FLOPs
    assert memory.backward_macs == 4 * 8 * 32 + 2 * 4 * 32 * 4


def test_frozen_model_saves_nothing() -> None:
    model = _convnet().requires_grad_(False)
    memory = crawl_module(model, (3, 16, 16)).memory
    assert memory.saved_activation_bytes == 0
    assert memory.backward_flops == 0
    assert all(t.grad_bytes == 0 and t.optimizer_state_bytes == 0 for t in memory.training)


@given(random_nets())
def test_peak_bounded_by_outputs(case: tuple[nn.Module, tuple[int, int, int]]) -> None:
    net, shape = case
    report = crawl_module(net, shape, batch_size=2)
    peak = static_peak(report.records)
    records = [data["record"] for _, data in report.records.nodes(data=True)]
    computed = [r for r in records if r.op in ("call_module", "call_function", "call_method")]
    largest = max(sum(ref.nbytes for ref in r.storages if not ref.persistent) for r in computed)
    total = sum(output_bytes(r) + workspace(r) for r in computed) + peak.input_bytes
    assert largest <= peak.bytes <= total
    assert peak.bytes == report.memory.activation_peak_bytes


class _Tied(nn.Module):
    """An embedding tied to the output head (GPT-2, T5): one parameter, two gradients summed."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(2000, 32)
        self.head = nn.Linear(32, 2000, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.embed(ids)))


def test_a_tied_parameter_sums_its_gradients() -> None:
    # the head's gradient of the shared weight is held while the embedding's is made and the two are
    # summed into a third: 3 weight-sized tensors at once (one was counted)
    model = _Tied().train()
    ids = torch.zeros(2, 4, dtype=torch.long)
    estimate = crawl_module(model, args=(ids,), batch_size=None).memory.training_for("sgd")
    measured = measure_training(model, [ids], OPTIMIZER_FACTORIES["sgd"]).total_bytes
    assert estimate.peak_phase == "backward"
    assert abs(estimate.peak_bytes / measured - 1) < 0.01, (estimate.peak_bytes, measured)
