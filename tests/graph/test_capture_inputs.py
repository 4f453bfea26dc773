"""Capture of real-world calls: kwargs and optional arguments, nested inputs, dict and dataclass
outputs, token ids, scripted modules, detectors; nothing is left on the user's model."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torchvision
from torch import nn

from tests.test_api import assert_same, snapshot
from torchscan import TensorSpec, crawl_module, sweep

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")


class Masked(nn.Module):
    """An optional tensor argument, a flag and ``**kwargs``; a dict output."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.fc = nn.Linear(8, 8)
        self.extra = nn.Linear(8, 8)

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor | None = None, *, return_dict: bool = True, **kwargs: object
    ) -> dict[str, torch.Tensor] | tuple[torch.Tensor, ...]:
        h = self.fc(self.embed(ids))
        if mask is not None:  # must follow the call: symbolic here would always be true
            h = self.extra(h) * mask.unsqueeze(-1)
        if kwargs.get("double", False):
            h = h + h
        return {"hidden": h, "pooled": h.mean(1)} if return_dict else (h,)


def test_optional_argument_left_out_is_none_under_fx() -> None:
    report = crawl_module(Masked(), (6,), dtype=torch.long, batch_size=2)
    assert report.context.capture == "torch.fx"
    assert report.context.output_shapes == ((2, 6, 8), (2, 8))
    assert report.totals.macs == 2 * 6 * 8 * 8 and report.totals.complete


def test_kwargs_with_tensors_flags_and_var_keywords() -> None:
    ids = torch.randint(0, 50, (2, 6))
    model = Masked()
    before = snapshot(model)
    report = crawl_module(model, kwargs={"ids": ids, "mask": torch.ones(2, 6), "return_dict": False, "double": True})
    assert_same(before, snapshot(model))
    assert report.context.capture == "torch.fx"
    assert report.context.input_shapes == ((2, 6), (2, 6))
    assert report.context.dtypes == ("int64", "float32")
    assert report.context.output_shapes == ((2, 6, 8),)
    assert report.totals.macs == 2 * (2 * 6 * 8 * 8)
    placeholders = [n for n in report.records.nodes if report.records.nodes[n]["record"].op == "placeholder"]
    assert placeholders == ["ids", "mask"]


def test_example_tensors_are_never_read() -> None:
    ids = torch.empty(3, 6, dtype=torch.long, device="meta")  # no data at all
    report = crawl_module(Masked(), ids, batch_size=99)  # example tensors carry their batch
    assert report.context.input_shapes == ((3, 6),) and report.context.output_shapes == ((3, 6, 8), (3, 8))


@dataclass
class Output:
    logits: torch.Tensor
    aux: tuple[torch.Tensor, ...]


class NestedInDataclassOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, batch: dict[str, list[torch.Tensor]], scale: float = 1.0) -> Output:
        first, second = batch["pair"]
        return Output(self.fc(first) * scale, (second.sum(-1),))


def test_nested_args_and_dataclass_output() -> None:
    batch = {"pair": [torch.zeros(5, 4), torch.zeros(5, 2)]}
    report = crawl_module(NestedInDataclassOut(), args=(batch, 2.0))
    assert report.context.capture == "torch.fx"
    assert report.context.input_shapes == ((5, 4), (5, 2))
    assert report.context.output_shapes == ((5, 3), (5,))
    assert report.totals.macs == 5 * 4 * 3


