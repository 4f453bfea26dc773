"""Training-step memory per optimizer: forward with saved tensors, a simulated backward, the step.

Steady state is assumed: the second step, ``zero_grad(set_to_none=True)``, foreach optimizers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import networkx as nx

from torchscan.passes.memory.context import MemoryGraph, memory_graph
from torchscan.passes.memory.peak import walk
from torchscan.passes.memory.saved import saved_for_backward
from torchscan.passes.memory.storage import is_view, output_bytes
from torchscan.passes.params import ParamSummary
from torchscan.records import TrainingEstimate

__all__ = ["OPTIMIZERS", "Optimizer", "training_estimates"]

Optimizer = Literal["sgd", "sgd_momentum", "adam", "adamw"]

OPTIMIZERS: Mapping[str, tuple[int, int]] = {
    "sgd": (0, 0),
    "sgd_momentum": (1, 0),
    "adam": (2, 1),
    "adamw": (2, 1),
}
"""Optimizer -> (state, step transient) in multiples of the trainable parameter bytes ``P``.

SGD keeps nothing; momentum one buffer (``P``); Adam/AdamW ``exp_avg`` + ``exp_avg_sq`` (``2P``).
The foreach step of Adam/AdamW materialises ``sqrt(exp_avg_sq)`` (one transient ``P``)."""


def training_estimates(
    graph: nx.DiGraph,
    params: ParamSummary,
    optimizers: Iterable[str] = tuple(OPTIMIZERS),
    context: MemoryGraph | None = None,
) -> tuple[tuple[TrainingEstimate, ...], int]:
    """Training-step memory per optimizer, and the saved activation bytes.

    With ``P`` the trainable parameter bytes, ``S`` the saved bytes (distinct storages + extras):

    - forward: the inference walk with saved storages kept to the end;
    - backward: reverse execution order; the gradient of a non-view node output is live from
      its last consumer's backward to its own; a node's saved storages are released after the
      backward of their first saver; parameter gradients (``P`` in total) accumulate;
    - step: ``P`` of gradients + the optimizer's transient (:data:`OPTIMIZERS`);
    - ``peak = params + buffers + state + max(forward, backward, step)``.

    ``context``: :func:`~torchscan.passes.memory.context.memory_graph` of the graph, when at hand.
    """
    context = memory_graph(graph, params) if context is None else context
    live = context.live
    saved, extra, _ = saved_for_backward(graph, params, context)
    kept = {key for keys in saved.values() for key in keys}
    saved_bytes = sum(live.size[key] for key in kept) + sum(extra.values())
    # forward: saved storages stay; extras are allocated at their node and stay too
    forward = walk(context.ordered, live, kept).bytes + sum(extra.values())
    backward = _backward_peak(context, saved, extra)
    trainable = sum(entry.nbytes for held in params.by_module.values() for entry in held.entries if entry.trainable)
    estimates = []
    for name in optimizers:
        state_factor, transient_factor = OPTIMIZERS[name]
        state = state_factor * trainable
        phases = {"forward": forward, "backward": backward, "step": trainable + transient_factor * trainable}
        phase = max(phases, key=lambda key: phases[key])
        estimates.append(
            TrainingEstimate(
                optimizer=name,
                param_bytes=params.param_bytes,
                buffer_bytes=params.buffer_bytes,
                grad_bytes=trainable,
                optimizer_state_bytes=state,
                saved_activation_bytes=saved_bytes,
                peak_bytes=params.param_bytes + params.buffer_bytes + state + phases[phase],
                peak_phase=phase,
            )
        )
    return tuple(estimates), saved_bytes


def _backward_peak(context: MemoryGraph, saved: Mapping[str, tuple[Any, ...]], extra: Mapping[str, int]) -> int:
    """Peak of (remaining saved + live activation grads + parameter grads) over the backward."""
    ordered, sources, grads, live_storages = context.ordered, context.sources, context.grads, context.live
    first_saver: dict[Any, int] = {}
    for record in ordered:
        for key in saved.get(record.name, ()):
            first_saver.setdefault(key, record.index)
    kept = set(first_saver)
    outputs = {
        key
        for record in ordered
        if record.op == "output"
        for source in sources[record.name]
        for key in live_storages.of_node.get(source, ())
    }
    live = sum(live_storages.size[key] for key in kept | outputs | set(live_storages.inputs)) + sum(extra.values())
    release: dict[int, int] = {}
    for key, index in first_saver.items():
        if key not in outputs and key not in live_storages.inputs:
            release[index] = release.get(index, 0) + live_storages.size[key]
    grad_bytes = {
        record.name: output_bytes(record)
        for record in ordered
        if grads.get(record.name)
        and record.op in ("call_module", "call_function", "call_method")
        and not is_view(record, live_storages)
    }
    allocated: set[str] = set()
    modules_done: set[str] = set()
    trainable = context.trainable
    peak = live
    for record in reversed(ordered):
        if record.op in ("placeholder", "output") or not grads.get(record.name):
            continue
        if record.name not in allocated:  # the gradient of the loss/output
            live += grad_bytes.get(record.name, 0)
            allocated.add(record.name)
        new = 0
        for source in sources[record.name]:
            if grads.get(source) and source not in allocated:
                allocated.add(source)
                new += grad_bytes.get(source, 0)
        if record.op == "call_module" and record.module_path not in modules_done:
            modules_done.add(record.module_path)
            new += trainable.get(record.module_path, 0)
        live += new
        peak = max(peak, live)
        live -= grad_bytes.get(record.name, 0) + release.get(record.index, 0) + extra.get(record.name, 0)
    return peak
