"""Shape rules answer exactly what FakeTensor dispatch gives (shape, dtype, device, contiguity,
aliasing), decline whatever torch would reject, and leave whole-model propagation unchanged."""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from tests.strategies import random_nets
from torchscan.graph.calls import module_path_of
from torchscan.graph.rules import NO_RULES, RULES, Fresh, answer
from torchscan.graph.shapes import propagate
from torchscan.graph.trace import capture
from torchscan.inputs import model_inputs
from torchscan.ops import DEFAULT_REGISTRY


def check(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> str:
    """Compare the rule of ``target`` with dispatching it; returns 'answered', 'declined' or 'rejected'."""
    kwargs = kwargs or {}
    rule = RULES.rule_for(target)
    assert rule is not None
    got = answer(rule, target, args, kwargs)
    try:
        expected = target(*args, **kwargs)
    except Exception:
        assert got is None, f"torch rejects this call, the rule answered {got}"
        return "rejected"
    if got is None:
        return "declined"
    if isinstance(got, Fresh):
        assert isinstance(expected, torch.Tensor)
        assert (got.shape, got.dtype, got.device) == (tuple(expected.shape), expected.dtype, expected.device)
        assert expected.is_contiguous()
        inputs = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        assert all(expected.untyped_storage()._cdata != a.untyped_storage()._cdata for a in inputs)
    elif isinstance(got, (tuple, list)) or not any(got is a for a in (*args, *kwargs.values())):
        _assert_same_views(got, expected, [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)])
    else:
        assert got is expected
    return "answered"


def _assert_same_views(got: Any, expected: Any, inputs: list[torch.Tensor]) -> None:
    """Same type, and per tensor: shape, strides, offset, dtype, device and storage (shared or not)."""
    got_all = list(got) if isinstance(got, (tuple, list)) else [got]
    expected_all = list(expected) if isinstance(expected, (tuple, list)) else [expected]
    assert type(got) is type(expected) and len(got_all) == len(expected_all)
    for mine, theirs in zip(got_all, expected_all, strict=True):
        assert type(mine) is type(theirs)
        assert (mine.shape, mine.stride(), mine.storage_offset()) == (
            theirs.shape,
            theirs.stride(),
            theirs.storage_offset(),
        )
        assert (mine.dtype, mine.device, mine.is_contiguous()) == (theirs.dtype, theirs.device, theirs.is_contiguous())
        storages = [a.untyped_storage()._cdata for a in inputs]
        assert (mine.untyped_storage()._cdata in storages) == (theirs.untyped_storage()._cdata in storages)


@pytest.fixture
def fake() -> Any:
    with FakeTensorMode() as mode:
        yield mode


sizes = st.integers(1, 9)


@given(
    dims=st.integers(1, 3),
    groups=st.integers(1, 3),
    per_group=st.integers(1, 3),
    out_mult=st.integers(1, 2),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    padding=st.one_of(st.integers(0, 2), st.sampled_from(["valid", "same"])),
    dilation=st.integers(1, 2),
    bias=st.booleans(),
    size=sizes,
    wrong_channels=st.booleans(),
)
def test_conv(
    dims: int,
    groups: int,
    per_group: int,
    out_mult: int,
    kernel: int,
    stride: int,
    padding: int | str,
    dilation: int,
    bias: bool,
    size: int,
    wrong_channels: bool,
) -> None:
    if padding == "same":
        stride = 1
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
    with FakeTensorMode():
        module = conv(groups * per_group, groups * out_mult, kernel, stride, padding, dilation, groups, bias)
        channels = groups * per_group + (1 if wrong_channels else 0)
        result = check(module, (torch.empty(2, channels, *[size + d for d in range(dims)]),))
    if not wrong_channels and padding != "same" and size > dilation * (kernel - 1):
        assert result == "answered"


