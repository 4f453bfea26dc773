"""Attention against the counting reference (``tests/reference/attention.py``) and the
FlopCounterMode oracle: SDPA (mask, causal, GQA) and MultiheadAttention tables, random shapes,
Transformer layers traced through, ViT-B/16.

Conventions (``torchscan/ops/attention.py``): FLOPs and MACs are the reference's literal counts —
``q kᵀ`` and ``attn v`` in full, the scale, the (causal or given) mask added, the stable softmax —
and DMAs count a fused kernel: ``q``, ``k``, ``v`` and the mask read once per element, the output
written once, the scores never in memory (departure from a naive kernel's re-reads, which the
reference's ``Tally.reads`` shows). MultiheadAttention is its parts: four Linear projections and the
attention on ``H`` heads, each part's output written and read by the next.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn.attention import flex_attention as flex
from torch.utils.flop_counter import sdpa_flop_count

from tests.ops.helpers import assert_same, cost, function_cost, module_cost, randn, spec, torch_flops
from tests.reference import attention as reference
from tests.reference.counting import Counted
from torchscan import crawl_module
from torchscan.records import Cost

aten = torch.ops.aten


def expected(counted: Counted) -> Cost:
    """The convention on the reference's counts: FLOPs and MACs literal, every tensor read once."""
    tally = counted.tally
    return Cost(flops=tally.flops, macs=tally.macs, dmas=tally.dmas(once=tally.sources))


@st.composite
def attention_inputs(draw: st.DrawFn) -> dict:
    """q, k, v of an SDPA call (batch, heads, grouped-query heads, lengths, head sizes) and a
    boolean or float mask, causality, or neither."""
    batch, kv_heads, group = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    length, keys = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    e, ev = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31))
    q = randn(seed, batch, kv_heads * group, length, e)
    k, v = randn(seed + 1, batch, kv_heads, keys, e), randn(seed + 2, batch, kv_heads, keys, ev)
    kind = draw(st.sampled_from(["none", "causal", "bool", "float"]))
    mask = None
    if kind == "bool":  # every row keeps its first key: no row is masked whole
        mask = randn(seed + 3, length, keys) > 0
        mask[:, 0] = True
    elif kind == "float":
        mask = randn(seed + 3, batch, 1, length, keys)
    return {"q": q, "k": k, "v": v, "mask": mask, "causal": kind == "causal", "gqa": group > 1}


@given(attention_inputs())
def test_sdpa_counts_as_the_reference(case: dict) -> None:
    q, k, v, mask, causal, gqa = (case[key] for key in ("q", "k", "v", "mask", "causal", "gqa"))
    counted = reference.scaled_dot_product_attention(q, k, v, mask, causal, enable_gqa=gqa)
    kwargs = {"attn_mask": mask, "is_causal": causal, "enable_gqa": gqa}
    assert_same(counted.output, F.scaled_dot_product_attention(q, k, v, **kwargs))
    assert function_cost(F.scaled_dot_product_attention, q, k, v, **kwargs) == expected(counted)


def test_a_hand_worked_sdpa() -> None:
    """1 head, 2 queries, 3 keys, E = 2, Ev = 1, causal: 6 scores, each a 2-product dot (3 FLOPs,
    2 MACs), scaled (1) and masked (1): 30; softmax of 2 rows of 3: 2·(2 + 3 + 3 + 2 + 3) = 26;
    outputs 2 dot products of 3 (5 FLOPs, 3 MACs): 10. FLOPs 66, MACs 12 + 6 = 18;
    DMAs q 4 + k 6 + v 3 + output 2 = 15."""
    q, k, v = randn(0, 1, 1, 2, 2), randn(1, 1, 1, 3, 2), randn(2, 1, 1, 3, 1)
    counted = reference.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert expected(counted) == Cost(flops=66, macs=18, dmas=15)
    assert function_cost(F.scaled_dot_product_attention, q, k, v, is_causal=True) == Cost(flops=66, macs=18, dmas=15)