class Caching(nn.Module):
    """Caches tensors on itself during forward (fx and recording must run on a copy)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last = x
        self.calls += 1
        if int(x.shape[0]) > 0:  # no fx: recorded
            self.width = x.shape[-1]
        return self.fc(x)


@pytest.mark.parametrize("scripted", [False, True])
def test_no_state_left_behind(scripted: bool) -> None:
    model: nn.Module = Caching()
    if scripted:
        model = torchvision.models.resnet18(num_classes=4)
        model = torch.jit.script(model.train())
    before = snapshot(model)
    crawl_module(model, (3, 32, 32) if scripted else (4,), batch_size=2)
    assert_same(before, snapshot(model))
    assert not hasattr(model, "last") and not hasattr(model, "width")


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 8 * 8, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)))


def test_scripted_module_gets_a_report_with_a_diagnostic() -> None:
    eager = crawl_module(Small(), (3, 8, 8), batch_size=2)
    report = crawl_module(torch.jit.script(Small()), (3, 8, 8), batch_size=2)
    assert report.context.capture == "torchscript-aten"
    assert report.context.output_shapes == ((2, 10),)
    assert report.totals.params == eager.totals.params
    assert report.totals.macs == eager.totals.macs  # conv and linear at the ATen level
    assert [d.code for d in report.diagnostics if d.code != "unknown-op"] == ["scripted-module"]
    modules = {row.name: row.params for row in report.rows if row.kind == "module"}
    assert modules["conv"] == 3 * 8 * 9 + 8 and modules["head.1"] == 8 * 8 * 8 * 10 + 10


def test_traced_module_is_scripted_too() -> None:
    traced = torch.jit.trace(Small().eval(), torch.zeros(1, 3, 8, 8))
    report = crawl_module(traced, (3, 8, 8))
    assert report.context.capture == "torchscript-aten" and report.context.output_shapes == ((1, 10),)


@pytest.mark.slow
def test_torchvision_detector_gets_a_report() -> None:
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, min_size=128, max_size=128
    ).eval()
    before = snapshot(model)
    report = crawl_module(model, args=([torch.rand(3, 96, 128)],))
    assert_same(before, snapshot(model))
    assert report.context.capture == "real-forward"
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    assert report.totals.macs > 10**8
    assert any(d.code == "capture-fallback" for d in report.diagnostics)


class KeyValueCache:
    """A cache object the caller passes and the forward fills (Hugging Face's ``DynamicCache`` as
    ``past_key_values``)."""

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []

    def update(self, key: torch.Tensor) -> torch.Tensor:
        self.keys.append(key)
        return torch.cat(self.keys, dim=1)


class FillsArguments(nn.Module):
    """Fills the cache it is given (twice); ``branch_on_values`` makes fx's trace fail (a recorded forward, then a
    real one, captures it)."""

    def __init__(self, branch_on_values: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.branch_on_values = branch_on_values

    def forward(self, x: torch.Tensor, cache: KeyValueCache, other: KeyValueCache) -> torch.Tensor:
        if other is not cache:  # the caller passed one object twice: it stays one object in the copy
            raise RuntimeError("the same cache passed twice became two")
        keys = cache.update(self.fc(x))
        if self.branch_on_values and keys.sum() > 0:
            keys = keys * 2
        return keys


@pytest.mark.parametrize("branch_on_values", [False, True])
def test_objects_passed_to_the_forward_are_copied_for_it(branch_on_values: bool) -> None:
    """A cache object the caller passes, which the forward fills: each capture gets a copy of its own (one
    object passed twice stays one), so the caller's cache is as it was after the analysis and a sweep, and
    the user's next real forward works. A traced forward left its proxies in the cache, and the next real
    forward failed inside the analysis's tracer."""
    model = FillsArguments(branch_on_values).eval()
    cache = KeyValueCache()
    spec = {"x": TensorSpec((2, 3, 8), torch.float32), "cache": cache, "other": cache}
    report = crawl_module(model, kwargs=spec)
    assert report.context.capture == ("real-forward" if branch_on_values else "torch.fx")
    if not branch_on_values:
        sweep(model, [{"kwargs": {**spec, "x": TensorSpec((batch, 3, 8), torch.float32)}} for batch in (1, 4)])
    assert cache.keys == []
    out = model(torch.ones(2, 3, 8), cache, cache)
    assert type(out) is torch.Tensor and len(cache.keys) == 1
