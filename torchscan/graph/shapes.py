"""Shapes and dtypes of every node, from one run of the graph on fake tensors.

Fake tensors carry shape, dtype, strides and device but no data: no arithmetic is done, so the
cost of this pass does not depend on the input resolution or the batch size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx

from torchscan.errors import ShapeError
from torchscan.records import TensorSpec, tensor_leaves

__all__ = ["NodeValues", "Opaque", "describe", "propagate"]

_PLAIN = (
    int,
    float,
    bool,
    str,
    complex,
    type(None),
    torch.dtype,
    torch.device,
    torch.memory_format,
    torch.layout,
    slice,
    type(Ellipsis),
)


@dataclass(frozen=True, slots=True)
class Opaque:
    """A value that is neither a tensor nor plain data (kept by type name only)."""

    type_name: str


@dataclass(frozen=True, slots=True)
class NodeValues:
    """Described arguments and result of one node (tensors as :class:`TensorSpec`)."""

    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    output: Any


def tensor_spec(tensor: torch.Tensor) -> TensorSpec:
    """The spec of a (fake, meta or real) tensor."""
    try:
        contiguous = tensor.is_contiguous()
    except RuntimeError:  # sparse or exotic layouts
        contiguous = True
    return TensorSpec(shape=tuple(int(size) for size in tensor.shape), dtype=tensor.dtype, contiguous=contiguous)


def describe(value: Any) -> Any:
    """Tensors to :class:`TensorSpec`, containers recursively, plain data as is, the rest opaque."""
    if isinstance(value, torch.Tensor):
        return tensor_spec(value)
    if isinstance(value, torch.Size):
        return tuple(int(size) for size in value)
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (tuple, list)):
        return tuple(describe(item) for item in value)
    if isinstance(value, Mapping):
        return {key: describe(item) for key, item in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {name: describe(getattr(value, name)) for name in value.__dataclass_fields__}
    return Opaque(type(value).__name__)


def shapes_of(value: Any) -> tuple[tuple[int, ...], ...]:
    """Shapes of the tensors in a described value."""
    return tuple(spec.shape for spec in tensor_leaves(value))


def _user_frame(node: fx.Node) -> str:
    trace = (node.stack_trace or "").strip().splitlines()
    frames = [line.strip() for line in trace if line.strip().startswith("File ")]
    return f"\n  at {frames[-1]}" if frames else ""


class _ShapeInterpreter(fx.Interpreter):
    """Runs the graph on fake tensors and records every node's described arguments and result."""

    def __init__(self, module: fx.GraphModule, module_paths: Mapping[str, str]) -> None:
        super().__init__(module, garbage_collect_values=True)
        self.values: dict[str, NodeValues] = {}
        self._module_paths = module_paths

    def run_node(self, n: fx.Node) -> Any:
        with self._set_current_node(n):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            try:
                result = getattr(self, n.op)(n.target, args, kwargs)
            except ShapeError:
                raise
            except Exception as error:
                raise self._shape_error(n, args, kwargs, error) from error
        self.values[n.name] = NodeValues(args=describe(args), kwargs=describe(kwargs), output=describe(result))
        return result

    def _shape_error(self, n: fx.Node, args: Sequence[Any], kwargs: Mapping[str, Any], error: Exception) -> ShapeError:
        path = self._module_paths.get(n.name, "")
        shapes = shapes_of(describe((tuple(args), dict(kwargs))))
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        where = f"layer '{path}' " if path else ""
        message = (
            f"{where}(fx node '{n.name}': {n.format_node()}) rejected input shapes "
            f"{', '.join(str(tuple(s)) for s in shapes) or '()'}: {reason}{_user_frame(n)}"
        )
        return ShapeError(message, node=n.name, module_path=path, input_shapes=shapes)


def propagate(
    graph_module: fx.GraphModule,
    inputs: Sequence[Any],
    module_paths: Mapping[str, str],
) -> dict[str, NodeValues]:
    """Run ``graph_module`` on (fake) ``inputs`` and describe every node's values.

    Must be called inside the fake mode that made the inputs and the module's tensors.
    ``module_paths`` maps node names to their module path (used in error messages).
    """
    interpreter = _ShapeInterpreter(graph_module, module_paths)
    interpreter.run(*inputs)
    return interpreter.values
