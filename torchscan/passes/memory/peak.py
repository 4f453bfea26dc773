"""The static peak of inference: a forward walk over storage lifetimes.

At node ``i``: ``live_i = Σ live storages + Σ storages new at i + workspace_i``;
``peak = max_i live_i`` (graph inputs included).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import networkx as nx

from torchscan.ops import Saves
from torchscan.ops.attention import flex_statistics
from torchscan.passes.memory.families import family_in
from torchscan.passes.memory.liveness import storages
from torchscan.passes.memory.storage import END, Storages
from torchscan.records import ActivationPeak, NodeRecord, node_records

__all__ = ["same_padding_copy", "static_peak", "walk", "workspace"]


def workspace(record: NodeRecord, families: Mapping[str, Saves | None] | None = None) -> int:
    """Transient bytes inside one op, freed when it returns: max pools compute int64 indices
    (``8·N_out``; ATen always does on CUDA, and on CPU for ``ceil_mode``; counted always); a
    convolution with ``padding="same"`` whose total padding ``d·(k − 1)`` is odd along some dim pads
    a copy of its input by one there (ATen's ``conv_padding_same``):
    ``N·C_in·Π(L_i + [d_i·(k_i − 1) odd])`` elements of the input's size; ``flex_attention`` makes the
    statistics of its rows (:func:`~torchscan.ops.attention.flex_statistics`). ``families``: each
    node's family, when at hand."""
    kind = family_in(record, families)
    if kind is Saves.MAX_POOL:
        return 8 * sum(spec.numel for spec in record.outputs[:1])
    if kind is Saves.ATTENTION and record.call is not None:  # its statistics (and mask), freed as it returns
        return flex_statistics(record.call)
    return same_padding_copy(record)


def same_padding_copy(record: NodeRecord) -> int:
    """Bytes of the padded copy of its input a convolution with ``padding="same"`` makes where its total
    padding ``d·(k − 1)`` is odd along some dim (ATen's ``conv_padding_same``); 0 for any other node."""
    call = record.call
    if call is None or call.attrs.get("padding") != "same" or not call.inputs:  # most nodes: no weight looked up
        return 0
    weight = call.spec("weight")
    if weight is None:
        return 0
    dims = weight.ndim - 2
    dilation = call.get("dilation", 1)
    dilation = tuple(dilation) if isinstance(dilation, (tuple, list)) else (int(dilation),) * dims
    odd = [d * (k - 1) % 2 for k, d in zip(weight.shape[2:], dilation, strict=True)]
    if dims < 1 or not any(odd) or call.input.ndim < dims:
        return 0
    lead, spatial = call.input.shape[:-dims], call.input.shape[-dims:]
    return (
        math.prod(lead)
        * math.prod(n + extra for n, extra in zip(spatial, odd, strict=True))
        * call.input.dtype.itemsize
    )


def walk(
    ordered: list[NodeRecord],
    live_storages: Storages,
    kept: Iterable[object] = (),
    transient: Mapping[str, int] | None = None,
    families: Mapping[str, Saves | None] | None = None,
    held: Iterable[tuple[int, int, int]] = (),
    made: Iterable[tuple[int, int, int]] = (),
) -> ActivationPeak:
    """Forward walk; storages in ``kept`` stay live to the end (saved for backward). ``transient``:
    bytes a node's call holds inside itself above its results, recorded at the ATen level
    (:mod:`~torchscan.passes.memory.internal`), in place of its :func:`workspace` (``families``:
    each node's family, when at hand). ``held``: ``(index, end, bytes)`` made inside the call at ``index``
    (in its transient there) and kept after it until the node at ``end`` has run (autocast's cached casts,
    :func:`~torchscan.passes.memory.casts.cached_casts`). ``made``: ``(index, end, bytes)`` made by the node at
    ``index`` (live at its step) and kept until the node at ``end`` has run (what a training forward's ops keep
    besides their tensors' storages: masks, statistics, copies of what an in-place op overwrites)."""
    transient = transient or {}
    kept = frozenset(kept)
    allocs: dict[int, int] = {}
    frees: dict[int, int] = {}
    after: dict[int, int] = {}
    for index, end, nbytes in held:
        after[index] = after.get(index, 0) + nbytes
        frees[end] = frees.get(end, 0) + nbytes
    for index, end, nbytes in made:
        allocs[index] = allocs.get(index, 0) + nbytes
        frees[end] = frees.get(end, 0) + nbytes
    live = 0
    for key, nbytes in live_storages.size.items():
        if key in live_storages.inputs:
            live += nbytes
            continue
        allocs[live_storages.born[key]] = allocs.get(live_storages.born[key], 0) + nbytes
        end = END if key in kept else live_storages.last_use[key]
        frees[end] = frees.get(end, 0) + nbytes
    input_bytes = live
    best, best_node, best_path = live, "", ""
    timeline = []
    for record in ordered:
        if record.op == "placeholder":
            best_node = best_node or record.name
            continue
        live += allocs.get(record.index, 0)
        inside = transient.get(record.name)
        during = live + (workspace(record, families) if inside is None else inside)
        timeline.append((record.name, during))
        if during > best:
            best, best_node, best_path = during, record.name, record.module_path
        live += after.get(record.index, 0)
        live -= frees.get(record.index, 0)
    return ActivationPeak(best, input_bytes, best_node, best_path, tuple(timeline))


def static_peak(graph: nx.DiGraph) -> ActivationPeak:
    """Peak live activation bytes of one inference forward (liveness:
    :mod:`~torchscan.passes.memory.liveness`)."""
    ordered = node_records(graph)
    return walk(ordered, storages(graph, ordered))
