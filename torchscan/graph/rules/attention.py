"""Shape rules of ``nn.MultiheadAttention`` (its autograd path) and ``F.scaled_dot_product_attention``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor
from torch.nn import functional as F
from torch.utils._mode_utils import no_dispatch

from torchscan.graph.rules.common import bound, broadcast, strided_fake
from torchscan.graph.rules.table import Fresh, Pending, RuleTable, materialize

__all__ = ["TABLE"]

TABLE = RuleTable("attention")


@TABLE.register(nn.MultiheadAttention)
def _multihead_attention(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """``nn.MultiheadAttention`` on the path taken when autograd records (grad enabled and a
    projection parameter requires grad: never the fused fast path): ``(output, weights)`` with the
    output made as torch makes it, ``linear(…).view(L, N, E)``, transposed to ``(N, L, E)`` when
    ``batch_first``; weights ``(N, L, S)`` (averaged), ``(N, heads, L, S)``, or None."""
    names = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask", "average_attn_weights")
    call = bound(names, args, kwargs, keywords=("is_causal",))
    if call is None:
        return None
    query, key, value = call.get("query"), call.get("key"), call.get("value")
    if call.get("key_padding_mask") is not None or call.get("attn_mask") is not None or call.get("is_causal", False):
        return None
    weight = module.in_proj_weight
    if not (module._qkv_same_embed_dim and weight is not None and module.bias_k is None and module.bias_v is None):
        return None
    if module.add_zero_attn or not torch.is_grad_enabled():
        return None
    projections = (weight, module.in_proj_bias, module.out_proj.weight, module.out_proj.bias)
    if not any(t is not None and t.requires_grad for t in projections):
        return None
    tensors = (query, key, value)
    if not all(strided_fake(t) and t.dim() == 3 for t in tensors):
        return None
    if any(t.dtype != weight.dtype or t.device != weight.device for t in tensors):
        return None
    embed, batch = module.embed_dim, 0 if module.batch_first else 1
    if query.shape[-1] != embed or key.shape != value.shape or key.shape[-1] != embed:
        return None
    if query.shape[batch] != key.shape[batch]:
        return None
    batches, length, source = query.shape[batch], query.shape[1 - batch], key.shape[1 - batch]
    mode = query.fake_mode
    output = materialize(Fresh((length, batches, embed), query.dtype, query.device), mode)
    if module.batch_first:
        with no_dispatch(), torch.no_grad():
            view = output.as_strided(output.shape, output.stride()).transpose(1, 0)
        output = FakeTensor(mode, view, query.device)
    need, average = call.get("need_weights", True), call.get("average_attn_weights", True)
    if not need:
        return output, None
    shape = (batches, length, source) if average else (batches, module.num_heads, length, source)
    return output, materialize(Fresh(shape, query.dtype, query.device), mode)


def _laid_out_in_order(tensor: Any) -> bool:
    """Whether ``torch.empty_like(tensor)`` is contiguous (its dims laid out in order, gaps or not:
    a chunk of a fused ``qkv`` projection), asked of a plain meta tensor of its sizes and strides."""
    if type(tensor) is Pending:
        return True
    with no_dispatch():
        return torch.empty_like(torch.empty_strided(tensor.shape, tensor.stride(), device="meta")).is_contiguous()


_SDPA_NAMES = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
_SDPA_DEVICES = frozenset({"cpu", "meta"})
"""Devices whose kernels give a contiguous result: meta's (the math path: ``softmax(q·kᵀ)·v``) for
any layout, CPU's where ``q``'s dims are laid out in order (its flash kernel makes the result
``empty_like(q)``: a transposed ``q`` gives a transposed result, a chunk of a fused projection a
contiguous one; its math path a contiguous one); CUDA's flash and memory-efficient kernels lay it
out by heads: torch decides there."""


@TABLE.register(F.scaled_dot_product_attention)
def _scaled_dot_product_attention(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """``F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa)``
    on ``q (…, L, E)``, ``k (…, S, E)``, ``v (…, S, Ev)`` of one floating dtype on meta (any strides) or
    CPU (contiguous): a new contiguous ``(…, L, Ev)`` tensor. Batch sizes equal (query heads a multiple of the
    key/value heads with ``enable_gqa``, 4-D); a mask boolean or of the query's dtype, broadcasting to
    ``(…, L, S)``, and not with ``is_causal``; anything else is torch's."""
    call = bound(_SDPA_NAMES, args, kwargs)
    if call is None:
        return None
    query, key, value, mask = call.get("query"), call.get("key"), call.get("value"), call.get("attn_mask")
    causal, gqa, scale = call.get("is_causal", False), call.get("enable_gqa", False), call.get("scale")
    dropout = call.get("dropout_p", 0.0)
    if type(causal) is not bool or type(gqa) is not bool or type(dropout) not in (int, float) or not 0 <= dropout <= 1:
        return None
    if scale is not None and type(scale) not in (int, float):
        return None
    tensors = (query, key, value)
    if not all(strided_fake(t) for t in tensors) or query.device.type not in _SDPA_DEVICES:
        return None
    if query.device.type == "cpu" and not _laid_out_in_order(query):  # CPU's flash kernel keeps q's layout
        return None
    if not query.dtype.is_floating_point or any(t.dtype != query.dtype or t.device != query.device for t in tensors):
        return None
    rank = query.dim()
    if rank not in (3, 4) or key.dim() != rank or value.dim() != rank:
        return None
    if 0 in (*query.shape, *key.shape, *value.shape):
        return None
    if query.shape[-1] != key.shape[-1] or key.shape[:-1] != value.shape[:-1] or query.shape[0] != key.shape[0]:
        return None
    if rank == 4 and query.shape[1] != key.shape[1] and not (gqa and query.shape[1] % key.shape[1] == 0):
        return None
    if mask is not None:
        if causal or not strided_fake(mask) or mask.device != query.device:
            return None
        if mask.dtype not in (torch.bool, query.dtype):
            return None
        scores = (*query.shape[:-1], key.shape[-2])
        if mask.dim() > rank or broadcast([tuple(mask.shape), scores]) != scores:
            return None
    return Fresh((*query.shape[:-1], value.shape[-1]), query.dtype, query.device)
