"""Models named on the command line, built without downloading anything.

A spec is a torchvision name (``resnet50``), ``timm:NAME``, ``hf:MODEL_TYPE[,key=value...]`` (a Hugging Face
architecture from its configuration: :mod:`torchscan.loader.huggingface`), ``path/to/file.py:factory``,
``package.module:factory``, or a saved model file (``model.pt``: a TorchScript archive of ``torch.jit.save``, or
an exported program of ``torch.export.save``; the file's weights, a TorchScript archive's on ``meta`` too). Every
pretrained-weights argument a torchvision builder takes (each parameter of its signature whose name holds
``weights``: ``weights``, ``weights_backbone``…) is ``None`` and timm's ``pretrained`` is ``False``, so no file
is fetched.

By default the model's parameters and buffers are made on the ``meta`` device (shapes and dtypes, no
storage, no initialisation cost): enough for the analysis, which never reads a weight. A model whose
forward needs real values (detection models' NMS, which only a real forward can capture) or a
measurement needs real weights: ``meta=False`` gives them (random, as the builder initialises them).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import sysconfig
import traceback
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import torch
from torch import nn

from torchscan.errors import TorchscanError
from torchscan.loader import huggingface
from torchscan.loader.weights import meta_weights, real_forward_refused

__all__ = [
    "DEFAULT_INPUT_SHAPE",
    "call_user_code",
    "default_call",
    "default_input_shapes",
    "default_inputs",
    "is_saved_model",
    "load_model",
    "meta_weights",
    "real_forward_refused",
    "saved_model",
    "torchvision_builder_arguments",
    "user_code_error",
]

_T = TypeVar("_T")

DEFAULT_INPUT_SHAPE: tuple[int, ...] = (3, 224, 224)
"""One input sample when the command line gives none and the model's family has no other."""

_VIDEO_FRAMES = 16
"""Frames of a torchvision video model's default input (every one of them accepts 16)."""

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


def _mentions_meta(error: BaseException) -> bool:
    """True when ``error`` (or an error it was raised from) is a meta tensor's refusal to give values."""
    seen: BaseException | None = error
    while seen is not None:
        if re.search(r"\bmeta\b", str(seen), re.IGNORECASE):  # "meta tensor", "'Meta' backend"; not "metadata"
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _built(what: str, build: Callable[[], _T], meta: bool) -> _T:
    """``build()`` under :func:`meta_weights` when ``meta``; a builder that fails only because its weights
    are meta tensors (it reads their values) is called again with real ones."""
    if not meta:
        return call_user_code(what, build)
    try:
        with meta_weights():
            return call_user_code(what, build)
    except TorchscanError as error:
        if not _mentions_meta(error):
            raise
    return call_user_code(what, build)


def _torchvision() -> Any:
    try:
        import torchvision
    except ImportError as error:
        raise TorchscanError("model names are torchvision models: install it with `pip install torchvision`") from error
    return torchvision


def _close_matches(name: str, known: list[str]) -> list[str]:
    """Known names close to ``name``: difflib's closest, then names containing it."""
    close = difflib.get_close_matches(name.lower(), known, n=5, cutoff=0.6)
    close += [candidate for candidate in known if name.lower() in candidate and candidate not in close]
    return close[:5]


def _unknown(name: str, known: list[str], where: str) -> TorchscanError:
    close = _close_matches(name, known)
    hint = f" Did you mean {', '.join(close)}?" if close else f" See {where}."
    return TorchscanError(f"unknown model '{name}'.{hint}")


def torchvision_builder_arguments(name: str) -> dict[str, Any]:
    """The keywords that turn every pretrained-weights argument of torchvision builder ``name`` off:
    ``None`` for each parameter of its signature whose name holds ``weights``."""
    builder = _torchvision().models.get_model_builder(name)
    return {parameter: None for parameter in inspect.signature(builder).parameters if "weights" in parameter}


def _torchvision_model(name: str, meta: bool) -> nn.Module:
    models = _torchvision().models
    available = models.list_models()
    if name not in available:
        raise _unknown(name, available, "torchvision.models.list_models()")
    arguments = torchvision_builder_arguments(name)
    return _built(f"torchvision model {name}", lambda: models.get_model(name, **arguments), meta)


def _timm_model(name: str, meta: bool) -> nn.Module:
    try:
        import timm
    except ImportError as error:
        raise TorchscanError("`timm:` models need timm: install it with `pip install timm`") from error
    if not timm.is_model(name):
        raise _unknown(name, list(timm.list_models()), "timm.list_models()")
    return _built(f"timm.create_model('{name}')", lambda: timm.create_model(name, pretrained=False), meta)


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


