"""Capture of TorchScript modules (``torch.jit.script`` / ``torch.jit.trace``) at the ATen level.

A ScriptModule runs its forward in the TorchScript interpreter: fx cannot trace it, module hooks
cannot be added to it and torch functions are never seen from Python. What can be seen is the
dispatcher: one forward of a copy of the module runs on fake tensors (no arithmetic, parameters
converted on the fly) under a dispatch mode that appends every ATen op to an fx graph. Shapes are
exact for this input, parameters are read from the module, but module boundaries are invisible:
every op belongs to the root module.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils._python_dispatch import _disable_current_modes
from torch.utils._pytree import tree_map

from torchscan.errors import CaptureError, ShapeError
from torchscan.graph.fake import AnalysisDispatchMode, analysis_mode
from torchscan.graph.record import _has_tensor, _Recorder
from torchscan.graph.shapes import NodeValues, describe, first_line, shape_list, shapes_of
from torchscan.graph.trace import Capture
from torchscan.inputs import ModelInputs
from torchscan.ops.registry import Registry

__all__ = ["SCRIPTED", "is_scripted", "record_scripted"]

SCRIPTED = "torchscript-aten"
"""The capture method named in the report's context for a TorchScript module."""

_SKIPPED = {torch.ops.aten.detach.default, torch.ops.aten.lift_fresh.default}
"""Ops the interpreter inserts that are not part of the model's computation."""

_REAL = (torch.Tensor, nn.Parameter)
"""The types of the real parameters and buffers the interpreter hands to the ops (a fake is neither)."""


def is_scripted(model: nn.Module) -> bool:
    """True for ``torch.jit.script``/``torch.jit.trace`` results (their forward is TorchScript)."""
    return isinstance(model, torch.jit.ScriptModule)


