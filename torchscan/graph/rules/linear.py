"""Shape rules of linear layers, matrix products and embeddings."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils._mode_utils import no_dispatch

from torchscan.graph.fake import fake_tensor
from torchscan.graph.rules.common import SEQUENCES, bound, broadcast, fresh, meta_stand_in, one_input, strided_fake
from torchscan.graph.rules.table import Answer, Fresh, RuleTable

__all__ = ["TABLE"]

TABLE = RuleTable("linear")


def _same_kind(x: Any, *others: Any) -> bool:
    """``x`` a fake of any strides, every other tensor None or of its dtype and device."""
    return strided_fake(x) and all(
        other is None or (other.dtype == x.dtype and other.device == x.device) for other in others
    )


@TABLE.register(nn.Linear)
def _linear(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.Linear``: ``(*, in_features) -> (*, out_features)``, a new contiguous tensor whatever the
    input's strides (a permuted or sliced input: the product folds it)."""
    x = args[0] if len(args) == 1 and not kwargs else None
    weight = module.weight
    if x is None or not _same_kind(x, weight, module.bias) or x.dim() == 0 or not x.dtype.is_floating_point:
        return None
    if weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        return None
    return fresh((*x.shape[:-1], weight.shape[0]), x)


@TABLE.register(torch.ao.nn.quantized.dynamic.Linear)
def _dynamic_linear(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """torch.ao's dynamically quantized ``Linear`` (a packed int8 or float16 weight; float32 in and out):
    ``(*, in_features) -> (*, out_features)``, a new contiguous float32 tensor (its kernels have no fake one); its
    kernels refuse an input of fewer than two dims."""
    x = args[0] if len(args) == 1 and not kwargs else None
    if x is None or not strided_fake(x) or x.dim() < 2 or x.dtype != torch.float32 or x.device.type != "cpu":
        return None
    if x.shape[-1] != module.in_features:
        return None
    return fresh((*x.shape[:-1], module.out_features), x)


@TABLE.register(F.linear)
def _linear_function(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``F.linear(x, weight, bias=None)``: ``(*, in) -> (*, out)``, a new contiguous tensor whatever the
    input's strides."""
    extra = dict(kwargs)
    values = list(args) + [extra.pop(name) for name in ("input", "weight", "bias")[len(args) :] if name in extra]
    if extra or not 2 <= len(values) <= 3:
        return None
    x, weight = values[0], values[1]
    bias = values[2] if len(values) == 3 else None
    if not _same_kind(x, weight, bias) or x.dim() == 0 or not x.dtype.is_floating_point:
        return None
    if weight.dim() != 2 or x.shape[-1] != weight.shape[1] or (bias is not None and bias.shape != weight.shape[:1]):
        return None
    return fresh((*x.shape[:-1], weight.shape[0]), x)


@TABLE.register(torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, operator.matmul)
def _matmul(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``a @ b`` for tensors of rank ≥ 2 (same dtype and device, any strides): batch dims
    broadcast, ``(…, n, k) @ (…, k, m) -> (…, n, m)``, a new contiguous tensor."""
    if len(args) != 2 or kwargs:
        return None
    a, b = args
    if not strided_fake(a) or not strided_fake(b):
        return None
    if a.dim() < 2 or b.dim() < 2 or a.dtype != b.dtype or a.device != b.device or not a.dtype.is_floating_point:
        return None
    if a.shape[-1] != b.shape[-2]:
        return None
    batch = broadcast([a.shape[:-2], b.shape[:-2]]) if max(a.dim(), b.dim()) > 2 else ()
    if batch is None:
        return None
    return fresh((*batch, a.shape[-2], b.shape[-1]), a)


@TABLE.register(torch.einsum)
def _einsum(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``torch.einsum(equation, *operands)`` (or the operands as one list) of fakes of one floating dtype and
    device, any strides: torch's own einsum run on plain meta tensors of the operands' shapes and strides
    (its contraction order, permutes and products by their meta kernels, ~40 µs, where the FakeTensor
    dispatch takes ~2 ms), so the result has dispatch's shape and strides, a new storage wrapped as a fake
    without an autograd graph, as every rule's result. A result einsum makes as a view of an operand
    (``"ij->ji"``) is left to the dispatch, which knows the operand's storage."""
    if kwargs or len(args) < 2 or type(args[0]) is not str:
        return None
    operands = args[1] if len(args) == 2 and type(args[1]) in SEQUENCES else args[1:]
    if not operands or not all(strided_fake(operand) for operand in operands):
        return None
    first = operands[0]
    if not first.dtype.is_floating_point or not all(_same_kind(first, operand) for operand in operands):
        return None
    with no_dispatch(), torch.no_grad():
        stand_ins = [meta_stand_in(operand, first.device) for operand in operands]
        try:
            out = function(args[0], *stand_ins)
        except (RuntimeError, ValueError, IndexError):  # torch's own error comes from the dispatch
            return None
        if not isinstance(out, torch.Tensor) or any(
            out.untyped_storage()._cdata == stand_in.untyped_storage()._cdata for stand_in in stand_ins
        ):
            return None
    return fake_tensor(first.fake_mode, out, first.device)


@TABLE.register(torch.addmm)
def _addmm(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``torch.addmm(input, mat1, mat2, *, beta=1, alpha=1)``: ``beta * input + alpha * mat1 @ mat2`` for
    ``(n, k) @ (k, m)`` matrices (any strides) and an ``input`` broadcast to ``(n, m)``, all of one
    floating dtype and device: a new contiguous ``(n, m)`` tensor."""
    if len(args) != 3 or set(kwargs) - {"beta", "alpha"}:
        return None
    if not all(type(value) in (int, float) for value in kwargs.values()):
        return None
    bias, a, b = args
    if not (strided_fake(bias) and _same_kind(a, bias, b)) or not a.dtype.is_floating_point:
        return None
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        return None
    shape = (a.shape[0], b.shape[1])
    if broadcast([bias.shape, shape]) != shape:
        return None
    return fresh(shape, a)


@TABLE.register(torch._grouped_mm, F.grouped_mm)
def _grouped_mm(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``grouped_mm(a, b, offs=None)`` (mixture-of-experts layers), one floating dtype and device, ``G`` groups:
    2-D ``(m, k)`` × 3-D ``(G, k, n)`` with ``G`` offsets -> ``(m, n)``; 3-D ``(G, m, k)`` × 2-D ``(k, n)`` ->
    ``(m, n)``; 2-D ``(m, K)`` × 2-D ``(K, n)`` with ``G`` offsets -> ``(G, m, n)``; 3-D × 3-D (no offsets) ->
    ``(G, m, n)``: a new tensor of ``a``'s dtype (torch's meta kernel admits bfloat16 and float16 only, as the CUDA
    kernel does, where the CPU kernel runs float32 too: the rule answers for every floating dtype). A bias or
    another output dtype: not answered."""
    found = bound(("mat_a", "mat_b", "offs", "bias", "out_dtype"), args, kwargs)
    if found is None or "mat_a" not in found or "mat_b" not in found or found.get("bias") is not None:
        return None
    a, b, offs = found["mat_a"], found["mat_b"], found.get("offs")
    if found.get("out_dtype") not in (None, a.dtype):
        return None
    if not _same_kind(a, b) or not a.dtype.is_floating_point or a.dim() not in (2, 3) or b.dim() not in (2, 3):
        return None
    if a.dim() == 3 and b.dim() == 3:
        if offs is not None or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
            return None
        return fresh((a.shape[0], a.shape[1], b.shape[2]), a)
    if not strided_fake(offs) or offs.dim() != 1 or offs.dtype != torch.int32 or offs.device != a.device:
        return None
    groups = offs.shape[0]
    if a.dim() == 2 and b.dim() == 2:
        return fresh((groups, a.shape[0], b.shape[1]), a) if a.shape[1] == b.shape[0] else None
    if a.dim() == 2:  # b: (G, k, n)
        return fresh((a.shape[0], b.shape[2]), a) if b.shape[0] == groups and a.shape[1] == b.shape[1] else None
    return fresh((a.shape[1], b.shape[1]), a) if a.shape[0] == groups and a.shape[2] == b.shape[0] else None


@TABLE.register(nn.Embedding)
def _embedding(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.Embedding`` (without ``max_norm``, which renormalises rows in place): integer ids
    ``(*)`` -> ``(*, embedding_dim)`` in the weight's dtype."""
    ids = one_input(args, kwargs)
    weight = module.weight
    if ids is None or ids.dtype not in (torch.int64, torch.int32) or module.max_norm is not None:
        return None
    if weight.dim() != 2 or weight.device != ids.device or not weight.is_contiguous():
        return None
    return Fresh((*(int(size) for size in ids.shape), int(weight.shape[1])), weight.dtype, weight.device)