@pytest.mark.parametrize("target", [F.scaled_dot_product_attention, aten.scaled_dot_product_attention.default])
def test_sdpa_spellings_with_a_mask(target: object) -> None:
    """q (1, 2, 3, 4), boolean mask (3, 3): 18 scores of 4-product dots (7 FLOPs, 4 MACs): 126;
    scale 18, mask 18; softmax 6 rows of 3: 6·13 = 78; outputs 24 dots of 3 (5 FLOPs, 3 MACs): 120.
    FLOPs 360, MACs 72 + 72 = 144; DMAs q, k, v 24 each + mask 9 + output 24 = 105."""
    q, mask = spec(1, 2, 3, 4), spec(3, 3, dtype=torch.bool)
    got = cost(target, (q, q, q, mask), (q,), attn_mask=mask, dropout_p=0.0)
    assert got == Cost(flops=360, macs=144, dmas=105)


def test_sdpa_dropout_adds_one_flop_per_score() -> None:
    q = spec(1, 2, 3, 4)
    base = cost(F.scaled_dot_product_attention, (q, q, q), (q,), dropout_p=0.0)
    dropped = cost(F.scaled_dot_product_attention, (q, q, q), (q,), dropout_p=0.1)
    assert dropped.flops - base.flops == 2 * 3 * 3
    assert dropped.macs == base.macs


def test_flash_cpu_spelling_counts_the_output_only() -> None:
    """The fused CPU kernel also returns the log-sum-exp (1, 2, 3): not counted."""
    q = randn(0, 1, 2, 3, 4)
    counted = reference.scaled_dot_product_attention(q, q, q)
    got = cost(
        aten._scaled_dot_product_flash_attention_for_cpu.default,
        (spec(1, 2, 3, 4),) * 3,
        (spec(1, 2, 3, 4), spec(1, 2, 3)),
    )
    assert got == expected(counted)


@st.composite
def multihead(draw: st.DrawFn) -> tuple[nn.MultiheadAttention, tuple[torch.Tensor, ...]]:
    heads = draw(st.integers(1, 2))
    embed = heads * draw(st.integers(1, 2))
    kdim = draw(st.sampled_from([None, 1, 3]))
    batch_first = draw(st.booleans())
    module = nn.MultiheadAttention(
        embed, heads, bias=draw(st.booleans()), kdim=kdim, vdim=kdim, batch_first=batch_first, dtype=torch.float64
    ).eval()
    batch, length, keys = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31))

    def sequence(n: int, features: int, offset: int) -> torch.Tensor:
        return randn(seed + offset, *((batch, n) if batch_first else (n, batch)), features)

    return module, (sequence(length, embed, 0), sequence(keys, kdim or embed, 1), sequence(keys, kdim or embed, 2))


@given(multihead())
def test_multihead_attention_counts_as_its_parts(case: tuple[nn.MultiheadAttention, tuple[torch.Tensor, ...]]) -> None:
    module, (query, key, value) = case
    counted = reference.multihead_attention(query, key, value, module)
    with torch.no_grad():
        assert_same(counted.output, module(query, key, value, need_weights=False)[0])
        assert module_cost(module, query, key, value, need_weights=False) == expected(counted)


@given(multihead(), st.booleans())
def test_mha_functional_path_equals_the_module_path(
    case: tuple[nn.MultiheadAttention, tuple[torch.Tensor, ...]], need_weights: bool
) -> None:
    """``F.multi_head_attention_forward`` called directly (WavLM does) was an unknown op; the module's formula."""
    module, inputs = case
    first = [t.transpose(0, 1) for t in inputs] if module.batch_first else list(inputs)  # the function's layout
    weights = (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight)
    with torch.no_grad():
        by_module = module_cost(module, *inputs, need_weights=need_weights)
        by_function = function_cost(
            F.multi_head_attention_forward,
            *first,
            module.embed_dim,
            module.num_heads,
            module.in_proj_weight,
            module.in_proj_bias,
            module.bias_k,
            module.bias_v,
            module.add_zero_attn,
            module.dropout,
            module.out_proj.weight,
            module.out_proj.bias,
            training=False,
            need_weights=need_weights,
            use_separate_proj_weight=not module._qkv_same_embed_dim,
            q_proj_weight=weights[0],
            k_proj_weight=weights[1],
            v_proj_weight=weights[2],
        )
    assert by_function == by_module


