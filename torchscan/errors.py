"""Errors torchscan raises: each names what was wrong and where."""

from __future__ import annotations

from typing import Any

__all__ = ["CaptureError", "InputError", "ShapeError", "TorchscanError"]


class TorchscanError(Exception):
    """Base class of torchscan's errors. Each pickles and copies as itself, with its attributes (a process pool
    sends a worker's error back pickled: a class whose ``__init__`` takes more than the message did not unpickle,
    and ``concurrent.futures`` then broke the whole pool)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _remade, (type(self), self.args, dict(vars(self)))

    def said_first(self, context: str) -> TorchscanError:
        """This error, of its class and with its attributes, its message preceded by ``context``."""
        state = dict(vars(self))
        if isinstance(state.get("message"), str):
            state["message"] = context + state["message"]
        head = context + str(self.args[0]) if self.args else context
        return _remade(type(self), (head, *self.args[1:]), state)


def _remade(cls: type[TorchscanError], args: tuple[Any, ...], state: dict[str, Any]) -> TorchscanError:
    """An error of ``cls`` with ``args`` and the attributes ``state``, made without its ``__init__``."""
    error = cls.__new__(cls)
    error.args = args
    vars(error).update(state)
    return error


class InputError(TorchscanError, ValueError):
    """The model or the input description is not usable (not a module, a bad shape…)."""


class CaptureError(TorchscanError):
    """The model could not be captured into a graph."""


class ShapeError(TorchscanError):
    """An op rejected the shapes it was given; the message names the fx node and the shapes."""

    def __init__(self, message: str, *, node: str, module_path: str, input_shapes: tuple) -> None:
        super().__init__(message)
        self.message = message
        self.node = node
        self.module_path = module_path
        self.input_shapes = input_shapes
