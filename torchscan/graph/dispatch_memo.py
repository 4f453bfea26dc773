"""Repeated dispatches of one shape pass answered once: a call of a torch op on fake tensors whose
signature (op, tensor metadata, plain arguments) was dispatched before in the same pass gets a new
fake tensor of the recorded output metadata instead of a second FakeTensor dispatch.

A model that repeats a block (the 80 decoder layers of a Llama) repeats the ops no shape rule
answers (elementwise ops on strided views, ``cat``): each costs 150–250 µs through FakeTensor's
dispatch, its own cache hit included, against ~20 µs for a fake tensor made from known metadata.

The memo is exact by construction, and narrow on purpose:

- only torch's own ops (``torch.*`` functions, ``operator`` functions, methods of a tensor): a
  user's function may read or change Python state, and is always run;
- only when every input is a tensor of known metadata (shape, strides, storage offset, dtype,
  device, requires-grad, which inputs share a storage; no FakeTensor constant) or a hashable plain
  value: the same signature makes the same output metadata, since a fake kernel sees nothing else;
- only outputs made of new dense tensors (each its own storage of exactly its elements, offset 0,
  no constant, no grad) and plain values: a view, an in-place result or an output aliasing an input
  is dispatched every time.

A memo lives for one shape pass (:func:`torchscan.graph.shapes.propagate`): nothing is kept between
analyses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._mode_utils import no_dispatch
from torch.utils._pytree import tree_leaves

from torchscan.graph.fake import fake_tensor
from torchscan.graph.rules import Pending
from torchscan.graph.rules.common import SEQUENCES
from torchscan.records.frozen import frozen_record

__all__ = ["Dispatch", "DispatchMemo"]

Dispatch = Callable[[tuple[Any, ...], dict[str, Any]], tuple[Any, tuple[Any, ...], dict[str, Any]]]
"""``dispatch(args, kwargs)`` -> the call's result and the arguments it ran on (pending tensors made)."""

_PLAIN = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.memory_format, torch.layout)
"""Plain argument types a signature holds by value (with their type: ``1``, ``1.0`` and ``True`` differ)."""


@frozen_record
class _Made:
    """Metadata of one new dense output tensor."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device


def _storage(tensor: torch.Tensor) -> int:
    """The identity of a tensor's storage."""
    return StorageWeakRef(tensor.untyped_storage()).cdata


class _Unsupported(Exception):
    """A value the memo does not describe: the call is dispatched as always."""


class _NeverTensors(_Unsupported):
    """An output with no new tensor to make whatever the inputs (``x.dim()``, ``x.untyped_storage()``):
    the op is not keyed again."""


def _is_torch_op(op: str, target: Any, args: tuple[Any, ...]) -> bool:
    """A function of torch or of ``operator``, or a method called on a tensor (``op``: an fx node's
    ``call_function`` or ``call_method``, or ``torch_function`` for a function a torch function mode
    was handed: a tensor method as its function object)."""
    if op == "call_method":
        return bool(args) and isinstance(args[0], (torch.Tensor, Pending))
    if op not in ("call_function", "torch_function"):
        return False
    module = getattr(target, "__module__", None) or ""
    if module in ("_operator", "torch") or module.startswith("torch."):
        return True
    name = getattr(target, "__name__", None)
    return op == "torch_function" and isinstance(name, str) and getattr(torch.Tensor, name, None) is target


class _Signature:
    """Hashable signature of an argument structure: tensors by metadata and storage class."""

    def __init__(self) -> None:
        self._storages: dict[Any, int] = {}

    def of(self, value: Any) -> Hashable:
        if type(value) is Pending:
            alias = self._storages.setdefault(("pending", id(value)), len(self._storages))
            return ("P", value.shape, value.dtype, value.device, alias)
        if isinstance(value, torch.Tensor):
            if type(value) is not FakeTensor or value.constant is not None or value.layout != torch.strided:
                raise _Unsupported
            alias = self._storages.setdefault(_storage(value), len(self._storages))
            return (
                "T",
                tuple(value.shape),
                value.stride(),
                value.storage_offset(),
                value.dtype,
                value.device,
                value.requires_grad,
                alias,
            )
        if isinstance(value, _PLAIN):
            return (type(value), value)
        if isinstance(value, (tuple, list)):  # fx's immutable_list, torch.Size and named tuples too
            return (type(value), tuple(self.of(item) for item in value))
        if isinstance(value, dict):  # fx's immutable_dict too
            return (type(value), tuple((key, self.of(item)) for key, item in value.items()))
        if type(value) is slice:
            return (slice, self.of(value.start), self.of(value.stop), self.of(value.step))
        raise _Unsupported