@given(
    kind=st.sampled_from(["max", "avg"]),
    dims=st.integers(1, 3),
    kernel=st.integers(1, 4),
    stride=st.one_of(st.none(), st.integers(1, 3)),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    ceil=st.booleans(),
    size=sizes,
)
def test_pool(
    kind: str, dims: int, kernel: int, stride: int | None, padding: int, dilation: int, ceil: bool, size: int
) -> None:
    with FakeTensorMode():
        if kind == "max":
            module: nn.Module = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[dims - 1](
                kernel, stride, padding, dilation, ceil_mode=ceil
            )
        else:
            module = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[dims - 1](kernel, stride, padding, ceil_mode=ceil)
        check(module, (torch.empty(2, 3, *[size + d for d in range(dims)]),))


@given(
    dims=st.integers(1, 3), out=st.lists(st.one_of(st.none(), st.integers(1, 5)), min_size=1, max_size=3), size=sizes
)
def test_adaptive_pool(dims: int, out: list[int | None], size: int) -> None:
    output_size = out[0] if len(out) == 1 else tuple(out)
    with FakeTensorMode():
        x = torch.empty(2, 3, *[size + d for d in range(dims)])
        for module in (
            (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[dims - 1](output_size),
            (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)[dims - 1](output_size),
        ):
            check(module, (x,))
        check((F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[dims - 1], (x, output_size))


broadcastable = st.lists(st.sampled_from([1, 3, 4]), min_size=0, max_size=4)


@given(
    first=broadcastable,
    second=broadcastable,
    op=st.sampled_from(
        [operator.add, operator.mul, operator.sub, operator.truediv, torch.add, torch.mul, torch.sub, torch.div]
    ),
    scalar=st.one_of(st.none(), st.sampled_from([2, 0.5, 0, True])),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.int64]),
    other_dtype=st.booleans(),
)
def test_binary(
    first: list[int], second: list[int], op: Any, scalar: Any, dtype: torch.dtype, other_dtype: bool
) -> None:
    with FakeTensorMode():
        a = torch.empty(first, dtype=dtype)
        if scalar is not None:
            check(op, (a, scalar))
            check(op, (scalar, a))
        else:
            b = torch.empty(second, dtype=torch.float64 if other_dtype else dtype)
            result = check(op, (a, b))
            if dtype.is_floating_point and not other_dtype and len(first) == len(second) > 0:
                assert result in ("answered", "rejected")


@given(
    shapes=st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=3), min_size=1, max_size=3),
    dim=st.integers(-3, 3),
    keyword=st.booleans(),
)
def test_cat(shapes: list[list[int]], dim: int, keyword: bool) -> None:
    with FakeTensorMode():
        tensors = [torch.empty(shape) for shape in shapes]
        check(torch.cat, (tensors,), {"dim": dim}) if keyword else check(torch.cat, (tensors, dim))
        same = [torch.empty(shapes[0]) for _ in shapes]
        assert check(torch.cat, (same, 0)) == "answered" or 0 in shapes[0][:0]


@given(
    inplace=st.booleans(),
    training=st.booleans(),
    requires_grad=st.booleans(),
    shape=st.lists(st.integers(1, 3), max_size=4),
)
def test_pointwise_and_dropout(inplace: bool, training: bool, requires_grad: bool, shape: list[int]) -> None:
    with FakeTensorMode():
        x = torch.empty(shape, requires_grad=requires_grad)
        for module in (nn.ReLU(inplace), nn.ReLU6(inplace), nn.SiLU(inplace), nn.Hardswish(inplace), nn.Mish(inplace)):
            check(module, (x,))
        for module in (nn.GELU(), nn.Sigmoid(), nn.Tanh(), nn.Identity()):
            check(module, (x,))
        for function in (F.relu, F.relu6, F.silu, F.hardswish, F.hardsigmoid):
            check(function, (x,), {"inplace": inplace})
        check(torch.relu, (x,))
        check(torch.sigmoid, (x,))
        dropout = nn.Dropout(0.2, inplace).train(training)
        check(dropout, (x,))


