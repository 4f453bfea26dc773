"""Attention: ``F.scaled_dot_product_attention`` and ``nn.MultiheadAttention`` (all spellings).

Scaled dot-product attention of queries ``[.., Hq, L, E]`` against keys ``[.., Hkv, S, E]`` and
values ``[.., Hkv, S, Ev]`` (grouped-query attention broadcasts the ``Hkv`` heads over ``Hq``)
with ``Q = batch·Hq·L·S`` scores:

- ``MACs = Q·E + Q·Ev`` (``q @ kᵀ`` and ``attn @ v``, counted in full even when causal, as the
  math and FlopCounterMode do);
- ``FLOPs = Q·(2E − 1) + Q (scale) + Q·[mask or causal] + (5·Q − 2·R) (softmax, R = batch·Hq·L)
  + Q·[dropout] + batch·Hq·L·Ev·(2S − 1)``;
- ``DMAs = N_q + N_k + N_v + N_mask + N_out`` (a fused kernel: the scores are not materialised).

``nn.MultiheadAttention`` (``E`` = embed_dim, ``H`` heads, query length ``L``, key length ``S``,
``S' = S + [bias_kv] + [add_zero_attn]``) is counted as its four projections (Linear formulas)
plus the attention above on ``H`` heads of size ``E/H``, plus averaging the returned attention
weights over heads when they are returned averaged (``B·L·S'·H`` FLOPs, their write). Its MACs are
``B·L·E² (q) + B·S·kdim·E (k) + B·S·vdim·E (v) + 2·B·L·S'·E (scores, values) + B·L·E² (out)``,
whether eval runs the fused fast path or not: formulas work from shapes.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import flex_attention as _flex
from torch.nn.modules import transformer as _transformer

from torchscan.ops.common import argument
from torchscan.ops.registry import FormulaTable, Saves
from torchscan.records import Cost, OpCall, TensorSpec
from torchscan.records.frozen import frozen_record

TABLE = FormulaTable("attention")

aten = torch.ops.aten


@frozen_record
class AttentionShape:
    """One attention: ``batch`` (all leading dims, query heads included), lengths and head sizes."""

    batch: int
    queries: int
    keys: int
    head_dim: int
    value_dim: int
    masked: bool = False
    dropout: bool = False

    @property
    def scores(self) -> int:
        return self.batch * self.queries * self.keys


def attention_core(shape: AttentionShape) -> Cost:
    """FLOPs and MACs of ``softmax(q kᵀ · scale + mask) v`` (module docstring); no DMAs."""
    scores = shape.scores
    rows = shape.batch * shape.queries
    qk_flops = scores * (2 * shape.head_dim - 1)
    av_flops = rows * shape.value_dim * (2 * shape.keys - 1)
    softmax_flops = 5 * scores - 2 * rows
    flops = qk_flops + scores + scores * shape.masked + softmax_flops + scores * shape.dropout + av_flops
    return Cost(flops=flops, macs=scores * (shape.head_dim + shape.value_dim))


def _training(call: OpCall) -> bool:
    return bool(call.get("training", call.training))


def _heads(
    query: TensorSpec, key: TensorSpec, value: TensorSpec, masked: bool, dropout: bool = False
) -> AttentionShape:
    """The :class:`AttentionShape` of ``q [.., L, E]``, ``k [.., S, E]``, ``v [.., S, Ev]`` (every leading dim of
    the query a batch)."""
    return AttentionShape(
        batch=math.prod(query.shape[:-2]),
        queries=query.shape[-2],
        keys=key.shape[-2],
        head_dim=query.shape[-1],
        value_dim=value.shape[-1],
        masked=masked,
        dropout=dropout,
    )


@TABLE.register(
    F.scaled_dot_product_attention,
    aten.scaled_dot_product_attention.default,
    aten._scaled_dot_product_flash_attention_for_cpu.default,
    aten._scaled_dot_product_efficient_attention.default,
    aten._scaled_dot_product_flash_attention.default,
    aten._scaled_dot_product_cudnn_attention.default,
    aten._scaled_dot_product_attention_math.default,
)
def scaled_dot_product_attention(call: OpCall) -> Cost:
    """SDPA (module docstring): ``MACs = Q·(E + Ev)``; ``FLOPs = Q·(2E − 1) + Q + Q·[mask or causal]
    + 5·Q − 2·R + Q·[dropout] + batch·Hq·L·Ev·(2S − 1)``; ``DMAs = N_q + N_k + N_v + N_mask + N_out``.
    ``Q = batch·Hq·L·S`` (GQA: keys and values shared by query groups are read once)."""
    query, key, value = call.inputs[:3]
    mask = call.inputs[3] if len(call.inputs) > 3 else None
    dropout = float(argument(call, "dropout_p", None, 0.0)) > 0
    masked = mask is not None or bool(argument(call, "is_causal", None, False))
    shape = _heads(query, key, value, masked, dropout)
    reads = query.numel + key.numel + value.numel + (mask.numel if mask is not None else 0)
    return attention_core(shape) + Cost(dmas=reads + call.output.numel)


_EMPTY_MASK_BYTES = 16
"""The block mask ``flex_attention`` makes when given none: one block, four int32 index tensors of one element."""


def flex_statistics(call: OpCall) -> int:
    """Bytes ``flex_attention``'s kernel makes beside its result and keeps for the backward (in inference, frees as
    it returns): the float32 log-sum-exp and max score of each of its ``R = B·Hq·L`` query rows, ``8·R``, plus
    ``16`` for the one-block mask it makes where given no block mask. A log-sum-exp it returns is another tensor
    (the kernels' statistics are base 2, scaled on return), counted as a result."""
    rows = math.prod(call.inputs[0].shape[:-1])
    return 8 * rows + _EMPTY_MASK_BYTES * (argument(call, "block_mask", 4) is None)


@TABLE.register(_flex.flex_attention, saves=Saves.ATTENTION, saves_extra=flex_statistics)
def flex_attention(call: OpCall) -> Cost:
    """``flex_attention(q, k, v, score_mod, block_mask, …)`` on ``q [B, Hq, L, E]``, ``k [B, Hkv, S, E]``,
    ``v [B, Hkv, S, Ev]``: the SDPA formula, dense (every block, as SDPA's causal calls and FlopCounterMode
    count it), with ``Q = B·Hq·L·S`` and ``R = B·Hq·L``: ``MACs = Q·(E + Ev)``; ``FLOPs = Q·(2E − 1) + Q (scale)
    + Q·[score_mod] + Q·[block_mask] + 5·Q − 2·R + B·Hq·L·Ev·(2S − 1)``; ``DMAs = N_q + N_k + N_v + N_out``
    (``N_out``: every tensor it returns, the log-sum-exp and max scores when asked for). A ``score_mod`` and a
    block mask's ``mask_mod`` are user functions of each score: one FLOP a score each (their own ops are not
    read); the block mask's index tensors are not counted."""
    query, key, value = call.inputs[:3]
    score_mod = argument(call, "score_mod", 3) is not None
    block_mask = argument(call, "block_mask", 4) is not None
    shape = _heads(query, key, value, masked=score_mod)
    written = sum(spec.numel for spec in call.outputs)
    return attention_core(shape) + Cost(
        flops=shape.scores * block_mask, dmas=query.numel + key.numel + value.numel + written
    )


def _linear(rows: int, fan_in: int, fan_out: int, bias: bool) -> Cost:
    """``rows`` tokens through a Linear ``fan_in → fan_out`` (the Linear formula)."""
    n_out = rows * fan_out
    params = fan_in * fan_out + fan_out * bias
    return Cost(flops=n_out * (2 * fan_in - 1 + bias), macs=n_out * fan_in, dmas=rows * fan_in + params + n_out)


def _tokens(spec: TensorSpec, batch_first: bool) -> tuple[int, int]:
    """``(batch, length)`` of a ``(L, B, E)``/``(B, L, E)`` or unbatched ``(L, E)`` sequence."""
    if spec.ndim < 3:
        return 1, spec.shape[0]
    return (spec.shape[0], spec.shape[1]) if batch_first else (spec.shape[1], spec.shape[0])


@frozen_record
class MultiheadShape:
    batch: int
    queries: int
    keys: int
    embed_dim: int
    kdim: int
    vdim: int
    heads: int
    bias: bool
    extra_keys: int = 0
    masked: bool = False
    dropout: bool = False


def multihead_attention_cost(shape: MultiheadShape, weights: TensorSpec | None, averaged: bool) -> Cost:
    """Projections + attention + output projection (+ returned weights, averaged over heads
    at ``H`` FLOPs per element when ``averaged``), module docstring."""
    b, e = shape.batch, shape.embed_dim
    projections = (
        _linear(b * shape.queries, e, e, shape.bias)
        + _linear(b * shape.keys, shape.kdim, e, shape.bias)
        + _linear(b * shape.keys, shape.vdim, e, shape.bias)
        + _linear(b * shape.queries, e, e, shape.bias)
    )
    keys = shape.keys + shape.extra_keys
    head = e // shape.heads
    core = attention_core(AttentionShape(b * shape.heads, shape.queries, keys, head, head, shape.masked, shape.dropout))
    # the attention reads q, k, v and writes its output (the input of the out projection)
    core_dmas = Cost(dmas=b * shape.queries * e * 2 + 2 * b * keys * e)
    cost = projections + core + core_dmas
    if weights is not None:
        cost = cost + Cost(flops=weights.numel * shape.heads * averaged, dmas=weights.numel)
    return cost


def _sequences(query: TensorSpec, key: TensorSpec, batch_first: bool, **fields: Any) -> MultiheadShape:
    """The :class:`MultiheadShape` of a call on ``query`` and ``key`` (batch, query and key lengths read from
    them), its other ``fields`` as given."""
    batch, queries = _tokens(query, batch_first)
    return MultiheadShape(batch=batch, queries=queries, keys=_tokens(key, batch_first)[1], **fields)


@TABLE.register(nn.MultiheadAttention)
def multihead_attention(call: OpCall) -> Cost:
    """nn.MultiheadAttention (module docstring): ``MACs = B·L·E² + B·S·kdim·E + B·S·vdim·E
    + 2·B·L·S'·E + B·L·E²``; FLOPs and DMAs are the Linear formulas of the four projections plus
    the SDPA formula on ``B·H`` heads, plus ``B·L·S'·H`` FLOPs for head-averaged weights."""
    query, key = call.inputs[0], call.inputs[1] if len(call.inputs) > 1 else call.inputs[0]
    embed_dim = int(call.attrs["embed_dim"])
    shape = _sequences(
        query,
        key,
        bool(call.get("batch_first", False)),
        embed_dim=embed_dim,
        kdim=int(call.get("kdim", embed_dim)),
        vdim=int(call.get("vdim", embed_dim)),
        heads=int(call.attrs["num_heads"]),
        bias=call.spec("in_proj_bias") is not None,
        extra_keys=(call.spec("bias_k") is not None) + bool(call.get("add_zero_attn", False)),
        masked=len(call.inputs) > 3,
        dropout=_training(call) and float(call.get("dropout", 0.0)) > 0,
    )
    weights = call.outputs[1] if len(call.outputs) > 1 else None
    return multihead_attention_cost(shape, weights, averaged=weights is not None and weights.ndim == query.ndim)


@TABLE.register(F.multi_head_attention_forward)
def multi_head_attention_forward(call: OpCall) -> Cost:
    """``F.multi_head_attention_forward`` (nn.MultiheadAttention's forward, called directly: WavLM's gated
    relative-position attention), sequence first: as nn.MultiheadAttention, ``kdim``/``vdim`` the key's and the
    value's features; given keys and values (``static_k``/``static_v``) are declined."""
    if call.spec("static_k") is not None or call.spec("static_v") is not None:
        raise ValueError("multi_head_attention_forward with static keys or values")
    query, key, value = call.inputs[:3]
    shape = _sequences(
        query,
        key,
        False,
        embed_dim=int(argument(call, "embed_dim_to_check", 3)),
        kdim=key.shape[-1],
        vdim=value.shape[-1],
        heads=int(argument(call, "num_heads", 4)),
        bias=call.spec("in_proj_bias") is not None,
        extra_keys=(call.spec("bias_k") is not None) + bool(argument(call, "add_zero_attn", 9, False)),
        masked=call.spec("key_padding_mask") is not None or call.spec("attn_mask") is not None,
        dropout=bool(call.get("training", True)) and float(argument(call, "dropout_p", 10, 0.0)) > 0,
    )
    weights = call.outputs[1] if len(call.outputs) > 1 else None
    return multihead_attention_cost(shape, weights, averaged=weights is not None and weights.ndim == query.ndim)


@TABLE.register(aten._native_multi_head_attention.default)
def native_multi_head_attention(call: OpCall) -> Cost:
    """``aten._native_multi_head_attention`` (the eval fast path, batch first): as
    nn.MultiheadAttention with ``kdim = vdim = E``."""
    embed_dim = int(argument(call, "embed_dim", 2))
    shape = _sequences(
        call.inputs[0],
        call.inputs[1],
        True,
        embed_dim=embed_dim,
        kdim=embed_dim,
        vdim=embed_dim,
        heads=int(argument(call, "num_head", 3)),
        bias=call.spec("qkv_bias") is not None,
        masked=call.spec("mask") is not None,
    )
    weights = call.outputs[1] if len(call.outputs) > 1 and call.outputs[1].numel else None
    averaged = bool(argument(call, "average_attn_weights", 11, True))
    return multihead_attention_cost(shape, weights, averaged=weights is not None and averaged)


TRACE_THROUGH: frozenset[type[nn.Module]] = frozenset(
    {
        nn.Transformer,
        nn.TransformerEncoderLayer,
        nn.TransformerDecoderLayer,
        nn.TransformerEncoder,
        nn.TransformerDecoder,
    }
)
"""Built-in layers traced through rather than counted whole: their sub-modules (MultiheadAttention,
Linear, LayerNorm, Dropout, activation) are leaves with formulas, so each gets its own row.
(``nn.Transformer`` branches on input shapes: the trace reads them from its shape pass, the graph
specialized to them.)"""


def block_mask_shape(call: OpCall) -> tuple[int, int, int, int, int, int]:
    """``(B', H', L, S, Q-blocks, KV-blocks)`` of a ``create_block_mask`` call (``B``, ``H`` None: 1)."""
    batch, heads = argument(call, "B", 1) or 1, argument(call, "H", 2) or 1
    length, source = int(argument(call, "Q_LEN", 3)), int(argument(call, "KV_LEN", 4))
    block = argument(call, "BLOCK_SIZE", 6, 128)
    q_block, kv_block = (block, block) if isinstance(block, int) else tuple(block)
    return int(batch), int(heads), length, source, -(-length // q_block), -(-source // kv_block)


@TABLE.register(_flex.create_block_mask)
def create_block_mask(call: OpCall) -> Cost:
    """``create_block_mask(mask_mod, B, H, L, S)``, as its eager path computes it: the ``mask_mod`` at each of the
    ``N = B'·H'·L·S`` positions (one FLOP each: a user function, not read), the dense mask reduced per block (``N``
    adds and comparisons), the block indices written: ``FLOPs = 2N``, ``MACs = 0``, ``DMAs = 2N + I`` with ``I =
    (1 + [separate full blocks])·B'·H'·(n_q + n_kv + 2·n_q·n_kv)`` index elements (``n_q``, ``n_kv`` blocks)."""
    batch, heads, length, source, q_blocks, kv_blocks = block_mask_shape(call)
    positions = batch * heads * length * source
    separate = bool(argument(call, "separate_full_blocks", 8, True))
    indices = (1 + separate) * batch * heads * (q_blocks + kv_blocks + 2 * q_blocks * kv_blocks)
    return Cost(flops=2 * positions, dmas=2 * positions + indices)


AUTOWRAP_FUNCTIONS: tuple[Any, ...] = tuple(
    function
    for function in (getattr(_transformer, "_get_seq_len", None), _flex.flex_attention, _flex.create_block_mask)
    if function is not None
)
"""Functions fx records as one call instead of tracing into: ``_get_seq_len`` (branches on ``src.is_nested``;
returns sizes, which are free), ``flex_attention`` (a Python function that reads its arguments' metadata and
compiles its kernel: counted whole) and ``create_block_mask`` (runs its ``mask_mod`` over every position)."""

OBJECT_RESULTS: frozenset[Any] = frozenset({_flex.create_block_mask})
"""Calls whose result is an object holding tensors (a ``BlockMask``), not a tensor: counted all the same (a call
returning no tensor is otherwise Python bookkeeping, free)."""