def test_mha_returned_weights_are_averaged_over_heads() -> None:
    """Returned weights (3, 5, 5) averaged over 2 heads: 1 add and 1 division each (150 FLOPs) and
    written (75); per head (3, 2, 5, 5): written only (150)."""
    attrs = {"embed_dim": 8, "num_heads": 2, "kdim": 8, "vdim": 8, "batch_first": False}
    x = spec(5, 3, 8)
    without = cost(nn.MultiheadAttention, (x, x, x), (x,), **attrs)
    averaged = cost(nn.MultiheadAttention, (x, x, x), (x, spec(3, 5, 5)), **attrs)
    per_head = cost(nn.MultiheadAttention, (x, x, x), (x, spec(3, 2, 5, 5)), **attrs)
    assert averaged == without + Cost(flops=150, dmas=75)
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
    oracle = torch_flops(model, torch.randn(shape))
    with torch.set_grad_enabled(grad):
        report = crawl_module(model, shape, batch_size=None)
    assert report.totals.complete
    assert report.totals.macs * 2 == oracle


@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.integers(1, 4), st.integers(1, 4))
def test_mha_cross_attention_oracle(heads: int, length: int, keys: int, kdim: int, vdim: int) -> None:
    embed = 2 * heads
    model = CrossAttention(nn.MultiheadAttention(embed, heads, kdim=kdim, vdim=vdim)).eval()
    shapes = [(length, 2, embed), (keys, 2, kdim), (keys, 2, vdim)]
    oracle = torch_flops(model, *(torch.randn(s) for s in shapes))
    report = crawl_module(model, shapes, batch_size=None)
    assert report.totals.macs * 2 == oracle


@pytest.mark.parametrize(("bias_kv", "zero_attn"), [(True, False), (False, True), (True, True)])
def test_mha_extra_keys_oracle(bias_kv: bool, zero_attn: bool) -> None:
    """``add_bias_kv`` and ``add_zero_attn`` each append one key (and value) after the projections:
    the scores and the weighted sum run over S + 1 (or S + 2) keys; MACs = FlopCounterMode / 2."""
    model = CrossAttention(nn.MultiheadAttention(4, 2, add_bias_kv=bias_kv, add_zero_attn=zero_attn)).eval()
    shapes = [(3, 2, 4), (5, 2, 4), (5, 2, 4)]
    oracle = torch_flops(model, *(torch.randn(s) for s in shapes))
    report = crawl_module(model, shapes, batch_size=None)
    assert report.totals.complete
    assert report.totals.macs * 2 == oracle


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


