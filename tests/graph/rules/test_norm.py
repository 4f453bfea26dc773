"""Batch, layer and RMS norms (with ``nn.Linear`` on the same inputs) against FakeTensor dispatch:
answered whenever torch accepts the call."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from tests.graph.rules.helpers import check


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
        rms = check(nn.RMSNorm(features), (x,))
        assert rms == ("answered" if x.is_contiguous() else "declined")  # computed op by op: not assumed
