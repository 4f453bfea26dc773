"""Pointwise activations (in place or not) and dropout against FakeTensor dispatch."""

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