def _template(result: Any, inputs: set[int]) -> Any:
    """The output's structure with each new dense tensor as :class:`_Made` (raises if any is not)."""
    if isinstance(result, torch.Tensor):
        if type(result) is not FakeTensor or result.constant is not None or result.requires_grad:
            raise _Unsupported
        if result.layout != torch.strided or result.storage_offset() != 0:
            raise _Unsupported
        storage = result.untyped_storage()
        key = _storage(result)
        dense = _dense_bytes(tuple(result.shape), result.stride(), result.element_size())
        if key in inputs or storage.nbytes() != dense:
            raise _Unsupported
        inputs.add(key)  # a second output on the same storage is an alias too
        return _Made(tuple(result.shape), result.stride(), result.dtype, result.device)
    if isinstance(result, _PLAIN):
        return result
    if type(result) in (tuple, list, torch.Size):
        return type(result)(_template(item, inputs) for item in result)
    raise _Unsupported if isinstance(result, tuple) else _NeverTensors  # a named tuple of tensors: maybe next time


def _dense_bytes(shape: tuple[int, ...], stride: tuple[int, ...], itemsize: int) -> int:
    """Bytes of a storage holding exactly the tensor's elements: ``numel · itemsize`` when its strides
    are a permutation of a contiguous layout's (``1 + Σ (size−1)·|stride|`` elements otherwise, which
    then differs from ``numel``)."""
    if math.prod(shape) == 0:
        return 0
    return (1 + sum((size - 1) * abs(step) for size, step in zip(shape, stride, strict=True))) * itemsize


def _made(template: Any, fake_mode: FakeTensorMode) -> Any:
    """A new value of ``template``'s structure: each :class:`_Made` a new fake tensor on its own storage."""
    if type(template) is _Made:
        with no_dispatch():
            meta = torch.empty_strided(template.shape, template.stride, dtype=template.dtype, device="meta")
        return fake_tensor(fake_mode, meta, template.device)
    if type(template) in (tuple, list, torch.Size):
        return type(template)(_made(item, fake_mode) for item in template)
    return template


class DispatchMemo:
    """Output metadata of the torch ops dispatched in one shape pass, by call signature."""

    def __init__(self, fake_mode: FakeTensorMode) -> None:
        self._fake_mode = fake_mode
        self._known: dict[Hashable, Any] = {}
        self._skipped: set[Any] = set()
        """Targets not keyed: not torch ops, or ops whose output never holds a new tensor."""

    def key(self, op: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable | None:
        """The call's signature, or None where the memo does not apply (the call is dispatched)."""
        try:
            if target in self._skipped:
                return None
        except TypeError:  # an unhashable target
            return None
        if not any(_has_tensor(value) for value in (*args, *kwargs.values())):  # nothing to dispatch
            return None
        if not _is_torch_op(op, target, args):
            if op != "call_method":  # a method's owner decides, not its name
                self._skipped.add(target)
            return None
        try:
            return (op, target, _Signature().of((args, kwargs)))
        except _Unsupported:
            return None

    def call(
        self,
        op: str,
        target: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        dispatch: Dispatch,
    ) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        """As :data:`Dispatch`: the call's output and the arguments it ran on — a new output of the known
        metadata (the arguments as given), else what ``dispatch`` returns, its output learned."""
        key = self.key(op, target, args, kwargs)
        known = self.answer(key)
        if known is not None:
            return known, args, kwargs
        result, ran_args, ran_kwargs = dispatch(args, kwargs)
        self.learn(key, ran_args, ran_kwargs, result)
        return result, ran_args, ran_kwargs

    def answer(self, key: Hashable | None) -> Any:
        """A new output for a signature seen before, else None."""
        if key is None:
            return None
        template = self._known.get(key)
        return None if template is None else _made(template, self._fake_mode)

    def learn(self, key: Hashable | None, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        """Keep the output metadata of a dispatched call (when its output is new dense tensors)."""
        if key is None:
            return
        inputs = {_storage(leaf) for leaf in tree_leaves((args, kwargs)) if isinstance(leaf, torch.Tensor)}
        try:
            template = _template(result, inputs)
        except _NeverTensors:
            self._skipped.add(key[1])
            return
        except _Unsupported:
            return
        if any(type(leaf) is _Made for leaf in tree_leaves(template)):
            self._known[key] = template
        else:  # plain values only (``x.dim()``, ``x.size()``): never a new tensor
            self._skipped.add(key[1])


def _has_tensor(value: Any) -> bool:
    """A tensor, or a tuple/list holding one at its top level (``torch.cat``'s operands)."""
    if isinstance(value, (torch.Tensor, Pending)):
        return True
    return type(value) in SEQUENCES and any(isinstance(item, (torch.Tensor, Pending)) for item in value)
