"""Shape rules of ``nn.MultiheadAttention`` (its autograd path) and ``F.scaled_dot_product_attention``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils._mode_utils import no_dispatch

from torchscan.graph.fake import fake_tensor
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
        with no_dispatch():  # a plain meta alias of the output, as the view rules take one (``shape._view``)
            view = output.detach().transpose(1, 0)
        output = fake_tensor(mode, view, query.device)
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
"""Devices whose result layout the rule knows: meta's (the math path: ``softmax(q·kᵀ)·v``, contiguous)
for any layout; CPU's, contiguous where ``q``'s dims are laid out in order (its flash kernel makes the
result ``empty_like(q)``: a chunk of a fused projection gives a contiguous one; its math path a
contiguous one), else as :func:`_cpu_result` says; CUDA's flash and memory-efficient kernels lay it
out by heads: torch decides there."""


@TABLE.register(F.scaled_dot_product_attention)
def _scaled_dot_product_attention(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """``F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa)``
    on ``q (…, L, E)``, ``k (…, S, E)``, ``v (…, S, Ev)`` of one floating dtype on meta (any strides) or
    CPU (a query laid out in order; else :func:`_cpu_result`): a new contiguous ``(…, L, Ev)`` tensor. Batch
    sizes equal (query heads a multiple of the key/value heads with ``enable_gqa``, 4-D; more than 4 dims:
    every batch size equal, no ``enable_gqa``); a mask boolean or of the query's dtype, broadcasting to
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
    on_cpu_out_of_order = query.device.type == "cpu" and not _laid_out_in_order(query)
    if not query.dtype.is_floating_point or any(t.dtype != query.dtype or t.device != query.device for t in tensors):
        return None
    rank = query.dim()
    if rank < 3 or key.dim() != rank or value.dim() != rank:
        return None
    if 0 in (*query.shape, *key.shape, *value.shape):
        return None
    if query.shape[-1] != key.shape[-1] or key.shape[:-1] != value.shape[:-1] or query.shape[0] != key.shape[0]:
        return None
    if rank == 4 and query.shape[1] != key.shape[1] and not (gqa and query.shape[1] % key.shape[1] == 0):
        return None
    if rank > 4 and (gqa or query.shape[:-2] != key.shape[:-2]):  # more batch dims: equal ones only
        return None
    if mask is not None:
        if causal or not strided_fake(mask) or mask.device != query.device:
            return None
        if mask.dtype not in (torch.bool, query.dtype):
            return None
        scores = (*query.shape[:-1], key.shape[-2])
        if mask.dim() > rank or broadcast([tuple(mask.shape), scores]) != scores:
            return None
    if on_cpu_out_of_order:
        return _cpu_result(query, key, value, mask, dropout, gqa)
    return Fresh((*query.shape[:-1], value.shape[-1]), query.dtype, query.device)


_CPU_FLASH_DTYPES = frozenset({torch.float32, torch.float64, torch.bfloat16, torch.float16})


def _cpu_result(query: Any, key: Any, value: Any, mask: Any, dropout: float, gqa: bool) -> Any:
    """SDPA's result on CPU for a query whose dims are not laid out in order (heads inner: a transposed
    projection; a head dim not last in memory: a projection by a 1×1 convolution), a call already checked
    by :func:`_scaled_dot_product_attention`. CPU's flash kernel takes 4-D calls of one head size and dtype
    (float32/64, bfloat16, float16), equal batch and heads (no ``enable_gqa``), no dropout, every last dim
    of stride 1, a mask (if any) 2-D or 4-D that requires no grad, and makes the result ``empty_like(q)``
    (dense, in q's dims order). Torch takes the math path — a new contiguous result — for a call of more
    than 4 dims, and for a 4-D call otherwise fit for flash (flash enabled, the dtype, batch, heads,
    dropout and mask as above) but for a mask that requires grad, value heads of another size or a last
    dim of stride other than 1. Anything else is torch's (None)."""
    if query.dim() > 4:
        return _math_result(query, value)
    tensors = (query, key, value)
    if not torch._C._get_flash_sdp_enabled() or gqa or dropout != 0 or query.dtype not in _CPU_FLASH_DTYPES:
        return None
    if query.dim() != 4 or query.shape[:2] != key.shape[:2] or key.shape[:2] != value.shape[:2]:
        return None
    graded = mask is not None and mask.requires_grad
    if mask is not None and not graded and mask.dim() not in (2, 4):
        return None
    if graded or value.shape[-1] != query.shape[-1]:
        return _math_result(query, value)
    if any(type(t) is not Pending and t.stride(-1) != 1 for t in tensors):  # a pending tensor is contiguous
        return _math_result(query, value)
    with no_dispatch():
        layout = torch.empty_strided(query.shape, query.stride(), dtype=query.dtype, device="meta")
        result = torch.empty_like(layout)
    return fake_tensor(query.fake_mode, result, query.device)


def _math_result(query: Any, value: Any) -> Fresh | None:
    """What SDPA's math path (``softmax(q·kᵀ)·v``) makes: a new contiguous ``(…, L, Ev)`` tensor; None where
    that path is disabled (torch's error then)."""
    if not torch._C._get_math_sdp_enabled():
        return None
    return Fresh((*query.shape[:-1], value.shape[-1]), query.dtype, query.device)
