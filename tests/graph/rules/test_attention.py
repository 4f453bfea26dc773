"""``nn.MultiheadAttention``: the same outputs and attention weights as FakeTensor dispatch, or declined."""

from __future__ import annotations

import itertools

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn import functional as F

from tests.graph.rules.helpers import assert_same_views, check
from tests.profiles import examples
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


@settings(max_examples=examples(60))
@given(
    dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float64, torch.int64]),
    rank=st.sampled_from([3, 4]),
    heads=st.sampled_from([(2, 2), (4, 2), (4, 3), (2, 4)]),
    lengths=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    dims=st.tuples(st.sampled_from([4, 8]), st.sampled_from([4, 6, 8])),
    gqa=st.booleans(),
    causal=st.booleans(),
    mask=st.sampled_from([None, "bool", "float", "square", "wide"]),
    dropout=st.sampled_from([0.0, 0.3]),
    scale=st.sampled_from([None, 0.5]),
)
def test_scaled_dot_product_attention(
    dtype: torch.dtype,
    rank: int,
    heads: tuple[int, int],
    lengths: tuple[int, int],
    dims: tuple[int, int],
    gqa: bool,
    causal: bool,
    mask: str | None,
    dropout: float,
    scale: float | None,
) -> None:
    """Against dispatch, on both devices and every layout of q, k and v (each contiguous, transposed
    heads-first, or a chunk of a fused projection: its dims in order with gaps): meta answers any
    strides (its math path makes a contiguous result), CPU a query laid out in order (its flash kernel
    keeps a transposed query's layout); the everyday calls are answered."""
    (query_heads, kv_heads), (length, source), (embed, value_embed) = heads, lengths, dims

    def tensor(device: str, heads: int, rows: int, columns: int, layout: str) -> torch.Tensor:
        if layout == "chunk":  # q, k or v of one projection: (…, rows, 3 * columns)[..., :columns]
            shape = (2 * heads, rows, 3 * columns) if rank == 3 else (2, heads, rows, 3 * columns)
            return torch.empty(shape, dtype=dtype, device=device)[..., columns : 2 * columns]
        if rank == 3:
            made = torch.empty(2 * heads, rows, columns, dtype=dtype, device=device)
            return made.transpose(0, 1).contiguous().transpose(0, 1) if layout == "swap" else made
        made = torch.empty(2, rows, heads, columns, dtype=dtype, device=device).transpose(1, 2)
        return made if layout == "swap" else made.contiguous()

    kwargs = {"is_causal": causal, "enable_gqa": gqa, "dropout_p": dropout, "scale": scale}
    layouts = ("plain", "swap", "chunk")
    with FakeTensorMode(allow_non_fake_inputs=True):
        for device, transposed in itertools.product(("cpu", "meta"), itertools.product(layouts, repeat=3)):
            q = tensor(device, query_heads, length, embed, transposed[0])
            k = tensor(device, kv_heads, source, embed, transposed[1])
            v = tensor(device, kv_heads, source, value_embed, transposed[2])
            masks = {
                "bool": torch.empty(length, source, dtype=torch.bool, device=device),
                "float": torch.empty(1, length, source, dtype=dtype, device=device),
                "square": torch.empty(length, length, dtype=torch.bool, device=device),
                "wide": torch.empty(3, length, source, dtype=torch.bool, device=device),
            }
            outcome = check(F.scaled_dot_product_attention, (q, k, v, masks.get(mask or "")), kwargs)
            everyday = (
                dtype.is_floating_point
                and (device == "meta" or transposed[0] != "swap")
                and query_heads == kv_heads
                and mask in (None, "bool")
                and not (causal and mask)
            )
            assert outcome == "answered" or not everyday, (device, transposed, outcome)
