"""Command line: ``torchscan MODEL [options]``, ``torchscan diff MODEL_A MODEL_B [options]`` and
``torchscan zoo SPEC... [options]`` (:mod:`torchscan.zoo.command`; ``--help`` of each lists the options,
with examples).

The model is built by :func:`torchscan.loader.load_model`: nothing is downloaded, and its weights
are meta tensors unless a real forward (a model only a real forward can capture) or ``--measure``
(on a CUDA machine) needs real ones. ``--dtype`` with a float type casts the model and the inputs.

Progress goes to stderr through tqdm, from one second on, while stderr is a terminal and
``--quiet`` is not given. A user mistake (a model that cannot be built, a bad shape, an unusable
``-o``) is one line on stderr, ``torchscan: error: …``, and exit status 2; a bug of torchscan's is
one line and exit status 1. ``--traceback`` prints the full traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn

from torchscan.api import crawl_module, with_measurement
from torchscan.collector import frozen_after
from torchscan.comparison import compare
from torchscan.errors import CaptureError, TorchscanError
from torchscan.inputs import model_inputs
from torchscan.loader import default_call, default_inputs, load_model, real_forward_refused
from torchscan.passes.memory import OPTIMIZERS
from torchscan.records import ROW_METRICS, TensorSpec
from torchscan.records.frozen import frozen_record
from torchscan.render.diff import diff_csv, diff_json, render_diff
from torchscan.render.table import parse_columns, render_table, wants_receptive_field
from torchscan.render.units import parse_size
from torchscan.report import Report
from torchscan.symbolic import Dim, SymbolicReport, collect_dims, substitute
from torchscan.version import __version__

__all__ = ["check_output_path", "main", "parse_size"]

_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "long": torch.long,
    "int64": torch.int64,
    "int32": torch.int32,
    "bool": torch.bool,
}

_PROGRESS_DELAY = 1.0
"""Seconds before the progress line appears: shorter runs show none."""


def _size_argument(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _dim(text: str) -> int | Dim:
    """``224``, or a named size: ``H`` (any), ``H%32`` (multiples of 32 from 32); ``ValueError`` else."""
    match = re.fullmatch(r"([A-Za-z_]\w*)(?:%(\d+))?", text)
    if match is None:
        return int(text)
    multiple = int(match.group(2) or 1)
    if multiple < 1:
        raise ValueError(text)
    return Dim(match.group(1), min=multiple, multiple_of=multiple)


def _dims_argument(text: str) -> tuple[int | Dim, ...]:
    """``3``, ``3,224,224`` or ``3x224x224``, a size may be named (``3 H%32 W%32``): dims of one input
    (their values are checked with the inputs)."""
    try:
        return tuple(_dim(part.strip()) for part in re.split(r",|(?<=\d)x(?=\d)", text.strip()) if part.strip())
    except (ValueError, TorchscanError):
        raise argparse.ArgumentTypeError(
            f"invalid dims '{text}': give integers or named sizes, e.g. 3 224 224, 3,224,224 or 3 H%32 W%32"
        ) from None


def _batch_argument(text: str) -> int | Dim:
    """``--batch-size``: an integer or a named size (``B``, ``B%8``)."""
    try:
        return _dim(text.strip())
    except (ValueError, TorchscanError):
        raise argparse.ArgumentTypeError(f"invalid batch size '{text}': give an integer or a name (B)") from None


def _assignment(text: str) -> tuple[str, int]:
    """``--at L=1024``: a named size and its value."""
    name, _, value = text.partition("=")
    try:
        return name.strip(), int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size '{text}': give NAME=VALUE, e.g. L=1024") from None


def check_output_path(output: str) -> Path:
    """The file ``-o`` names, checked before any work is done; the file is neither created nor truncated.

    Raises :class:`TorchscanError` when its folder is missing, when it is a directory, or when it
    cannot be written (an existing file without write permission, a folder without it).
    """
    path = Path(output)
    if not output or output.endswith(("/", os.sep)) or path.is_dir():
        raise TorchscanError(f"-o {output or repr(output)}: is a directory, give a file path")
    folder = path.parent
    if not folder.exists():
        raise TorchscanError(f"-o {output}: folder {folder} does not exist")
    if not folder.is_dir():
        raise TorchscanError(f"-o {output}: {folder} is not a folder")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise TorchscanError(f"-o {output}: file is not writable (permission denied)")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise TorchscanError(f"-o {output}: cannot create a file in {folder} (permission denied)")
    return path


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:  # checked before the analysis; still possible (disk full, a race)
        raise TorchscanError(f"cannot write -o {path}: {error.strerror or error}") from error


def _real_forward_options(args: argparse.Namespace) -> dict[str, Any]:
    """``crawl_module``'s real-forward keywords the user set (none when no flag is given)."""
    options: dict[str, Any] = {}
    if args.no_real_forward:
        options["real_forward"] = False
    if args.real_forward_limit is not None:
        options["real_forward_limit"] = args.real_forward_limit
    return options


