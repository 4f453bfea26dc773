"""The convolution rule answers what FakeTensor dispatch gives, and declines what torch would reject."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.immutable_collections import immutable_list
from torch.nn import functional as F

from tests.graph.rules.helpers import check, sizes
from torchscan.graph.rules import RULES, Fresh, answer


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
    if not wrong_channels and (padding == "same" or size > dilation * (kernel - 1)):
        assert result == "answered"  # "same": the input's sizes, whatever the kernel


@given(
    dims=st.integers(1, 3),
    groups=st.sampled_from([1, 2]),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 2),
    padding=st.integers(0, 1),
    bias=st.booleans(),
    order=st.randoms(use_true_random=False),
    sliced=st.booleans(),
    device=st.sampled_from(["cpu", "meta"]),
)
def test_conv_of_an_input_of_any_layout(
    dims: int, groups: int, kernel: int, stride: int, padding: int, bias: bool, order: Any, sliced: bool, device: str
) -> None:
    """A channels-last, permuted or sliced input (tokens reshaped to a grid): the result's strides
    are the ones dispatch gives (the memory format of the backend torch selects)."""
    shape = [2, 2 * groups, *[4 + d for d in range(dims)]]
    permutation = list(range(len(shape)))
    order.shuffle(permutation)
    with FakeTensorMode():
        conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
        module = conv(2 * groups, 3 * groups, kernel, stride, padding, groups=groups, bias=bias, device=device)
        stored = torch.empty([shape[i] for i in permutation], device=device)
        x = stored.permute([permutation.index(i) for i in range(len(shape))])
        if sliced:
            x = torch.empty(*shape[:-1], 2 * shape[-1], device=device)[..., : shape[-1]]
        outcome = check(module, (x,))
        assert outcome == "answered" or (dims == 1 and not x.is_contiguous())  # a strided 1-D input: torch's
        got = answer(RULES.rule_for(module), module, (x,), {})
    if device == "cpu":  # the shape pass's copy holds the model's real tensors until a dispatch needs fakes
        real = conv(2 * groups, 3 * groups, kernel, stride, padding, groups=groups, bias=bias)
        mine = answer(RULES.rule_for(real), real, (x,), {})
        assert (mine is None) == (got is None)
        if got is not None and not isinstance(got, Fresh):
            assert (mine.shape, mine.stride(), mine.dtype, mine.device) == (
                got.shape,
                got.stride(),
                got.dtype,
                got.device,
            )
        elif got is not None:
            assert mine == got


@given(
    dims=st.integers(1, 3),
    groups=st.sampled_from([1, 2]),
    kernel=st.integers(1, 3),
    stride=st.sampled_from([1, 2, (1, 2, 1), [2, 1, 1]]),
    padding=st.sampled_from([0, 1, (1, 0, 1), "valid", "same", -1]),
    dilation=st.sampled_from([1, 2, (2, 1, 1)]),
    bias=st.sampled_from(["none", "right", "wrong"]),
    by_name=st.booleans(),
    channels_last=st.booleans(),
)
def test_functional_conv(
    dims: int,
    groups: int,
    kernel: int,
    stride: Any,
    padding: Any,
    dilation: Any,
    bias: str,
    by_name: bool,
    channels_last: bool,
) -> None:
    """``F.convNd`` by position and by name, with per-dim tuples and lists cut to the dims: answered
    where torch accepts (``padding='same'`` of a channels-last input and strided 1-D inputs are torch's),
    rejected alike."""

    def cut(value: Any) -> Any:
        return type(value)(value[:dims]) if isinstance(value, (tuple, list)) else value

    function = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    stride, padding, dilation = cut(stride), cut(padding), cut(dilation)
    with FakeTensorMode():
        x = torch.empty(2, 2 * groups, *[5 + d for d in range(dims)])
        if channels_last and dims == 2:
            x = x.to(memory_format=torch.channels_last)
        weight = torch.empty(3 * groups, 2, *[kernel] * dims)
        vector = {"none": None, "right": torch.empty(3 * groups), "wrong": torch.empty(4)}[bias]
        named = {"bias": vector, "stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        if by_name:
            outcome = check(function, (x, weight), named)
        else:
            outcome = check(function, (x, weight, vector, stride, padding, dilation, groups))
    if bias != "wrong" and padding != -1 and not (padding == "same" and x.dim() == 4 and channels_last):
        assert outcome in ("answered", "rejected")


def test_sizes_given_as_fx_lists_are_read_as_lists() -> None:
    """``F.conv2d(x, w, stride=[2, 2])`` in a traced forward: the list arrives as fx's ``immutable_list``."""
    with FakeTensorMode():
        x, weight = torch.empty(1, 3, 8, 8), torch.empty(4, 3, 3, 3)
        listed = check(F.conv2d, (x, weight), {"stride": [2, 2], "padding": [1, 1]})
        assert listed == "answered"
        assert (
            check(F.conv2d, (x, weight), {"stride": immutable_list([2, 2]), "padding": immutable_list([1, 1])})
            == listed
        )
