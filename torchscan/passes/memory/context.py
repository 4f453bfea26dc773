"""What several memory rules read, computed once per analysis (and its shape-independent part once
per capture: :class:`MemoryPlan`); the part only the capture answers made apart (:class:`CapturedMemory`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import networkx as nx

from torchscan.graph.autocast import AUTOCAST_NODES
from torchscan.graph.build import REPARAMETRIZED_NODES
from torchscan.ops import SavedExtra, Saves
from torchscan.passes.memory.casts import CachedCasts, cached_casts
from torchscan.passes.memory.families import family, saved_extra
from torchscan.passes.memory.grads import parameter_reads, requires_grad, trainable_bytes
from torchscan.passes.memory.internal import NodeMemory, Replay, calls_to_record, recorded_calls
from torchscan.passes.memory.liveness import StaticLiveness, sources_of, static_liveness, storages
from torchscan.passes.memory.storage import Storages
from torchscan.passes.params import ParamSummary
from torchscan.records import NodeRecord, node_records
from torchscan.records.frozen import frozen_record

__all__ = [
    "CapturedMemory",
    "MemoryGraph",
    "MemoryPlan",
    "PlanMemo",
    "captured_memory",
    "memory_graph",
    "memory_plan",
    "plan_key",
]


@frozen_record
class MemoryPlan:
    """What the memory rules read that the graph, the model's copy and the parameters decide, never
    the shapes, strides or storages: what each node reads, trainable bytes per module, the parameters each
    module's call reads, each node's op family and what its op declares it keeps besides
    (:func:`~torchscan.passes.memory.families.saved_extra`, nodes that declare it). One per capture
    (:func:`torchscan.sweep` reuses it for every input); which storages alias is never in it. The liveness
    facts of names, frames and module calls (:class:`~torchscan.passes.memory.liveness.StaticLiveness`), decided
    the same way, are kept beside it (:class:`PlanMemo`): they are made where the memory section is, which
    may be later (:class:`CapturedMemory`)."""

    sources: Mapping[str, tuple[str, ...]]
    trainable: Mapping[str, int]
    reads: Mapping[str, Mapping[str, int]]
    families: Mapping[str, Saves | None]
    saved_extras: Mapping[str, SavedExtra]


PlanKey = tuple[tuple[bool, bool], ...]
"""What of a graph's records a plan reads besides its structure (:func:`plan_key`)."""


@frozen_record
class PlanMemo:
    """The :class:`MemoryPlan` and the :class:`~torchscan.passes.memory.liveness.StaticLiveness` of the graphs of one
    capture by :func:`plan_key` (the graph of a capture has one key in practice), filled as made: kept across its
    analyses at other inputs (:func:`torchscan.sweep`)."""

    plans: dict[PlanKey, MemoryPlan] = dataclasses.field(default_factory=dict)
    liveness: dict[PlanKey, StaticLiveness] = dataclasses.field(default_factory=dict)
    families: dict[PlanKey, Mapping[str, Saves | None]] = dataclasses.field(default_factory=dict)
    """Each node's family, where made before the plan (to choose the calls to record)."""


@frozen_record
class CapturedMemory:
    """What the memory rules read that only the capture answers, made while the analysis holds it: the
    requires-grad flags, the calls recorded at the ATen level on the capture's fake copy
    (:mod:`~torchscan.passes.memory.internal`; none without a replay of the capture) and the copies
    autocast's cache keeps (:mod:`~torchscan.passes.memory.casts`). With the graph and the parameters, it is
    all the rest of the memory section reads: plain records, which hold neither the model, its copy nor a
    tensor, so a report can make that section when it is first read (:class:`~torchscan.records.deferred.Deferred`)."""

    ordered: list[NodeRecord]
    key: PlanKey | None
    """:func:`plan_key` of ``ordered`` (None: no memo was given)."""
    plan: MemoryPlan | None
    """None: not needed yet (no call recorded), made with the rest (or found in the memo then)."""
    grads: Mapping[str, bool] | None
    """None: not needed yet (no call recorded), made with the rest."""
    calls: Mapping[str, NodeMemory]
    casts: CachedCasts
    families: Mapping[str, Saves | None] | None = None
    """Each node's family, where made without the plan."""


@frozen_record
class MemoryGraph:
    """A graph as the memory rules read it: execution order, the nodes each node reads (in
    predecessor order), storage liveness, requires-grad flags, trainable bytes per module, the
    trainable parameters each module's call reads (tied ones included), the calls recorded at
    the ATen level (:mod:`~torchscan.passes.memory.internal`; empty without a replay of the
    capture) and each node's op family (:func:`~torchscan.passes.memory.families.family`)."""

    graph: nx.DiGraph
    ordered: list[NodeRecord]
    sources: Mapping[str, tuple[str, ...]]
    live: Storages
    grads: Mapping[str, bool]
    trainable: Mapping[str, int]
    calls: Mapping[str, NodeMemory]
    reads: Mapping[str, Mapping[str, int]]
    """Module path -> the trainable parameters (by owner path) and their bytes a call of it reads."""
    families: Mapping[str, Saves | None] | None = None
    """Node -> its op's family (None: computed from the record where read)."""
    saved_extras: Mapping[str, SavedExtra] | None = None
    """Node -> what its op declares it keeps besides its family's tensors (None: looked up where read)."""
    casts: CachedCasts = CachedCasts()
    """The copies autocast's cache keeps (:func:`~torchscan.passes.memory.casts.cached_casts`)."""


