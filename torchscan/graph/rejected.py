"""Whether a forward's exception is the model's own code rejecting its input, and the error that says so.

A model checks its input in its own code (``if x.shape[-1] != 5: raise ValueError(...)``, ``assert x.ndim ==
4``, ``torch._assert(h == self.image_size, ...)``, ``torch._check(...)``). Such a check reads sizes, dtypes and
devices, which a fake tensor has as a real one does: where it fails on fake tensors a real forward fails the
same way, so it is reported as it is (an :class:`~torchscan.errors.InputError`), with no real forward tried. A
check that reads values (``if (x < 0).any(): raise``) fails inside torch on fake tensors, not at the model's
``raise``: it is no such check, and the capture goes on as before (a real forward may answer).
"""

from __future__ import annotations

import dis
import os
import sys
import sysconfig
import traceback
import types
from collections.abc import Sequence

import torch

from torchscan.errors import InputError
from torchscan.graph.executions import is_user_file
from torchscan.graph.shapes import first_line

__all__ = ["CHECK_FUNCTIONS", "RejectedByModel", "RejectedInput", "model_caller", "own_check", "rejected_input"]

CHECK_FUNCTIONS = frozenset({torch._assert})
"""torch's check functions that a ``TorchFunctionMode`` sees called (a recording's op): their failure is the
caller's own check, never an op rejecting its shapes."""

_CHECK_CODES = frozenset(
    function.__code__
    for name in (
        "_assert",
        "_check",
        "_check_with",
        "_check_index",
        "_check_value",
        "_check_type",
        "_check_not_implemented",
        "_check_is_size",
        "_check_tensor_all",
        "_check_tensor_all_with",
    )
    if isinstance(function := getattr(torch, name, None), types.FunctionType)
)
"""The code of torch's check functions (``torch._assert``, ``torch._check`` and its variants, which raise from
``torch._check_with``): a frame of one of them raising is its caller's check."""

_STDLIB = sysconfig.get_paths()["stdlib"] + os.sep
"""Python's standard library: its ``raise`` statements are no model's checks."""

_PACKAGES = tuple({sysconfig.get_paths()[key] + os.sep for key in ("purelib", "platlib")})
"""Where installed packages live (inside the standard library's folder outside a virtual environment)."""

_RAISE = dis.opmap["RAISE_VARARGS"]
"""The instruction of a ``raise`` statement and of a failed ``assert``."""

_UNPACKS = frozenset(dis.opmap[name] for name in ("UNPACK_SEQUENCE", "UNPACK_EX"))
"""The instructions of an unpacking (``n, c, h, w = x.shape``): its ``ValueError`` (too many or too few values)
depends on lengths alone, a tensor's its first size, which fake tensors have as real ones do."""


class RejectedByModel(InputError):
    """A check of the model's own code rejected its input (:func:`rejected_input`): an
    :class:`~torchscan.errors.InputError` with the model's input shapes (``input_shapes``)."""

    def __init__(self, message: str, input_shapes: tuple[tuple[int, ...], ...]) -> None:
        super().__init__(message)
        self.input_shapes = input_shapes


class RejectedInput(Exception):
    """A check of the model's own code failed (``error``) at the user frame ``frame``: raised out of a recording,
    turned into an :class:`~torchscan.errors.InputError` by :func:`rejected_input`."""

    def __init__(self, error: BaseException, frame: traceback.FrameSummary) -> None:
        super().__init__(str(error))
        self.error = error
        self.frame = frame


def own_check(error: BaseException) -> traceback.FrameSummary | None:
    """The frame of the model's own code whose check raised ``error``, or None where something else did.

    A check is a ``raise`` statement, a failed ``assert`` or an unpacking of the wrong length (``n, c, h, w =
    x.shape`` on a 5-dimensional input) in a user file (outside torch and torchscan: the innermost frame of the
    traceback, at that instruction), or a call of one of torch's check functions
    (``torch._assert``, ``torch._check``…) made from a user file. An exception raised while another was being
    handled (``except KeyError: raise ValueError(...)``) translates that one, whatever it was: not a check.
    """
    if error.__context__ is not None or error.__cause__ is not None:
        return None
    entries: list[types.TracebackType] = []
    tb = error.__traceback__
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    if not entries:
        return None
    position = len(entries) - 1
    innermost = entries[position]
    if innermost.tb_frame.f_code in _CHECK_CODES:
        while position >= 0 and entries[position].tb_frame.f_code in _CHECK_CODES:
            position -= 1  # ``torch._check`` calls ``torch._check_with``: the check's caller is above both
        if position < 0:
            return None
        caller = entries[position]
        return _summary(caller) if _in_model_code(caller.tb_frame.f_code.co_filename) else None
    code = innermost.tb_frame.f_code
    if not _in_model_code(code.co_filename):
        return None
    raw = code.co_code
    if not 0 <= innermost.tb_lasti < len(raw):
        return None
    instruction = raw[innermost.tb_lasti]
    if instruction == _RAISE or (instruction in _UNPACKS and type(error) is ValueError):
        return _summary(innermost)
    return None  # raised by another operation of the line (a C method, an index…), not by the model's statement


def model_caller(function: types.FunctionType) -> traceback.FrameSummary | None:
    """The frame that made the innermost running call of ``function`` (a check function the recording saw called,
    :data:`CHECK_FUNCTIONS`), where it runs the model's code; None where torch's own code made the call (an op's
    internal check: the op's error, not the model's)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code is not function.__code__:
        frame = frame.f_back
    caller = frame.f_back if frame is not None else None
    if caller is None or not _in_model_code(caller.f_code.co_filename):
        return None
    return traceback.FrameSummary(caller.f_code.co_filename, caller.f_lineno, caller.f_code.co_name)


def _in_model_code(filename: str) -> bool:
    """Whether a frame of ``filename`` runs the model's code: a user file (:func:`is_user_file`: a model's
    library, a script, a notebook's cell), not Python's standard library."""
    if not is_user_file(filename) or filename.startswith("<frozen "):
        return False
    return not filename.startswith(_STDLIB) or filename.startswith(_PACKAGES)


def _summary(entry: types.TracebackType) -> traceback.FrameSummary:
    code = entry.tb_frame.f_code
    return traceback.FrameSummary(code.co_filename, entry.tb_lineno, code.co_name)


def rejected_input(
    error: BaseException,
    frame: traceback.FrameSummary,
    model: str,
    layer: tuple[str, str] | None,
    inputs: Sequence[tuple[str, torch.Tensor]],
) -> RejectedByModel:
    """The error for a check of the model's own code that rejected its input: the model (its class name
    ``model``), the layer whose code ran it (``(path, class name)``, None for the model's own forward), the
    model's input tensors (``(name, tensor)``), the check's exception and its line."""
    given = ", ".join(
        f"{name} {tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}" for name, tensor in inputs
    )
    where = f"layer '{layer[0]}' ({layer[1]})" if layer is not None else model
    code = (frame.line or "").strip()
    at = f'\n  at File "{frame.filename}", line {frame.lineno}, in {frame.name}' + (f"\n    {code}" if code else "")
    reason = f"{type(error).__name__}: {first_line(error)}" if str(error).strip() else type(error).__name__
    return RejectedByModel(
        f"{where} rejected the input ({given or 'no tensors'}) in a check of the model's own code "
        f"(a real forward fails the same way: none was run): {reason}{at}",
        tuple(tuple(tensor.shape) for _, tensor in inputs),
    )
