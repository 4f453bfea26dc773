"""Models named on the command line: ``timm:NAME``, ``path/to/file.py:factory``, ``package.module:factory``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import sysconfig
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import torch
from torch import nn

from torchscan.errors import TorchscanError

__all__ = ["call_user_code", "load_model", "user_code_error"]

_T = TypeVar("_T")

# Frames in these folders are not the user's code: an error's location is the deepest frame outside them.
_LIBRARY_DIRS = tuple(
    str(Path(folder).resolve()) + os.sep
    for folder in (sysconfig.get_paths()["stdlib"], Path(torch.__file__).parent, Path(__file__).parent)
)


def _location(error: BaseException) -> str:
    """``file.py, line 3``: where ``error`` was raised in the user's code (else its deepest frame)."""
    if isinstance(error, SyntaxError) and error.filename:  # its message names the file and line already
        return ""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if not frame.filename.startswith("<")]
    ours = [frame for frame in frames if not str(Path(frame.filename).resolve()).startswith(_LIBRARY_DIRS)]
    if not frames:
        return ""
    frame = (ours or frames)[-1]
    return f"{frame.filename}, line {frame.lineno}"


def user_code_error(what: str, error: BaseException) -> TorchscanError:
    """The error to raise (``from error``) when the model's own code raised ``error``.

    Its message is one line, ``{what} raised Type: message (file, line)``: the user's to fix, not torchscan's.
    """
    message = " ".join(str(error).split())
    where = _location(error)
    text = f"{what} raised {type(error).__name__}" + (f": {message}" if message else "")
    return TorchscanError(text + (f" ({where})" if where else ""))


def call_user_code(what: str, function: Callable[[], _T]) -> _T:
    """``function()`` (the model's own code), its exceptions raised as :func:`user_code_error`."""
    try:
        return function()
    except TorchscanError:
        raise
    except Exception as error:  # anything the user's code raises
        raise user_code_error(what, error) from error


def _timm_model(name: str) -> nn.Module:
    try:
        import timm
    except ImportError as error:
        raise TorchscanError("`timm:` models need timm: install it with `pip install timm`") from error
    try:
        return timm.create_model(name, pretrained=False)
    except RuntimeError as error:
        if "unknown model" in str(error).lower():
            raise TorchscanError(f"timm has no model '{name}': {error}") from error
        raise user_code_error(f"timm.create_model('{name}')", error) from error
    except Exception as error:  # the model's own constructor raised
        raise user_code_error(f"timm.create_model('{name}')", error) from error


def _file_module(path: Path) -> ModuleType:
    if not path.is_file():
        raise TorchscanError(f"no such file: {path}")
    module_name = f"torchscan_user_model_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise TorchscanError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # as an import would (dataclasses, pickling need it)
    sys.path.insert(0, str(path.resolve().parent))  # so the file can import its neighbours
    try:
        call_user_code(f"importing {path}", lambda: spec.loader.exec_module(module))
    except TorchscanError:
        del sys.modules[module_name]  # as a failed import does
        raise
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def _import_module(name: str) -> ModuleType:
    """The module ``name``; a missing module and a module whose code raises are told apart."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            raise TorchscanError(f"cannot import module '{name}': {error}") from error
        raise user_code_error(f"importing module '{name}'", error) from error
    except Exception as error:  # the module's own code raised
        raise user_code_error(f"importing module '{name}'", error) from error


def load_model(spec: str) -> nn.Module:
    """The model described by ``spec`` (``source:attribute``), in eval mode.

    ``timm:NAME`` builds a randomly initialised timm model; ``file.py:factory`` and
    ``package.module:factory`` import the file or module and call ``factory()`` with no
    arguments (an ``nn.Module`` attribute is used as is).
    """
    source, _, attribute = spec.rpartition(":")
    if not source or not attribute:
        raise TorchscanError(f"'{spec}': expected timm:NAME, path/to/file.py:factory or package.module:factory")
    if source == "timm":
        return _timm_model(attribute).eval()
    if source.endswith(".py") or "/" in source or "\\" in source:
        module = _file_module(Path(source))
    else:
        module = _import_module(source)
    if not hasattr(module, attribute):
        raise TorchscanError(f"'{source}' has no attribute '{attribute}'")
    factory = getattr(module, attribute)
    if isinstance(factory, nn.Module) or not callable(factory):
        model = factory
    else:
        model = call_user_code(f"factory {spec}", factory)
    if not isinstance(model, nn.Module):
        raise TorchscanError(f"'{spec}' gave a {type(model).__name__}, not a torch.nn.Module")
    return model.eval()