@given(
    features=st.integers(1, 4),
    extra=st.integers(0, 1),
    shape=st.lists(st.integers(1, 3), min_size=0, max_size=3),
    training=st.booleans(),
)
def test_norms_and_linear(features: int, extra: int, shape: list[int], training: bool) -> None:
    with FakeTensorMode():
        x = torch.empty(*shape, features + extra)
        check(nn.Linear(features, 5), (x,))
        check(nn.LayerNorm(features), (x,))
        assert check(nn.RMSNorm(features), (x,)) == ("rejected" if extra else "answered")
        check(nn.RMSNorm(features, elementwise_affine=False), (x,))
        for dims, norm in ((2, nn.BatchNorm1d), (3, nn.BatchNorm1d), (4, nn.BatchNorm2d), (5, nn.BatchNorm3d)):
            y = torch.empty(2, features + extra, *([3] * (dims - 2)))
            result = check(norm(features).train(training), (y,))
            assert result == ("rejected" if extra else "answered")


@given(shape=st.lists(st.integers(0, 3), max_size=3), dtype=st.sampled_from([torch.int64, torch.int32, torch.float32]))
def test_embedding(shape: list[int], dtype: torch.dtype) -> None:
    with FakeTensorMode():
        ids = torch.empty(shape, dtype=dtype)
        result = check(nn.Embedding(10, 4), (ids,))
        assert result == ("answered" if dtype != torch.float32 else "rejected")
        assert check(nn.Embedding(10, 4, max_norm=1.0), (ids,)) in ("declined", "rejected")


VIEWS = [
    (torch.Tensor.view, (6, -1)),
    (torch.Tensor.view, (-1,)),
    (torch.Tensor.reshape, (2, 3, -1)),
    (torch.Tensor.permute, (0, 2, 3, 1)),
    (torch.Tensor.transpose, (1, 2)),
    (torch.Tensor.flatten, (1,)),
    (torch.Tensor.unflatten, (1, (3, 1))),
    (torch.Tensor.contiguous, ()),
    (torch.Tensor.unsqueeze, (1,)),
    (torch.Tensor.squeeze, ()),
    (torch.Tensor.expand, (2, 2, 3, 4, 5)),
    (torch.Tensor.chunk, (2, -1)),
    (torch.Tensor.split, (2, 3)),
    (torch.Tensor.narrow, (2, 1, 2)),
    (torch.Tensor.select, (1, 0)),
    (torch.Tensor.movedim, (1, -1)),
    (torch.Tensor.__getitem__, ((slice(None), slice(1, None), None, Ellipsis, 0),)),
    (operator.getitem, ((Ellipsis, slice(None, None, 2)),)),
    (torch.flatten, (1, 2)),
    (torch.reshape, ((2, -1),)),
    (torch.permute, ((3, 2, 1, 0),)),
    (torch.transpose, (0, 3)),
    (torch.squeeze, (0,)),
    (torch.unsqueeze, (-1,)),
    (torch.chunk, (3, 1)),
    (torch.split, ([1, 2], 1)),
    (torch.narrow, (3, 0, 1)),
    (torch.select, (0, -1)),
    (torch.movedim, (0, 2)),
]


@pytest.mark.parametrize("layout", ["contiguous", "permuted", "sliced"])
@pytest.mark.parametrize(("function", "arguments"), VIEWS, ids=range(len(VIEWS)))
def test_views_are_what_dispatch_makes(function: Any, arguments: tuple[Any, ...], layout: str) -> None:
    with FakeTensorMode():
        base = torch.empty(2, 3, 4, 5)
        if layout == "permuted":
            base = torch.empty(2, 4, 5, 3).permute(0, 3, 1, 2)
        elif layout == "sliced":
            base = torch.empty(2, 3, 4, 10)[..., ::2]
        result = check(function, (base, *arguments))
    assert result in ("answered", "rejected")  # a view torch refuses (non-viewable strides) is declined


def test_views_decline_tensor_indices(fake: FakeTensorMode) -> None:
    x = torch.empty(4, 3)
    index = torch.zeros(2, dtype=torch.long)
    assert answer(RULES.rule_for(operator.getitem), operator.getitem, (x, index), {}) is None
    assert answer(RULES.rule_for(operator.getitem), operator.getitem, ((1, 2), 0), {}) is None