@frozen_record
class _Inputs:
    """The inputs of one model: a shape (no batch dim) and a dtype (None: default float) each, and the keyword
    each is passed by (a Hugging Face model's ``input_ids``…; ``names`` empty: every input positional)."""

    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[torch.dtype | None, ...]
    names: tuple[str, ...] = ()

    def call(self, batch_size: Any) -> dict[str, Any]:
        """``crawl_module``'s input keywords for ``batch_size``: ``input_shape``, ``dtype`` and ``batch_size``
        for positional inputs, else ``kwargs`` of one :class:`TensorSpec` (the batch dim first) per keyword."""
        if not self.names:
            return {"input_shape": self.input_shape, "dtype": self.dtype, "batch_size": batch_size}
        default = torch.get_default_dtype()
        specs = {
            name: TensorSpec((batch_size, *shape), dtype or default)
            for name, shape, dtype in zip(self.names, self.shapes, self.dtypes, strict=True)
        }
        return {"kwargs": specs}

    @property
    def input_shape(self) -> tuple[int, ...] | list[tuple[int, ...]]:
        """``crawl_module``'s ``input_shape``: the shape of a single input, else the list."""
        return self.shapes[0] if len(self.shapes) == 1 else list(self.shapes)

    @property
    def dtype(self) -> torch.dtype | tuple[torch.dtype, ...] | None:
        """``crawl_module``'s ``dtype``: None, one dtype for a single input, else one per input."""
        if all(dtype is None for dtype in self.dtypes):
            return None
        if len(self.dtypes) == 1:
            return self.dtypes[0]
        return tuple(dtype or torch.get_default_dtype() for dtype in self.dtypes)

    @property
    def model_dtype(self) -> torch.dtype | None:
        """The float dtype the model is cast to: the one float dtype given, if any."""
        floats = {dtype for dtype in self.dtypes if dtype is not None and dtype.is_floating_point}
        return next(iter(floats)) if len(floats) == 1 else None


def _inputs(
    args: argparse.Namespace,
    spec: str,
    defaults: tuple[tuple[str | None, tuple[int, ...], str | None], ...] | None = None,
) -> _Inputs:
    """The inputs for model ``spec``: ``--input-shape`` (one per input; default: the model's, ``defaults`` when the
    caller has them, see :func:`torchscan.loader.default_inputs`) and ``--dtype`` (one for all, or one per input;
    default: the model's, the default float dtype but for a Hugging Face model's token ids). A Hugging Face model
    takes its inputs by keyword (``input_ids``, then ``decoder_input_ids`` for an encoder-decoder…):
    ``--input-shape`` gives their shapes in that order.

    Raises :class:`TorchscanError` on a dtype count that fits neither, on several float dtypes (the
    model is cast to one), and :class:`~torchscan.errors.InputError` on a bad shape: before any work."""
    defaults = default_inputs(spec) if defaults is None else defaults
    keywords = tuple(keyword for keyword, _, _ in defaults if keyword is not None)
    shapes = (
        tuple(tuple(dim for part in given for dim in part) for given in args.input_shape)
        if args.input_shape
        else tuple(shape for _, shape, _ in defaults)
    )
    if keywords and len(shapes) > len(keywords):
        raise TorchscanError(
            f"{len(shapes)} --input-shape for {spec}, which takes {len(keywords)} input(s): {', '.join(keywords)}"
        )
    names = args.dtype or []
    if len(names) > 1 and len(names) != len(shapes):
        raise TorchscanError(
            f"{len(names)} --dtype for {len(shapes)} input(s): give one --dtype for all inputs or one per --input-shape"
        )
    dtypes: tuple[torch.dtype | None, ...]
    if not names:
        dtypes = tuple(None if dtype is None else _DTYPES[dtype] for _, _, dtype in defaults[: len(shapes)])
        dtypes += (None,) * (len(shapes) - len(dtypes))
    elif len(names) == 1:
        dtypes = (_DTYPES[names[0]],) * len(shapes)
    else:
        dtypes = tuple(_DTYPES[name] for name in names)
    inputs = _Inputs(shapes, dtypes, keywords[: len(shapes)])
    floats = {dtype for dtype in dtypes if dtype is not None and dtype.is_floating_point}
    if len(floats) > 1:
        names_given = ", ".join(sorted(str(dtype).removeprefix("torch.") for dtype in floats))
        raise TorchscanError(f"--dtype: one float dtype per model (the model is cast to it), got {names_given}")
    first = {dim.name: dim.first for dim in collect_dims(inputs.input_shape, None, None, args.batch_size)}
    shape, batch = substitute(inputs.input_shape, first, shape=True), substitute(args.batch_size, first, shape=True)
    concrete = _Inputs(tuple(shape) if len(inputs.shapes) > 1 else (shape,), inputs.dtypes, inputs.names)
    model_inputs(**concrete.call(batch))  # raises InputError
    return inputs


