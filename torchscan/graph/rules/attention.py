"""Shape rules of ``nn.MultiheadAttention`` (its autograd path), ``F.scaled_dot_product_attention``,
``flex_attention`` and ``create_block_mask``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch._guards import detect_fake_mode
from torch.nn import functional as F
from torch.nn.attention import flex_attention as _flex
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


_FLEX_NAMES = (
    "query",
    "key",
    "value",
    "score_mod",
    "block_mask",
    "scale",
    "enable_gqa",
    "return_lse",
    "kernel_options",
)


@TABLE.register(_flex.flex_attention)
def _flex_attention(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """``flex_attention(q, k, v, score_mod, block_mask, scale, enable_gqa, return_lse, kernel_options, *,
    return_aux)`` on 4-D ``q [B, Hq, L, E]``, ``k [B, Hkv, S, E]``, ``v [B, Hkv, S, Ev]`` of one floating dtype and
    device (``Hkv = Hq``, or a divisor of it with ``enable_gqa``); a block mask (if any) made for ``L`` queries and
    ``S`` keys: its result ``[B, Hq, L, Ev]`` laid out in ``q``'s dims order (the last dim innermost), as the
    kernels lay it out, with the float32 log-sum-exp (and max scores) ``[B, Hq, L]`` it returns where asked
    (``return_lse``, ``return_aux``; max scores not on CPU, which refuses them). Answered from shapes: the function
    itself compiles its kernel and warns once per process when run outside ``torch.compile``. Inputs that require
    grad are answered too (CPU's eager path refuses a backward, the kernels a model with it is written for run one).
    Anything else is torch's."""
    call = bound(_FLEX_NAMES, args, kwargs, keywords=("return_aux",))
    if call is None:
        return None
    query, key, value = call.get("query"), call.get("key"), call.get("value")
    gqa, lse, aux = call.get("enable_gqa", False), call.get("return_lse", False), call.get("return_aux")
    scale, score_mod, block_mask = call.get("scale"), call.get("score_mod"), call.get("block_mask")
    if type(gqa) is not bool or type(lse) is not bool or (lse and aux is not None):
        return None
    if (aux is not None and type(aux) is not _flex.AuxRequest) or (
        scale is not None and type(scale) not in (int, float)
    ):
        return None
    if aux is not None and aux.max_scores and query.device.type == "cpu":  # refused there
        return None
    if score_mod is not None and not callable(score_mod):
        return None
    tensors = (query, key, value)
    if not all(strided_fake(t) and t.dim() == 4 for t in tensors) or not query.dtype.is_floating_point:
        return None
    if any(t.dtype != query.dtype or t.device != query.device for t in tensors):
        return None
    (batch, heads, length, dim), (_, kv_heads, source, _) = query.shape, key.shape
    if 0 in (*query.shape, *key.shape, *value.shape) or key.shape[-1] != dim or key.shape[:-1] != value.shape[:-1]:
        return None
    if key.shape[0] != batch or (kv_heads != heads and not (gqa and heads % kv_heads == 0)):
        return None
    if block_mask is not None and not _fits(block_mask, query, length, source):
        return None
    shape = (*query.shape[:-1], value.shape[-1])
    if type(query) is Pending:  # new, contiguous: so is the result
        out = materialize(Fresh(shape, query.dtype, query.device), query.fake_mode)
    else:
        with no_dispatch():
            made = torch.empty_strided(shape, _fill_strides(shape, query.stride()), dtype=query.dtype, device="meta")
        out = fake_tensor(query.fake_mode, made, query.device)
    stats = (batch, heads, length)
    if lse:
        return out, materialize(Fresh(stats, torch.float32, query.device), query.fake_mode)
    if aux is not None:
        made = [
            materialize(Fresh(stats, torch.float32, query.device), query.fake_mode) if asked else None for asked in aux
        ]
        return out, _flex.AuxOutput(*made)
    return out


def _fits(block_mask: Any, query: Any, length: int, source: int) -> bool:
    """Whether ``block_mask`` is a :class:`BlockMask` on the query's device made for ``length`` queries and ``source``
    keys (its own sizes), for the query's batch or for every batch (1): what torch checks of it."""
    if type(block_mask) is not _flex.BlockMask or tuple(block_mask.seq_lengths) != (length, source):
        return False
    blocks = block_mask.kv_num_blocks
    return blocks.device == query.device and blocks.dim() == 3 and blocks.shape[0] in (1, query.shape[0])


def _fill_strides(shape: tuple[int, ...], like: tuple[int, ...]) -> tuple[int, ...]:
    """Contiguous strides of ``shape`` with its dims laid out in the order of ``like``'s strides (the smallest
    innermost, ties by position), the last dim moved innermost where it is not: the attention kernels' layout
    (``torch._higher_order_ops.flex_attention._permute_strides``)."""
    order = sorted(range(len(shape)), key=lambda dim: (like[dim], -dim))  # innermost first
    if order[0] != len(shape) - 1:
        order.remove(len(shape) - 1)
        order.insert(0, len(shape) - 1)
    strides, size = [0] * len(shape), 1
    for dim in order:
        strides[dim] = size
        size *= shape[dim]
    return tuple(strides)


_BLOCK_MASK_NAMES = (
    "mask_mod",
    "B",
    "H",
    "Q_LEN",
    "KV_LEN",
    "device",
    "BLOCK_SIZE",
    "_compile",
    "separate_full_blocks",
    "compute_dq_write_order",
    "dq_kv_order",
)


@TABLE.register(_flex.create_block_mask)
def _create_block_mask(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """``create_block_mask(mask_mod, B, H, Q_LEN, KV_LEN, device, BLOCK_SIZE, …)``: the :class:`BlockMask` it makes,
    its block counts and indices fake int32 tensors of its shapes (``[B', H', n_q]``, ``[B', H', n_q, n_kv]``, the
    full blocks' alike unless ``separate_full_blocks=False``; ``B``, ``H`` None: 1), made as torch makes the mask
    from them (``BlockMask.from_kv_blocks``). The ``mask_mod`` is never called (it may read tensors of the trace: a
    document mask's ids), nor compiled (``_compile``). A write order asked for (``compute_dq_write_order``) is
    torch's."""
    call = bound(_BLOCK_MASK_NAMES, args, kwargs)
    if call is None or call.get("compute_dq_write_order", False) or not callable(call.get("mask_mod")):
        return None
    sizes = [call.get(name) for name in ("B", "H", "Q_LEN", "KV_LEN")]
    if any(size is not None and type(size) is not int for size in sizes) or None in sizes[2:]:
        return None
    block = call.get("BLOCK_SIZE", 128)
    blocks = (block, block) if type(block) is int else tuple(block)
    if len(blocks) != 2 or any(type(size) is not int or size < 1 for size in blocks):
        return None
    mode = detect_fake_mode()
    if mode is None:
        return None
    batch, heads, length, source = sizes[0] or 1, sizes[1] or 1, sizes[2], sizes[3]
    device = torch.device(call.get("device") or torch.accelerator.current_accelerator() or "cpu")
    q_blocks, kv_blocks = -(-length // blocks[0]), -(-source // blocks[1])

    def indices(*shape: int) -> Any:
        with no_dispatch():
            made = torch.empty(shape, dtype=torch.int32, device="meta")
        return fake_tensor(mode, made, device)

    full = bool(call.get("separate_full_blocks", True))
    counts, positions = indices(batch, heads, q_blocks), indices(batch, heads, q_blocks, kv_blocks)
    with mode:
        return _flex.BlockMask.from_kv_blocks(
            counts,
            positions,
            indices(batch, heads, q_blocks) if full else None,
            indices(batch, heads, q_blocks, kv_blocks) if full else None,
            BLOCK_SIZE=blocks,
            mask_mod=call.get("mask_mod"),
            seq_lengths=(length, source),
        )
