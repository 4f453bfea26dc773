"""The report's records: rows, totals, diagnostics and context (frozen, plain values)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["SCHEMA_VERSION", "Context", "Diagnostic", "Row", "RowKind", "Totals"]

SCHEMA_VERSION = 1

RowKind = Literal["module", "function", "method", "parameter"]


@dataclass(frozen=True, slots=True)
class Row:
    """One layer of the report, aggregating everything beneath it.

    ``name`` is the module path (``layer1.0.conv1``), the fx node name of a functional call
    (``add_3``), or ``path.param`` for a parameter held directly by a module that is traced
    through. ``params`` counts the parameters this subtree owns (a tied parameter is owned by
    its first module; ``shared_params`` counts the ones used here but owned elsewhere).
    """

    name: str
    type: str
    kind: RowKind
    depth: int
    parent: str
    is_leaf: bool
    output_shape: tuple[int, ...] | None
    params: int
    trainable_params: int
    shared_params: int
    param_bytes: int
    buffer_bytes: int
    flops: int
    macs: int
    dmas: int
    unknown_ops: int
    calls: int
    receptive_field: tuple[int, ...] | str | None = None
    effective_stride: tuple[int | float, ...] | str | None = None
    effective_padding: tuple[int, ...] | str | None = None
    output_bytes: int = 0
    """Bytes of the output tensor(s) of this row's (first) call: ``Σ numel · itemsize``."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["output_shape"] = list(self.output_shape) if self.output_shape is not None else None
        for key in ("receptive_field", "effective_stride", "effective_padding"):
            value = data[key]
            data[key] = list(value) if isinstance(value, tuple) else value
        return data


@dataclass(frozen=True, slots=True)
class Totals:
    """Whole-model numbers. ``flops``/``macs``/``dmas`` are lower bounds when not ``complete``."""

    params: int
    trainable_params: int
    non_trainable_params: int
    param_bytes: int
    buffer_bytes: int
    flops: int
    macs: int
    dmas: int
    complete: bool
    unknown_ops: int

    @property
    def model_bytes(self) -> int:
        return self.param_bytes + self.buffer_bytes


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """Something the report could not do exactly: ``code`` is machine-readable."""

    code: str
    message: str
    nodes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "nodes": list(self.nodes)}


@dataclass(frozen=True, slots=True)
class Context:
    """How the numbers were obtained."""

    model: str
    torch_version: str
    capture: str
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]
    device: str
    training: bool

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shapes"] = [list(shape) for shape in self.input_shapes]
        data["output_shapes"] = [list(shape) for shape in self.output_shapes]
        data["dtypes"] = list(self.dtypes)
        return data