def _factory_model(spec: str, source: str, attribute: str, meta: bool) -> object:
    if source.endswith(".py") or "/" in source or "\\" in source:
        module = _file_module(Path(source))
    else:
        module = _import_module(source)
    if not hasattr(module, attribute):
        raise TorchscanError(f"'{source}' has no attribute '{attribute}'")
    factory = getattr(module, attribute)
    if isinstance(factory, nn.Module) or not callable(factory):
        return factory  # built when the module was imported: as it is
    return _built(f"factory {spec}", factory, meta)


SAVED_SUFFIXES = (".pt", ".pt2", ".pth", ".ts", ".ptl", ".jit")
"""The suffixes of a saved model file (:func:`saved_model`); a path to an existing file is read as one too
(:func:`is_saved_model`)."""


def is_saved_model(spec: str) -> bool:
    """Whether ``spec`` names a saved model file rather than a builder: a name ending in one of
    :data:`SAVED_SUFFIXES`, or a path (with a directory separator) to an existing file; ``file.py:factory`` is a
    builder, and so is a bare name (``resnet50``), whatever the current directory holds."""
    if ":" in spec:
        return False
    path = Path(spec)
    return spec.lower().endswith(SAVED_SUFFIXES) or (len(path.parts) > 1 and path.is_file())


