"""Recording on fake tensors answers calls by the shape rules: the same graph and values as dispatching every call."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
import torchvision
from hypothesis import given
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

import torchscan.graph.record as record_module
from tests.strategies import random_nets
from torchscan.graph.capture import _make_inputs
from torchscan.graph.clone import fake_copy
from torchscan.graph.record import record
from torchscan.graph.rules import NO_RULES, RULES, ShapeRules
from torchscan.inputs import model_inputs
from torchscan.ops import DEFAULT_REGISTRY


def _recorded(model: nn.Module, shape: tuple[int, ...], rules: ShapeRules, dtype: Any = None) -> tuple[Any, ...]:
    """The recorded graph (op, target, arguments by node name, in order) and every node's values, storage
    ids renumbered by first appearance."""
    inputs = model_inputs(shape, args=None, kwargs=None, dtype=dtype, batch_size=2, signature=None)
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    captured, values = record(
        fake_copy(model, mode),
        DEFAULT_REGISTRY,
        mode,
        _make_inputs(inputs, torch.device("cpu"), real=False),
        rules=rules,
        memo=rules is not NO_RULES,  # the reference dispatches every call; the fast path has rules and the memo
    )
    nodes = tuple((node.op, str(node.target), str(node.args), str(node.kwargs)) for node in captured.graph.nodes)
    ids: dict[int, int] = {}
    described = {
        name: dataclasses.replace(
            value, storages=tuple(dataclasses.replace(s, id=ids.setdefault(s.id, len(ids))) for s in value.storages)
        )
        for name, value in values.items()
    }
    return nodes, described, dict(captured.module_outputs)


@given(net=random_nets())
def test_random_nets_record_the_same_with_and_without_rules(net: tuple[nn.Module, tuple[int, ...]]) -> None:
    model, shape = net
    for module in model.modules():  # momentum=None in training reads float(num_batches_tracked): not on fakes
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.momentum is None:
            module.momentum = 0.5
    assert _recorded(model, shape, RULES) == _recorded(model, shape, NO_RULES)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "vit_b_32", "swin_v2_t"])
def test_torchvision_models_record_the_same_with_and_without_rules(name: str) -> None:
    model = torchvision.models.get_model(name, weights=None)
    shape = (3, 224, 224) if name.startswith("vit") else (3, 64, 64)
    for mode in (model.eval(), model.train()):
        assert _recorded(mode, shape, RULES) == _recorded(mode, shape, NO_RULES)


def test_a_transformer_records_the_same_with_and_without_rules() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=100
    )
    model = transformers.BertModel(config).eval()
    assert _recorded(model, (12,), RULES, torch.long) == _recorded(model, (12,), NO_RULES, torch.long)


class _Tied(nn.Module):
    """Nested calls, a module called twice, a parameter and a buffer held under two names each."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.Linear(8, 8), nn.GELU())
        self.second = nn.Linear(8, 8)
        self.second.weight = self.first[0].weight
        self.register_buffer("scale", torch.ones(8))
        self.alias = self.first[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.first(x) * self.scale
        return self.first(self.second(y)).softmax(-1) + self.alias(x)


def test_recorded_stacks_read_through_running_module_calls_are_the_full_walks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every stack the recorder takes, walked up to the nearest running module call and completed from
    its kept callers, equals a walk of every frame; parameters and buffers are named as
    ``named_parameters``/``named_buffers`` name them (first path of a shared tensor)."""
    seen = []
    kept = record_module._Recorder.user_frames

    def both(recorder: record_module._Recorder, frame: Any) -> tuple[Any, ...]:
        fast = kept(recorder, frame)
        full = []
        while frame is not None:
            if not frame.f_code.co_filename.startswith(record_module._LIBRARY_DIRS):
                full.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
            frame = frame.f_back
        seen.append((fast, tuple(reversed(full))))
        return fast

    monkeypatch.setattr(record_module._Recorder, "user_frames", both)
    model = _Tied()
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    copied = fake_copy(model, mode)
    recorder = record_module._Recorder(copied.root, DEFAULT_REGISTRY, mode)
    root = copied.root
    expected = {id(t): name for name, t in (*root.named_parameters(), *root.named_buffers())}
    assert recorder.attrs == expected
    assert recorder.paths == {id(module): path for path, module in root.named_modules()}
    _recorded(model, (8,), RULES)
    assert len(seen) > 10
    assert all(fast == full for fast, full in seen)
