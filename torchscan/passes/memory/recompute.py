"""Activation checkpointing in a training step: what a checkpointed call keeps, and what its backward remakes.

A call run through ``torch.utils.checkpoint.checkpoint`` (a :class:`~torchscan.graph.checkpoint.Region` of the
graph) keeps none of the tensors its ops save for the backward: it keeps its inputs (the tensors its ops read from
outside it), until its backward is done. When the backward reaches it, it runs its ops again and keeps what they
save (new storages, beside any original another node keeps), freed as their backward goes; non-reentrant (with
``early_stop``) up to the last op that saves one, reentrant all of it, its outputs held until its backward
returns. A checkpointed call inside another keeps nothing through the outer one's forward either: the outer
one's recomputation keeps its inputs, and its own remakes what its ops save when the backward reaches it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torchscan.graph.checkpoint import CHECKPOINT_NODES, Region
from torchscan.passes.memory.context import MemoryGraph
from torchscan.passes.memory.peak import workspace
from torchscan.records import NodeRecord
from torchscan.records.frozen import frozen_record

__all__ = ["Checkpointing", "Recomputation", "checkpointing"]


@frozen_record
class Recomputation:
    """What the backward of one checkpointed call remakes."""

    region: Region
    nodes: frozenset[str]
    """Its nodes (those of the calls inside it too)."""
    start: int
    """The index of its first node that requires grad (its first node else): what it keeps for its backward is
    released there."""
    copies: Mapping[Any, int]
    """Storage key -> the index where it is released: the tensors remade and kept (what its own ops save, after
    the backward of the first that saved it; the inputs of a checkpointed call inside it, at that call's
    ``start``; reentrant, its outputs, at its own ``start``)."""
    made: int
    """Bytes of the copies and of the extras its own ops save (masks, statistics), live once it is remade."""
    peak: int
    """Bytes above what is live when the backward reaches it, at the height of its recomputation."""
    ran: frozenset[str]
    """The nodes run again (non-reentrant with ``early_stop``: up to the last that keeps a tensor)."""


@frozen_record
class Checkpointing:
    """The checkpointed calls of a graph as a training step runs them."""

    calls: tuple[Recomputation, ...]
    of_node: Mapping[str, tuple[Recomputation, ...]]
    """Node -> the checkpointed calls it runs in, outermost first (each remade before those inside it)."""
    held: Mapping[Any, int]
    """Storage key -> index: the inputs an outermost checkpointed call keeps from its forward to the backward of
    its first node (the smallest index where one is the input of several)."""


def checkpointing(
    context: MemoryGraph,
    saved: Mapping[str, tuple[Any, ...]],
    extra: Mapping[str, int],
    transient: Mapping[str, int],
) -> Checkpointing | None:
    """The :class:`Checkpointing` of a graph (None where no node ran in a checkpointed call), from what each node
    saves (:func:`~torchscan.passes.memory.saved.saved_for_backward`) and holds inside its call (``transient``,
    by node; others :func:`~torchscan.passes.memory.peak.workspace`)."""
    regions: Mapping[str, Region] | None = context.graph.graph.get(CHECKPOINT_NODES)
    if not regions:
        return None
    members: dict[Region, list[NodeRecord]] = {}  # its nodes and those of the calls inside it
    own: dict[Region, list[NodeRecord]] = {}  # its nodes outside the calls inside it
    chains: dict[Region, tuple[Region, ...]] = {}
    at: dict[int, Sequence[Region]] = {}
    live, grads, sources = context.live, context.grads, context.sources
    for record in context.ordered:
        region = regions.get(record.name)
        if region is None:
            continue
        own.setdefault(region, []).append(record)
        chain = chains.get(region)
        if chain is None:
            chain = chains[region] = region.chain()
        at[record.index] = chain
        for outer in chain:
            members.setdefault(outer, []).append(record)
    # a call none of whose ops requires grad builds no autograd graph: it keeps nothing and remakes nothing
    members = {region: records for region, records in members.items() if any(grads.get(r.name) for r in records)}
    if not members:
        return None
    at = {index: [region for region in chain if region in members] for index, chain in at.items()}
    at = {index: chain for index, chain in at.items() if chain}
    made_in: dict[Region, set[Any]] = {region: set() for region in members}
    for key, born in live.born.items():
        if key not in live.inputs:
            for region in at.get(born, ()):
                made_in[region].add(key)
    starts = {
        region: next((record.index for record in records if grads.get(record.name)), records[0].index)
        for region, records in members.items()
    }
    copies: dict[Region, dict[Any, int]] = {region: {} for region in members}
    held: dict[Any, int] = {}
    for region, records in members.items():  # its inputs: what its nodes read from outside it
        names = {record.name for record in records}
        parent = region.parent if region.parent in members else None
        for record in records:
            for source in sources[record.name]:
                if source in names:
                    continue
                for key in live.of_node.get(source, ()):
                    if key not in live.size:
                        continue
                    if parent is None:  # kept by the forward
                        held[key] = min(held.get(key, starts[region]), starts[region])
                    elif key in made_in[parent]:  # kept by the outer call's recomputation
                        _release_at(copies[parent], key, starts[region])
    calls = []
    for region, records in members.items():
        made, kept = made_in[region], copies[region]
        for record in own.get(region, ()):
            for key in saved.get(record.name, ()):
                if key in made:
                    _release_at(kept, key, record.index)
        last = records[-1].index
        if region.reentrant:  # its outputs, remade, are held through its own backward
            for key in made:
                if live.last_use[key] > last:
                    _release_at(kept, key, starts[region])
        # early stop: the recomputation stops at the last op that keeps a tensor, before its kernel where it
        # keeps only its inputs (autograd saves them before the kernel runs, its results after); a call inside
        # it keeps its inputs before its first op
        keeping = {
            record.index: bool(extra.get(record.name))
            or bool(set(saved[record.name]) & set(live.of_node.get(record.name, ())))
            for record in own.get(region, ())
            if saved.get(record.name) or extra.get(record.name)
        }
        for inner in members:
            if inner.parent == region:
                keeping[members[inner][0].index] = False
        end = last if region.reentrant or not region.early_stop or not keeping else max(keeping)
        ran = [record for record in records if record.index < end or (record.index == end and keeping.get(end, True))]
        own_extra = {record.name: extra[record.name] for record in own.get(region, ()) if record.name in extra}
        size = sum(live.size[key] for key in kept) + sum(own_extra.values())
        calls.append(
            Recomputation(
                region=region,
                nodes=frozenset(record.name for record in records),
                start=starts[region],
                copies=kept,
                made=size,
                peak=max(_recomputation_peak(context, ran, made, kept, end, own_extra, transient), size),
                ran=frozenset(record.name for record in ran),
            )
        )
    by_region = {call.region: call for call in calls}
    of_node = {
        record.name: tuple(by_region[outer] for outer in at[record.index])
        for record in context.ordered
        if record.index in at
    }
    return Checkpointing(calls=tuple(calls), of_node=of_node, held=held)


def _release_at(kept: dict[Any, int], key: Any, index: int) -> None:
    """Keep ``key`` to the backward of the node at ``index`` at least (the smallest index: the latest backward)."""
    kept[key] = min(kept.get(key, index), index)


def _recomputation_peak(
    context: MemoryGraph,
    ran: list[NodeRecord],
    made: set[Any],
    kept: Mapping[Any, int],
    end: int,
    extra: Mapping[str, int],
    transient: Mapping[str, int],
) -> int:
    """The height of a recomputation above what was live before it: its storages born as it runs, each freed
    after its last reader unless kept (or read after ``end``: held to its end), the extras its own ops keep
    (``extra``; those of the calls inside it are theirs to remake), with each op's transient."""
    live = context.live
    allocs: dict[int, int] = {}
    frees: dict[int, int] = {}
    for key in made:
        allocs[live.born[key]] = allocs.get(live.born[key], 0) + live.size[key]
        last = live.last_use[key]
        if key not in kept and last <= end:
            frees[last] = frees.get(last, 0) + live.size[key]
    current = peak = 0
    for record in ran:
        current += allocs.get(record.index, 0) + extra.get(record.name, 0)
        within = transient.get(record.name)
        peak = max(peak, current + (workspace(record, context.families) if within is None else within))
        current -= frees.get(record.index, 0)
    return peak
