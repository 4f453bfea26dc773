"""Output shapes of the most common ops, from their inputs' shapes, without a torch dispatch.

The fast path of the shape pass. FakeTensor dispatch costs 0.3-0.9 ms per op on CPU (more
than the op itself on a small input); these rules answer the common ops (convolutions, norms,
activations, pools, linear, elementwise arithmetic, concatenation) in a few microseconds.

A rule sees the call as the interpreter makes it (the module object for a ``call_module`` node,
else the function, a tensor method for ``call_method``; fake tensors as arguments) and answers:

- :class:`Fresh`: the op returns a new contiguous tensor of that shape, dtype and device;
- a tensor of its arguments: the op returns that very tensor (in place, identity, eval dropout);
- views (``view``, ``reshape``, ``permute``, ``transpose``, slicing, ``chunk``…): the fake tensor(s)
  made by the op's own C++ meta kernel on the argument's meta data (no FakeTensor dispatch), so
  sizes, strides and storage sharing are torch's own — a copying ``reshape``/``contiguous`` gets
  a new storage, a view its base's;
- ``None``: anything unusual (non-contiguous or mixed dtypes or devices, an extra argument, a
  shape torch would reject): the interpreter dispatches the op on fake tensors as before, so
  torch's own checks and error messages stand.

Every rule is checked against FakeTensor dispatch (``tests/graph/test_rules.py``): same shape,
dtype, device, contiguity and the same aliasing, on random configurations and on whole models.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils._mode_utils import no_dispatch

__all__ = ["NO_RULES", "RULES", "Answer", "Fresh", "Rule", "ShapeRules", "answer", "materialize", "strided_fake"]


@dataclass(frozen=True, slots=True)
class Fresh:
    """A new contiguous tensor."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device


Answer = Fresh | torch.Tensor | None
Rule = Callable[[Any, tuple[Any, ...], Mapping[str, Any]], Answer]
"""``rule(target, args, kwargs)``: ``target`` is the module (``call_module``) or the function."""


class ShapeRules:
    """Read-only lookup of rules: module classes by exact type (a subclass may change forward),
    functions and operators by identity.

    ``lazy`` rules are for an optional library's functions: ``(module, load)`` pairs, ``load``
    called at the first lookup miss after ``module`` was imported by someone else (the model),
    so importing torchscan never imports the library.
    """

    def __init__(
        self, entries: Mapping[Any, Rule], lazy: tuple[tuple[str, Callable[[], Mapping[Any, Rule]]], ...] = ()
    ) -> None:
        self._entries: Mapping[Any, Rule] = MappingProxyType(dict(entries))
        self._pending = list(lazy)
        self._loaded: dict[Any, Rule] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def rule_for(self, target: Any) -> Rule | None:
        """The rule of a module object (by its exact class) or of a function."""
        key = type(target) if isinstance(target, nn.Module) else target
        try:
            rule = self._entries.get(key)
            if rule is None and self._pending:
                self._load()
            return rule if rule is not None else self._loaded.get(key)
        except TypeError:  # unhashable target
            return None

    def _load(self) -> None:
        for module, load in [pending for pending in self._pending if pending[0] in sys.modules]:
            self._pending.remove((module, load))
            self._loaded.update(load())


def _plain(value: Any) -> bool:
    """A fake, dense, contiguous tensor."""
    return strided_fake(value) and value.is_contiguous()


def strided_fake(value: Any) -> bool:
    """A fake, dense (strided) tensor, of any strides."""
    return type(value) is FakeTensor and value.layout == torch.strided


def _in_place(x: torch.Tensor) -> torch.Tensor | None:
    """``x`` as the result of an in-place op on it (None where torch refuses: a leaf requiring grad)."""
    return None if x.requires_grad and x.is_leaf else x


def _like(tensor: torch.Tensor, *others: torch.Tensor | None) -> bool:
    """``tensor`` is plain and every other tensor (parameters) matches its dtype and device."""
    return _plain(tensor) and all(
        other is None or (other.dtype == tensor.dtype and other.device == tensor.device) for other in others
    )


def _fresh(shape: Sequence[int], like: torch.Tensor) -> Fresh | None:
    shape = tuple(int(size) for size in shape)
    return Fresh(shape, like.dtype, like.device) if all(size >= 0 for size in shape) else None


