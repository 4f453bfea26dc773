"""Shape rule of ``nn.MultiheadAttention`` (its autograd path)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor
from torch.utils._mode_utils import no_dispatch

from torchscan.graph.rules.common import strided_fake
from torchscan.graph.rules.table import Fresh, RuleTable, materialize

__all__ = ["TABLE"]

TABLE = RuleTable("attention")


@TABLE.register(nn.MultiheadAttention)
def _multihead_attention(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """``nn.MultiheadAttention`` on the path taken when autograd records (grad enabled and a
    projection parameter requires grad: never the fused fast path): ``(output, weights)`` with the
    output made as torch makes it, ``linear(…).view(L, N, E)``, transposed to ``(N, L, E)`` when
    ``batch_first``; weights ``(N, L, S)`` (averaged), ``(N, heads, L, S)``, or None."""
    names = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask", "average_attn_weights")
    if len(args) > len(names) or any(name not in (*names, "is_causal") for name in kwargs):
        return None
    if any(name in kwargs for name in names[: len(args)]):  # given twice: torch's error
        return None
    call = {**dict(zip(names, args, strict=False)), **kwargs}
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
