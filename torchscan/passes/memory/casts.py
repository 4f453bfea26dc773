"""The casts ``torch.autocast``'s cache keeps, as lifetimes for the inference walk.

An op run under autocast casts a float32 parameter (a leaf that requires grad) down to the region's dtype, and
ATen keeps that copy in the thread's cast cache, which is cleared only when the outermost autocast region
exits: the copy outlives the call that made it (its recording counts it inside the call only,
:attr:`~torchscan.passes.memory.internal.CallMemory.cached`), and a later op casting the same parameter in the
region finds it there. Each such copy is held from the first call that makes it to the outermost region's exit:
the last op of the run of ops made inside autocast regions (enabled or not: a region the forward disables inside
an enabled one keeps the cache; :data:`~torchscan.graph.autocast.DEPTH`) that holds that call, or past the
forward's end where the run reaches its last op (a region around the whole body, or the caller's). A later call
of the run that casts the same tensor finds the copy, and its recorded transient (which made one) is that copy's
bytes less. Taken as torch's default, the cache on: a region the forward enters with ``cache_enabled=False`` is
not told apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from torch import fx

from torchscan.graph.autocast import DEPTH
from torchscan.passes.memory.internal import NodeMemory
from torchscan.passes.memory.storage import END
from torchscan.records import NodeRecord
from torchscan.records.frozen import frozen_record

__all__ = ["CachedCasts", "cached_casts"]

_CALLS = ("call_module", "call_function", "call_method")


@frozen_record
class CachedCasts:
    """The copies autocast's cache keeps in one forward."""

    held: tuple[tuple[int, int, int], ...] = ()
    """``(index, end, bytes)`` per copy: made by the node at ``index`` (the first of its run to cast that tensor),
    held until the node at ``end`` has run (:data:`~torchscan.passes.memory.storage.END`: past the forward)."""
    found: Mapping[str, int] = dataclasses.field(default_factory=dict)
    """Node -> bytes of the copies it finds in the cache (made by an earlier call of its run): its recording,
    which made them again, counts them in its transient."""


def cached_casts(graph: fx.Graph, ordered: Sequence[NodeRecord], calls: Mapping[str, NodeMemory]) -> CachedCasts:
    """The :class:`CachedCasts` of a forward (``calls``: its recorded calls,
    :func:`~torchscan.passes.memory.internal.recorded_calls`)."""
    if not any(recorded.call.cached for recorded in calls.values()):
        return CachedCasts()
    index = {record.name: record.index for record in ordered}
    ends = _run_ends(graph, index)
    nodes = {node.name: node for node in graph.nodes}
    held: dict[tuple[object, int], tuple[int, int, int]] = {}
    found: dict[str, int] = {}
    for record in ordered:  # execution order: the first cast of a tensor in a run is the one kept
        recorded = calls.get(record.name)
        if recorded is None or not recorded.call.cached:
            continue
        end = ends.get(record.name, record.index)
        sources = recorded.arg_sources
        for position, nbytes in recorded.call.cached:
            if position < len(sources):  # an argument: the node it comes from (a parameter's get_attr)
                tensor: object = sources[position]
                if tensor is None:
                    continue
            else:  # a parameter or buffer of the module called, by its path and place
                tensor = (str(nodes[record.name].target), position - len(sources))
            if (tensor, end) in held:
                found[record.name] = found.get(record.name, 0) + nbytes
            else:
                held[(tensor, end)] = (record.index, end, nbytes)
    return CachedCasts(tuple(held.values()), found)


def _run_ends(graph: fx.Graph, index: Mapping[str, int]) -> dict[str, int]:
    """Node -> the index of the last op of its run of ops made inside autocast regions (END where the run holds
    the forward's last op). An op made outside every region ends a run; one whose depth was not noted (made
    before the capture met autocast) is in none and ends none."""
    ends: dict[str, int] = {}
    run: list[str] = []
    for node in graph.nodes:
        if node.op not in _CALLS:  # placeholders, attributes, the output: in no run, and they break none
            continue
        depth = node.meta.get(DEPTH)
        if depth:
            run.append(node.name)
        elif depth is not None and run:
            ends.update(dict.fromkeys(run, index[run[-1]]))
            run = []
    ends.update(dict.fromkeys(run, END))
    return ends