def _one_input(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> torch.Tensor | None:
    """The single positional tensor of a module call (``None`` if called otherwise)."""
    return args[0] if len(args) == 1 and not kwargs and _plain(args[0]) else None


def _tuple(value: Any, dims: int) -> tuple[int, ...]:
    return tuple(int(item) for item in value) if isinstance(value, (tuple, list)) else (int(value),) * dims


def _window_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil: bool) -> int:
    """Pool/conv output length: ``⌊(L + 2p − d(k − 1) − 1)/s⌋ + 1`` (``⌈·⌉`` with ``ceil_mode``,
    minus one when the last window would start in the right padding)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + padding:
        out -= 1
    return out


# --- modules -----------------------------------------------------------------------------------


def _conv(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.ConvNd`` (zeros padding): ``(N, C_in, *L) -> (N, C_out, *L_out)``."""
    x = _one_input(args, kwargs)
    weight, dims = module.weight, len(module.kernel_size)
    if module.padding_mode != "zeros":  # reflect/replicate/circular pad first: torch checks the sizes
        return None
    if x is None or x.dim() != dims + 2 or not _like(x, weight, module.bias) or not weight.is_contiguous():
        return None
    if x.shape[1] != module.in_channels or module.in_channels != weight.shape[1] * module.groups:
        return None
    padding = module.padding
    if isinstance(padding, str):
        if padding != "valid":  # 'same' is computed by torch (asymmetric padding for even kernels)
            return None
        padding = (0,) * dims
    sizes = [
        _window_size(
            x.shape[2 + dim], module.kernel_size[dim], module.stride[dim], padding[dim], module.dilation[dim], False
        )
        for dim in range(dims)
    ]
    if any(size <= 0 for size in sizes):
        return None
    return _fresh((x.shape[0], weight.shape[0], *sizes), x)


