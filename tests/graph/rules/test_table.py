"""The whole table: unusual calls are declined (torch decides), and whole-model propagation is the
same with and without rules (random nets, torchvision models)."""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from tests.graph.rules.helpers import check
from tests.strategies import random_nets
from torchscan.graph.calls import module_path_of
from torchscan.graph.rules import NO_RULES, RULES, answer
from torchscan.graph.shapes import propagate
from torchscan.graph.trace import capture
from torchscan.inputs import model_inputs
from torchscan.ops import DEFAULT_REGISTRY
from torchscan.ops.registry import ALIASES


def test_unusual_calls_are_declined(fake: FakeTensorMode) -> None:
    x = torch.empty(2, 4, 8, 8)
    conv = nn.Conv2d(4, 4, 3)
    assert check(conv, (x.to(memory_format=torch.channels_last),)) == "answered"  # laid out as the backend does
    assert answer(RULES.rule_for(conv), conv, (x.half(),), {}) is None  # weight dtype differs: torch decides
    assert check(operator.add, (x, x.transpose(2, 3))) == "answered"  # laid out as TensorIterator does
    assert answer(RULES.rule_for(operator.add), operator.add, (x, x.double().transpose(2, 3)), {}) is None
    assert answer(RULES.rule_for(torch.cos), torch.cos, (x.long().transpose(2, 3),), {}) is None
    assert answer(RULES.rule_for(torch.add), torch.add, (x, x), {"alpha": 2}) is None
    assert RULES.rule_for(nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")) is not None
    reflect = nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")
    assert answer(RULES.rule_for(reflect), reflect, (x,), {}) is None
    assert NO_RULES.rule_for(conv) is None


def _plain_calls() -> list[tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    """One plain call (contiguous float32 fake tensors, usual arguments) per spelling the rules
    register: each is a call its rule is there to answer. Run inside a ``FakeTensorMode``."""
    x, v = torch.empty(2, 4, 6, 8), torch.empty(4)
    x1, x3 = torch.empty(2, 4, 9), torch.empty(2, 4, 4, 5, 6)
    calls: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
    for dims, sample in ((1, x1), (2, x), (3, x3)):
        conv, norm = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1], (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
        calls += [
            (conv(4, 6, 3, stride=2, padding=1, dilation=1), (sample,), {}),
            (norm[dims - 1](4).train(dims == 2), (sample,), {}),
            ((nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[dims - 1](2, dilation=2, ceil_mode=True), (sample,), {}),
            ((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[dims - 1](3, 2, 1), (sample,), {}),
            ((nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[dims - 1](2), (sample,), {}),
            ((nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)[dims - 1](3), (sample,), {}),
            ((F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[dims - 1], (sample, 1), {}),
        ]
    calls += [(module, (x,), {}) for module in (nn.ReLU(), nn.ReLU6(True), nn.SiLU(), nn.GELU(), nn.Sigmoid())]
    calls += [(module, (x,), {}) for module in (nn.Tanh(), nn.Hardswish(), nn.Hardsigmoid(), nn.Mish(True))]
    calls += [(nn.Dropout().train(), (x,), {}), (nn.Dropout1d().train(), (x1,), {})]
    calls += [(nn.Dropout2d().train(), (x,), {}), (nn.Dropout3d().train(), (x3,), {})]
    calls += [(nn.Identity(), (x,), {}), (nn.LayerNorm(8), (x,), {}), (nn.RMSNorm([6, 8]), (x,), {})]
    calls += [(F.layer_norm, (x, (8,), torch.empty(8), torch.empty(8)), {})]
    calls += [(F.rms_norm, (x, (8,), torch.empty(8)), {"eps": None}), (F.normalize, (x,), {"dim": -1})]
    calls += [(F.conv2d, (x, torch.empty(6, 4, 3, 3)), {"padding": 1})]
    calls += [(torch.mean, (x, (2, 3)), {}), (torch.Tensor.mean, (x, -1), {"keepdim": True})]
    calls += [(F.conv1d, (x1, torch.empty(6, 2, 3), torch.empty(6), 2, 0, 1, 2), {})]
    calls += [(F.conv3d, (x3, torch.empty(6, 4, 1, 1, 1)), {})]
    calls += [(F.batch_norm, (x, torch.empty(4), torch.empty(4)), {"weight": torch.empty(4), "training": True})]
    calls += [(nn.Linear(8, 3), (x,), {}), (F.linear, (x, torch.empty(3, 8), torch.empty(3)), {})]
    calls += [(nn.Embedding(10, 4), (torch.zeros(2, 5, dtype=torch.long),), {})]
    for function in (F.relu, F.relu6, F.silu, F.gelu, F.hardswish, F.hardsigmoid, F.mish, F.sigmoid, F.tanh):
        calls.append((function, (x,), {}))
    calls += [(torch.relu, (x,), {}), (torch.sigmoid, (x,), {}), (torch.tanh, (x,), {})]
    calls += [(method, (x,), {}) for method in (torch.Tensor.relu, torch.Tensor.sigmoid, torch.Tensor.tanh)]
    calls += [(nn.Softmax(1), (x,), {}), (nn.GroupNorm(2, 4), (x,), {}), (F.group_norm, (x, 2), {})]
    calls += [(F.interpolate, (x,), {"scale_factor": 2, "mode": "bilinear"}), (nn.Upsample(size=7), (x,), {})]
    calls += [(nn.UpsamplingNearest2d(scale_factor=2), (x,), {}), (nn.UpsamplingBilinear2d(size=3), (x,), {})]
    calls += [(function, (x, -1), {}) for function in (torch.softmax, torch.Tensor.softmax)]
    calls += [(F.softmax, (x,), {"dim": 1})]
    for function in (operator.add, operator.mul, operator.sub, operator.truediv, torch.add, torch.mul, torch.sub):
        calls.append((function, (x, v[None, :, None, None]), {}))
    calls += [(torch.div, (x, 2.0), {}), (torch.Tensor.__radd__, (x, 1), {}), (torch.Tensor.__rmul__, (x, 0.5), {})]
    for method in (torch.Tensor.__add__, torch.Tensor.__mul__, torch.Tensor.__sub__, torch.Tensor.__truediv__):
        calls.append((method, (x, x), {}))
    calls += [(torch.Tensor.add, (x, x), {}), (torch.Tensor.mul, (x, 3), {})]
    a, b = torch.empty(2, 3, 4), torch.empty(2, 4, 5)
    calls += [(function, (a, b), {}) for function in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__)]
    calls += [(operator.matmul, (a, b), {}), (torch.cat, ([x, x], 1), {})]
    calls.append((torch.addmm, (torch.empty(5), torch.empty(3, 4), torch.empty(4, 5)), {}))
    calls.append((torch.einsum, ("bhwc,hkc->bhwk", torch.empty(2, 3, 4, 5), torch.empty(3, 6, 5)), {}))
    written = torch.empty(2, 3, 4)
    calls.append((operator.setitem, (written, (slice(None), 1), torch.empty(2, 4)), {}))
    calls.append((torch.Tensor.__setitem__, (written, (Ellipsis, slice(0, 2)), 0.5), {}))
    attention = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    calls.append((attention, (a.new_empty(2, 3, 8),) * 3, {}))
    for spelling in (torch.Tensor, torch):
        calls += [
            (spelling.reshape, (x, (2, -1)), {}),
            (spelling.permute, (x, (0, 2, 3, 1)), {}),
            (spelling.transpose, (x, 1, 2), {}),
            (spelling.flatten, (x, 1), {}),
            (spelling.unsqueeze, (x, 0), {}),
            (spelling.squeeze, (x[:, :1], 1), {}),
            (spelling.chunk, (x, 2, 1), {}),
            (spelling.split, (x, 2, 1), {}),
            (spelling.narrow, (x, 1, 1, 2), {}),
            (spelling.select, (x, 1, 0), {}),
            (spelling.movedim, (x, 1, -1), {}),
            (spelling.t, (a[0],), {}),
        ]
    calls += [(torch.Tensor.view, (x, 8, -1), {}), (torch.Tensor.unflatten, (x, 1, (2, 2)), {})]
    calls += [(torch.Tensor.contiguous, (x,), {}), (torch.Tensor.expand, (v[:, None], 4, 3), {})]
    calls += [(torch.Tensor.__getitem__, (x, (slice(None), 0)), {}), (operator.getitem, (x, (Ellipsis, 1)), {})]
    for name in ("neg", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "abs", "reciprocal", "square", "erf"):
        calls += [(getattr(torch, name), (x,), {}), (getattr(torch.Tensor, name), (x,), {})]
    calls += [(operator.neg, (x,), {}), (torch.Tensor.__neg__, (x,), {}), (torch.Tensor.to, (x, torch.float16), {})]
    calls += [(torch.Tensor.type_as, (x, x.mT), {}), (torch.arange, (2, 9), {"device": "cpu"})]
    calls += [(torch.unbind, (x, 1), {}), (torch.Tensor.unbind, (x,), {})]
    calls += [(getattr, (x, "shape"), {}), (torch.Tensor.size, (x, 1), {}), (torch.Tensor.dim, (x,), {})]
    calls += [(torch.Tensor.numel, (x,), {}), (F.pad, (x, (1, 1, 0, 2)), {})]
    calls += [(nn.Flatten(), (x,), {}), (nn.Unflatten(1, (2, 2)), (x,), {})]
    calls += [(torch.Tensor.reshape_as, (x, x.flatten(1)), {}), (torch.Tensor.view_as, (x, x.flatten()), {})]
    q, kv = torch.empty(2, 4, 5, 8), torch.empty(2, 2, 6, 8)
    calls += [(F.scaled_dot_product_attention, (q, kv, kv), {"enable_gqa": True})]
    calls += [(flex_attention, (q, kv, kv), {"enable_gqa": True})]
    tokens, experts = torch.empty(16, 8, dtype=torch.bfloat16), torch.empty(2, 8, 16, dtype=torch.bfloat16)
    offsets = torch.empty(2, dtype=torch.int32)  # bfloat16: what torch's meta kernel admits
    calls += [(grouped, (tokens, experts), {"offs": offsets}) for grouped in (torch._grouped_mm, F.grouped_mm)]
    # each alias torch documents (torch.swapdims, Tensor.multiply) answered as its op's call is
    calls += [(alias, args, kwargs) for target, args, kwargs in calls for alias, op in ALIASES.items() if op is target]
    return calls


_NOT_DISPATCHABLE = frozenset(
    {
        torch.istft,
        torch.Tensor.istft,
        create_block_mask,
        torch.Tensor.register_hook,
        torch.ao.nn.quantized.dynamic.Linear,
    }
)
"""Rules of ops whose fake kernel cannot run (``istft`` checks its window by value): checked against the real op in
``tests/graph/rules/test_spectral.py``; ``create_block_mask``, whose result is an object (a ``BlockMask``, no
tensor to compare): checked against the function in ``tests/graph/rules/test_attention.py``; ``register_hook``,
answered where torch refuses a tensor no grad reaches (a rule's result): ``tests/graph/rules/test_shape.py``;
torch.ao's dynamically quantized ``Linear`` (no fake kernel): against the real layer in
``tests/graph/rules/test_linear.py``."""


def test_every_rule_answers_its_plain_calls(fake: FakeTensorMode) -> None:
    """Each spelling of each rule answers a plain call, as dispatch would: a rule that declines
    its everyday case (only slower, since dispatch answers instead) fails here."""
    calls = _plain_calls()
    eager = [
        target
        for target in RULES.targets()
        if not getattr(target, "__module__", "").startswith("torchvision") and target not in _NOT_DISPATCHABLE
    ]
    covered = {type(target) if isinstance(target, nn.Module) else target for target, _, _ in calls}
    assert set(eager) <= covered, [target for target in eager if target not in covered]
    for target, args, kwargs in calls:
        if isinstance(target, nn.MultiheadAttention):
            continue  # returns (output, weights): tests/graph/rules/test_attention.py
        assert check(target, args, kwargs) == "answered", (target, [getattr(a, "shape", a) for a in args], kwargs)


def _values(model: nn.Module, shape: tuple[int, ...], rules: Any) -> dict[str, Any]:
    inputs = model_inputs(shape, args=None, kwargs=None, dtype=None, batch_size=2, signature=None)
    captured = capture(model, DEFAULT_REGISTRY, inputs)
    paths = {node.name: module_path_of(node) for node in captured.graph.nodes}
    with captured.fake_mode, torch.enable_grad():
        device = next(model.parameters()).device
        tensors = [torch.empty(spec.shape, dtype=spec.dtype, device=device) for spec in inputs.specs]
        memo = rules is not NO_RULES  # the reference dispatches every op; the fast path has rules and the memo
        return _renumbered(propagate(captured.root, captured.graph, tensors, paths, rules, captured.fakes, memo=memo))


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
    for module in model.modules():  # momentum=None in training reads float(num_batches_tracked):
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.momentum is None:
            module.momentum = 0.5  # dispatch on fake tensors cannot (the rule can); shapes are the same
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


class _RotaryAttention(nn.Module):
    """A Llama-style attention block: rotary embeddings built in the forward (``arange``, ``cos``,
    ``sin``, ``.to``), grouped-query causal SDPA on transposed heads, a negated half rotation."""

    def __init__(self, dim: int = 16, heads: int = 4, kv_heads: int = 2) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * kv_heads * self.head_dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)
        self.register_buffer("inv_freq", torch.rand(self.head_dim // 2), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q = self.q(x).view(batch, length, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(x).view(batch, length, 2 * self.kv_heads, self.head_dim).transpose(1, 2).chunk(2, dim=1)
        positions = torch.arange(length, device=x.device, dtype=torch.float32)
        angles = torch.cat((positions[:, None] * self.inv_freq[None, :],) * 2, dim=-1)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        half = self.head_dim // 2
        q = q * cos + torch.cat((-q[..., half:], q[..., :half]), dim=-1) * sin
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.o(out.transpose(1, 2).reshape(batch, length, -1)).exp().neg()


class _SizeArithmetic(nn.Module):
    """Sizes read off results of rules (``x.shape``, ``size``, ``dim``, ``numel``) and used: heads split
    by ``unbind``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        b, c, h, w = y.shape
        first, second = y.reshape(b, 2, c // 2, h * w).unbind(1)
        return (first + second).flatten(y.dim() - 3) * y.size(-1) + y.numel() + x.size()[1]


def test_size_arithmetic_propagates_the_same_with_and_without_rules() -> None:
    model = _SizeArithmetic()
    assert _values(model, (3, 10, 9), RULES) == _values(model, (3, 10, 9), NO_RULES)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_rotary_attention_propagates_the_same_with_and_without_rules(device: str) -> None:
    model = _RotaryAttention().to(device)
    for mode in (model.eval(), model.train()):
        assert _values(mode, (5, 16), RULES) == _values(mode, (5, 16), NO_RULES)
