"""Scaled dot-product attention as PyTorch's math backend writes it.

Per query row: scores ``sⱼ = (q·kⱼ)·scale`` (a dot product of length ``E`` and a multiply), plus
the mask (``+ mask``; a boolean or causal mask is an additive ``0``/``−∞`` mask, as the math
backend turns it into one), softmax over the ``S`` keys (``5S − 2``), then ``Σⱼ pⱼ·vⱼ`` per output
feature (a dot product of length ``S``). Scores and probabilities stay in registers: only ``q``,
``k``, ``v``, the mask and the output are memory.
"""

from __future__ import annotations

import math

import torch

from tests.reference.counting import Counted, Num, Sink, Source, Tally, dot, exp, indices, maximum
from tests.reference.linear import linear

__all__ = ["multihead_attention", "scaled_dot_product_attention"]


def _at(index: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    tail = index[len(index) - len(shape) :]
    return tuple(0 if size == 1 else i for i, size in zip(tail, shape, strict=True))


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Counted:
    """``softmax(q kᵀ·scale + mask) v`` over ``(.., H, L, E)`` queries; with ``enable_gqa`` the
    ``Hkv`` key/value heads serve ``Hq / Hkv`` query heads each."""
    tally = Tally()
    q, k, v = Source("query", query, tally), Source("key", key, tally), Source("value", value, tally)
    mask = Source("mask", attn_mask, tally) if attn_mask is not None else None
    *lead, length, features = query.shape
    keys, value_features = key.shape[-2], value.shape[-1]
    group = query.shape[-3] // key.shape[-3] if enable_gqa else 1
    factor = scale if scale is not None else 1.0 / math.sqrt(features)
    out = Sink("output", (*lead, length, value_features), tally)
    for batch in indices(lead):
        kv = (*batch[:-1], batch[-1] // group)
        for i in range(length):
            scores: list[Num] = []
            for j in range(keys):
                score = dot((q[(*batch, i, e)], k[(*kv, j, e)]) for e in range(features)) * factor
                if mask is not None:
                    entry = mask[_at((*batch, i, j), mask.shape)]
                    if attn_mask is not None and attn_mask.dtype == torch.bool:
                        entry = Num(0.0 if entry.value else -math.inf, tally)  # a selection, no arithmetic
                    score = score + entry
                elif is_causal:
                    score = score + (0.0 if j <= i else -math.inf)
                scores.append(score)
            top = scores[0]
            for score in scores[1:]:
                top = maximum(top, score)
            powers = [exp(score - top) for score in scores]
            total = powers[0]
            for power in powers[1:]:
                total = total + power
            probabilities = [power / total for power in powers]
            for c in range(value_features):
                out[(*batch, i, c)] = dot((p, v[(*kv, j, c)]) for j, p in enumerate(probabilities))
    return Counted(out.tensor(), tally)


def multihead_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, module: torch.nn.MultiheadAttention
) -> Counted:
    """``nn.MultiheadAttention(query, key, value, need_weights=False)`` (no masks, no extra keys) as
    its parts: the q / k / v projections (:func:`~tests.reference.linear.linear`), attention on
    ``H`` heads of ``E/H`` features, the output projection. Each part writes its output and the next
    reads it; splitting and merging heads are views. Tensors are named ``part.tensor`` (``q_proj``,
    ``k_proj``, ``v_proj``, ``attention``, ``out_proj``)."""
    if not module.batch_first and query.ndim == 3:
        query, key, value = (t.transpose(0, 1) for t in (query, key, value))
    embed, heads = module.embed_dim, module.num_heads
    if module.in_proj_weight is not None:
        weights = module.in_proj_weight.split(embed)
    else:
        weights = (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight)
    biases = module.in_proj_bias.split(embed) if module.in_proj_bias is not None else (None, None, None)
    parts = {
        name: linear(tensor, weight, bias)
        for name, tensor, weight, bias in zip(
            ("q_proj", "k_proj", "v_proj"), (query, key, value), weights, biases, strict=True
        )
    }

    def split(t: torch.Tensor) -> torch.Tensor:  # (B, L, E) -> (B, H, L, E/H)
        return t.unflatten(-1, (heads, embed // heads)).transpose(-3, -2)

    attended = scaled_dot_product_attention(*(split(parts[name].output) for name in ("q_proj", "k_proj", "v_proj")))
    merged = attended.output.transpose(-3, -2).flatten(-2)
    projected = linear(merged, module.out_proj.weight, module.out_proj.bias)
    output = projected.output if module.batch_first or query.ndim < 3 else projected.output.transpose(0, 1)
    tally = Tally.of(
        **{name: part.tally for name, part in parts.items()}, attention=attended.tally, out_proj=projected.tally
    )
    return Counted(output, tally)
