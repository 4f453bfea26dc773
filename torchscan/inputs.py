"""Validate and normalise what the user says about the model's inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from torchscan.errors import InputError

__all__ = ["InputSpec", "normalise_inputs"]

ShapeLike = Sequence[int]


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One model input: full shape (batch included) and dtype."""

    shape: tuple[int, ...]
    dtype: torch.dtype


def _is_shape(value: object) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and all(isinstance(item, int) and not isinstance(item, bool) for item in value)
    )


def normalise_inputs(
    input_shape: ShapeLike | Sequence[ShapeLike],
    dtype: torch.dtype | Sequence[torch.dtype] | None = None,
    batch_size: int | None = 1,
) -> tuple[InputSpec, ...]:
    """Shapes without batch dim (one shape, or one per input) -> :class:`InputSpec` with batch.

    ``batch_size=None`` takes the shapes as complete (batch included).
    """
    if isinstance(input_shape, torch.Size) or _is_shape(input_shape):
        shapes: list[tuple[int, ...]] = [tuple(input_shape)]  # type: ignore[arg-type]
    elif isinstance(input_shape, Sequence) and input_shape and all(_is_shape(s) for s in input_shape):
        shapes = [tuple(s) for s in input_shape]  # type: ignore[union-attr]
    else:
        raise InputError(f"input_shape must be a shape like (3, 224, 224) or a sequence of shapes, got {input_shape!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    for index, shape in enumerate(shapes):
        where = f"input {index} " if len(shapes) > 1 else ""
        if not shape:
            raise InputError(f"{where}shape is empty: give the dims of one sample, e.g. (3, 224, 224)")
        if any(size < 1 for size in shape):
            raise InputError(f"{where}shape {shape} has a dimension < 1: every dimension must be positive")
    if dtype is None or isinstance(dtype, torch.dtype):
        dtypes = [dtype or torch.get_default_dtype()] * len(shapes)
    else:
        dtypes = list(dtype)
        if len(dtypes) != len(shapes) or not all(isinstance(d, torch.dtype) for d in dtypes):
            raise InputError(f"dtype must be a torch.dtype or one per input ({len(shapes)}), got {dtype!r}")
    prefix = (batch_size,) if batch_size is not None else ()
    return tuple(InputSpec(prefix + shape, d) for shape, d in zip(shapes, dtypes, strict=True))
