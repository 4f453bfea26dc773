"""Errors torchscan raises: each names what was wrong and where."""

from __future__ import annotations

__all__ = ["CaptureError", "InputError", "ShapeError", "TorchscanError"]


class TorchscanError(Exception):
    """Base class of torchscan's errors."""


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
