"""Activation checkpointing in a training step: what a checkpointed call keeps, and what its backward remakes.

A call run through ``torch.utils.checkpoint.checkpoint`` (a :class:`~torchscan.graph.checkpoint.Region` of the
graph) keeps none of the tensors its ops save for the backward: it keeps its inputs (the tensors its ops read from
outside it), until its backward is done. When the backward reaches it, it runs its ops again and keeps what they
save (new storages, beside any original another node keeps), freed as their backward goes; non-reentrant (with
``early_stop``) up to the last op that saves one, reentrant all of it, its outputs held until its backward
returns.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    """Its nodes."""
    start: int
    """The index of its first node that requires grad: what it keeps for its backward is released there."""
    copies: Mapping[Any, int]
    """Storage key -> the index of its first saver: the tensors remade and kept, each released after the
    backward of the first of its nodes that saved it (reentrant: its outputs too, released at ``start``)."""
    made: int
    """Bytes of the copies and of the extras its nodes save (masks, statistics), live once it is remade."""
    peak: int
    """Bytes above what is live when the backward reaches it, at the height of its recomputation."""
    ran: frozenset[str]
    """The nodes run again (non-reentrant with ``early_stop``: up to the last that saves a tensor)."""


@frozen_record
class Checkpointing:
    """The checkpointed calls of a graph as a training step runs them."""

    calls: tuple[Recomputation, ...]
    of_node: Mapping[str, Recomputation]
    held: Mapping[Any, int]
    """Storage key -> index: the inputs a checkpointed call keeps from its forward to the backward of its first
    node (the smallest index where one is the input of several)."""


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
    members: dict[Region, list[NodeRecord]] = {}
    for record in context.ordered:
        region = regions.get(record.name)
        if region is not None:
            members.setdefault(region, []).append(record)
    live = context.live
    at = {record.index: region for region, records in members.items() for record in records}
    made_in: dict[Region, set[Any]] = {region: set() for region in members}
    for key, born in live.born.items():
        region = at.get(born)
        if region is not None and key not in live.inputs:
            made_in[region].add(key)
    held: dict[Any, int] = {}
    calls = []
    for region, records in members.items():  # in order of their first nodes
        names = frozenset(record.name for record in records)
        # what it keeps is freed after the backward of its first node that has one (its first node else)
        start = next((record.index for record in records if context.grads.get(record.name)), records[0].index)
        for record in records:  # its inputs: what its nodes read from outside it
            for source in context.sources[record.name]:
                if source not in names:
                    for key in live.of_node.get(source, ()):
                        if key in live.size:
                            held.setdefault(key, start)
        made = made_in[region]
        copies: dict[Any, int] = {}
        for record in records:
            for key in saved.get(record.name, ()):
                if key in made:
                    copies.setdefault(key, record.index)
        savers = [record.index for record in records if saved.get(record.name) or extra.get(record.name)]
        end = records[-1].index if region.reentrant or not region.early_stop or not savers else max(savers)
        if region.reentrant:  # its outputs, remade, are held through its own backward
            for key in made:
                if live.last_use[key] > records[-1].index:
                    copies.setdefault(key, start)
        ran = [record for record in records if record.index <= end]
        allocs: dict[int, int] = {}
        frees: dict[int, int] = {}
        for key in made:
            allocs[live.born[key]] = allocs.get(live.born[key], 0) + live.size[key]
            last = live.last_use[key]
            if key not in copies and last <= end:  # else held to the recomputation's end (or the backward's)
                frees[last] = frees.get(last, 0) + live.size[key]
        current = peak = 0
        for record in ran:
            current += allocs.get(record.index, 0) + extra.get(record.name, 0)
            within = transient.get(record.name)
            peak = max(peak, current + (workspace(record, context.families) if within is None else within))
            current -= frees.get(record.index, 0)
        size = sum(live.size[key] for key in copies) + sum(extra.get(record.name, 0) for record in records)
        calls.append(
            Recomputation(
                region=region,
                nodes=names,
                start=start,
                copies=copies,
                made=size,
                peak=max(peak, size),
                ran=frozenset(record.name for record in ran),
            )
        )
    return Checkpointing(
        calls=tuple(calls), of_node={name: call for call in calls for name in call.nodes}, held=held
    )