class _AtenRecorder(AnalysisDispatchMode):
    """Appends every ATen op that makes a tensor to the graph of ``recorder`` (no module stack).

    The interpreter hands the module's real parameters and buffers to the ops: each is given to the op as its fake
    (one per tensor, made by ``fake_mode``), whose storage is numbered as the parameter's, so a view of a parameter
    (``linear``'s ``t`` of its weight) shares the parameter's storage instead of counting as a new activation."""

    def __init__(self, recorder: _Recorder, fake_mode: FakeTensorMode) -> None:
        super().__init__()
        self.recorder = recorder
        self.fake_mode = fake_mode
        self.failed: ShapeError | None = None
        """The error of the op that failed (the TorchScript interpreter re-raises it as its own)."""
        self._fakes: dict[int, torch.Tensor] = {}
        """The fake of each parameter and buffer met, by the real tensor's id (the clone holds the real tensors)."""

    def _fake(self, value: Any) -> Any:
        """A parameter's or buffer's fake, its storage numbered as the tensor's; any other value as is."""
        if type(value) not in _REAL or id(value) not in self.recorder.attrs:
            return value
        fake = self._fakes.get(id(value))
        if fake is None:
            fake = self._fakes[id(value)] = self.fake_mode.from_tensor(value, static_shapes=True)
            self.recorder.storages.alias(fake, value)
        return fake

    def __torch_dispatch__(
        self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> Any:
        kwargs = dict(kwargs or {})
        try:
            given, named = tree_map(self._fake, tuple(args)), tree_map(self._fake, kwargs)
            if _constants_only(func, given, named):
                # an op of the traced program's own constants (numbers, small tensors it holds; no input, parameter
                # or buffer reaches it): computed as the interpreter computes it, on those constants alone, so that a
                # value read from it (Swin's ``aten::equal`` of two head counts, MaxViT's ``item()``) is known
                with _disable_current_modes():
                    result = func(*_numbers_as_tensors(func, given), **named)
            else:
                result = func(*_numbers_as_tensors(func, given), **named)
        except Exception as error:
            shapes = shapes_of(describe((tuple(args), kwargs)))
            message = f"the scripted model's op {func} rejected input shapes {shape_list(shapes)}: {first_line(error)}"
            self.failed = ShapeError(message, node=str(func), module_path="", input_shapes=shapes)
            raise self.failed from None
        if func not in _SKIPPED and _has_tensor(result):
            self.recorder._emit("call_function", func, tuple(args), kwargs, result)
        return result


_NUMBERS = (int, float, bool)

_WRAPPED = {int: torch.int64, float: torch.float64, bool: torch.bool}
"""The dtype of a wrapped-number tensor of each Python number type (torch's)."""

_SMALL = 64
"""The most elements a real constant tensor of the traced program may hold for an op on constants alone to be computed
(a traced model's sizes and head counts are 0-dim): a larger one stays the fake mode's to answer."""


def _numbers_for_tensors(func: Any, args: tuple[Any, ...]) -> tuple[bool, ...]:
    """Per positional argument, whether it is a Python number where ``func``'s schema takes a tensor (empty where no
    argument is a number): the interpreter passes numbers as wrapped-number tensors (a traced model's constants:
    Swin's ``aten::equal`` of two head counts), which reach a dispatch mode as Python numbers, and the op refuses
    them."""
    if not any(type(value) in _NUMBERS for value in args):
        return ()
    schema = func._schema.arguments
    return tuple(
        type(value) in _NUMBERS and position < len(schema) and isinstance(schema[position].type, torch.TensorType)
        for position, value in enumerate(args)
    )


def _numbers_as_tensors(func: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` with each number of :func:`_numbers_for_tensors` made a 0-dim tensor again, as the op takes it."""
    numbers = _numbers_for_tensors(func, args)
    if not any(numbers):
        return args
    return tuple(
        torch.scalar_tensor(value, dtype=_WRAPPED[type(value)]) if number else value
        for number, value in zip(numbers, args, strict=True)
    )


def _constants_only(func: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    """Whether an op's tensor arguments are all constants of the traced program (after parameters and buffers were
    made fakes): Python numbers where the schema takes a tensor, real tensors of at most :data:`_SMALL` elements;
    with at least one of them and no fake; never an op that writes one of its arguments (the program's constants are
    shared with the user's module: an in-place op stays the fake mode's, which writes a fake of the constant), never a
    random one (it would draw from the process's generator)."""
    found = False
    for value in (*args, *kwargs.values()):
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, torch.Tensor):  # a fake (most ops: the first exit) or a large tensor ends it
                if isinstance(item, FakeTensor) or type(item) not in _REAL or item.numel() > _SMALL:
                    return False
                found = True
    if not found and not any(_numbers_for_tensors(func, args)):
        return False
    return not func._schema.is_mutable and torch.Tag.nondeterministic_seeded not in func.tags


def record_scripted(
    model: nn.Module,
    registry: Registry,
    inputs: ModelInputs,
    make: Callable[[], tuple[tuple[Any, ...], dict[str, Any], list[tuple[str, torch.Tensor]]]],
) -> tuple[Capture, dict[str, NodeValues]]:
    """Record one forward of a copy of the scripted ``model`` on fake tensors, op by ATen op.

    ``make`` builds the call's ``args``, ``kwargs`` and named input tensors (inside the fake mode).
    """
    try:
        clone = copy.deepcopy(model)  # the interpreter may mutate attributes: never on the user's module
    except Exception as error:
        raise CaptureError(f"cannot copy the scripted {type(model).__name__}: {error}") from error
    fake_mode = analysis_mode()
    recorder = _Recorder(clone, registry)
    aten: _AtenRecorder | None = None
    try:
        with fake_mode:
            args, kwargs, tensors = make()
            for name, tensor in tensors:
                recorder._bind(tensor, recorder.graph.placeholder(name))
            aten = _AtenRecorder(recorder, fake_mode)
            with aten:
                output = clone(*args, **kwargs)
            recorder.finish(output)
    except ShapeError:
        raise
    except Exception as error:
        if aten is not None and aten.failed is not None:
            raise aten.failed from None
        raise CaptureError(
            f"recording the scripted {getattr(model, 'original_name', type(model).__name__)} failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    capture = Capture(graph=recorder.graph, root=clone, module_outputs={}, fake_mode=fake_mode, method=SCRIPTED)
    return capture, recorder.values
