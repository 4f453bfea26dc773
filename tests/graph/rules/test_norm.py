"""Batch, layer, RMS and group norms (with ``nn.Linear`` on the same inputs) against FakeTensor dispatch:
answered whenever torch accepts the call."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn import functional as F

from tests.graph.rules.helpers import check, laid_out


@given(
    features=st.integers(1, 4),
    extra=st.integers(0, 1),
    shape=st.lists(st.integers(1, 3), min_size=0, max_size=3),
    training=st.booleans(),
)
def test_norms_and_linear(features: int, extra: int, shape: list[int], training: bool) -> None:
    with FakeTensorMode():
        x = torch.empty(*shape, features + extra)
        expected = "rejected" if extra else "answered"
        assert check(nn.Linear(features, 5), (x,)) == expected
        assert check(nn.LayerNorm(features), (x,)) == expected
        assert check(nn.LayerNorm([*shape[-1:], features]), (x,)) == expected
        assert check(nn.RMSNorm(features), (x,)) == ("rejected" if extra else "answered")
        assert check(nn.RMSNorm(features, elementwise_affine=False), (x,)) == expected
        for dims, norm in ((2, nn.BatchNorm1d), (3, nn.BatchNorm1d), (4, nn.BatchNorm2d), (5, nn.BatchNorm3d)):
            y = torch.empty(2, features + extra, *([3] * (dims - 2)))
            result = check(norm(features).train(training), (y,))
            assert result == ("rejected" if extra else "answered")


@given(features=st.integers(1, 4), rows=st.integers(1, 3), batch=st.integers(1, 3))
def test_layer_norm_answers_a_strided_input_with_a_contiguous_result(features: int, rows: int, batch: int) -> None:
    with FakeTensorMode():
        x = torch.empty(rows, batch, features).transpose(0, 1)  # an attention output with batch first
        assert check(nn.LayerNorm(features), (x,)) == "answered"  # check(): a contiguous new storage
        assert check(nn.RMSNorm(features), (x,)) == "answered"
        y = torch.empty(2, rows + 1, batch, features).permute(0, 3, 1, 2)  # channels-last 4-D: kept so
        assert check(nn.RMSNorm([rows + 1, batch]), (y,)) == ("answered" if y.is_contiguous() else "declined")


@given(
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    trailing=st.integers(1, 3),
    affine=st.sampled_from(["none", "weight", "both", "wrong"]),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.int64]),
    spelled=st.sampled_from(["int", "list", "tuple", "by_name"]),
    strided=st.booleans(),
)
def test_functional_layer_norm(
    shape: list[int], trailing: int, affine: str, dtype: torch.dtype, spelled: str, strided: bool
) -> None:
    with FakeTensorMode():
        x = torch.empty(*shape, dtype=dtype)
        if strided and x.dim() >= 2:
            x = x.transpose(0, -1)
        normalized = tuple(x.shape[max(0, x.dim() - trailing) :]) if affine != "wrong" else (7,)
        weight = torch.empty(normalized, dtype=dtype) if affine in ("weight", "both", "wrong") else None
        bias = torch.empty(normalized, dtype=dtype) if affine == "both" else None
        size: object = {"int": normalized[-1], "list": list(normalized), "tuple": normalized}.get(spelled, normalized)
        if spelled == "int" and len(normalized) > 1:
            size = normalized
        if spelled == "by_name":
            outcome = check(F.layer_norm, (x,), {"normalized_shape": size, "weight": weight, "bias": bias, "eps": 1e-6})
        else:
            outcome = check(F.layer_norm, (x, size, weight, bias))
        if spelled == "int" and len(normalized) == 1:
            assert outcome == "rejected"  # F.layer_norm takes a sequence (nn.LayerNorm makes one of an int)
        elif dtype.is_floating_point and affine != "wrong":
            assert outcome == "answered"


@given(
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    trailing=st.integers(1, 3),
    weighted=st.sampled_from(["none", "same", "wrong_shape", "wrong_dtype"]),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64]),
    eps=st.sampled_from([None, 1e-6, 1]),
    by_name=st.booleans(),
    order=st.permutations(range(5)),
    sliced=st.booleans(),
)
def test_functional_rms_norm(
    shape: list[int],
    trailing: int,
    weighted: str,
    dtype: torch.dtype,
    eps: float | None,
    by_name: bool,
    order: list[int],
    sliced: bool,
) -> None:
    """Answered for every input of at most 3 dims (any strides) and every contiguous one, as
    dispatch lays it out; a strided 4-D/5-D input is declined (channels-last stays so)."""
    with FakeTensorMode():
        dims = [d for d in order if d < len(shape)]  # a random layout of the dims
        x = torch.empty([shape[d] for d in dims], dtype=dtype).permute([dims.index(d) for d in range(len(shape))])
        if sliced:
            x = x[..., ::2]
        normalized = tuple(x.shape[max(0, x.dim() - trailing) :]) if weighted != "wrong_shape" else (7,)
        weight_dtype = torch.float32 if weighted == "wrong_dtype" and dtype != torch.float32 else dtype
        weight = None if weighted == "none" else torch.empty(normalized, dtype=weight_dtype)
        if by_name:
            outcome = check(F.rms_norm, (x,), {"normalized_shape": list(normalized), "weight": weight, "eps": eps})
        else:
            outcome = check(F.rms_norm, (x, normalized, weight, eps))
        known = x.is_contiguous() or x.dim() <= 3
        if known and dtype.is_floating_point and weight_dtype == dtype and weighted != "wrong_shape":
            assert outcome == "answered"


@given(
    dims=st.integers(2, 5),
    channels=st.integers(1, 3),
    batch=st.integers(1, 2),
    training=st.booleans(),
    stats=st.booleans(),
    affine=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.int64]),
    wrong=st.booleans(),
)
def test_functional_batch_norm(
    dims: int, channels: int, batch: int, training: bool, stats: bool, affine: bool, dtype: torch.dtype, wrong: bool
) -> None:
    with FakeTensorMode():
        x = torch.empty(batch, channels, *([2] * (dims - 2)), dtype=dtype)
        size = channels + 1 if wrong else channels
        mean, var = (torch.empty(size, dtype=dtype), torch.empty(size, dtype=dtype)) if stats else (None, None)
        weight, bias = (torch.empty(size, dtype=dtype), torch.empty(size, dtype=dtype)) if affine else (None, None)
        outcome = check(F.batch_norm, (x, mean, var, weight, bias, training))
        assert check(F.batch_norm, (x, mean, var), {"weight": weight, "bias": bias, "training": training}) == outcome
        if dtype.is_floating_point and not wrong and (stats or training) and (not training or x.numel() > channels):
            assert outcome == "answered"


@given(
    shape=st.lists(st.integers(0, 3), max_size=4),
    p=st.sampled_from([2.0, 1, 0.5, float("inf")]),
    dim=st.integers(-4, 3),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.int64]),
    transposed=st.booleans(),
    by_name=st.booleans(),
)
def test_normalize(shape: list[int], p: float, dim: int, dtype: torch.dtype, transposed: bool, by_name: bool) -> None:
    with FakeTensorMode():
        x = torch.empty(shape, dtype=dtype)
        if transposed and x.dim() >= 2:
            x = x.transpose(0, -1)
        if by_name:
            outcome = check(F.normalize, (x,), {"p": p, "dim": dim, "eps": 1e-6})
        else:
            outcome = check(F.normalize, (x, p, dim))
    if x.is_contiguous() and dtype.is_floating_point and x.numel() > 0 and -x.dim() <= dim < x.dim():
        assert outcome == "answered"


@given(
    groups=st.integers(1, 4),
    per_group=st.integers(1, 3),
    extra=st.integers(0, 1),
    shape=st.lists(st.integers(0, 3), max_size=3),
    affine=st.sampled_from(["module", "given", "none", "wrong"]),
    dtype=st.sampled_from([torch.float32, torch.float16]),
    data=st.data(),
)
def test_group_norm(
    groups: int, per_group: int, extra: int, shape: list[int], affine: str, dtype: torch.dtype, data: st.DataObject
) -> None:
    """``nn.GroupNorm`` and ``F.group_norm`` against dispatch: a contiguous input whose channels the groups
    divide is answered (a new contiguous tensor), the rest declined or rejected as torch decides (channels
    not divided, a weight of another size, an empty input, another layout)."""
    channels = groups * per_group + extra
    module = nn.GroupNorm(groups, groups * per_group, affine=affine == "module").to(dtype)  # the model's own
    with FakeTensorMode(allow_non_fake_inputs=True):
        x = laid_out([2, channels, *shape], data, dtype)
        module_outcome = check(module, (x,))
        size = channels + (1 if affine == "wrong" else 0)
        weights = (
            (torch.empty(size, dtype=dtype), torch.empty(size, dtype=dtype)) if affine in ("given", "wrong") else ()
        )
        function_outcome = check(F.group_norm, (x, groups, *weights))
    answerable = x.is_contiguous() and extra == 0 and 0 not in shape
    if answerable:
        assert module_outcome == "answered"
        assert function_outcome == ("rejected" if affine == "wrong" else "answered")