@given(attention_shapes())
def test_sdpa_random_shapes(case: tuple) -> None:
    q, k, v, causal, gqa, masked = case
    model = Attend(causal, gqa, masked)
    expected_flops = torch_flops(model, torch.randn(q), torch.randn(k), torch.randn(v))
    report = crawl_module(model, [q, k, v], batch_size=None)
    assert report.totals.complete
    node = next(c for c in report_costs(report) if c[0] == "scaled_dot_product_attention")
    assert node[1].macs * 2 == expected_flops
    tensors = [randn(seed, *shape) for seed, shape in enumerate((q, k, v))]
    mask = torch.ones(q[2], k[2], dtype=torch.bool).tril() if masked else None
    counted = reference.scaled_dot_product_attention(*tensors, mask, causal, enable_gqa=gqa)
    assert_same(counted.output, model(*tensors))
    assert node[1] == expected(counted)  # the call as the analysis recorded it, end to end


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
    oracle = torch_flops(model, torch.randn(1, 6, 16)) // 2
    layer_norms = 2 * 2 * 6 * 16 * 2  # two LayerNorms per layer, N_in·(1 + affine) MACs
    assert report.totals.macs == oracle + layer_norms
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
    oracle = torch_flops(model, torch.randn(5, 2, 16), torch.randn(7, 2, 16)) // 2
    layer_norms = 2 * 3 * 5 * 2 * 16 * 2
    assert report.totals.macs == oracle + layer_norms


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
    """nn.Transformer branches on shapes: traced with the sizes it reads (the graph specialized to
    them), its MACs equal FlopCounterMode's FLOPs / 2 plus the LayerNorm MACs (2 per element, affine)."""
    model = nn.Transformer(
        d_model=32, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=64, batch_first=True
    ).eval()
    report = crawl_module(model, [(10, 32), (7, 32)])
    assert report.totals.complete and report.context.capture == "torch.fx"
    assert [d.code for d in report.diagnostics] == ["shape-specialized"]
    flops = torch_flops(model, torch.randn(1, 10, 32), torch.randn(1, 7, 32))
    layer_norm_macs = 2 * 32 * (10 * (2 * 2 + 1) + 7 * (2 * 3 + 1))
    assert report.totals.macs == flops // 2 + layer_norm_macs


def _module_cross_attention(q: object, kv: object, outputs: tuple[object, ...]) -> object:
    """nn.MultiheadAttention's cost on the native fast path tests' shapes (E = 4, 2 heads, batch first)."""
    return cost(
        nn.MultiheadAttention,
        (q, kv, kv),
        outputs,
        embed_dim=4,
        num_heads=2,
        kdim=4,
        vdim=4,
        batch_first=True,
        in_proj_bias=spec(12),
        dropout=0.0,
    )


def test_native_fast_path_cross_attention() -> None:
    """``aten._native_multi_head_attention`` (the eval fast path) with 3 queries against 5 keys,
    E = 4, 2 heads, batch 2: MACs q projection 2·3·16 = 96, k and v 2·5·16 = 160 each, scores and
    values 2·(2·3·5·4) = 240, output projection 96: 752 — and every count as nn.MultiheadAttention's
    formula on the same shapes."""
    q, kv, out = spec(2, 3, 4), spec(2, 5, 4), spec(2, 3, 4)
    weights = (spec(12, 4), spec(12), spec(4, 4), spec(4))
    native = cost(
        torch.ops.aten._native_multi_head_attention.default,
        (q, kv, kv, *weights),
        (out,),
        embed_dim=4,
        num_head=2,
        qkv_bias=spec(12),
        need_weights=False,
    )
    assert native.macs == 752
    module = _module_cross_attention(q, kv, (out,))
    assert native == module


def test_native_fast_path_returning_averaged_weights() -> None:
    """The fast path asked for its weights (batch 2, 3 queries, 5 keys, averaged over the 2 heads:
    a (2, 3, 5) result) counts the averaging as nn.MultiheadAttention does, on top of the 752 MACs
    of the cross-attention above; FLOPs and DMAs grow, MACs do not."""
    q, kv, out, averaged = spec(2, 3, 4), spec(2, 5, 4), spec(2, 3, 4), spec(2, 3, 5)
    weights = (spec(12, 4), spec(12), spec(4, 4), spec(4))
    native = {
        need: cost(
            torch.ops.aten._native_multi_head_attention.default,
            (q, kv, kv, *weights),
            (out, averaged if need else spec(0)),
            embed_dim=4,
            num_head=2,
            qkv_bias=spec(12),
            need_weights=need,
            average_attn_weights=True,
        )
        for need in (False, True)
    }
    module = _module_cross_attention(q, kv, (out, averaged))
    assert native[True] == module
    assert native[True].macs == native[False].macs == 752
    assert native[True].flops > native[False].flops and native[True].dmas > native[False].dmas