class _Progress:
    """What the command is doing, on stderr: one tqdm line (stage, count, elapsed time), shown from
    :data:`_PROGRESS_DELAY` seconds on, at each new stage and every half second by a daemon thread while
    a stage runs; nothing when disabled (``--quiet``, or stderr is not a terminal). Cleared when closed."""

    def __init__(self, enabled: bool, stages: int) -> None:
        self._bar: Any = None
        if not enabled:
            return
        from tqdm import tqdm  # the command's dependency only: the library never imports it

        self._bar = tqdm(
            total=stages,
            file=sys.stderr,
            delay=math.inf,  # tqdm never draws on its own: _refresh does, from the delay on
            leave=False,
            dynamic_ncols=True,
            bar_format="torchscan: {desc} [{n_fmt}/{total_fmt}, {elapsed}]",
        )
        self._started = time.monotonic()
        self._current: str | None = None
        self._shown = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="torchscan-progress", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        if self._current is not None and time.monotonic() - self._started >= _PROGRESS_DELAY:
            self._shown = True
            self._bar.refresh()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self._refresh()

    def stage(self, text: str, extra: int = 0, same: bool = False) -> None:
        """Start stage ``text``: the one before it is done (unless it has the ``same`` text, and goes on);
        ``extra`` stages are added to the total."""
        if self._bar is None or (same and self._current == text):
            return
        if self._current is not None:
            self._bar.n += 1
        self._current = text
        self._bar.total += extra
        self._bar.set_description_str(text, refresh=False)
        self._refresh()

    def close(self) -> None:
        if self._bar is None:
            return
        self._stop.set()
        self._thread.join()
        if self._shown:
            self._bar.clear()  # the line is drawn by _refresh only: tqdm would not clear it
        self._bar.close()
        self._bar = None


def _on_meta(model: nn.Module) -> bool:
    return any(tensor.device.type == "meta" for tensor in (*model.parameters(), *model.buffers()))


def _setup(args: argparse.Namespace) -> contextlib.AbstractContextManager[None]:
    """Where the command imports a model's library and builds the model: in the command's own process, with the
    collector off and what it made frozen after (:func:`~torchscan.collector.frozen_after`: it lives until the
    process exits); otherwise as it is."""
    return frozen_after() if getattr(args, "own_process", False) else contextlib.nullcontext()


def _built(spec: str, inputs: _Inputs, meta: bool, args: argparse.Namespace) -> nn.Module:
    """Model ``spec``, cast to the float dtype of ``inputs`` (if any): an fp16 model for ``--dtype float16``."""
    with _setup(args):
        model = load_model(spec, meta=meta)
        dtype = inputs.model_dtype
        return model if dtype is None else model.to(dtype)


