"""Pointwise activations (in place or not) and dropout against FakeTensor dispatch: the rules answer
every plain call, and an input in any layout (as the op lays it out), and decline (torch decides) an
in-place op on a leaf requiring grad and channel dropouts of an unbatched input."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from tests.graph.rules.helpers import check, dense, laid_out


@given(
    inplace=st.booleans(),
    training=st.booleans(),
    requires_grad=st.booleans(),
    shape=st.lists(st.integers(1, 3), max_size=5),
    data=st.data(),
)
def test_pointwise_and_dropout(
    inplace: bool, training: bool, requires_grad: bool, shape: list[int], data: st.DataObject
) -> None:
    torch_refuses_in_place = inplace and requires_grad  # an in-place op on a leaf that requires grad
    with FakeTensorMode():
        x = laid_out(shape, data).requires_grad_(requires_grad)
        # a new tensor of a gapped input: dispatched; of a strided one, laid out as the kernel lays it out
        # (one that requires grad too: only a parameter's result is left to autograd, see test_shape.py)
        new = "answered" if x.is_contiguous() or dense(x) else "declined"
        for module in (nn.ReLU(inplace), nn.ReLU6(inplace), nn.SiLU(inplace), nn.Hardswish(inplace), nn.Mish(inplace)):
            assert check(module, (x,)) == ("rejected" if torch_refuses_in_place else "answered" if inplace else new)
        for module in (nn.GELU(), nn.GELU("tanh"), nn.Sigmoid(), nn.Tanh(), nn.Hardsigmoid()):
            assert check(module, (x,)) == new, module
        assert check(nn.Identity(), (x,)) == "answered"
        for function in (F.relu, F.relu6, F.silu, F.hardswish, F.hardsigmoid):
            outcome = check(function, (x,), {"inplace": inplace})
            assert outcome == ("rejected" if torch_refuses_in_place else "answered" if inplace else new)
        methods = (torch.Tensor.relu, torch.Tensor.sigmoid, torch.Tensor.tanh)
        for function in (torch.relu, torch.sigmoid, torch.tanh, F.gelu, F.sigmoid, F.tanh, *methods):
            assert check(function, (x,)) == new, function
        assert check(F.gelu, (x,), {"approximate": "tanh"}) == new
        assert check(F.gelu, (x,), {"inplace": False}) == "rejected"  # F.gelu takes no inplace
        dropout = nn.Dropout(0.2, inplace).train(training)
        drawn = training and not inplace and not x.is_contiguous()  # a new tensor laid out by dropout's kernel
        expected = "rejected" if torch_refuses_in_place and training else "declined" if drawn else "answered"
        assert check(dropout, (x,)) == expected
        for channel, rank in ((nn.Dropout1d, 3), (nn.Dropout2d, 4), (nn.Dropout3d, 5)):
            result = check(channel(0.2).train(training), (x,))
            answered = len(shape) == rank and not (training and not x.is_contiguous())
            assert result == "answered" if answered else result in ("declined", "rejected"), channel


@given(
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    dim=st.integers(-5, 4),
    data=st.data(),
)
def test_softmax_module(shape: list[int], dim: int, data: st.DataObject) -> None:
    """``nn.Softmax(dim)`` as ``F.softmax``: a contiguous input answered, a dim out of range never;
    ``nn.Softmax()`` (torch picks the dim) declined."""
    with FakeTensorMode():
        x = laid_out(shape, data)
        outcome = check(nn.Softmax(dim), (x,))
        assert check(nn.Softmax(), (x,)) == "declined"
    if not -len(shape) <= dim < len(shape):
        assert outcome in ("declined", "rejected")
    elif x.is_contiguous():
        assert outcome == "answered"