def _flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """The real ``flex_attention`` (CPU, no grad: eager runs it outside ``torch.compile``, warning once)."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        return flex.flex_attention(q, k, v, **kwargs)


@given(attention_inputs())
def test_flex_attention_counts_as_sdpa(case: dict) -> None:
    """Dense, no modification: the reference's SDPA (same output, same counts); its MACs are PyTorch's
    flex-attention formula's (``sdpa_flop_count`` / 2). A causal block mask counts as SDPA's causal call (one
    FLOP a score, and the same output); a ``score_mod`` adding a bias as SDPA's float mask of that bias."""
    q, k, v, gqa = (case[key] for key in ("q", "k", "v", "gqa"))
    counted = reference.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)
    assert_same(counted.output, _flex(q, k, v, enable_gqa=gqa))
    got = function_cost(flex.flex_attention, q, k, v, enable_gqa=gqa)
    assert got == expected(counted)
    assert 2 * got.macs == sdpa_flop_count(q.shape, k.shape, v.shape)
    length, keys = q.shape[-2], k.shape[-2]
    if length == keys:  # a causal block mask: torch's is the top-left square, as SDPA's is_causal
        mask = flex.create_block_mask(lambda b, h, i, j: i >= j, None, None, length, keys, device="cpu", _compile=False)
        causal = reference.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        assert_same(causal.output, _flex(q, k, v, block_mask=mask, enable_gqa=gqa))
        masked = function_cost(flex.flex_attention, q, k, v, block_mask=mask, enable_gqa=gqa)
        assert (masked.flops, masked.macs, masked.dmas) == (expected(causal).flops, got.macs, got.dmas)
    bias = torch.arange(length)[:, None] - torch.arange(keys)[None, :]
    biased = reference.scaled_dot_product_attention(q, k, v, bias.to(q.dtype), enable_gqa=gqa)

    def shifted(score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> Any:
        return score + (i - j)

    assert_same(biased.output, _flex(q, k, v, score_mod=shifted, enable_gqa=gqa))
    modified = function_cost(flex.flex_attention, q, k, v, score_mod=shifted, enable_gqa=gqa)
    assert (modified.flops, modified.macs, modified.dmas) == (expected(biased).flops, got.macs, got.dmas)


def test_a_hand_worked_flex_attention() -> None:
    """q (1, 2, 3, 4) against k, v (1, 2, 5, 4), the log-sum-exp returned: 30 scores of 4-product dots (7 FLOPs, 4
    MACs): 210; scale 30; softmax 6 rows of 5: 6·(5·5 − 2) = 138; outputs 24 dots of 5 (9 FLOPs, 5 MACs): 216.
    FLOPs 594, MACs 120 + 120 = 240; DMAs q 24 + k 40 + v 40 + output 24 + log-sum-exp 6 = 134."""
    q, kv = spec(1, 2, 3, 4), spec(1, 2, 5, 4)
    got = cost(flex.flex_attention, (q, kv, kv), (q, spec(1, 2, 3)), return_lse=True)
    assert got == Cost(flops=594, macs=240, dmas=134)


def test_a_hand_worked_block_mask() -> None:
    """``create_block_mask`` for 2 batches, every head (1), 200 queries and 300 keys in blocks of 128: 120,000
    positions (the ``mask_mod`` at each, then summed per block: 240,000 FLOPs), 2 × 3 blocks; written: block counts
    and indices of the partial and full blocks, by query blocks (2 + 2·3) and by key blocks (3 + 3·2), twice (full
    blocks apart), per batch: 2·2·(2 + 3 + 2·6) = 68 elements; read and written densely 240,000."""
    attrs = {"mask_mod": None, "B": 2, "H": None, "Q_LEN": 200, "KV_LEN": 300}
    assert cost(flex.create_block_mask, (), (), **attrs) == Cost(flops=240_000, dmas=240_068)