def saved_model(path: Path, meta: bool = True) -> nn.Module:
    """The model saved at ``path``, told by the archive's entries: a TorchScript archive (``torch.jit.save``, its
    ``code/`` and ``constants.pkl``: ``torch.jit.load``, its weights on the ``meta`` device with ``meta``, which the
    analysis needs no more than a built model's, else on the CPU) or an exported program (``torch.export.save``, its
    ``archive_format``: its ``module()``, on the CPU: ``torch.export.load`` maps no device). A ``torch.save`` file is
    refused, saying what to pass: a state dict holds weights without an architecture, and loading a pickled module
    would run code from the file."""
    if not path.is_file():
        raise TorchscanError(f"no such file: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            entries = {name.partition("/")[2] for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError) as error:
        raise TorchscanError(f"{path} is not a saved model (not a zip archive: {error})") from None
    if "archive_format" in entries:
        return call_user_code(f"loading the exported program {path}", lambda: torch.export.load(str(path)).module())
    if "constants.pkl" in entries or any(entry.startswith("code/") for entry in entries):
        device = "meta" if meta else "cpu"
        with warnings.catch_warnings():  # torch.jit's deprecation is torch's to tell the file's author, not this user
            warnings.simplefilter("ignore", FutureWarning)
            return call_user_code(f"loading the TorchScript archive {path}", lambda: torch.jit.load(path, device))
    if "data.pkl" not in entries:
        raise TorchscanError(f"{path} is not a saved model: neither TorchScript, an exported program, nor torch.save's")
    try:
        held = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # weights_only refuses what is not plain data: a pickled module or object
        raise TorchscanError(
            f"{path} holds a pickled object (torch.save of a module?): loading it would run code from the file, which "
            "torchscan does not do; save the model with torch.jit.save or torch.export.save, or pass "
            "path/to/file.py:factory that builds it"
        ) from None
    kind = "a state dict (weights without an architecture)" if isinstance(held, dict) else type(held).__name__
    raise TorchscanError(
        f"{path} holds {kind}, not a model: pass path/to/file.py:factory that builds the model (the analysis reads "
        "no weight)"
    )


def load_model(spec: str, *, meta: bool = True) -> nn.Module:
    """The model ``spec`` names, in eval mode; nothing is downloaded.

    ``resnet50`` (any ``torchvision.models.list_models()`` name) and ``timm:NAME`` build a randomly
    initialised model, every pretrained-weights argument off; ``hf:MODEL_TYPE`` the Hugging Face architecture
    of that configuration (its overrides applied), randomly initialised; ``file.py:factory`` and
    ``package.module:factory`` import the file or module and call ``factory()`` with no arguments (an
    ``nn.Module`` attribute is used as is); a saved model file is loaded (:func:`saved_model`, its own weights,
    a TorchScript archive's on ``meta`` with ``meta``). With ``meta`` (the default) the parameters and buffers the
    builder registers are meta tensors (:func:`meta_weights`); a builder that fails on them (one that
    reads their values) is called again for real weights. An unknown torchvision or timm name raises a
    :class:`TorchscanError` naming the closest known names.
    """
    if spec.startswith(huggingface.PREFIX):
        return huggingface.build(spec, meta=meta)
    if is_saved_model(spec):
        loaded = saved_model(Path(spec), meta)  # as saved: an exported program's module refuses ``eval()``
        return loaded.eval() if isinstance(loaded, torch.jit.ScriptModule) else loaded
    source, _, attribute = spec.rpartition(":")
    if ":" not in spec:
        model: object = _torchvision_model(spec, meta)
    elif not source or not attribute:
        raise TorchscanError(
            f"'{spec}': expected timm:NAME, hf:MODEL_TYPE, path/to/file.py:factory or package.module:factory"
        )
    elif source == "timm":
        model = _timm_model(attribute, meta)
    else:
        model = _factory_model(spec, source, attribute, meta)
    if not isinstance(model, nn.Module):
        raise TorchscanError(f"'{spec}' gave a {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def default_inputs(spec: str) -> tuple[tuple[str | None, tuple[int, ...], str | None], ...]:
    """``(keyword or None, shape without the batch dim, dtype name or None)`` of each input ``spec``'s model is
    called with when the user gives none: :func:`default_call`'s inputs."""
    return default_call(spec)[0]


def default_call(spec: str) -> tuple[tuple[tuple[str | None, tuple[int, ...], str | None], ...], int]:
    """The inputs (as :func:`default_inputs` gives them) and the batch size ``spec``'s model is analysed at when the
    user gives none: a Hugging Face architecture's by keyword (:func:`~torchscan.loader.huggingface.default_inputs`:
    ``input_ids`` of 128 int64 tokens…), an exported program's as it was exported, its batch included (its shapes
    are fixed: others fail its guards; the program read once for both), every other model's positional
    (:func:`default_input_shapes`, the default float dtype) at batch 1."""
    if spec.startswith(huggingface.PREFIX):
        return huggingface.default_inputs(spec), 1
    exported = _exported_inputs(spec)
    if exported is not None:
        return tuple((None, shape[1:], _DTYPE_NAMES.get(dtype)) for shape, dtype in exported), exported[0][0][0]
    return tuple((None, shape, None) for shape in default_input_shapes(spec)), 1


_DTYPE_NAMES = {
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.float64: "float64",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.bool: "bool",
}
"""The command line's name of each input dtype an exported program may take (float32, the default, has none)."""


def _exported_inputs(spec: str) -> tuple[tuple[tuple[int, ...], torch.dtype], ...] | None:
    """Each input's full shape and dtype as the exported program saved at ``spec`` was exported with (None: no such
    file, or an input that is not a tensor of static shape). The program is loaded to read them (no cache is kept)."""
    path = Path(spec)
    if not is_saved_model(spec) or not path.is_file():
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            if not any(name.partition("/")[2] == "archive_format" for name in archive.namelist()):
                return None
    except (zipfile.BadZipFile, OSError):
        return None
    program = call_user_code(f"loading the exported program {path}", lambda: torch.export.load(str(path)))
    users = [
        entry.arg.name
        for entry in program.graph_signature.input_specs
        if entry.kind == torch.export.graph_signature.InputKind.USER_INPUT
    ]
    values = {node.name: node.meta.get("val") for node in program.graph.nodes if node.op == "placeholder"}
    found = []
    for name in users:
        value = values.get(name)
        if not isinstance(value, torch.Tensor) or value.ndim == 0 or not all(type(size) is int for size in value.shape):
            return None
        found.append((tuple(value.shape), value.dtype))
    return tuple(found) or None


def default_input_shapes(spec: str) -> tuple[tuple[int, ...], ...]:
    """One sample per positional input (no batch dim) for ``spec`` when the user gives none.

    torchvision's video models: ``(3, 16, H, W)``, 16 frames of their weights' crop size;
    optical-flow models: two images ``(3, 224, 224)``; everything else one ``(3, 224, 224)`` (a saved model file's
    too, torchvision not asked: :func:`default_inputs` reads an exported program's own). The families are
    torchvision's own model modules (``list_models(module=...)``).
    """
    if ":" in spec or is_saved_model(spec):
        return (DEFAULT_INPUT_SHAPE,)
    models = _torchvision().models
    if spec in models.list_models(module=models.video):
        crop = models.get_model_weights(spec).DEFAULT.transforms().crop_size
        return ((3, _VIDEO_FRAMES, *crop),)
    if spec in models.list_models(module=models.optical_flow):
        return (DEFAULT_INPUT_SHAPE, DEFAULT_INPUT_SHAPE)
    return (DEFAULT_INPUT_SHAPE,)
