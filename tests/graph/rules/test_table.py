"""The whole table: unusual calls are declined (torch decides), and whole-model propagation is the
same with and without rules (random nets, torchvision models)."""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

import pytest
import torch
import torchvision
from hypothesis import given
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from tests.graph.rules.helpers import check
from tests.strategies import random_nets
from torchscan.graph.calls import module_path_of
from torchscan.graph.rules import NO_RULES, RULES, answer
from torchscan.graph.shapes import propagate
from torchscan.graph.trace import capture
from torchscan.inputs import model_inputs
from torchscan.ops import DEFAULT_REGISTRY


def test_unusual_calls_are_declined(fake: FakeTensorMode) -> None:
    x = torch.empty(2, 4, 8, 8)
    conv = nn.Conv2d(4, 4, 3)
    assert check(conv, (x.to(memory_format=torch.channels_last),)) in ("declined", "answered")
    assert answer(RULES.rule_for(conv), conv, (x.to(memory_format=torch.channels_last),), {}) is None
    assert answer(RULES.rule_for(conv), conv, (x.half(),), {}) is None  # weight dtype differs: torch decides
    assert answer(RULES.rule_for(operator.add), operator.add, (x, x.transpose(2, 3)), {}) is None
    assert answer(RULES.rule_for(torch.add), torch.add, (x, x), {"alpha": 2}) is None
    assert RULES.rule_for(nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")) is not None
    reflect = nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")
    assert answer(RULES.rule_for(reflect), reflect, (x,), {}) is None
    assert NO_RULES.rule_for(conv) is None


def _values(model: nn.Module, shape: tuple[int, ...], rules: Any) -> dict[str, Any]:
    inputs = model_inputs(shape, args=None, kwargs=None, dtype=None, batch_size=2, signature=None)
    captured = capture(model, DEFAULT_REGISTRY, inputs)
    paths = {node.name: module_path_of(node) for node in captured.graph.nodes}
    with captured.fake_mode, torch.enable_grad():
        tensors = [torch.empty(spec.shape, dtype=spec.dtype) for spec in inputs.specs]
        return _renumbered(propagate(captured.root, captured.graph, tensors, paths, rules, captured.fakes))


def _renumbered(values: dict[str, Any]) -> dict[str, Any]:
    """Storage ids by first appearance in node order (parameters are faked, and numbered, on first use)."""
    ids: dict[int, int] = {}
    return {
        name: dataclasses.replace(
            value, storages=tuple(dataclasses.replace(s, id=ids.setdefault(s.id, len(ids))) for s in value.storages)
        )
        for name, value in values.items()
    }


@given(net=random_nets())
def test_random_nets_propagate_the_same_with_and_without_rules(net: tuple[nn.Module, tuple[int, ...]]) -> None:
    model, shape = net
    assert _values(model, shape, RULES) == _values(model, shape, NO_RULES)


@pytest.mark.parametrize(
    "name", ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "squeezenet1_1", "swin_v2_t", "vit_b_32"]
)
def test_torchvision_models_propagate_the_same_with_and_without_rules(name: str) -> None:
    model = torchvision.models.get_model(name, weights=None)
    shape = (3, 224, 224) if name.startswith("vit") else (3, 64, 64)  # ViTs take their training size only
    for mode in (model.eval(), model.train()):
        assert _values(mode, shape, RULES) == _values(mode, shape, NO_RULES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(torchvision.models.list_models(module=torchvision.models)))
def test_every_torchvision_classifier_propagates_the_same_with_and_without_rules(name: str) -> None:
    model = torchvision.models.get_model(name, weights=None).eval()
    size = 299 if name == "inception_v3" else 224
    assert _values(model, (3, size, size), RULES) == _values(model, (3, size, size), NO_RULES)