@given(
    first=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    second=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    transposed=st.booleans(),
)
def test_matmul(first: list[int], second: list[int], transposed: bool) -> None:
    with FakeTensorMode():
        a = torch.empty(first)
        b = torch.empty(second).transpose(-1, -2) if transposed and len(second) > 1 else torch.empty(second)
        for function in (torch.matmul, operator.matmul, torch.Tensor.__matmul__):
            result = check(function, (a, b))
        if len(first) >= 2 and len(b.shape) >= 2 and first[-1] == b.shape[-2] and first[:-2] == list(b.shape[:-2]):
            assert result == "answered"


@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=4), dim=st.integers(-4, 3), bias=st.booleans())
def test_functional_linear_and_softmax(shape: list[int], dim: int, bias: bool) -> None:
    with FakeTensorMode():
        x = torch.empty(shape)
        weight, vector = torch.empty(5, shape[-1]), torch.empty(5) if bias else None
        assert check(F.linear, (x, weight, vector)) == "answered"
        check(F.linear, (x,), {"weight": weight, "bias": vector})
        check(F.linear, (x, torch.empty(5, shape[-1] + 1)))
        for function in (torch.softmax, torch.Tensor.softmax):
            check(function, (x, dim))
        check(F.softmax, (x,), {"dim": dim})
        check(torch.Tensor.__radd__, (x, 2.0))
        check(torch.Tensor.__rmul__, (x, 3))


@given(
    batch_first=st.booleans(),
    need_weights=st.booleans(),
    average=st.booleans(),
    cross=st.booleans(),
    frozen=st.booleans(),
    batch=st.integers(1, 3),
    length=st.integers(1, 4),
)
def test_multihead_attention(
    batch_first: bool, need_weights: bool, average: bool, cross: bool, frozen: bool, batch: int, length: int
) -> None:
    with FakeTensorMode():
        module = nn.MultiheadAttention(8, 2, batch_first=batch_first).eval().requires_grad_(not frozen)
        shape = (batch, length, 8) if batch_first else (length, batch, 8)
        query = torch.empty(shape)
        key = torch.empty((batch, length + 1, 8) if batch_first else (length + 1, batch, 8)) if cross else query
        kwargs = {"need_weights": need_weights, "average_attn_weights": average}
        got = answer(RULES.rule_for(module), module, (query, key, key), kwargs)
        if frozen:
            assert got is None  # the fused fast path may run: torch decides
            return
        expected = module(query, key, key, **kwargs)
    assert got is not None and (got[1] is None) == (expected[1] is None)
    _assert_same_views(got[0], expected[0], [query, key])
    if need_weights:
        _assert_same_views(got[1], expected[1], [query, key])


def test_swin_rules_answer_what_dispatch_makes_and_decline_bad_shapes(fake: FakeTensorMode) -> None:
    from torchvision.models import swin_transformer as swin

    x, qkv, proj = torch.empty(2, 7, 9, 8), torch.empty(24, 8), torch.empty(8, 8)
    table, index = torch.empty(9 * 9, 2), torch.zeros(25 * 25, dtype=torch.long)
    assert check(swin._get_relative_position_bias, (table, index, [5, 5])) == "answered"
    bias = swin._get_relative_position_bias(table, index, [5, 5])
    for shift in ([0, 0], [2, 2]):
        kwargs = {"shift_size": shift, "qkv_bias": torch.empty(24), "proj_bias": torch.empty(8), "training": False}
        assert check(swin.shifted_window_attention, (x, qkv, proj, bias, [5, 5], 2), kwargs) == "answered"
    assert check(swin.shifted_window_attention, (x, qkv, proj, bias, [5, 5], 3), {"shift_size": [0, 0]}) != "answered"
    assert check(
        swin.shifted_window_attention, (x, torch.empty(24, 7), proj, bias, [5, 5], 2), {"shift_size": [0, 0]}
    ) in (
        "declined",
        "rejected",
    )


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
    paths = {node.name: module_path_of(node) for node in captured.graph_module.graph.nodes}
    with captured.fake_mode, torch.enable_grad():
        tensors = [torch.empty(spec.shape, dtype=spec.dtype) for spec in inputs.specs]
        return _renumbered(propagate(captured.graph_module, tensors, paths, rules, captured.fakes))


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