def _batch_norm(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.BatchNormNd``: same shape (1-D takes ``(N, C)`` or ``(N, C, L)``)."""
    x = _one_input(args, kwargs)
    dims = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,)}[type(module)]
    if x is None or x.dim() not in dims or x.shape[1] != module.num_features or not x.dtype.is_floating_point:
        return None
    if not _like(x, module.weight, module.bias, module.running_mean, module.running_var):
        return None
    if module.training and x.numel() // x.shape[1] <= 1:  # torch refuses one value per channel in training
        return None
    return _fresh(x.shape, x)


def _trailing_norm(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.LayerNorm`` / ``nn.RMSNorm``: same shape; the trailing dims must equal ``normalized_shape``."""
    x = _one_input(args, kwargs)
    shape = tuple(module.normalized_shape)
    if x is None or not x.dtype.is_floating_point or not _like(x, module.weight, getattr(module, "bias", None)):
        return None
    return _fresh(x.shape, x) if tuple(x.shape[x.dim() - len(shape) :]) == shape and x.dim() >= len(shape) else None


def _embedding(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.Embedding`` (without ``max_norm``, which renormalises rows in place): integer ids
    ``(*)`` -> ``(*, embedding_dim)`` in the weight's dtype."""
    ids = _one_input(args, kwargs)
    weight = module.weight
    if ids is None or ids.dtype not in (torch.int64, torch.int32) or module.max_norm is not None:
        return None
    if weight.dim() != 2 or weight.device != ids.device or not weight.is_contiguous():
        return None
    return Fresh((*(int(size) for size in ids.shape), int(weight.shape[1])), weight.dtype, weight.device)


def _pointwise_module(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """Activations: same shape; the input itself when ``inplace``."""
    x = _one_input(args, kwargs)
    if x is None or not x.dtype.is_floating_point:
        return None
    if getattr(module, "inplace", False):
        return _in_place(x)
    return _fresh(x.shape, x)


def _identity(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.Identity``: its argument."""
    return _one_input(args, kwargs)


def _dropout(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """Dropout: the input itself in eval mode (or ``p = 0``) or in place, else a new tensor."""
    x = _one_input(args, kwargs)
    if x is None or not x.dtype.is_floating_point:
        return None
    if not module.training or module.p == 0 or module.inplace:
        return _in_place(x) if module.training and module.inplace else x
    return _fresh(x.shape, x)


def _pool(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.MaxPoolNd`` (without indices) and ``nn.AvgPoolNd``: windows as a convolution's."""
    x = _one_input(args, kwargs)
    dims = _POOL_DIMS[type(module)]
    if x is None or x.dim() != dims + 2 or getattr(module, "return_indices", False) or not x.dtype.is_floating_point:
        return None
    kernel = _tuple(module.kernel_size, dims)
    stride = _tuple(module.stride if module.stride else module.kernel_size, dims)
    padding = _tuple(module.padding, dims)
    dilation = _tuple(getattr(module, "dilation", 1), dims)
    if any(2 * pad > k for pad, k in zip(padding, kernel, strict=True)):  # torch's rule: pad ≤ kernel/2
        return None
    if type(module) is nn.AvgPool3d and any(x.shape[2 + dim] < kernel[dim] for dim in range(dims)):
        return None  # avg_pool3d refuses an input smaller than its kernel, padding or not
    sizes = [
        _window_size(x.shape[2 + dim], kernel[dim], stride[dim], padding[dim], dilation[dim], module.ceil_mode)
        for dim in range(dims)
    ]
    return _fresh((*x.shape[:2], *sizes), x) if all(size > 0 for size in sizes) else None


def _adaptive_pool(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.AdaptiveAvgPoolNd`` / ``nn.AdaptiveMaxPoolNd`` (without indices)."""
    x = _one_input(args, kwargs)
    return (
        _adaptive(x, module.output_size, _POOL_DIMS[type(module)])
        if not getattr(module, "return_indices", False)
        else None
    )


def _adaptive(x: Any, output_size: Any, dims: int) -> Answer:
    """``(N, C, *L) -> (N, C, *output_size)``, a ``None`` size keeping the input's."""
    if x is None or not _plain(x) or x.dim() != dims + 2 or not x.dtype.is_floating_point or x.shape[1] == 0:
        return None
    if output_size is None or (dims == 1 and isinstance(output_size, (tuple, list)) and None in output_size):
        return None
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * dims
    if len(sizes) != dims:
        return None
    spatial = [int(x.shape[2 + dim]) if size is None else int(size) for dim, size in enumerate(sizes)]
    if any(int(x.shape[2 + dim]) == 0 for dim in range(dims)):
        return None
    return _fresh((*x.shape[:2], *spatial), x)


def _linear(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.Linear``: ``(*, in_features) -> (*, out_features)``."""
    x = _one_input(args, kwargs)
    weight = module.weight
    if x is None or x.dim() == 0 or not x.dtype.is_floating_point or not _like(x, weight, module.bias):
        return None
    if weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        return None
    return _fresh((*x.shape[:-1], weight.shape[0]), x)


_POOL_DIMS: Mapping[type, int] = MappingProxyType(
    {
        nn.MaxPool1d: 1,
        nn.MaxPool2d: 2,
        nn.MaxPool3d: 3,
        nn.AvgPool1d: 1,
        nn.AvgPool2d: 2,
        nn.AvgPool3d: 3,
        nn.AdaptiveAvgPool1d: 1,
        nn.AdaptiveAvgPool2d: 2,
        nn.AdaptiveAvgPool3d: 3,
        nn.AdaptiveMaxPool1d: 1,
        nn.AdaptiveMaxPool2d: 2,
        nn.AdaptiveMaxPool3d: 3,
    }
)

# --- functions ---------------------------------------------------------------------------------


def _pointwise_function(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``F.relu(x, inplace=False)`` and one-argument activations: same shape; ``x`` when in place."""
    if not args or not _plain(args[0]) or not args[0].dtype.is_floating_point:
        return None
    x = args[0]
    extra = dict(kwargs)
    if len(args) > 2 or (len(args) == 2 and "inplace" in extra):
        return None
    inplace = args[1] if len(args) == 2 else extra.pop("inplace", False)
    if extra or not isinstance(inplace, bool) or (inplace and function not in _INPLACE_FUNCTIONS):
        return None
    if inplace:
        return _in_place(x)
    return _fresh(x.shape, x)


def _broadcast(shapes: Sequence[Sequence[int]]) -> tuple[int, ...] | None:
    """The broadcast shape, or None when the shapes do not broadcast."""
    rank = max(len(shape) for shape in shapes)
    out = []
    for position in range(rank):
        sizes = {shape[position - rank + len(shape)] for shape in shapes if position - rank + len(shape) >= 0}
        sizes.discard(1)
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _binary(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``a + b``, ``a * b``, ``a - b``, ``a / b`` (operators and ``torch.add``/``mul``/``sub``/``div``
    without keywords): two same-dtype tensors (broadcast), or a tensor and a Python number."""
    if len(args) != 2 or kwargs:
        return None
    first, second = args
    tensors = [arg for arg in args if isinstance(arg, torch.Tensor)]
    if not tensors or not all(_plain(tensor) for tensor in tensors):
        return None
    like = tensors[0]
    if not like.dtype.is_floating_point or any(t.dtype != like.dtype or t.device != like.device for t in tensors):
        return None
    if len(tensors) == 1:
        scalar = second if first is like else first
        if type(scalar) not in (int, float) or (function in _DIVISIONS and scalar == 0 and first is like):
            return None
        return _fresh(like.shape, like)
    shape = _broadcast([first.shape, second.shape])
    if shape is None:
        return None
    if min(first.dim(), second.dim()) == 0 and first.dim() != second.dim():  # 0-dim tensors: torch decides
        return None
    return _fresh(shape, like)


def _linear_function(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``F.linear(x, weight, bias=None)``: ``(*, in) -> (*, out)``."""
    extra = dict(kwargs)
    values = list(args) + [extra.pop(name) for name in ("input", "weight", "bias")[len(args) :] if name in extra]
    if extra or not 2 <= len(values) <= 3:
        return None
    x, weight = values[0], values[1]
    bias = values[2] if len(values) == 3 else None
    if not _plain(x) or x.dim() == 0 or not x.dtype.is_floating_point or not _like(x, weight, bias):
        return None
    if weight.dim() != 2 or x.shape[-1] != weight.shape[1] or (bias is not None and bias.shape != weight.shape[:1]):
        return None
    return _fresh((*x.shape[:-1], weight.shape[0]), x)


def _softmax(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``x.softmax(dim)`` / ``torch.softmax(x, dim)`` (no dtype): same shape, new tensor."""
    extra = dict(kwargs)
    if len(args) == 1 and "dim" in extra:
        args = (args[0], extra.pop("dim"))
    if extra or len(args) != 2 or not _plain(args[0]) or type(args[1]) is not int:
        return None
    x, dim = args
    if not x.dtype.is_floating_point or not -max(x.dim(), 1) <= dim < max(x.dim(), 1):
        return None
    return _fresh(x.shape, x)


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
    batch = _broadcast([a.shape[:-2], b.shape[:-2]]) if max(a.dim(), b.dim()) > 2 else ()
    if batch is None:
        return None
    return _fresh((*batch, a.shape[-2], b.shape[-1]), a)


def _cat(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``torch.cat(tensors, dim=0)``: sizes add along ``dim``, every other size equal."""
    extra = dict(kwargs)
    if not args or len(args) > 2 or (len(args) == 2 and "dim" in extra):
        return None
    dim = args[1] if len(args) == 2 else extra.pop("dim", 0)
    tensors = args[0]
    if extra or type(dim) is not int or not isinstance(tensors, (tuple, list)) or not tensors:
        return None
    first = tensors[0]
    if not all(_plain(tensor) for tensor in tensors) or first.dim() == 0:
        return None
    if any(t.dtype != first.dtype or t.device != first.device or t.dim() != first.dim() for t in tensors):
        return None
    rank = first.dim()
    if not -rank <= dim < rank:
        return None
    dim %= rank
    if any(t.shape[:dim] != first.shape[:dim] or t.shape[dim + 1 :] != first.shape[dim + 1 :] for t in tensors):
        return None
    shape = list(first.shape)
    shape[dim] = sum(int(t.shape[dim]) for t in tensors)
    return _fresh(shape, first)


def _adaptive_function(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``F.adaptive_avg_pool{1,2,3}d(x, output_size)``."""
    extra = dict(kwargs)
    if not args or len(args) > 2 or (len(args) == 2 and "output_size" in extra):
        return None
    size = args[1] if len(args) == 2 else extra.pop("output_size", None)
    return None if extra or size is None else _adaptive(args[0], size, _ADAPTIVE_FUNCTIONS[function])


def materialize(fresh: Fresh, fake_mode: FakeTensorMode) -> FakeTensor:
    """The fake tensor a :class:`Fresh` answer describes (a new storage of its size)."""
    with no_dispatch():
        meta = torch.empty(fresh.shape, dtype=fresh.dtype, device="meta")
    return FakeTensor(fake_mode, meta, fresh.device)


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


def _view(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """A view-like op on one fake tensor with plain (int, slice, None, Ellipsis…) arguments: the
    op run by its meta kernel without the FakeTensor dispatch, the result(s) wrapped as fakes."""
    if not args or not strided_fake(args[0]):
        return None
    x = args[0]
    if not all(_plain_argument(value) for value in (*args[1:], *kwargs.values())):
        return None
    try:
        with no_dispatch(), torch.no_grad():
            alias = x.as_strided(x.shape, x.stride(), x.storage_offset())  # a plain meta tensor, same storage
            out = function(alias, *args[1:], **kwargs)
    except (RuntimeError, IndexError, TypeError, ValueError):  # torch's own error comes from the dispatch
        return None
    if isinstance(out, torch.Tensor):
        return FakeTensor(x.fake_mode, out, x.device)
    if isinstance(out, (tuple, list)) and all(isinstance(item, torch.Tensor) for item in out):
        return type(out)(FakeTensor(x.fake_mode, item, x.device) for item in out)
    return None


def _plain_argument(value: Any) -> bool:
    """An int, a slice of ints, None, Ellipsis, a memory format, or a tuple/list of these."""
    if value is None or value is Ellipsis or type(value) in (int, bool, torch.memory_format):
        return True
    if type(value) is slice:
        return all(part is None or type(part) is int for part in (value.start, value.stop, value.step))
    if type(value) in (tuple, list, torch.Size):
        return all(_plain_argument(item) for item in value)
    return False


_VIEW_METHODS = (
    "view",
    "reshape",
    "permute",
    "transpose",
    "flatten",
    "unflatten",
    "contiguous",
    "unsqueeze",
    "squeeze",
    "expand",
    "chunk",
    "split",
    "narrow",
    "select",
    "movedim",
    "t",
    "__getitem__",
)
"""Tensor methods answered by :func:`_view` (looked up on ``torch.Tensor``: fx's method targets)."""


_INPLACE_FUNCTIONS = frozenset({F.relu, F.relu6, F.silu, F.hardswish, F.hardsigmoid, F.mish})
_DIVISIONS = frozenset({operator.truediv, torch.div})
_ADAPTIVE_FUNCTIONS: Mapping[Any, int] = MappingProxyType(
    {F.adaptive_avg_pool1d: 1, F.adaptive_avg_pool2d: 2, F.adaptive_avg_pool3d: 3}
)


def _table() -> dict[Any, Rule]:
    entries: dict[Any, Rule] = {}

    def add(rule: Rule, *targets: Any) -> None:
        for target in targets:
            entries[target] = rule

    add(_conv, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    add(_batch_norm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    add(_trailing_norm, nn.LayerNorm, nn.RMSNorm)
    add(_embedding, nn.Embedding)
    add(
        _pointwise_module,
        nn.ReLU,
        nn.ReLU6,
        nn.SiLU,
        nn.GELU,
        nn.Sigmoid,
        nn.Tanh,
        nn.Hardswish,
        nn.Hardsigmoid,
        nn.Mish,
    )
    add(_identity, nn.Identity)
    add(_dropout, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
    add(_pool, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
    add(
        _adaptive_pool,
        nn.AdaptiveAvgPool1d,
        nn.AdaptiveAvgPool2d,
        nn.AdaptiveAvgPool3d,
        nn.AdaptiveMaxPool1d,
        nn.AdaptiveMaxPool2d,
        nn.AdaptiveMaxPool3d,
    )
    add(_linear, nn.Linear)
    add(_multihead_attention, nn.MultiheadAttention)
    add(_pointwise_function, F.relu, F.relu6, F.silu, F.gelu, F.hardswish, F.hardsigmoid, F.mish)
    add(_pointwise_function, torch.relu, torch.sigmoid, torch.tanh, F.sigmoid, F.tanh)
    add(_binary, operator.add, operator.mul, operator.sub, operator.truediv, torch.add, torch.mul, torch.sub, torch.div)
    add(_binary, torch.Tensor.__add__, torch.Tensor.__mul__, torch.Tensor.__sub__, torch.Tensor.__truediv__)
    add(_binary, torch.Tensor.__radd__, torch.Tensor.__rmul__, torch.Tensor.add, torch.Tensor.mul)
    add(_linear_function, F.linear)
    add(_softmax, torch.softmax, torch.Tensor.softmax, F.softmax)
    add(_matmul, torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, operator.matmul)
    add(_cat, torch.cat)
    add(_adaptive_function, *_ADAPTIVE_FUNCTIONS)
    add(_view, *(getattr(torch.Tensor, name) for name in _VIEW_METHODS))
    add(_view, operator.getitem, torch.flatten, torch.reshape, torch.permute, torch.transpose, torch.squeeze)
    add(_view, torch.unsqueeze, torch.chunk, torch.split, torch.narrow, torch.select, torch.movedim, torch.t)
    return entries


def _torchvision_rules() -> Mapping[Any, Rule]:
    from torchscan.graph import rules_torchvision

    return rules_torchvision.RULES


RULES = ShapeRules(_table(), lazy=(("torchvision.models.swin_transformer", _torchvision_rules),))
"""The default rules (read-only)."""

NO_RULES = ShapeRules({})
"""No fast path: every op is dispatched on fake tensors (the reference the rules are tested against)."""


def answer(rule: Rule, target: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """The rule's answer; ``None`` (dispatch instead) if the rule itself trips over the arguments."""
    try:
        return rule(target, args, kwargs)
    except (AttributeError, TypeError, ValueError, IndexError, KeyError, ZeroDivisionError):
        return None
