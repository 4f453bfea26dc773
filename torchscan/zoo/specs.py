"""From what the user names to the jobs of a sweep: spec files, patterns, each model's default input, and
the sizes and batch sizes to sweep.

A spec is anything :func:`torchscan.loader.load_model` builds (``resnet50``, ``timm:NAME``,
``file.py:factory``, ``package.module:factory``) or ``hf:MODEL_TYPE`` (:mod:`torchscan.loader.huggingface`),
optionally followed by its inputs (``model.py:make 3x32x32``, ``lm.py:make 128:int64``). Patterns
(``*``, ``?``, ``[...]``) expand to every matching name: ``resnet*`` over torchvision's
``list_models()``, ``timm:resnet*`` and ``timm:*`` over ``timm.list_models()``, ``hf:bert*`` over
transformers' model types. ``@file.txt`` reads one spec per line (``#`` comments; file specs relative
to the file's folder).

An input is ``[keyword=]DIMS[:dtype]`` without the batch dim: ``3x224x224`` (or ``3,224,224``),
``input_ids=128:int64``. A model's default: torchvision's as the ``torchscan`` command takes it (one
``3x224x224`` image; 16 frames for video models, two images for optical flow) except Inception v3 at
299² (torchvision's documented input size), timm's ``pretrained_cfg["input_size"]``, Hugging Face's
from the configuration (:func:`torchscan.loader.huggingface.default_inputs`), ``3x224x224`` else.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from torchscan.errors import InputError, TorchscanError
from torchscan.loader import DEFAULT_INPUT_SHAPE, default_input_shapes, huggingface
from torchscan.zoo.records import Job, ZooInput

__all__ = ["DTYPES", "expand", "jobs", "parse_input", "parse_line"]

DTYPES: dict[str, str] = {
    "float32": "float32",
    "float": "float32",
    "float16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "float64": "float64",
    "int64": "int64",
    "long": "int64",
    "int32": "int32",
    "int": "int32",
    "bool": "bool",
}
"""Dtype names an input may give -> the torch dtype's name."""

_TORCHVISION_SIZES: dict[str, int] = {"inception_v3": 299, "quantized_inception_v3": 299}
"""Image size of torchvision models documented for another input than 224² (Inception v3: 299²)."""

_PATTERN = re.compile(r"[*?\[]")


def parse_input(token: str) -> ZooInput:
    """``[keyword=]DIMS[:dtype]`` (no batch dim) as a :class:`ZooInput` whose shape has no batch dim yet."""
    name, equals, rest = token.rpartition("=")
    dims_text, _, dtype_text = rest.partition(":")
    try:
        shape = tuple(int(part) for part in re.split(r"[x,]", dims_text) if part.strip())
    except ValueError:
        shape = ()
    if not shape or any(dim <= 0 for dim in shape) or (equals and not name.isidentifier()):
        raise InputError(f"input '{token}': expected [keyword=]DIMS[:dtype] without the batch dim, e.g. 3x224x224")
    dtype = DTYPES.get(dtype_text or "float32")
    if dtype is None:
        raise InputError(f"input '{token}': unknown dtype '{dtype_text}' (choose from {', '.join(DTYPES)})")
    return ZooInput(shape, dtype, name or None)


def parse_line(line: str) -> tuple[str, tuple[ZooInput, ...]]:
    """``SPEC [INPUT...]``: the spec and its inputs (none: the model's default)."""
    spec, *tokens = line.split()
    return spec, tuple(parse_input(token) for token in tokens)


def _torchvision_names() -> list[str]:
    from torchscan.loader import _torchvision

    return list(_torchvision().models.list_models())


def _timm_names(pattern: str) -> list[str]:
    try:
        import timm
    except ImportError as error:
        raise TorchscanError("`timm:` models need timm: install it with `pip install timm`") from error
    return ["timm:" + name for name in timm.list_models(pattern)]


def _matches(pattern: str) -> list[str]:
    """The specs a pattern expands to (sorted as its source lists them)."""
    if pattern.startswith("timm:"):
        return _timm_names(pattern.removeprefix("timm:"))
    if pattern.startswith(huggingface.PREFIX):
        return huggingface.expand(pattern)
    if ":" in pattern:
        raise TorchscanError(f"'{pattern}': patterns apply to torchvision names, timm:NAME and hf:MODEL_TYPE")
    return fnmatch.filter(_torchvision_names(), pattern)


def _absolute(spec: str, folder: Path) -> str:
    """``spec`` with a file path made absolute (relative to ``folder``): what a worker anywhere builds."""
    source, colon, attribute = spec.rpartition(":")
    if colon and (source.endswith(".py") or "/" in source or "\\" in source):
        return f"{(folder / source).resolve()}:{attribute}"
    return spec


