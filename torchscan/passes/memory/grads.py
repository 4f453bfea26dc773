"""Which node outputs require grad, and the trainable parameter bytes under each module."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx

from torchscan.graph.checkpoint import CHECKPOINT_NODES, Region
from torchscan.graph.grad_mode import NO_GRAD_NODES
from torchscan.ops import Saves
from torchscan.passes.memory.families import family
from torchscan.passes.params import ParamSummary
from torchscan.records import NodeRecord

__all__ = ["parameter_reads", "requires_grad", "trainable_bytes"]


def requires_grad(
    graph: nx.DiGraph,
    ordered: list[NodeRecord],
    params: ParamSummary,
    sources: Mapping[str, tuple[str, ...]] | None = None,
    trainable: Mapping[str, int] | None = None,
) -> dict[str, bool]:
    """Which node outputs require grad: trainable parameters start it, data flow spreads it.

    A ``call_module`` node with trainable parameters and a ``get_attr`` of a parameter that requires
    grad (not a buffer, a frozen parameter, a plain tensor attribute or one the forward computed from
    constants) require grad; so does any node reading one, but a new tensor made from another's shape, dtype and
    device (:attr:`~torchscan.ops.registry.Saves.NEW`: ``x.new_empty(…)``, ``zeros_like(x)``). A node whose op
    ran with grad mode disabled
    (:data:`~torchscan.graph.grad_mode.NO_GRAD_NODES`: a frozen backbone under ``no_grad``) requires none, and a
    parameter only such nodes read gets no gradient. Nor does a node of a reentrant checkpointed call none of whose
    inputs requires grad (:class:`_CutRegions`).
    ``sources`` (what each node reads) and ``trainable`` (:func:`trainable_bytes`) when at hand.
    """
    flags: dict[str, bool] = {}
    trainable = trainable_bytes(params) if trainable is None else trainable
    sources = graph.pred if sources is None else sources
    no_grad = graph.graph.get(NO_GRAD_NODES, frozenset())
    read_with_grad = (
        {source for record in ordered if record.name not in no_grad for source in sources[record.name]}
        if no_grad
        else None
    )
    cut = _cut_regions(graph, ordered, sources)
    for record in ordered:
        if record.op == "placeholder" or record.name in no_grad or (cut and cut.cut(record.name, flags)):
            flags[record.name] = False
        elif record.op == "get_attr":
            read = read_with_grad is None or record.name in read_with_grad
            flags[record.name] = read and any(ref.trainable for ref in record.storages)
        else:
            own = record.op == "call_module" and trainable.get(record.module_path, 0) > 0
            flows = any(flags.get(source, False) for source in sources[record.name])
            floating = any(spec.dtype.is_floating_point for spec in record.outputs)
            # a new tensor made from another's shape (``x.new_empty(…)``, ``zeros_like(x)``) requires no grad
            made = flows and not own and record.call is not None and record.call.get("requires_grad") is not True
            flags[record.name] = (own or flows) and floating and not (made and family(record) is Saves.NEW)
    return flags


class _CutRegions:
    """The reentrant checkpointed calls of a graph (:mod:`~torchscan.graph.checkpoint`), for :func:`requires_grad`:
    torch's reentrant checkpoint is an ``autograd.Function`` of its tensor inputs, so where none of them requires
    grad its result requires none and its parameters get no gradient (torch warns: ``None of the inputs have
    requires_grad=True``)."""

    def __init__(self, chains: Mapping[str, tuple[Region, ...]], inputs: Mapping[Region, tuple[str, ...]]) -> None:
        self.nodes = chains
        self._inputs = inputs
        self._cut: dict[Region, bool] = {}

    def cut(self, name: str, flags: Mapping[str, bool]) -> bool:
        """Whether the node runs in a reentrant call none of whose inputs requires grad (``flags``: those so far)."""
        for region in self.nodes.get(name, ()):
            found = self._cut.get(region)
            if found is None:
                found = self._cut[region] = not any(flags.get(source, False) for source in self._inputs[region])
            if found:
                return True
        return False


def _cut_regions(
    graph: nx.DiGraph, ordered: list[NodeRecord], sources: Mapping[str, Iterable[str]]
) -> _CutRegions | None:
    """The reentrant checkpointed calls of ``graph`` with what each reads from outside it (None: none)."""
    regions: Mapping[str, Region] | None = graph.graph.get(CHECKPOINT_NODES)
    if not regions or not any(region.reentrant for region in regions.values()):
        return None
    chains: dict[str, tuple[Region, ...]] = {}
    members: dict[Region, set[str]] = {}
    for record in ordered:
        region = regions.get(record.name)
        chain = tuple(outer for outer in region.chain() if outer.reentrant) if region is not None else ()
        for outer in chain:
            members.setdefault(outer, set()).add(record.name)
        if chain:
            chains[record.name] = chain
    inputs = {
        region: tuple(dict.fromkeys(source for name in names for source in sources[name] if source not in names))
        for region, names in members.items()
    }
    return _CutRegions(chains, inputs)


def trainable_bytes(params: ParamSummary, reads: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, int]:
    """Module path -> bytes of the trainable parameters a call of the module reads: registered on it and
    below, owned there or tied to another owner's (an embedding whose weight is the output head's: its
    call's output requires grad); a path that reads none is left out (read as 0 with ``.get(path, 0)``).
    ``reads``: :func:`parameter_reads` of ``params``, when at hand."""
    reads = parameter_reads(params) if reads is None else reads
    return {path: sum(read.values()) for path, read in reads.items() if read}


def parameter_reads(params: ParamSummary) -> dict[str, dict[str, int]]:
    """Module path -> {parameter path (its owner's): bytes} of the trainable parameters a call of the
    module reads: those registered on it and below, owned there or tied to another owner's (a path
    under which no parameter is registered is left out: it reads none)."""
    reads: dict[str, dict[str, int]] = {}
    for module_path, held in params.by_module.items():
        if not held.entries and not held.tied:  # most modules: nothing to add up the tree (read with ``.get``)
            continue
        own = {
            f"{module_path}.{entry.name}" if module_path else entry.name: entry.nbytes
            for entry in held.entries
            if entry.trainable
        }
        own.update(held.tied)
        path = module_path
        while True:
            reads.setdefault(path, {}).update(own)
            if not path:
                break
            path = path.rpartition(".")[0]
    return reads