def plan_key(ordered: list[NodeRecord]) -> PlanKey:
    """What of a graph's records, besides its structure, a :class:`MemoryPlan` reads: per node
    (execution order) whether it has tensor outputs and a call."""
    return tuple((bool(record.outputs), record.call is not None) for record in ordered)


def memory_plan(
    graph: nx.DiGraph,
    ordered: list[NodeRecord],
    params: ParamSummary,
    families: Mapping[str, Saves | None] | None = None,
) -> MemoryPlan:
    """The :class:`MemoryPlan` of a graph (``ordered``: its records in execution order; ``families``: each node's
    family, when at hand)."""
    reads = parameter_reads(params)
    declared = {record.name: saved_extra(record) for record in ordered}
    return MemoryPlan(
        sources=sources_of(graph),
        trainable=trainable_bytes(params, reads),
        reads=reads,
        families={record.name: family(record) for record in ordered} if families is None else families,
        saved_extras={name: extra for name, extra in declared.items() if extra is not None},
    )


def captured_memory(
    graph: nx.DiGraph, params: ParamSummary, replay: Replay | None = None, memo: PlanMemo | None = None
) -> CapturedMemory:
    """The :class:`CapturedMemory` of a graph (``replay``: the capture, to record the calls worth it at the
    ATen level). ``memo`` keeps the :class:`MemoryPlan` of the graphs of one capture and one model (the same
    parameters) across analyses of it at other inputs. Where no call is worth recording (most models of
    common layers) neither the plan nor the grad flags are made here: :func:`memory_graph` makes them."""
    ordered = node_records(graph)
    key = plan_key(ordered) if memo is not None else None
    if replay is None:
        return CapturedMemory(ordered, key, None, None, {}, CachedCasts())
    families = _families(ordered, memo, key)
    marked = graph.graph.get(AUTOCAST_NODES, frozenset()) | graph.graph.get(REPARAMETRIZED_NODES, frozenset())
    selected = calls_to_record(replay, ordered, families, marked)
    if not selected:
        return CapturedMemory(ordered, key, None, None, {}, CachedCasts(), families)
    plan = _plan(graph, ordered, params, memo, key, families)
    grads = requires_grad(graph, ordered, params, plan.sources, plan.trainable)
    calls = recorded_calls(replay, ordered, grads, plan.families, marked, selected)
    return CapturedMemory(ordered, key, plan, grads, calls, cached_casts(replay.graph, ordered, calls))


def _families(ordered: list[NodeRecord], memo: PlanMemo | None, key: PlanKey | None) -> Mapping[str, Saves | None]:
    """Each node's family: kept in ``memo`` by an earlier input of the capture, else made now and kept."""
    found = memo.families.get(key) if memo is not None and key is not None else None
    if found is None:
        found = {record.name: family(record) for record in ordered}
        if memo is not None and key is not None:
            memo.families[key] = found
    return found


def _plan(
    graph: nx.DiGraph,
    ordered: list[NodeRecord],
    params: ParamSummary,
    memo: PlanMemo | None,
    key: PlanKey | None,
    families: Mapping[str, Saves | None] | None = None,
) -> MemoryPlan:
    """The graph's :class:`MemoryPlan`: kept in ``memo``, else made now and kept."""
    plan = memo.plans.get(key) if memo is not None and key is not None else None
    if plan is None:
        plan = memory_plan(graph, ordered, params, families)
        if memo is not None and key is not None:
            memo.plans[key] = plan
    return plan


def memory_graph(
    graph: nx.DiGraph,
    params: ParamSummary,
    replay: Replay | None = None,
    memo: PlanMemo | None = None,
    captured: CapturedMemory | None = None,
) -> MemoryGraph:
    """Everything of :class:`MemoryGraph`, each computed once: from ``captured`` (:func:`captured_memory`
    of the graph, made when the capture was at hand), else made now from ``replay`` (the capture, to record
    the calls worth it at the ATen level). ``memo``: as for :func:`captured_memory`, the liveness facts too."""
    if captured is None:
        captured = captured_memory(graph, params, replay, memo)
    ordered, key = captured.ordered, captured.key
    plan = captured.plan or _plan(graph, ordered, params, memo, key, captured.families)
    grads = captured.grads
    if grads is None:
        grads = requires_grad(graph, ordered, params, plan.sources, plan.trainable)
    liveness = memo.liveness.get(key) if memo is not None and key is not None else None
    if liveness is None:
        liveness = static_liveness(graph, ordered, plan.sources)
        if memo is not None and key is not None:
            memo.liveness[key] = liveness
    return MemoryGraph(
        graph=graph,
        ordered=ordered,
        sources=plan.sources,
        live=storages(graph, ordered, plan.sources, liveness),
        grads=grads,
        trainable=plan.trainable,
        calls=captured.calls,
        reads=plan.reads,
        families=plan.families,
        saved_extras=plan.saved_extras,
        casts=captured.casts,
    )
