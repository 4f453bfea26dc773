"""Eager-Python liveness: what the user's Python names hold beyond the plain rule.

Two effects of running ``forward`` eagerly that an fx graph does not show (the source-line
parsing is :mod:`~torchscan.passes.memory.eager_names`, which states what is modelled and why):

- a result bound to a local name is held until the frame returns or the name is rebound
  (:func:`local_ends`);
- ``y += z`` traced as ``add`` runs in place: its result aliases ``y`` (:func:`augmented_source`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import networkx as nx

from torchscan.graph.build import NodeRecord
from torchscan.passes.memory.eager_names import AUGMENTABLE, assigned_name, is_augmented, root_call
from torchscan.passes.memory.frames import LIBRARY_MODULES, Frame, user_frames

__all__ = ["augmented_source", "local_ends"]

Inside = Callable[[int], bool]
"""Whether the node at a position runs inside a given frame instance."""


def local_ends(graph: nx.DiGraph, ordered: list[NodeRecord]) -> dict[str, int]:
    """Eager Python keeps a result bound to a local name (``y = f(x)``) until the frame returns or
    rebinds the name, even after its last use. Node -> last index it is held that way.

    A frame instance is the chain of outer call sites plus the innermost function, within one
    caller module; its extent is the contiguous run of nodes traced inside it.
    """
    frames = [user_frames(record) for record in ordered]
    library = graph.graph.get(LIBRARY_MODULES, frozenset())

    def caller(path: str) -> str:  # the nearest enclosing module whose forward is user code
        while path and path in library:
            path = path.rpartition(".")[0]
        return path

    owners = [
        caller(record.module_path.rpartition(".")[0] if record.op == "call_module" else record.module_path)
        for record in ordered
    ]
    ends: dict[str, int] = {}
    for position, record in enumerate(ordered):
        chain = frames[position]
        if not chain or record.op in ("placeholder", "output", "get_attr") or not record.outputs:
            continue
        site, function, code = chain[-1]
        name = assigned_name(code)
        if name is None:
            continue
        outer = tuple(frame[0] for frame in chain[:-1])

        def inside(
            other: int, outer: tuple[str, ...] = outer, function: str = function, owner: str = owners[position]
        ) -> bool:
            theirs = frames[other]
            return (
                len(theirs) > len(outer)
                and tuple(frame[0] for frame in theirs[: len(outer)]) == outer
                and theirs[len(outer)][1] == function
                and owners[other].startswith(owner)
            )

        later = position + 1
        consumed_on_line = False
        end = position
        bound = is_root(record, root_call(code)[0])  # the statement's value, even if a loop reads it
        while later < len(ordered) and inside(later):
            theirs = frames[later][len(outer)]
            if theirs[0] == site and not bound and record.name in set(graph.predecessors(ordered[later].name)):
                consumed_on_line = True  # an inner call of the line: a temporary, not the bound value
                break
            end = later
            if (theirs[0] != site or bound) and assigned_name(theirs[2]) == name:
                end = _statement_end(graph, ordered, frames, later, len(outer), record.name, theirs[2], inside)
                break
            later += 1
        if not consumed_on_line and end > position:
            ends[record.name] = ordered[end].index
    return ends


def is_root(record: NodeRecord, root: str | None) -> bool:
    """Whether a node is the statement's outermost call ``root`` (see
    :func:`~torchscan.passes.memory.eager_names.root_call`)."""
    if root is None:
        return False
    path = record.module_path
    return record.type_name.lower().rstrip("_") == root.lower() or path == root or path.endswith(f".{root}")


def _statement_end(
    graph: nx.DiGraph,
    ordered: list[NodeRecord],
    frames: list[tuple[Frame, ...]],
    start: int,
    level: int,
    name: str,
    code: str,
    inside: Inside,
) -> int:
    """Position of the last node of the statement that rebinds a name, starting at ``start``.

    Its old value is held until the statement completes: through the last read of the name
    (as many reads as the source has) and on to the statement's outermost call. A statement in a
    loop runs straight into its next iteration, so without a recognisable outermost call we stop
    at the last read.
    """
    root, reads = root_call(code)
    site = frames[start][level][0]

    position, seen, end = start, 0, start
    while position < len(ordered) and inside(position) and frames[position][level][0] == site:
        record = ordered[position]
        if name in set(graph.predecessors(record.name)):
            seen += 1
            end = position
        if seen >= reads and (root is None or is_root(record, root)):
            return end if root is None else position
        position += 1
    return end


def augmented_source(graph: nx.DiGraph, record: NodeRecord, of_node: Mapping[str, tuple[Any, ...]]) -> Any:
    """fx traces ``y += z`` as ``add``; eager runs it in place. For such a node (its source line is
    an augmented assignment) the storage of its first operand, else None."""
    if record.op != "call_function" or record.type_name not in AUGMENTABLE:
        return None
    frames = user_frames(record)
    if not frames or not is_augmented(frames[-1][2]):
        return None
    sources = list(graph.predecessors(record.name))
    keys = of_node.get(sources[0], ()) if sources else ()
    return keys[0] if len(keys) == 1 else None