def expand(specs: Iterable[str], folder: Path | None = None) -> list[tuple[str, str, tuple[ZooInput, ...]]]:
    """``(spec, target, inputs)`` for every model ``specs`` name: spec files read, patterns expanded,
    duplicates (same spec and inputs) dropped; ``target`` is the spec with file paths made absolute.

    Raises :class:`TorchscanError` for a missing spec file or a pattern that matches nothing."""
    folder = Path.cwd() if folder is None else folder
    found: dict[tuple[str, tuple[ZooInput, ...]], str] = {}
    for text in specs:
        if text.startswith("@"):
            path = folder / text[1:]
            if not path.is_file():
                raise TorchscanError(f"spec file {text[1:]} does not exist")
            lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
            for spec, target, inputs in expand([line for line in lines if line], path.parent.resolve()):
                found.setdefault((spec, inputs), target)
            continue
        if not text.strip():
            continue
        spec, inputs = parse_line(text)
        if _PATTERN.search(spec):
            names = _matches(spec)
            if not names:
                raise TorchscanError(f"pattern '{spec}' matches no model")
            for name in names:
                found.setdefault((name, inputs), name)
        else:
            found.setdefault((spec, inputs), _absolute(spec, folder))
    return [(spec, target, inputs) for (spec, inputs), target in found.items()]


def default_inputs(spec: str) -> tuple[ZooInput, ...]:
    """The model's default input set (no batch dim): see the module's docstring."""
    if spec.startswith(huggingface.PREFIX):
        return tuple(ZooInput(shape, dtype, name) for name, shape, dtype in huggingface.default_inputs(spec))
    if spec.startswith("timm:"):
        import timm

        config = timm.get_pretrained_cfg(spec.removeprefix("timm:"))
        size = tuple(config.input_size) if config is not None and config.input_size else DEFAULT_INPUT_SHAPE
        return (ZooInput(size),)
    if ":" in spec:
        return (ZooInput(DEFAULT_INPUT_SHAPE),)
    if spec in _TORCHVISION_SIZES:
        side = _TORCHVISION_SIZES[spec]
        return (ZooInput((3, side, side)),)
    return tuple(ZooInput(shape) for shape in default_input_shapes(spec))


def _resized(item: ZooInput, size: int) -> ZooInput:
    """``item`` at ``size``: the last two dims of a float input of rank 3 or more (images, video frames), the
    only dim of a rank-1 input (tokens, audio samples); other inputs as they are."""
    floating = item.dtype.startswith(("float", "bfloat"))
    if floating and len(item.shape) >= 3:
        return ZooInput((*item.shape[:-2], size, size), item.dtype, item.name)
    if len(item.shape) == 1:
        return ZooInput((size,), item.dtype, item.name)
    return item


def jobs(
    specs: Iterable[str],
    inputs: Sequence[str | ZooInput] | None = None,
    sizes: Sequence[int] | None = None,
    batch_sizes: Sequence[int] = (1,),
    folder: Path | None = None,
) -> list[Job]:
    """One :class:`Job` per model: its input sets are its inputs (those its spec line gives, else
    ``inputs``, else its default) at every size of ``sizes`` (none: as they are) and every batch size. A model
    whose default inputs cannot be worked out (its configuration or its class refuses) gets one empty input set:
    its row says why, the other models' rows are made (a pattern such as ``hf:*`` meets a few)."""
    common = tuple(parse_input(item) if isinstance(item, str) else item for item in inputs or ())
    if any(size <= 0 for size in sizes or ()) or not batch_sizes or any(batch <= 0 for batch in batch_sizes):
        raise InputError("sizes and batch sizes must be positive integers")
    found: dict[str, tuple[str, list[tuple[ZooInput, ...]]]] = {}
    for spec, target, given in expand(specs, folder):
        try:
            base = given or common or default_inputs(spec)
        except TorchscanError:  # the spec as given is wrong (its syntax, a name): said before any work
            raise
        except Exception:  # its configuration or class refuses: no input set to try, the worker's build says why
            found.setdefault(spec, (target, [()]))
            continue
        variants = [tuple(_resized(item, size) for item in base) for size in sizes] if sizes else [base]
        sets = found.setdefault(spec, (target, []))[1]
        for variant in variants:
            for batch in batch_sizes:
                batched = tuple(ZooInput((batch, *item.shape), item.dtype, item.name) for item in variant)
                if batched not in sets:
                    sets.append(batched)
    return [Job(spec, target, tuple(sets)) for spec, (target, sets) in found.items()]
