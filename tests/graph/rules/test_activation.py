"""Pointwise activations (in place or not) and dropout against FakeTensor dispatch: the rules answer
every plain call, and decline (torch decides) an in-place op on a leaf requiring grad and channel
dropouts of an unbatched input."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from tests.graph.rules.helpers import check


@given(
    inplace=st.booleans(),
    training=st.booleans(),
    requires_grad=st.booleans(),
    shape=st.lists(st.integers(1, 3), max_size=5),
)
def test_pointwise_and_dropout(inplace: bool, training: bool, requires_grad: bool, shape: list[int]) -> None:
    torch_refuses_in_place = inplace and requires_grad  # an in-place op on a leaf that requires grad
    with FakeTensorMode():
        x = torch.empty(shape, requires_grad=requires_grad)
        for module in (nn.ReLU(inplace), nn.ReLU6(inplace), nn.SiLU(inplace), nn.Hardswish(inplace), nn.Mish(inplace)):
            assert check(module, (x,)) == ("rejected" if torch_refuses_in_place else "answered"), module
        for module in (nn.GELU(), nn.Sigmoid(), nn.Tanh(), nn.Identity(), nn.Hardsigmoid()):
            assert check(module, (x,)) == "answered", module
        for function in (F.relu, F.relu6, F.silu, F.hardswish, F.hardsigmoid):
            assert check(function, (x,), {"inplace": inplace}) == ("rejected" if torch_refuses_in_place else "answered")
        for function in (torch.relu, torch.sigmoid, torch.tanh, F.gelu, F.sigmoid, F.tanh):
            assert check(function, (x,)) == "answered", function
        dropout = nn.Dropout(0.2, inplace).train(training)
        assert check(dropout, (x,)) == ("rejected" if torch_refuses_in_place and training else "answered")
        for channel, rank in ((nn.Dropout1d, 3), (nn.Dropout2d, 4), (nn.Dropout3d, 5)):
            result = check(channel(0.2).train(training), (x,))
            assert result == "answered" if len(shape) == rank else result in ("declined", "rejected"), channel