def _analyse(
    spec: str, inputs: _Inputs, args: argparse.Namespace, progress: _Progress, real_weights: bool = False
) -> tuple[Report, nn.Module]:
    """Build ``spec`` (meta weights unless ``real_weights``) and analyse it.

    A model on meta weights that cannot be captured on fake tensors (detection models: only a real
    forward gets past NMS) is built again with real random weights and analysed once more: the
    real-forward policy (``--no-real-forward``, ``--real-forward-limit``) then decides, and its error
    says what to change. Where that policy would refuse the real forward whatever the rest (forbidden, or the
    weights alone above the limit: a Hugging Face LLaVA's 7 B parameters), nothing is built."""
    progress.stage(f"building {spec}", same=True)
    model = _built(spec, inputs, meta=not real_weights, args=args)
    progress.stage(f"analysing {spec}")
    receptive = getattr(args, "receptive_field", False) or wants_receptive_field(getattr(args, "columns", None))
    options = {**inputs.call(args.batch_size), "receptive_field": receptive}
    options |= _real_forward_options(args)
    try:
        return crawl_module(model, **options), model
    except CaptureError as error:
        if not _on_meta(model):
            raise
        _check_real_weights(spec, model, args, error)
    progress.stage(f"building {spec} with real weights (only a real forward can capture it)", extra=2)
    model = _built(spec, inputs, meta=False, args=args)
    progress.stage(f"analysing {spec} with a real forward")
    return crawl_module(model, **options), model


def _check_real_weights(spec: str, model: nn.Module, args: argparse.Namespace, error: CaptureError) -> None:
    """Raise ``error`` told what stops the real forward where the policy refuses it before any weight is built
    (:func:`~torchscan.loader.real_forward_refused`)."""
    refused = real_forward_refused(error, spec, model, not args.no_real_forward, args.real_forward_limit)
    if refused is not None:
        raise refused from None


_FORMATS = ("table", "csv", "json", "dot", "svg", "html")
_DIFF_FORMATS = ("text", "csv", "json")


