"""Attention formulas: SDPA and MultiheadAttention tables, the FlopCounterMode oracle, random
shapes (heads, lengths, GQA, causal), Transformer layers traced through, ViT-B/16."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tests.ops.helpers import cost, spec, torch_flops
from torchscan import crawl_module
from torchscan.records import Cost

aten = torch.ops.aten


def sdpa_expected(
    b: int, hq: int, length: int, keys: int, e: int, ev: int, masked: bool, hkv: int | None = None
) -> Cost:
    scores = b * hq * length * keys
    rows = b * hq * length
    flops = scores * (2 * e - 1) + scores + scores * masked + 5 * scores - 2 * rows + rows * ev * (2 * keys - 1)
    hkv = hkv or hq
    dmas = b * hq * length * e + b * hkv * keys * (e + ev) + b * hq * length * ev
    return Cost(flops=flops, macs=scores * (e + ev), dmas=dmas)


@pytest.mark.parametrize("target", [F.scaled_dot_product_attention, aten.scaled_dot_product_attention.default])
@pytest.mark.parametrize(("causal", "gqa"), [(False, False), (True, False), (False, True), (True, True)])
def test_sdpa_table(target: object, causal: bool, gqa: bool) -> None:
    hkv = 2 if gqa else 4
    q, k, v = spec(2, 4, 5, 8), spec(2, hkv, 7, 8), spec(2, hkv, 7, 6)
    got = cost(target, (q, k, v), (spec(2, 4, 5, 6),), is_causal=causal, enable_gqa=gqa, dropout_p=0.0)
    assert got == sdpa_expected(2, 4, 5, 7, 8, 6, masked=causal, hkv=hkv)


def test_sdpa_mask_is_read_and_added() -> None:
    q = spec(1, 2, 3, 4)
    mask = spec(3, 3, dtype=torch.bool)
    got = cost(F.scaled_dot_product_attention, (q, q, q, mask), (q,), attn_mask=mask, dropout_p=0.0)
    plain = sdpa_expected(1, 2, 3, 3, 4, 4, masked=True)
    assert got == Cost(plain.flops, plain.macs, plain.dmas + 9)


def test_sdpa_dropout_adds_one_flop_per_score() -> None:
    q = spec(1, 2, 3, 4)
    base = cost(F.scaled_dot_product_attention, (q, q, q), (q,), dropout_p=0.0)
    dropped = cost(F.scaled_dot_product_attention, (q, q, q), (q,), dropout_p=0.1)
    assert dropped.flops - base.flops == 2 * 3 * 3
    assert dropped.macs == base.macs


def test_flash_cpu_spelling_counts_the_output_only() -> None:
    q = spec(1, 2, 3, 4)
    got = cost(aten._scaled_dot_product_flash_attention_for_cpu.default, (q, q, q), (q, spec(1, 2, 3)))
    assert got == cost(F.scaled_dot_product_attention, (q, q, q), (q,))


def mha_macs(b: int, length: int, keys: int, e: int, kdim: int, vdim: int) -> int:
    return (
        b * length * e * e + b * keys * kdim * e + b * keys * vdim * e + 2 * b * length * keys * e + b * length * e * e
    )


def test_mha_table_batch_first_and_kdim() -> None:
    attrs = {"embed_dim": 8, "num_heads": 2, "kdim": 6, "vdim": 4, "batch_first": True, "in_proj_bias": spec(24)}
    got = cost(nn.MultiheadAttention, (spec(3, 5, 8), spec(3, 7, 6), spec(3, 7, 4)), (spec(3, 5, 8),), **attrs)
    assert got.macs == mha_macs(3, 5, 7, 8, 6, 4)


def test_mha_returned_weights_are_averaged_over_heads() -> None:
    attrs = {"embed_dim": 8, "num_heads": 2, "kdim": 8, "vdim": 8, "batch_first": False}
    x = spec(5, 3, 8)
    without = cost(nn.MultiheadAttention, (x, x, x), (x,), **attrs)
    averaged = cost(nn.MultiheadAttention, (x, x, x), (x, spec(3, 5, 5)), **attrs)
    per_head = cost(nn.MultiheadAttention, (x, x, x), (x, spec(3, 2, 5, 5)), **attrs)
    assert averaged == without + Cost(flops=75 * 2, dmas=75)
    assert per_head == without + Cost(dmas=150)


class SelfAttention(nn.Module):
    def __init__(self, mha: nn.MultiheadAttention, need_weights: bool) -> None:
        super().__init__()
        self.mha = mha
        self.need_weights = need_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mha(x, x, x, need_weights=self.need_weights)[0]


class CrossAttention(nn.Module):
    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        self.mha = mha

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.mha(q, k, v, need_weights=False)[0]


@settings(max_examples=15, deadline=None)
@given(
    heads=st.integers(1, 3),
    head_dim=st.integers(1, 4),
    length=st.integers(1, 6),
    batch=st.integers(1, 2),
    bias=st.booleans(),
    batch_first=st.booleans(),
    need_weights=st.booleans(),
    grad=st.booleans(),
)
def test_mha_oracle(
    heads: int, head_dim: int, length: int, batch: int, bias: bool, batch_first: bool, need_weights: bool, grad: bool
) -> None:
    embed = heads * head_dim
    model = SelfAttention(nn.MultiheadAttention(embed, heads, bias=bias, batch_first=batch_first), need_weights).eval()
    shape = (batch, length, embed) if batch_first else (length, batch, embed)
    expected = torch_flops(model, torch.randn(shape))
    with torch.set_grad_enabled(grad):
        report = crawl_module(model, shape, batch_size=None)
    assert report.totals.complete
    assert report.totals.macs * 2 == expected


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.integers(1, 4), st.integers(1, 4))
def test_mha_cross_attention_oracle(heads: int, length: int, keys: int, kdim: int, vdim: int) -> None:
    embed = 2 * heads
    model = CrossAttention(nn.MultiheadAttention(embed, heads, kdim=kdim, vdim=vdim)).eval()
    shapes = [(length, 2, embed), (keys, 2, kdim), (keys, 2, vdim)]
    expected = torch_flops(model, *(torch.randn(s) for s in shapes))
    report = crawl_module(model, shapes, batch_size=None)
    assert report.totals.macs * 2 == expected == 2 * mha_macs(2, length, keys, embed, kdim, vdim)


class Attend(nn.Module):
    def __init__(self, causal: bool, gqa: bool, masked: bool) -> None:
        super().__init__()
        self.causal, self.gqa, self.masked = causal, gqa, masked

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril() if self.masked else None
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal, enable_gqa=self.gqa)


@st.composite
def attention_shapes(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], bool, bool, bool]:
    batch = draw(st.integers(1, 2))
    kv_heads = draw(st.integers(1, 3))
    group = draw(st.integers(1, 3))
    length = draw(st.integers(1, 7))
    keys = draw(st.integers(1, 7))
    e, ev = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    causal = draw(st.booleans())
    masked = not causal and draw(st.booleans())
    q = (batch, kv_heads * group, length, e)
    return q, (batch, kv_heads, keys, e), (batch, kv_heads, keys, ev), causal, group > 1, masked


@settings(max_examples=25, deadline=None)
@given(attention_shapes())
def test_sdpa_random_shapes(case: tuple) -> None:
    q, k, v, causal, gqa, masked = case
    model = Attend(causal, gqa, masked)
    expected = torch_flops(model, torch.randn(q), torch.randn(k), torch.randn(v))
    report = crawl_module(model, [q, k, v], batch_size=None)
    assert report.totals.complete
    node = next(c for c in report_costs(report) if c[0] == "scaled_dot_product_attention")
    assert node[1].macs * 2 == expected
    # closed form: scores · (E + Ev), whatever the mask, causality or grouping
    assert node[1].macs == q[0] * q[1] * q[2] * k[2] * (q[3] + v[3])
    assert node[1].flops > node[1].macs  # softmax and the adds are FLOPs only


def report_costs(report: object) -> list[tuple[str, Cost]]:
    from torchscan.ops import DEFAULT_REGISTRY
    from torchscan.records import RECORD

    out = []
    for _, data in report.records.nodes(data=True):  # type: ignore[attr-defined]
        record = data[RECORD]
        if record.call is not None and record.produces_tensor:
            formula = DEFAULT_REGISTRY.lookup(record.call.target)
            if formula is not None:
                out.append((record.type_name, formula(record.call)))
    return out


class Wrap(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_transformer_encoder_is_traced_through(norm_first: bool, grad: bool) -> None:
    layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True, norm_first=norm_first)
    model = Wrap(nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)).eval()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    with torch.set_grad_enabled(grad):
        report = crawl_module(model, (6, 16))
    assert torch.backends.mha.get_fastpath_enabled() == fastpath
    assert report.totals.complete
    expected = torch_flops(model, torch.randn(1, 6, 16)) // 2
    layer_norms = 2 * 2 * 6 * 16 * 2  # two LayerNorms per layer, N_in·(1 + affine) MACs
    assert report.totals.macs == expected + layer_norms
    types = {record.type_name for record in report_costs_types(report)}
    assert {"MultiheadAttention", "Linear", "LayerNorm"} <= types


def report_costs_types(report: object) -> list:
    from torchscan.records import RECORD

    return [data[RECORD] for _, data in report.records.nodes(data=True)]  # type: ignore[attr-defined]


class Decode(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.inner(x, memory)


def test_transformer_decoder_is_traced_through() -> None:
    model = Decode(nn.TransformerDecoder(nn.TransformerDecoderLayer(16, 2, 32), 2)).eval()
    report = crawl_module(model, [(5, 2, 16), (7, 2, 16)], batch_size=None)
    assert report.totals.complete
    expected = torch_flops(model, torch.randn(5, 2, 16), torch.randn(7, 2, 16)) // 2
    layer_norms = 2 * 3 * 5 * 2 * 16 * 2
    assert report.totals.macs == expected + layer_norms


VIT_B16_MACS = 17_563_828_224


@pytest.mark.parametrize("no_grad", [False, True])
def test_vit_b_16_attention_is_counted(no_grad: bool) -> None:
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.vit_b_16().eval()
    with torch.set_grad_enabled(not no_grad):
        report = crawl_module(model, (3, 224, 224))
    assert report.totals.complete, report.diagnostics
    counted = sum(c.macs for name, c in report_costs(report) if name in ("Conv2d", "Linear", "MultiheadAttention"))
    assert counted == VIT_B16_MACS


def test_full_transformer_is_counted_through_its_layers() -> None:
    """nn.Transformer branches on shapes (fx cannot trace it): the recorded forward captures it and
    its MACs equal FlopCounterMode's FLOPs / 2 plus the LayerNorm MACs (2 per element, affine)."""
    model = nn.Transformer(
        d_model=32, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=64, batch_first=True
    ).eval()
    report = crawl_module(model, [(10, 32), (7, 32)])
    assert report.totals.complete and report.context.capture == "eager-record"
    flops = torch_flops(model, torch.randn(1, 10, 32), torch.randn(1, 7, 32))
    layer_norm_macs = 2 * 32 * (10 * (2 * 2 + 1) + 7 * (2 * 3 + 1))
    assert report.totals.macs == flops // 2 + layer_norm_macs
