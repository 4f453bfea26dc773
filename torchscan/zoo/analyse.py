"""One job analysed in this process: the model built once, one :class:`ZooRow` per input set.

This is what the worker process runs (:mod:`torchscan.zoo.child`); it never catches a crash, a hang or
an allocation the operating system refuses — the process around it turns those into rows
(:mod:`torchscan.zoo.worker`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch
from torch import nn

from torchscan.api import crawl_module, sweep
from torchscan.errors import CaptureError
from torchscan.loader import huggingface, load_model, real_forward_refused
from torchscan.records import TensorSpec
from torchscan.report import Report
from torchscan.zoo.records import TRAINING_FIELDS, Job, Settings, ZooInput, ZooRow, inputs_text

__all__ = ["analyse_job", "build_model", "failed_row", "memory_refused", "one_line", "row_from_report"]

_MESSAGE_LENGTH = 500
"""Characters of an error message kept in a row."""

_OUT_OF_MEMORY = ("can't allocate memory", "cannot allocate memory", "std::bad_alloc")


def one_line(text: str) -> str:
    """``text`` on one line (whitespace runs collapsed), at most :data:`_MESSAGE_LENGTH` characters."""
    line = " ".join(text.split())
    return line if len(line) <= _MESSAGE_LENGTH else line[: _MESSAGE_LENGTH - 1] + "…"


def memory_refused(error: BaseException) -> bool:
    """Whether ``error``, or one it was raised from, is an allocation refused (``MemoryError``, torch's
    allocator failing with ``ENOMEM``)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, MemoryError) or any(text in str(seen).lower() for text in _OUT_OF_MEMORY):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def failed_row(spec: str, inputs: tuple[ZooInput, ...], error_type: str, message: str) -> ZooRow:
    return ZooRow(spec, inputs_text(inputs), "failed", error_type=error_type, error=one_line(message))


def _error_row(spec: str, inputs: tuple[ZooInput, ...], error: BaseException, settings: Settings) -> ZooRow:
    if settings.memory_limit is not None and memory_refused(error):
        limit = f"{settings.memory_limit / 2**30:.2f} GiB"
        return failed_row(spec, inputs, "MemoryLimit", f"memory limit ({limit}) reached: {error}")
    return failed_row(spec, inputs, type(error).__name__, str(error))


def build_model(target: str, meta: bool = True) -> nn.Module:
    """The model ``target`` names: :func:`torchscan.loader.load_model`, or a Hugging Face architecture."""
    if target.startswith(huggingface.PREFIX):
        return huggingface.build(target, meta=meta)
    return load_model(target, meta=meta)


def row_from_report(
    spec: str, inputs: tuple[ZooInput, ...], report: Report, build_seconds: float, analysis_seconds: float
) -> ZooRow:
    """The row of a successful analysis: the report's totals, memory and how it was captured."""
    totals, memory = report.totals, report.memory
    training = {estimate.optimizer: estimate.peak_bytes for estimate in memory.training} if memory else {}
    return ZooRow(
        spec,
        inputs_text(inputs),
        "ok",
        model=report.context.model,
        params=totals.params,
        flops=totals.flops,
        macs=totals.macs,
        dmas=totals.dmas,
        complete=totals.complete,
        unknown_ops=totals.unknown_ops,
        model_bytes=totals.model_bytes,
        activation_peak_bytes=memory.activation_peak_bytes if memory else None,
        capture=report.context.capture,
        diagnostics=len(report.diagnostics),
        build_seconds=round(build_seconds, 4),
        analysis_seconds=round(analysis_seconds, 4),
        **{field: training.get(optimizer) for optimizer, field in TRAINING_FIELDS.items()},
    )


def _call(inputs: tuple[ZooInput, ...]) -> tuple[tuple[TensorSpec, ...], dict[str, TensorSpec]]:
    """``crawl_module``'s ``args`` and ``kwargs`` for an input set."""
    specs = [(item.name, TensorSpec(item.shape, getattr(torch, item.dtype))) for item in inputs]
    return tuple(spec for name, spec in specs if name is None), {name: spec for name, spec in specs if name}


def _model_dtype(inputs: tuple[ZooInput, ...]) -> torch.dtype | None:
    """The float dtype the model is cast to: the one non-float32 float dtype of the inputs, if any."""
    floats = {item.dtype for item in inputs if item.dtype.startswith(("float", "bfloat")) and item.dtype != "float32"}
    return getattr(torch, floats.pop()) if len(floats) == 1 else None


def _on_meta(model: nn.Module) -> bool:
    return any(tensor.device.type == "meta" for tensor in (*model.parameters(), *model.buffers()))


def analyse_job(job: Job, settings: Settings, together: bool = True) -> Iterator[ZooRow]:
    """One row per input set of ``job``, in order. The model is built once on meta weights; an input set
    that only a real forward can capture (:class:`CaptureError` on meta weights) gets a model with real
    random weights, built once, as the ``torchscan`` command does. An exception becomes a failed row; a
    model that cannot be built fails every row.

    With ``together`` and several input sets of one dtype, :func:`torchscan.sweep` analyses them all
    (traced once; each report equal to ``crawl_module``'s) and each row's ``analysis_seconds`` is an
    equal share of the sweep's time; if the sweep raises, each input set is analysed on its own.
    """
    options = {"real_forward": settings.real_forward, "real_forward_limit": settings.real_forward_limit}
    models: dict[tuple[bool, torch.dtype | None], nn.Module] = {}

    def model_for(meta: bool, dtype: torch.dtype | None) -> nn.Module:
        """The model on meta (or real random) weights, cast to ``dtype``: built once per combination."""
        if (meta, dtype) not in models:
            model = build_model(job.target, meta=meta)
            models[meta, dtype] = model if dtype is None else model.to(dtype)
        return models[meta, dtype]

    start = time.perf_counter()
    try:
        model_for(True, None)
    except Exception as error:  # the model's own code, or a spec that names nothing
        for inputs in job.inputs:
            yield _error_row(job.spec, inputs, error, settings)
        return
    build_seconds = time.perf_counter() - start
    dtypes = {_model_dtype(inputs) for inputs in job.inputs}
    if together and len(job.inputs) > 1 and len(dtypes) == 1:
        start = time.perf_counter()
        try:
            items = [dict(zip(("args", "kwargs"), _call(inputs), strict=True)) for inputs in job.inputs]
            reports = sweep(model_for(True, dtypes.pop()), items, **options)
        except Exception:  # one input set failed it (or needs real weights): each on its own below
            pass
        else:
            share = (time.perf_counter() - start) / len(reports)
            for inputs, report in zip(job.inputs, reports, strict=True):
                yield row_from_report(job.spec, inputs, report, build_seconds, share)
            return
    for inputs in job.inputs:
        args, kwargs = _call(inputs)
        dtype = _model_dtype(inputs)
        start = time.perf_counter()
        try:
            model = model_for(True, dtype)
            try:
                report = crawl_module(model, args=args, kwargs=kwargs, **options)
            except CaptureError as error:
                if not _on_meta(model):
                    raise
                policy = (settings.real_forward, settings.real_forward_limit)
                refused = real_forward_refused(error, job.spec, model, *policy)
                if refused is not None:  # no real weights built for a real forward that would be refused anyway
                    raise refused from None
                report = crawl_module(model_for(False, dtype), args=args, kwargs=kwargs, **options)
        except Exception as error:  # anything the analysis raised: that row failed, the job goes on
            yield _error_row(job.spec, inputs, error, settings)
            continue
        yield row_from_report(job.spec, inputs, report, build_seconds, time.perf_counter() - start)
