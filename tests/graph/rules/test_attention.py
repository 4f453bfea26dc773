"""``nn.MultiheadAttention``: the same outputs and attention weights as FakeTensor dispatch, or declined."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from tests.graph.rules.helpers import assert_same_views
from torchscan.graph.rules import RULES, answer


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
    assert_same_views(got[0], expected[0], [query, key])
    if need_weights:
        assert_same_views(got[1], expected[1], [query, key])
