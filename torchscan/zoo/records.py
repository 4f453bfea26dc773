"""The frozen records of a zoo sweep: what to analyse (:class:`Job`), how (:class:`Settings`), what came out
(:class:`ZooRow`, one per model and input), all plain data that pickles and turns into JSON and back."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from torchscan.records.frozen import frozen_record

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_TIME_LIMIT",
    "ROW_FIELDS",
    "TIMING_FIELDS",
    "TRAINING_FIELDS",
    "Job",
    "Settings",
    "ZooInput",
    "ZooRow",
    "inputs_text",
]

DEFAULT_TIME_LIMIT = 600.0
"""Seconds a worker may take for one row (the first also pays for the process start and the build)."""

DEFAULT_MEMORY_LIMIT = 8 * 2**30
"""Bytes of address space a worker may add to what it holds after importing torch (``RLIMIT_AS``)."""

TRAINING_FIELDS: Mapping[str, str] = {
    "sgd": "train_peak_sgd_bytes",
    "sgd_momentum": "train_peak_sgd_momentum_bytes",
    "adam": "train_peak_adam_bytes",
    "adamw": "train_peak_adamw_bytes",
}
"""Optimizer (a key of ``torchscan.passes.memory.OPTIMIZERS``) -> the row field holding its training peak."""


@frozen_record
class ZooInput:
    """One tensor the model is called with: its full shape (batch first), dtype name and, for a keyword
    argument, its name (``None``: positional, in order)."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    name: str | None = None

    def text(self) -> str:
        """``1x3x224x224``, ``input_ids=1x128:int64``: the keyword, the dims, a dtype other than float32."""
        dims = "x".join(str(dim) for dim in self.shape)
        return (f"{self.name}=" if self.name else "") + dims + (f":{self.dtype}" if self.dtype != "float32" else "")


def inputs_text(inputs: tuple[ZooInput, ...]) -> str:
    """One input set as text: its inputs' :meth:`ZooInput.text`, joined by ``", "`` (a row's ``input``)."""
    return ", ".join(item.text() for item in inputs)


@frozen_record
class Job:
    """One model and the input sets to analyse it at: one worker process, one row per input set.

    ``spec`` is the model as the user named it (a row's key with the input); ``target`` is what the
    worker builds (the same spec with a file path made absolute, so that a worker elsewhere finds it).
    """

    spec: str
    target: str
    inputs: tuple[tuple[ZooInput, ...], ...]

    def row_keys(self) -> tuple[tuple[str, str], ...]:
        """``(spec, input)`` of each row this job gives, in order."""
        return tuple((self.spec, inputs_text(inputs)) for inputs in self.inputs)

    def only(self, inputs: tuple[tuple[ZooInput, ...], ...]) -> Job:
        """The same model at ``inputs`` only."""
        return dataclasses.replace(self, inputs=inputs)


@frozen_record
class Settings:
    """How every job of a sweep runs: the worker's limits and ``crawl_module``'s real-forward policy.

    ``memory_limit`` (bytes, ``None``: none) is the address space the worker may add after its imports;
    ``time_limit`` (seconds) bounds each row. ``warm_start``: workers are forked from a process that
    imported torch and the model library once (:mod:`torchscan.zoo.zygote`) where the platform can fork;
    off, each worker is a new interpreter (slower by the imports, about 4 s a model).
    """

    time_limit: float = DEFAULT_TIME_LIMIT
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT
    real_forward: bool = True
    real_forward_limit: int | None = None
    warm_start: bool = True


@frozen_record
class ZooRow:
    """One model at one input: the totals of its report, or why it failed.

    ``status`` is ``ok`` or ``failed``; a failed row has ``error_type`` — the exception's class name, or
    ``Timeout``, ``MemoryLimit``, ``Crash`` (the worker died: a signal) — and ``error`` (one line), and
    ``None`` for every number. Memory fields are bytes: ``activation_peak_bytes`` is the static inference
    peak (inputs included), ``train_peak_*_bytes`` the training step's peak per optimizer. The timing
    fields (:data:`TIMING_FIELDS`) are the only ones that differ between two runs of the same sweep.
    """

    spec: str
    input: str
    status: str
    model: str | None = None
    params: int | None = None
    flops: int | None = None
    macs: int | None = None
    dmas: int | None = None
    complete: bool | None = None
    unknown_ops: int | None = None
    model_bytes: int | None = None
    activation_peak_bytes: int | None = None
    train_peak_sgd_bytes: int | None = None
    train_peak_sgd_momentum_bytes: int | None = None
    train_peak_adam_bytes: int | None = None
    train_peak_adamw_bytes: int | None = None
    capture: str | None = None
    diagnostics: int | None = None
    error_type: str | None = None
    error: str | None = None
    build_seconds: float | None = field(default=None, compare=False)
    analysis_seconds: float | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        """``(spec, input)``: what a resumed sweep skips when its output holds it."""
        return (self.spec, self.input)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """The fields in order, plain values (JSON, CSV and Parquet cells)."""
        return {name: getattr(self, name) for name in ROW_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ZooRow:
        """A row from :meth:`to_dict`'s data, or from text cells (CSV: empty = ``None``), types restored."""
        return cls(**{name: _parse(name, data.get(name)) for name in ROW_FIELDS})


ROW_FIELDS: tuple[str, ...] = tuple(item.name for item in dataclasses.fields(ZooRow))
"""A row's fields in order: the columns of every output format."""

TIMING_FIELDS: tuple[str, ...] = ("build_seconds", "analysis_seconds")
"""Fields that depend on the machine and the moment, left out of row equality."""

_INTEGERS = frozenset(
    ("params", "flops", "macs", "dmas", "unknown_ops", "model_bytes", "activation_peak_bytes", "diagnostics")
) | frozenset(TRAINING_FIELDS.values())
_FLOATS = frozenset(TIMING_FIELDS)


def _parse(name: str, value: Any) -> Any:
    """Field ``name``'s value from JSON data or a text cell."""
    if value is None or (isinstance(value, str) and value == "" and name not in ("spec", "input", "status")):
        return None
    if name in _INTEGERS:
        return int(value)
    if name in _FLOATS:
        return float(value)
    if name == "complete":
        return value if isinstance(value, bool) else {"true": True, "false": False}[str(value).lower()]
    return str(value)
