"""What a formula sees: tensor specs, op calls and costs (frozen records).

Formulas only ever see these records, never an ``nn.Module`` or a tensor, so a test can
build an :class:`OpCall` from plain tuples.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import field
from typing import Any, Literal

import torch

from torchscan.records.frozen import FrozenDict, frozen_record

__all__ = ["ZERO", "CallKind", "Cost", "OpCall", "TensorSpec", "tensor_leaves"]

CallKind = Literal["module", "function", "method"]


@frozen_record
class TensorSpec:
    """Shape and dtype of a tensor (no data).

    ``contiguous`` is False for strided views whose copy (``contiguous()``, ``reshape``) moves data.
    """

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    contiguous: bool = True

    @property
    def numel(self) -> int:
        """Number of elements: ``prod(shape)``."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the elements: ``numel * itemsize``."""
        return self.numel * self.dtype.itemsize

    @property
    def ndim(self) -> int:
        return len(self.shape)


@frozen_record
class Cost:
    """FLOPs, MACs and DMAs (element reads + writes) of one op call."""

    flops: int = 0
    macs: int = 0
    dmas: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.flops + other.flops, self.macs + other.macs, self.dmas + other.dmas)

    def scaled(self, factor: int) -> Cost:
        return Cost(self.flops * factor, self.macs * factor, self.dmas * factor)


ZERO = Cost()


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only copy of ``mapping``; a read-only one is kept as it is (a call site's module configuration,
    shared by its calls)."""
    if type(mapping) is FrozenDict:
        return mapping
    return FrozenDict(mapping or {})


@frozen_record
class OpCall:
    """What a formula sees of one call.

    ``inputs`` are the tensor arguments in call order (tensors inside lists flattened);
    ``outputs`` the tensors produced; ``attrs`` the normalised arguments: for a module call its
    plain configuration attributes (``stride``, ``groups``, ``inplace``…) and the specs of its own
    parameters and buffers (``weight``, ``bias``, ``running_mean``…); for a function call its
    arguments bound by name (tensors replaced by :class:`TensorSpec`); for a tensor method the
    positional arguments after ``self`` under ``"args"`` plus keyword arguments.
    """

    kind: CallKind
    target: Any
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)
    training: bool = False
    name: str = ""
    module_path: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "attrs", _frozen(self.attrs))

    @property
    def input(self) -> TensorSpec:
        """The first (data) input."""
        if not self.inputs:
            raise ValueError(f"{self.name or self.target}: the call has no tensor input")
        return self.inputs[0]

    @property
    def output(self) -> TensorSpec:
        """The first output."""
        if not self.outputs:
            raise ValueError(f"{self.name or self.target}: the call has no tensor output")
        return self.outputs[0]

    def spec(self, key: str) -> TensorSpec | None:
        """The tensor attribute ``key`` (``weight``, ``bias``…) or None when absent."""
        value = self.attrs.get(key)
        return value if isinstance(value, TensorSpec) else None

    def numel(self, key: str) -> int:
        """Elements of the tensor attribute ``key`` (0 when absent)."""
        value = self.spec(key)
        return value.numel if value is not None else 0

    def get(self, key: str, default: Any = None) -> Any:
        value = self.attrs.get(key, default)
        return default if value is None else value


def tensor_leaves(value: Any) -> Iterator[TensorSpec]:
    """Every :class:`TensorSpec` inside nested tuples, lists and dicts, in order."""
    found: list[TensorSpec] = []
    _collect(value, found)
    return iter(found)


def _collect(value: Any, found: list[TensorSpec]) -> None:
    """:func:`tensor_leaves` into ``found``: a list built in one recursive walk (a generator per level
    cost more than the walk; every node's arguments and outputs are walked several times)."""
    kind = type(value)
    if kind is TensorSpec:
        found.append(value)
    elif kind is tuple or kind is list:
        for item in value:
            if type(item) is TensorSpec:
                found.append(item)
            elif type(item) not in _ATOMS:
                _collect(item, found)
    elif kind in _ATOMS:
        return
    elif kind is dict:  # keyword arguments: ``isinstance(value, Mapping)`` is an ABC check, slow
        for item in value.values():
            if type(item) is TensorSpec:
                found.append(item)
            elif type(item) not in _ATOMS:
                _collect(item, found)
    elif isinstance(value, TensorSpec):
        found.append(value)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _collect(item, found)
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect(item, found)


_ATOMS = frozenset({int, float, bool, str, type(None), torch.dtype, torch.device, torch.Size})
"""Exact types that hold no spec: not walked further (a ``torch.Size`` holds ints only)."""
