"""The convolution rule answers what FakeTensor dispatch gives, and declines what torch would reject."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from tests.graph.rules.helpers import check, sizes


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
