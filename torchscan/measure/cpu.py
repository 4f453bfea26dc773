"""Peak of live tensor bytes while really running a model, tracked at the aten level.

A :class:`TorchDispatchMode` sees every aten op; each storage an op creates is tracked by a
weak reference until it dies. After each op ``live = Σ bytes of tracked storages still alive``;
the peak is the max over ops. Storages that existed before (parameters, buffers, inputs,
optimizer state) are counted separately as ``baseline_bytes``. The model is never touched: a
deep copy is run, with real random inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["LiveBytes", "LiveTensorTracker", "measure_inference", "measure_training", "random_inputs"]


@dataclass(frozen=True, slots=True)
class LiveBytes:
    """A CPU measurement: ``peak_bytes`` of storages created during the run (at ``peak_op``),
    plus ``baseline_bytes`` of the storages alive before it that the run reads (inputs, state)."""

    peak_bytes: int
    baseline_bytes: int
    peak_op: str

    @property
    def total_bytes(self) -> int:
        return self.peak_bytes + self.baseline_bytes


def _storage(tensor: torch.Tensor) -> Any:
    try:
        return tensor.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return None


class LiveTensorTracker(TorchDispatchMode):
    """Tracks the bytes of storages created inside the mode; ``peak`` is the max after any op."""

    def __init__(self, existing: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self._existing = {StorageWeakRef(s).cdata for s in map(_storage, existing) if s is not None}
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0
        self.peak_op = ""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        result = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(result):
            if not isinstance(tensor, torch.Tensor) or tensor.device.type == "meta":
                continue
            storage = _storage(tensor)
            if storage is None:
                continue
            ref = StorageWeakRef(storage)
            if ref.cdata not in self._existing and ref.cdata not in self._live:
                self._live[ref.cdata] = (ref, int(storage.nbytes()))
        live = 0
        for key, (ref, nbytes) in list(self._live.items()):
            if ref.expired():
                del self._live[key]
            else:
                live += nbytes
        if live > self.peak:
            self.peak, self.peak_op = live, str(func)
        return result


def random_inputs(shapes: Sequence[Sequence[int]], dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """Real random tensors (``randn`` for floating dtypes, zeros otherwise)."""
    return [
        torch.randn(tuple(shape), dtype=dtype) if dtype.is_floating_point else torch.zeros(tuple(shape), dtype=dtype)
        for shape in shapes
    ]


def _bytes(tensors: Iterable[torch.Tensor]) -> int:
    seen: dict[int, int] = {}
    for tensor in tensors:
        storage = _storage(tensor)
        if storage is not None:
            seen[StorageWeakRef(storage).cdata] = int(storage.nbytes())
    return sum(seen.values())


def measure_inference(model: nn.Module, inputs: Sequence[torch.Tensor]) -> LiveBytes:
    """Peak live activation bytes of one forward of a copy of ``model`` under ``no_grad``.

    ``baseline_bytes`` are the inputs' bytes (held by the caller throughout), so
    ``total_bytes`` compares with the static peak, which includes inputs.
    """
    clone = copy.deepcopy(model)
    existing = [*clone.parameters(), *clone.buffers(), *inputs]
    with torch.no_grad():
        tracker = LiveTensorTracker(existing)
        with tracker:
            output = clone(*inputs)
        del output
    return LiveBytes(tracker.peak, _bytes(inputs), tracker.peak_op)


def measure_training(
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
    loss: Callable[[Any], torch.Tensor] | None = None,
) -> LiveBytes:
    """Peak bytes of a steady-state training step (the second) of a copy of ``model``.

    The step is ``zero_grad(set_to_none=True)``, forward, ``loss(output).backward()``, ``step()``;
    the default loss sums the output's tensors. ``baseline_bytes`` are parameters, buffers,
    optimizer state and inputs, so ``total_bytes`` is the step's whole peak.
    """
    clone = copy.deepcopy(model)
    opt = optimizer(clone.parameters())
    loss = loss or (lambda out: sum(t.float().sum() for t in tree_leaves(out) if isinstance(t, torch.Tensor)))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = clone(*inputs)
        value = loss(out)
        del out
        value.backward()
        del value
        opt.step()

    step()
    opt.zero_grad(set_to_none=True)
    state = [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    existing = [*clone.parameters(), *clone.buffers(), *state, *inputs]
    baseline = _bytes(existing)
    tracker = LiveTensorTracker(existing)
    with tracker:
        step()
    return LiveBytes(tracker.peak, baseline, tracker.peak_op)
