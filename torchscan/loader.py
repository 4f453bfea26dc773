"""Models named on the command line: ``timm:NAME``, ``path/to/file.py:factory``, ``package.module:factory``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from torch import nn

from torchscan.errors import TorchscanError

__all__ = ["load_model"]


def _timm_model(name: str) -> nn.Module:
    try:
        import timm
    except ImportError as error:
        raise TorchscanError("`timm:` models need timm: install it with `pip install timm`") from error
    try:
        return timm.create_model(name, pretrained=False)
    except RuntimeError as error:  # timm's "Unknown model"
        raise TorchscanError(f"timm has no model '{name}': {error}") from error


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
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


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
        try:
            module = importlib.import_module(source)
        except ImportError as error:
            raise TorchscanError(f"cannot import module '{source}': {error}") from error
    if not hasattr(module, attribute):
        raise TorchscanError(f"'{source}' has no attribute '{attribute}'")
    factory = getattr(module, attribute)
    model = factory if isinstance(factory, nn.Module) else factory() if callable(factory) else factory
    if not isinstance(model, nn.Module):
        raise TorchscanError(f"'{spec}' gave a {type(model).__name__}, not a torch.nn.Module")
    return model.eval()
