"""``nn.MultiheadAttention``: the same outputs and attention weights as FakeTensor dispatch, or declined."""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn import functional as F

from tests.graph.rules.helpers import assert_same_views, check, laid_out
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
    rank=st.sampled_from([3, 4, 5]),
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
    heads-first, or a chunk of a fused projection: its dims in order with gaps), with 3, 4 or 5 dims
    (windows of heads: one more batch dim): meta answers any strides (its math path makes a contiguous
    result), CPU a query laid out in order, a transposed 4-D query where its flash kernel runs (the result
    laid out as the query) and a 5-D one (the math path); the everyday calls are answered."""
    (query_heads, kv_heads), (length, source), (embed, value_embed) = heads, lengths, dims

    def tensor(device: str, heads: int, rows: int, columns: int, layout: str) -> torch.Tensor:
        if layout == "chunk":  # q, k or v of one projection: (…, rows, 3 * columns)[..., :columns]
            shape = {3: (2 * heads, rows), 4: (2, heads, rows), 5: (2, 3, heads, rows)}[rank] + (3 * columns,)
            return torch.empty(shape, dtype=dtype, device=device)[..., columns : 2 * columns]
        if rank == 3:
            made = torch.empty(2 * heads, rows, columns, dtype=dtype, device=device)
            return made.transpose(0, 1).contiguous().transpose(0, 1) if layout == "swap" else made
        outer = (2,) if rank == 4 else (2, 3)
        made = torch.empty(*outer, rows, heads, columns, dtype=dtype, device=device).transpose(-3, -2)
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
                "float": torch.empty(1, length, source, dtype=dtype, device=device),  # broadcast to any rank
                "square": torch.empty(length, length, dtype=torch.bool, device=device),
                "wide": torch.empty(3, length, source, dtype=torch.bool, device=device),
            }
            outcome = check(F.scaled_dot_product_attention, (q, k, v, masks.get(mask or "")), kwargs)
            cpu_flash = rank == 4 and embed == value_embed and dropout == 0 and not gqa  # a transposed q too
            everyday = (
                dtype.is_floating_point
                and (device == "meta" or transposed[0] != "swap" or cpu_flash or rank == 5)
                and not (rank == 5 and gqa)
                and query_heads == kv_heads
                and mask in (None, "bool")
                and not (causal and mask)
            )
            assert outcome == "answered" or not everyday, (device, transposed, outcome)


@settings(max_examples=examples(40))
@example(  # a projection by a 1×1 convolution, transposed (cpubone's attention): the math path
    dtype=torch.float32,
    sizes=(1, 2, 3, 3),
    embeds=(4, 4),
    layouts=("head_dim_strided",) * 3,
    mask=None,
    dropout=0.0,
    causal=False,
    grads=(False, False, False),
)
@given(
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.float16]),
    sizes=st.tuples(st.integers(1, 2), st.sampled_from([1, 2, 4]), st.integers(1, 4), st.integers(1, 4)),
    embeds=st.sampled_from([(4, 4), (2, 2), (4, 8)]),
    layouts=st.tuples(*[st.sampled_from(["heads_inner", "qkv", "chunk", "plain", "head_dim_strided"])] * 3),
    mask=st.sampled_from([None, "bool", "float", "heads", "grad", "grad_2d", "three_d"]),
    dropout=st.sampled_from([0.0, 0.2]),
    causal=st.booleans(),
    grads=st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_scaled_dot_product_attention_of_a_transposed_query_on_cpu(
    dtype: torch.dtype,
    sizes: tuple[int, int, int, int],
    embeds: tuple[int, int],
    layouts: tuple[str, str, str],
    mask: str | None,
    dropout: float,
    causal: bool,
    grads: tuple[bool, bool, bool],
) -> None:
    """CPU, q laid out heads inner (a transposed or fused ``qkv`` projection) or with its head dim strided
    (a 1×1 convolution's output, transposed): as dispatch lays the result out — ``q``'s layout where the
    flash kernel runs, contiguous where a mask requiring grad, value heads of another size or a strided
    head dim send the call to the math path — or declined; both are answered."""
    batch, heads, length, source = sizes
    embed, value_embed = embeds

    def tensor(rows: int, columns: int, layout: str) -> torch.Tensor:
        if layout == "heads_inner":
            return torch.empty(batch, rows, heads, columns, dtype=dtype).transpose(1, 2)
        if layout == "qkv":
            return torch.empty(batch, rows, 3, heads, columns, dtype=dtype).permute(2, 0, 3, 1, 4)[1]
        if layout == "chunk":
            return torch.empty(batch, heads, rows, 3 * columns, dtype=dtype)[..., columns : 2 * columns]
        if layout == "head_dim_strided":
            return torch.empty(batch, heads, columns, rows, dtype=dtype).transpose(-1, -2)
        return torch.empty(batch, heads, rows, columns, dtype=dtype)

    with FakeTensorMode():
        q = tensor(length, embed, layouts[0] if layouts[0] in ("qkv", "head_dim_strided") else "heads_inner")
        k, v = tensor(source, embed, layouts[1]), tensor(source, value_embed, layouts[2])
        for t, wanted in zip((q, k, v), grads, strict=True):
            t.requires_grad_(wanted)
        masks = {
            "bool": torch.empty(length, source, dtype=torch.bool),
            "float": torch.empty(1, heads, length, source, dtype=dtype),
            "heads": torch.empty(batch, heads, length, 1, dtype=torch.bool),
            "grad": torch.empty(batch, 1, length, source, dtype=dtype, requires_grad=True),
            "grad_2d": torch.empty(length, source, dtype=dtype, requires_grad=True),
            "three_d": torch.empty(heads, length, source, dtype=dtype),
        }
        given_mask = masks.get(mask or "")
        kwargs = {"dropout_p": dropout, "is_causal": causal and given_mask is None}
        outcome = check(F.scaled_dot_product_attention, (q, k, v, given_mask), kwargs)
    flash_or_math = dropout == 0 and mask != "three_d"  # value heads of another size: the math path
    assert outcome == "answered" or not flash_or_math, outcome


def _shifted(score: torch.Tensor, batch: torch.Tensor, head: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> Any:
    """An ALiBi-like ``score_mod``: a bias of the distance, per head."""
    return score + (q - k) * (head + 1)


def _causal(batch: torch.Tensor, head: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> Any:
    return q >= k


@settings(max_examples=examples(12), deadline=None)
@given(
    heads=st.sampled_from([(2, 2), (4, 2), (4, 1)]),
    lengths=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    dims=st.sampled_from([(8, 8), (8, 4)]),
    returns=st.sampled_from(["out", "lse", "aux"]),
    score_mod=st.booleans(),
    masked=st.booleans(),
    data=st.data(),
)
def test_flex_attention_answers_as_the_op_runs(
    heads: tuple[int, int],
    lengths: tuple[int, int],
    dims: tuple[int, int],
    returns: str,
    score_mod: bool,
    masked: bool,
    data: st.DataObject,
) -> None:
    """Against the op itself (CPU, no grad: what eager runs): the result's shape and strides for every layout of
    the query (the result laid out in its dims order, the last innermost), grouped-query heads, the log-sum-exp and
    max scores where asked (``return_lse``, ``return_aux``), with and without a ``score_mod`` and a block mask."""
    from torch.nn.attention import flex_attention as flex

    (query_heads, kv_heads), (length, source), (embed, value_embed) = heads, lengths, dims
    q = laid_out([2, query_heads, length, embed], data).normal_()
    k, v = torch.randn(2, kv_heads, source, embed), torch.randn(2, kv_heads, source, value_embed)
    kwargs: dict[str, Any] = {"enable_gqa": query_heads != kv_heads}
    kwargs |= {"score_mod": _shifted} if score_mod else {}
    kwargs |= (
        {"block_mask": flex.create_block_mask(_causal, None, None, length, source, device="cpu")} if masked else {}
    )
    kwargs |= {
        "out": {},
        "lse": {"return_lse": True},
        "aux": {"return_aux": flex.AuxRequest(lse=True)},
    }[returns]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # run outside torch.compile, and return_lse's deprecation
        expected = flex.flex_attention(q, k, v, **kwargs)
    mode = FakeTensorMode()
    fakes = [mode.from_tensor(t) for t in (q, k, v)]
    rule = RULES.rule_for(flex.flex_attention)
    assert rule is not None
    got = answer(rule, flex.flex_attention, tuple(fakes), kwargs)
    assert got is not None
    got_all = got if isinstance(got, tuple) else (got,)
    expected_all = expected if isinstance(expected, tuple) else (expected,)
    assert isinstance(got, tuple) == isinstance(expected, tuple) and len(got_all) == len(expected_all)
    for mine, theirs in zip(got_all, expected_all, strict=True):
        if isinstance(theirs, tuple):  # AuxOutput
            assert type(mine) is type(theirs)
            for a, b in zip(mine, theirs, strict=True):
                assert (a is None) == (b is None)
                assert a is None or (a.shape, a.dtype) == (b.shape, b.dtype)
            continue
        assert (mine.shape, mine.stride(), mine.dtype) == (theirs.shape, theirs.stride(), theirs.dtype)


def test_flex_attention_declines_what_torch_refuses() -> None:
    """Heads that do not group (no ``enable_gqa``, or not a multiple), other batch sizes without a block mask, a
    block mask made for other lengths, mixed dtypes, 3-D tensors, max scores on CPU: declined (torch's error then)."""
    from torch.nn.attention import flex_attention as flex

    mode = FakeTensorMode()
    with mode:
        q, kv = torch.empty(2, 4, 8, 8), torch.empty(2, 2, 8, 8)
        other = torch.empty(3, 4, 8, 8)
        mask = flex.create_block_mask(_causal, None, None, 16, 16, device="cpu", _compile=False)
    rule = RULES.rule_for(flex.flex_attention)
    assert rule is not None
    declined = [
        ((q, kv, kv), {}),
        ((q, kv[:, :1].expand(2, 3, 8, 8), kv[:, :1].expand(2, 3, 8, 8)), {"enable_gqa": True}),
        ((q, other, other), {}),
        ((q, q, q), {"block_mask": mask}),
        ((q, q.half(), q), {}),
        ((q[0], q[0], q[0]), {}),
        ((q, q, q), {"return_lse": True, "return_aux": flex.AuxRequest(lse=True)}),
        ((q, q, q), {"return_aux": flex.AuxRequest(max_scores=True)}),  # CPU refuses max scores
    ]
    for args, kwargs in declined:
        assert answer(rule, flex.flex_attention, args, kwargs) is None, kwargs


@settings(max_examples=examples(12), deadline=None)
@given(
    batch=st.sampled_from([None, 1, 2]),
    heads=st.sampled_from([None, 3]),
    lengths=st.tuples(st.integers(1, 300), st.integers(1, 300)),
    block=st.sampled_from([128, 64, (32, 64)]),
    separate=st.booleans(),
)
def test_create_block_mask_answers_as_the_function_makes_its_mask(
    batch: int | None, heads: int | None, lengths: tuple[int, int], block: Any, separate: bool
) -> None:
    """Against ``create_block_mask`` itself (CPU): every tensor of the mask of the same shape and dtype, the same
    lengths, block sizes and ``mask_mod``; the rule never calls the ``mask_mod``."""
    from torch.nn.attention import flex_attention as flex

    length, source = lengths
    kwargs = {"device": "cpu", "BLOCK_SIZE": block, "separate_full_blocks": separate}
    expected = flex.create_block_mask(_causal, batch, heads, length, source, **kwargs)

    def never(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> Any:
        raise AssertionError("the rule called the mask_mod")

    rule = RULES.rule_for(flex.create_block_mask)
    assert rule is not None
    with FakeTensorMode():
        got = answer(rule, flex.create_block_mask, (never, batch, heads, length, source), kwargs)
    assert type(got) is flex.BlockMask and got.mask_mod is never
    for mine, theirs in zip(got.as_tuple()[:-1], expected.as_tuple()[:-1], strict=True):
        if isinstance(theirs, torch.Tensor):
            assert (mine.shape, mine.dtype, mine.device) == (theirs.shape, theirs.dtype, theirs.device)
        else:
            assert mine == theirs
