"""Validate and normalise what the user says about the model's inputs.

Inputs come as shapes (``input_shape``: one shape or one per positional input, without the batch
dim, dtype per input), as example tensors, or as ``args=``/``kwargs=`` holding tensors (or
:class:`~torchscan.TensorSpec`) anywhere in nested tuples, lists and dicts next to plain values
(``return_dict=False``). Every tensor becomes an :class:`InputSpec` (shape and dtype); example
tensors are never read, except by the last-resort real forward.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_flatten_with_path, tree_map, tree_unflatten

from torchscan.errors import InputError
from torchscan.records import TensorSpec
from torchscan.records.frozen import frozen_record

__all__ = ["InputSpec", "ModelInputs", "check_binds", "model_inputs", "normalise_inputs"]

ShapeLike = Sequence[int]

_INT64_MAX = 2**63 - 1
"""torch's limit on a tensor's dims and on its storage in bytes (``numel * itemsize``)."""


@frozen_record
class InputSpec:
    """One tensor input: full shape (batch included), dtype, name, and the example it came from."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    name: str = ""
    example: torch.Tensor | None = field(default=None, compare=False, repr=False)


@frozen_record
class ModelInputs:
    """The call ``model(*args, **kwargs)`` with every tensor replaced by its :class:`InputSpec`.

    ``specs`` lists those specs in call order (positional first, then keywords, depth first).
    """

    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    specs: tuple[InputSpec, ...]
    autocast: tuple[tuple[str, torch.dtype], ...] = ()
    """The caller's ``torch.autocast`` state, the call runs under (:mod:`torchscan.graph.autocast`)."""

    @property
    def positional_only(self) -> bool:
        """True when the call is ``model(t0, t1, …)``: only tensors, all positional."""
        return not self.kwargs and all(isinstance(arg, InputSpec) for arg in self.args)

    def build(self, make: Callable[[InputSpec], Any]) -> tuple[tuple[Any, ...], dict[str, Any], list[Any]]:
        """Fresh ``args``, ``kwargs`` (containers rebuilt) with ``make(spec)`` for each tensor, and
        the made tensors in ``specs`` order."""
        made: list[Any] = []

        def one(leaf: Any) -> Any:
            if isinstance(leaf, InputSpec):
                made.append(make(leaf))
                return made[-1]
            return leaf

        args, kwargs = tree_map(one, (self.args, dict(self.kwargs)))
        return tuple(args), dict(kwargs), made

    def rebuild(self, tensors: Sequence[Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``args``, ``kwargs`` with the tensor leaves replaced by ``tensors`` (``specs`` order)."""
        leaves, spec = tree_flatten((self.args, dict(self.kwargs)))
        values = iter(tensors)
        args, kwargs = tree_unflatten([next(values) if isinstance(leaf, InputSpec) else leaf for leaf in leaves], spec)
        return tuple(args), dict(kwargs)


def _is_shape(value: object) -> bool:
    """A flat sequence of numbers: a shape, whose dims :func:`_checked_dims` then checks one by one."""
    return (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes))
        and all(isinstance(item, numbers.Number) and not isinstance(item, torch.Tensor) for item in value)
    )


def _checked_dims(shape: Sequence[Any], where: str, minimum: int) -> tuple[int, ...]:
    """``shape`` as a tuple of ints, each in ``[minimum, _INT64_MAX]``, else an :class:`InputError` naming the dim."""
    for index, size in enumerate(shape):
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise InputError(
                f"{where}shape {tuple(shape)}: dimension {index} is {size!r} ({type(size).__name__}), not an int"
            )
        if size < minimum:
            if minimum > 0:
                raise InputError(f"{where}shape {tuple(shape)} has a dimension < 1: every dimension must be positive")
            raise InputError(f"{where}shape {tuple(shape)} has a negative dimension ({index}: {size})")
        if size > _INT64_MAX:
            raise InputError(
                f"{where}shape {tuple(shape)}: dimension {index} ({size}) overflows torch's int64 sizes "
                f"(at most 2**63 - 1)"
            )
    return tuple(int(size) for size in shape)


def _input_label(index: int, name: str) -> str:
    """``input 0``, or ``input 1 (attention_mask)`` when the input has a name of its own."""
    return f"input {index}" + (f" ({name})" if name and name != f"input_{index}" else "")


def _check_size(spec: InputSpec, index: int) -> None:
    """Raise :class:`InputError` when ``spec`` is too large for torch: numel * itemsize past int64."""
    shape = _checked_dims(spec.shape, f"{_input_label(index, spec.name)} ", 0)
    numel = math.prod(shape)
    itemsize = spec.dtype.itemsize
    if numel * itemsize > _INT64_MAX:
        dtype = str(spec.dtype).removeprefix("torch.")
        raise InputError(
            f"{_input_label(index, spec.name)} of shape {shape} and dtype {dtype} is too large: {numel} elements x "
            f"{itemsize} bytes = {numel * itemsize:.3g} bytes, over torch's int64 limit (2**63 - 1 bytes)"
        )


def _is_tensor_like(value: object) -> bool:
    return isinstance(value, (torch.Tensor, TensorSpec))


def _check_batch_size(batch_size: int | None) -> None:
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")


def normalise_inputs(
    input_shape: ShapeLike | Sequence[ShapeLike],
    dtype: torch.dtype | Sequence[torch.dtype] | None = None,
    batch_size: int | None = 1,
) -> tuple[InputSpec, ...]:
    """Shapes without batch dim (one shape, or one per input) -> :class:`InputSpec` with batch.

    ``batch_size=None`` takes the shapes as complete (batch included).
    """
    return model_inputs(input_shape, dtype=dtype, batch_size=batch_size).specs


def _spec_of(value: torch.Tensor | TensorSpec, name: str) -> InputSpec:
    if isinstance(value, TensorSpec):
        return InputSpec(tuple(value.shape), value.dtype, name)  # dims checked by _check_size
    if value.is_sparse or value.layout != torch.strided:
        raise InputError(f"input {name or ''} has layout {value.layout}: only strided (dense) tensors are supported")
    return InputSpec(tuple(int(size) for size in value.shape), value.dtype, name, value)


def _positional(
    input_shape: Any, dtype: torch.dtype | Sequence[torch.dtype] | None, batch_size: int | None
) -> list[Any]:
    """``input_shape`` (shapes and/or example tensors) -> positional arguments (specs)."""
    if isinstance(input_shape, torch.Size) or _is_shape(input_shape) or _is_tensor_like(input_shape):
        entries: list[Any] = [input_shape]
    elif (
        isinstance(input_shape, Sequence)
        and not isinstance(input_shape, str)
        and input_shape
        and all(_is_shape(s) or _is_tensor_like(s) for s in input_shape)
    ):
        entries = list(input_shape)
    else:
        raise InputError(
            "input_shape must be a shape like (3, 224, 224), a sequence of shapes, an example tensor or a "
            f"sequence of them (use args=/kwargs= for anything else), got {input_shape!r}"
        )
    _check_batch_size(batch_size)
    if dtype is None or isinstance(dtype, torch.dtype):
        dtypes: list[torch.dtype | None] = [dtype] * len(entries)
    else:
        dtypes = list(dtype)
        if len(dtypes) != len(entries) or not all(isinstance(d, torch.dtype) for d in dtypes):
            raise InputError(f"dtype must be a torch.dtype or one per input ({len(entries)}), got {dtype!r}")
    specs = []
    for index, (entry, entry_dtype) in enumerate(zip(entries, dtypes, strict=True)):
        where = f"input {index} "
        if _is_tensor_like(entry):
            spec = _spec_of(entry, "")
            if entry_dtype is not None and entry_dtype != spec.dtype and not isinstance(dtype, torch.dtype):
                raise InputError(f"{where}dtype {entry_dtype} differs from its example tensor's {spec.dtype}")
            specs.append(spec)
            continue
        if not entry:
            raise InputError(f"{where}shape is empty: give the dims of one sample, e.g. (3, 224, 224)")
        shape = _checked_dims(entry, where, 1)
        prefix = (batch_size,) if batch_size is not None else ()
        specs.append(InputSpec(prefix + shape, entry_dtype or torch.get_default_dtype()))
    return specs


def model_inputs(
    input_shape: Any = None,
    *,
    args: Any = None,
    kwargs: Mapping[str, Any] | None = None,
    dtype: torch.dtype | Sequence[torch.dtype] | None = None,
    batch_size: int | None = 1,
    signature: inspect.Signature | None = None,
) -> ModelInputs:
    """Normalise the inputs of one model call.

    ``input_shape``: a shape without the batch dim, a sequence of them (``batch_size`` is
    prepended, ``dtype`` applies per input, e.g. ``torch.long`` for token ids), example tensors
    (full shapes, their own dtype), or a mix. ``args``/``kwargs``: the positional and keyword
    arguments as given to the model, tensors (or ``TensorSpec``) at any depth of tuples, lists
    and dicts, other values passed as they are. ``signature`` (of ``forward``) names the inputs.
    """
    if input_shape is not None and args is not None:
        raise InputError("give the positional inputs either as input_shape or as args=, not both")
    if input_shape is None and args is None and kwargs is None:
        raise InputError("give the inputs: input_shape=(3, 224, 224), example tensors, or args=/kwargs=")
    if kwargs is not None and (not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs)):
        raise InputError(f"kwargs must be a mapping of argument names to values, got {type(kwargs).__name__}")
    if input_shape is not None:
        positional: tuple[Any, ...] = tuple(_positional(input_shape, dtype, batch_size))
    else:
        if dtype is not None:
            raise InputError("dtype applies to input_shape shapes: tensors in args=/kwargs= carry their own dtype")
        positional = () if args is None else tuple(args) if isinstance(args, (tuple, list)) else (args,)
    names = _parameter_names(signature, len(positional))
    leaves_with_paths, treespec = tree_flatten_with_path((positional, dict(kwargs or {})))
    leaves = []
    for path, leaf in leaves_with_paths:
        if isinstance(leaf, InputSpec) or _is_tensor_like(leaf):
            name = _leaf_name(path, names)
            leaf = (
                InputSpec(leaf.shape, leaf.dtype, name, leaf.example)
                if isinstance(leaf, InputSpec)
                else _spec_of(leaf, name)
            )
        leaves.append(leaf)
    call_args, call_kwargs = tree_unflatten(leaves, treespec)
    specs = tuple(leaf for leaf in leaves if isinstance(leaf, InputSpec))
    for index, spec in enumerate(specs):
        _check_size(spec, index)
    return ModelInputs(tuple(call_args), dict(call_kwargs), specs)


def check_binds(inputs: ModelInputs, signature: inspect.Signature | None, owner: str) -> None:
    """Raise an :class:`InputError` where a forward of ``signature`` (``owner``: its class's name) cannot take
    ``inputs`` (an input missing, one too many, a keyword it has no parameter for): said before anything runs,
    with the forward's parameters and the inputs given, instead of a ``TypeError`` from inside the capture."""
    if signature is None:
        return
    try:
        signature.bind(*inputs.args, **inputs.kwargs)
    except TypeError as error:
        given = [_given(value) for value in inputs.args] + [
            f"{key}={_given(value)}" for key, value in inputs.kwargs.items()
        ]
        raise InputError(
            f"{owner}.forward{signature} cannot take the inputs given ({', '.join(given) or 'none'}): {error}"
        ) from None


def _given(value: Any) -> str:
    """An input as :func:`check_binds` lists it: a tensor's shape and dtype, anything else its type."""
    if isinstance(value, InputSpec):
        return f"{tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    return type(value).__name__


def _parameter_names(signature: inspect.Signature | None, count: int) -> list[str]:
    """Names of the first ``count`` positional parameters (``input_i`` where unknown)."""
    names: list[str] = []
    if signature is not None:
        for parameter in signature.parameters.values():
            if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
                names.append(parameter.name)
            elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                break
    names = names[:count]
    return names + [f"input_{index}" for index in range(len(names), count)]


def _leaf_name(path: tuple[Any, ...], names: Sequence[str]) -> str:
    """``x``, ``images_0``, ``attention_mask``, ``batch_image``: a readable name from a pytree path."""
    keys = [getattr(entry, "key", getattr(entry, "idx", getattr(entry, "name", ""))) for entry in path]
    group, first, *rest = keys
    head = names[first] if group == 0 and isinstance(first, int) and first < len(names) else str(first)
    return "_".join([head, *(str(key) for key in rest)])