def _render(report: Report, args: argparse.Namespace) -> str:
    """The report in ``args.format`` (depth ``args.max_depth``; for html, the graph's depth)."""
    if args.format == "csv":
        return report.to_csv(depth=args.max_depth)
    if args.format == "json":
        return report.to_json(depth=args.max_depth)
    if args.format == "dot":
        return report.to_dot(depth=args.max_depth, color_by=args.color_by)
    if args.format == "svg":
        return report.to_svg(depth=args.max_depth, color_by=args.color_by)
    if args.format == "html":
        return report.to_html(graph_depth=args.max_depth, color_by=args.color_by)
    width = 0 if args.output is not None else None  # a file has no width; a terminal its own
    table = render_table(report, max_depth=args.max_depth, columns=args.columns, width=width, show_free=args.all_rows)
    return table + "\n"


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line: ``torchscan: error: …`` (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    """``torchscan 0.1.0 (torch 2.14.1, torchvision 0.29.1)``: the versions that shape the numbers."""
    found = [f"torch {torch.__version__}"]
    for package in ("torchvision", "timm"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{package} {importlib.metadata.version(package)}")
    return f"torchscan {__version__} ({', '.join(found)})"


_EXAMPLES = """\
examples:
  torchscan resnet50 --max-depth 1                   the table of a torchvision model, depth 1
  torchscan resnet50 --max-depth 0                   totals only
  torchscan vit_b_16 --columns all                   every column (or cost, memory, or names: flops,macs)
  torchscan timm:convnext_tiny --input-shape 3,288,288 --batch-size 8
  torchscan hf:bert --input-shape 256               a Hugging Face architecture from its config (256 token ids)
  torchscan resnet50 --dtype float16                 an fp16 model: weights and inputs cast
  torchscan lm.py:make --input-shape 128 --dtype long                      token ids
  torchscan two.py:make --input-shape 3,224,224 --input-shape 77 --dtype float32 --dtype long
                                                     two inputs, a dtype each
  torchscan resnet50 --format html -o resnet50.html  a self-contained HTML report
  torchscan diff resnet18 resnet34 --max-depth 1     compare two models (torchscan diff --help)

Nothing is downloaded: torchvision, timm and hf: models get random weights, on the meta device unless a
real forward is needed. Video models default to 16 frames, optical-flow models to two images."""

_DIFF_EXAMPLES = """\
examples:
  torchscan diff resnet18 resnet34 --max-depth 1
  torchscan diff resnet50 timm:resnet50 --changed-only
  torchscan diff vit_b_16 vit_b_32 --metrics params,flops,macs --format csv -o diff.csv

Differences are B − A; rows are matched by name, and rows only one model has are marked."""


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input-shape",
        type=_dims_argument,
        nargs="+",
        action="append",
        default=None,
        metavar="DIM",
        help="shape of one input sample without the batch dim: 3 224 224 or 3,224,224; repeat it for each "
        "positional input (default: 3 224 224; 3 16 H W for video models, two images for optical flow, an exported "
        "program's own). A named "
        "size (3 H%%32 W%%32: multiples of 32) gives formulas in it",
    )
    parser.add_argument(
        "--batch-size",
        type=_batch_argument,
        default=None,
        help="batch size, or a name (B) for formulas (default: 1, an exported program's own batch)",
    )
    parser.add_argument(
        "--dtype",
        action="append",
        default=None,
        choices=tuple(_DTYPES),
        help="input dtype, once for all inputs or once per --input-shape (long for token ids); a float "
        "dtype casts the model too, e.g. float16 analyses an fp16 model (default: float32)",
    )
    parser.add_argument(
        "--max-depth", type=int, default=None, help="deepest layer level shown, 0 for totals only (default: all)"
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", default=None, metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    real = parser.add_mutually_exclusive_group()
    real.add_argument(
        "--no-real-forward",
        action="store_true",
        help="never fall back to a real forward of the model (a model that cannot be traced is an error)",
    )
    real.add_argument(
        "--real-forward-limit",
        type=_size_argument,
        default=None,
        metavar="SIZE",
        help="largest real forward allowed as a fallback, e.g. 4GiB, 512MiB or bytes (default: torchscan's)",
    )
    parser.add_argument(
        "--traceback", action="store_true", help="on an error, print the full traceback instead of one line"
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="torchscan",
        description="Static analysis of a PyTorch model: per-layer shapes, parameters, FLOPs, MACs, DMAs, "
        "memory. `torchscan diff MODEL_A MODEL_B` compares two models; `torchscan zoo SPEC...` sweeps many.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model",
        help="a torchvision model name (resnet50), timm:NAME, hf:MODEL_TYPE[,key=value...], path/to/file.py:factory, "
        "package.module:factory, or a saved model file (model.pt: torch.jit.save or torch.export.save)",
    )
    _add_input_options(parser)
    parser.add_argument(
        "--columns",
        default=None,
        metavar="LIST",
        help="table columns: a preset (default, cost, memory, all) or names, comma-separated "
        "(type, input_shape, output_shape, kernel, params, params_percent, flops, flops_percent, macs, "
        "dmas, output_bytes, receptive_field, calls)",
    )
    parser.add_argument(
        "--all-rows",
        action="store_true",
        help="also show the bookkeeping rows (views, indexing, small factories and casts: no FLOPs, next to "
        "no DMAs) that the table folds into their parents; csv and json always have every row",
    )
    parser.add_argument(
        "--format",
        choices=_FORMATS,
        default="table",
        help="table (default), csv, json, dot (Graphviz source), svg (needs graphviz) or html",
    )
    parser.add_argument(
        "--color-by", choices=("flops", "memory", "params"), default="flops", help="graph colours (dot/svg/html)"
    )
    parser.add_argument(
        "--receptive-field",
        action="store_true",
        help="add each layer's receptive field, effective stride and padding per spatial dim",
    )
    parser.add_argument(
        "--measure",
        nargs="?",
        const="cuda",
        choices=("cuda", "cpu"),
        help="also run real passes and report the measured memory peaks: one forward on CUDA (the default; "
        "needs a CUDA device), or 'cpu': a forward and a training step with SGD and with Adam on CPU",
    )
    fit = parser.add_argument_group("formulas (with a named size in --input-shape or --batch-size)")
    fit.add_argument("--fit", default=None, metavar="NAME", help="the largest value of size NAME that fits --memory")
    fit.add_argument("--memory", type=_size_argument, default=None, metavar="SIZE", help="the budget: 80GiB, 16GB…")
    fit.add_argument(
        "--optimizer",
        default="adamw",
        choices=(*OPTIMIZERS, "none"),
        help="training step whose peak must fit (default: adamw; none: one inference forward)",
    )
    fit.add_argument(
        "--at", type=_assignment, action="append", default=[], metavar="NAME=VALUE", help="the other sizes (L=1024)"
    )
    _add_run_options(parser)
    parser.add_argument("--version", action="version", version=_version())
    return parser


def _diff_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="torchscan diff",
        description="Compare two models: totals and per-layer differences (B − A), layers matched by name.",
        epilog=_DIFF_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_a", metavar="MODEL_A", help="the first model (A), named as for `torchscan MODEL`")
    parser.add_argument("model_b", metavar="MODEL_B", help="the second model (B)")
    _add_input_options(parser)
    parser.add_argument(
        "--metrics",
        default="params,flops",
        metavar="LIST",
        help=f"per-layer numbers shown, comma-separated: {', '.join(ROW_METRICS)} (default: params,flops)",
    )
    parser.add_argument("--changed-only", action="store_true", help="leave out the layers that are the same in both")
    parser.add_argument("--format", choices=_DIFF_FORMATS, default="text", help="text (default), csv or json")
    _add_run_options(parser)
    return parser


def _zoo_parser() -> argparse.ArgumentParser:
    from torchscan.zoo import command

    parser = _Parser(
        prog="torchscan zoo",
        description=command.DESCRIPTION,
        epilog=command.EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_arguments(parser, size=_size_argument)
    return parser


def main(argv: Sequence[str] | None = None, *, own_process: bool = False) -> int:
    """The ``torchscan`` command; returns the exit status (0, 2: user error, 1: bug). ``own_process``: the
    process is the command's (:mod:`torchscan.console`), and what it builds before analysing is frozen out of
    the collector's passes (:func:`_setup`); from Python the caller's collector is left as found."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["zoo"]:  # torchscan zoo: torchscan.zoo.command
        from torchscan.zoo.command import run_command

        args = _zoo_parser().parse_args(argv[1:])
        return _guarded(args, lambda: run_command(args))
    diff = argv[:1] == ["diff"]
    parser = _diff_parser() if diff else _parser()
    args = parser.parse_args(argv[1:] if diff else argv)
    args.own_process = own_process
    if args.max_depth is not None and args.max_depth < 0:
        parser.error("--max-depth must be 0 (totals only) or more")
    if not diff and args.columns is not None and args.format != "table":
        parser.error(f"--columns chooses the table's columns: it does not apply to --format {args.format}")
    if not diff and args.all_rows and args.format in ("dot", "svg", "html"):
        parser.error(f"--all-rows shows the table's bookkeeping rows: it does not apply to --format {args.format}")
    if not diff and args.fit is not None and args.memory is None:
        parser.error("--fit needs --memory (the budget, e.g. 80GiB)")
    return _guarded(args, lambda: _run_diff(args) if diff else _run(args))


def _guarded(args: argparse.Namespace, command: Callable[[], int]) -> int:
    """``command()``'s exit status; an interruption, a user mistake or a bug becomes one line on stderr."""
    try:
        return command()
    except KeyboardInterrupt:
        if args.traceback:
            raise
        print("torchscan: interrupted", file=sys.stderr)
        return 130
    except TorchscanError as error:
        return _fail(args, error, 2, f"torchscan: error: {_one_line(str(error))}")
    except Exception as error:  # a bug of torchscan's (or an error it does not know yet)
        detail = _one_line(str(error))
        message = type(error).__name__ + (f": {detail}" if detail else "")
        hint = "this is a bug in torchscan: rerun with --traceback and report it"
        return _fail(args, error, 1, f"torchscan: internal error: {message} ({hint})")


def _one_line(text: str) -> str:
    """``text``'s non-blank lines, stripped and joined with `` | ``."""
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def _fail(args: argparse.Namespace, error: BaseException, status: int, line: str) -> int:
    """Report ``error`` on stderr (``line``, or the full traceback with ``--traceback``); return ``status``."""
    if args.traceback:
        traceback.print_exception(error, file=sys.stderr)
    else:
        print(line, file=sys.stderr)
    return status


def _progress_shown(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _emit(args: argparse.Namespace, output: Path | None, text: str, start: float) -> None:
    """``text`` to stdout or ``-o``; on a terminal, a closing line naming the file."""
    if output is None:
        sys.stdout.write(text)
        return
    _write(output, text)
    if _progress_shown(args):
        print(f"torchscan: {args.format} written to {output} in {time.perf_counter() - start:.1f} s", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    """The command once its arguments are parsed: everything the user gave is checked before any work."""
    start = time.perf_counter()
    output = check_output_path(args.output) if args.output is not None else None
    if args.columns is not None:
        parse_columns(args.columns)  # raises InputError naming the valid columns
    # without CUDA the CUDA measurement only says so
    real_weights = args.measure == "cpu" or (args.measure == "cuda" and torch.cuda.is_available())
    progress = _Progress(_progress_shown(args), stages=3 + bool(args.measure))
    try:
        progress.stage(f"building {args.model}")  # torchvision's import (and torch._dynamo's) is in there
        with _setup(args):
            defaults, batch = default_call(args.model)
        if args.batch_size is None:
            args.batch_size = batch if not args.input_shape else 1
        inputs = _inputs(args, args.model, defaults)
        report, model = _analyse(args.model, inputs, args, progress, real_weights=real_weights)
        if isinstance(report, SymbolicReport):
            progress.stage(f"rendering {args.format}")
            text = _symbolic_text(report, args)
            progress.close()
            _emit(args, output, text, start)
            return 0
        if args.measure:
            progress.stage(f"measuring on {args.measure.upper()}")
            call = inputs.call(args.batch_size)  # keyword inputs (a Hugging Face model's) passed by keyword
            report = with_measurement(report, model, args.measure, args.real_forward_limit, kwargs=call.get("kwargs"))
        progress.stage(f"rendering {args.format}")
        text = _render(report, args)
    finally:
        progress.close()
    measured = report.memory.measured if report.memory is not None else None
    if measured is not None and not measured.available and args.format != "table":  # the table has this line
        print(f"torchscan: {measured.note}", file=sys.stderr)
    _emit(args, output, text, start)
    return 0


def _symbolic_text(report: SymbolicReport, args: argparse.Namespace) -> str:
    """A symbolic report: its formulas and conditions (table), ``to_dict`` (json) or its page (html);
    with ``--fit``, the largest size that fits ``--memory`` after it."""
    if args.format == "json":
        return json.dumps(report.to_dict(), indent=2) + "\n"
    if args.format == "html":
        return report.to_html(symbol=args.fit, **dict(args.at))
    if args.format != "table":
        raise TorchscanError(
            f"--format {args.format} is for one size: a report with named sizes is table, json or html"
        )
    text = str(report) + "\n"
    if args.fit is not None:
        fit = report.max_fit(
            args.fit, args.memory, None if args.optimizer == "none" else args.optimizer, **dict(args.at)
        )
        what = "inference" if fit.optimizer is None else f"a training step with {fit.optimizer}"
        if fit.value is None:
            text += (
                f"fit: even {fit.name}={fit.next_value} needs {fit.next_peak_bytes:,} B for {what}, over the budget\n"
            )
        else:
            after = "" if fit.next_value is None else f"; {fit.name}={fit.next_value} needs {fit.next_peak_bytes:,} B"
            text += (
                f"fit: {fit.name}={fit.value} ({what}: {fit.peak_bytes:,} B of {fit.budget_bytes:,} B, "
                f"{fit.phase} binds{after})\n"
            )
    return text


def _run_diff(args: argparse.Namespace) -> int:
    """``torchscan diff``: both models analysed with the same options, B compared against A."""
    start = time.perf_counter()
    if args.batch_size is None:
        args.batch_size = 1
    output = check_output_path(args.output) if args.output is not None else None
    metrics = tuple(name.strip() for name in args.metrics.split(",") if name.strip())
    unknown = [name for name in metrics if name not in ROW_METRICS]
    if unknown or not metrics:
        raise TorchscanError(f"--metrics {args.metrics}: choose from {', '.join(ROW_METRICS)}")
    progress = _Progress(_progress_shown(args), stages=5)
    try:
        progress.stage(f"building {args.model_a}")
        with _setup(args):
            inputs = (_inputs(args, args.model_a), _inputs(args, args.model_b))
        named = [dim.name for dim in collect_dims(inputs[0].input_shape, None, None, args.batch_size)]
        if named:  # formulas on both sides: no numbers to subtract (it failed inside as a bug of ours)
            raise TorchscanError(
                f"torchscan diff compares two models at one size: give numbers, not the named sizes {', '.join(named)} "
                "(torchscan MODEL --input-shape with names gives one model's formulas)"
            )
        report_a, _ = _analyse(args.model_a, inputs[0], args, progress)
        report_b, _ = _analyse(args.model_b, inputs[1], args, progress)
        progress.stage("comparing")
        comparison = compare(report_a, report_b, labels=(args.model_a, args.model_b))
        if args.format == "csv":
            text = diff_csv(comparison, max_depth=args.max_depth)
        elif args.format == "json":
            text = diff_json(comparison, max_depth=args.max_depth)
        else:
            text = render_diff(comparison, args.max_depth, metrics=metrics, changed_only=args.changed_only) + "\n"
    finally:
        progress.close()
    _emit(args, output, text, start)
    return 0
