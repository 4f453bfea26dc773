"""Roll node costs and module parameters up the module tree into report rows.

Every counted node lands in exactly one leaf row (its leaf module, or its own row for a
functional call) and in all the rows above it, so the rows at any depth partition the model.
Parameters held directly by a module that also has child rows get a row of their own
(kind ``parameter``) for the same reason.

A functional row is named by the module that made the call and the op's display name
(``layer1.0.add``, ``layer1.0.add_1``…; :func:`scoped_names`); its fx node is in ``Row.node``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
from torch import nn

from torchscan.passes.params import ParamSummary
from torchscan.records import RECORD, Cost, Diagnostic, NodeRecord, Row, RowKind, node_records
from torchscan.records.frozen import frozen_record

__all__ = [
    "ModuleTypes",
    "RowMemo",
    "RowPlan",
    "build_rows",
    "module_types",
    "row_plan",
    "scoped_names",
    "unused_parameters",
]


@dataclass(slots=True)
class _Acc:
    """Mutable accumulator used only while building rows (never leaves this module)."""

    name: str
    type: str
    kind: RowKind
    parent: str
    order: float
    output_shape: tuple[int, ...] | None = None
    node: str | None = None
    calls: int = 0
    shape_node: str | None = None
    """The node whose first output's shape is the row's (None: ``output_shape``, a parameter's)."""
    params: int = 0
    trainable: int = 0
    shared: int = 0
    param_bytes: int = 0
    buffer_bytes: int = 0
    flops: int = 0
    macs: int = 0
    dmas: int = 0
    unknown: int = 0
    children: list[str] = field(default_factory=list)


def _parent_path(path: str) -> str:
    return path.rpartition(".")[0]


@frozen_record
class _Slot:
    """One row as a :class:`RowPlan` knows it: the fields of its :class:`Row` that no cost, shape or byte
    count decides (:data:`_KNOWN`), its output shape read from ``shape_node``'s first output where it has one
    (else the plan's), its output bytes per input."""

    index: int
    """Its position among the plan's rows in roll-up order (the costs' arrays)."""
    fields: tuple[Any, ...]
    """The row's :data:`_KNOWN` fields, in that order (a tuple: a template ``Row`` per row and per plan cost
    as much again as the rows themselves)."""
    shape_node: str | None


_KNOWN = (
    "name",
    "type",
    "kind",
    "depth",
    "parent",
    "is_leaf",
    "output_shape",
    "params",
    "trainable_params",
    "shared_params",
    "param_bytes",
    "buffer_bytes",
    "calls",
    "node",
)
"""The :class:`Row` fields a :class:`RowPlan` decides, in :attr:`_Slot.fields`' order."""


@frozen_record
class RowPlan:
    """The rows of a graph as its node names, ops, module paths and execution order, the model's
    modules and the parameters decide them (never the shapes): the tree, names, order, parameter
    counts, which row each node's cost lands on and which node gives each row its output shape.
    One per capture (:func:`torchscan.sweep` reuses it for every input)."""

    slots: tuple[_Slot, ...]
    """In tree order (the report's)."""
    size: int
    cost_rows: tuple[tuple[str, int], ...]
    """(node, the index of the row its cost lands on), in execution order."""
    rollup: tuple[tuple[int, int], ...]
    """(row, its parent) indices, children before their parents: each row's total is complete when added."""


ModuleTypes = tuple[tuple[str, str], ...]
"""``(path, class name)`` per module of a model in ``named_modules()`` order, the root first (path ``""``): what
the rows read of the model (:func:`module_types`), so that rows can be made without holding it."""

RowMemo = dict[tuple[bool, ...], RowPlan]
"""Row plans of one capture by the key of :func:`build_rows` (per node: whether it has tensor outputs)."""


def module_types(model: nn.Module, modules: Iterable[tuple[str, nn.Module]] | None = None) -> ModuleTypes:
    """The :data:`ModuleTypes` of ``model`` (``modules``: ``model.named_modules()`` when the caller has it)."""
    walked = model.named_modules() if modules is None else modules
    return (("", type(model).__name__), *((path, type(module).__name__) for path, module in walked if path))


def build_rows(
    types: ModuleTypes,
    graph: nx.DiGraph,
    costs: Mapping[str, Cost | None],
    params: ParamSummary,
    module_outputs: Mapping[str, tuple[str, ...]],
    output_bytes: Callable[[str, str, str | None], int] | None = None,
    memo: RowMemo | None = None,
    passed_through: Mapping[str, tuple[tuple[str, int], ...]] | None = None,
) -> tuple[Row, ...]:
    """The report rows in tree order (children by first execution; unused modules last) of a model whose modules
    are ``types`` (:func:`module_types`); ``output_bytes(name, kind, node)`` gives each row's ``output_bytes`` (0
    without it). ``memo`` keeps the :class:`RowPlan` of the graphs of one capture of the model (the same
    ``params`` and ``module_outputs``) across analyses of it at other inputs. ``passed_through``: the module calls
    that made no node (:attr:`~torchscan.graph.trace.Capture.passed_through`), placed in the order of calls."""
    ordered = node_records(graph)
    key = tuple(bool(record.outputs) for record in ordered) if memo is not None else None
    plan = memo.get(key) if memo is not None and key is not None else None
    if plan is None:
        plan = row_plan(types, ordered, params, module_outputs, passed_through)
        if memo is not None and key is not None:
            memo[key] = plan
    return _rows(plan, graph, costs, output_bytes)


def row_plan(
    types: ModuleTypes,
    ordered: list[NodeRecord],
    params: ParamSummary,
    module_outputs: Mapping[str, tuple[str, ...]],
    passed_through: Mapping[str, tuple[tuple[str, int], ...]] | None = None,
) -> RowPlan:
    """The :class:`RowPlan` of a graph's records (execution order); reads of them only names, ops,
    indices, module paths, type names and whether a node has tensor outputs (``types`` and
    ``passed_through``: as :func:`build_rows`)."""
    by_name = {record.name: record for record in ordered}
    leaf_calls = {record.module_path for record in ordered if record.op == "call_module"}

    accs: dict[str, _Acc] = {"": _Acc("", types[0][1], "module", "", -math.inf)}
    owner_of: dict[str, str] = {"": ""}
    for path, type_name in types:
        if not path:
            continue
        parent = _parent_path(path)
        if owner_of[parent] != parent or parent in leaf_calls:  # inside a module counted as one op
            owner_of[path] = owner_of[parent]
            continue
        owner_of[path] = path
        accs[path] = _Acc(path, type_name, "module", parent, math.inf)

    functional = [r for r in ordered if r.op in ("call_function", "call_method") and r.produces_tensor]
    parents = {record.name: record.module_path if record.module_path in accs else "" for record in functional}
    taken = {
        *accs,
        *(_parameter_row(path, entry.name) for path, held in params.by_module.items() for entry in held.entries),
    }
    row_of = scoped_names(((record.name, parents[record.name], record.type_name) for record in functional), taken)
    for record in functional:
        accs[row_of[record.name]] = _Acc(
            row_of[record.name],
            record.type_name,
            record.op.removeprefix("call_"),  # type: ignore[arg-type]
            parents[record.name],
            record.index,
            shape_node=record.name,  # it has tensor outputs
            node=record.name,
            calls=1,
        )
    for path, names in module_outputs.items():
        if path in accs and names and names[0] in by_name:
            first = by_name[names[0]]
            accs[path].shape_node = names[0] if first.outputs else None
            accs[path].calls = len(names)
    for record in ordered:
        if record.op == "call_module" and record.module_path in accs:
            acc = accs[record.module_path]
            acc.calls = max(acc.calls, 1)
            if acc.shape_node is None and record.outputs:
                acc.shape_node = record.name

    for name, acc in accs.items():
        if name:
            accs[acc.parent].children.append(name)

    _add_params(accs, owner_of, params)
    _roll_up(accs)
    _first_use(accs, ordered, by_name, passed_through or {})
    index = {name: position for position, name in enumerate(accs)}
    cost_rows = tuple((record.name, index[_cost_row(accs, record, row_of)]) for record in ordered)
    rollup = tuple((index[name], index[acc.parent]) for name, acc in reversed(accs.items()) if name)
    return RowPlan(_flatten(accs, index), len(accs), cost_rows, rollup)


def _cost_row(accs: Mapping[str, _Acc], record: NodeRecord, row_of: Mapping[str, str]) -> str:
    """The row a node's cost lands on: its leaf module, or its functional row."""
    row = record.module_path if record.op == "call_module" else row_of.get(record.name, "")
    if row not in accs or not row:
        row = record.module_path if record.module_path in accs else ""
    return row


def _rows(
    plan: RowPlan,
    graph: nx.DiGraph,
    costs: Mapping[str, Cost | None],
    output_bytes: Callable[[str, str, str | None], int] | None,
) -> tuple[Row, ...]:
    """The rows of ``plan`` with this analysis's costs (each node's on its row, then every row's
    total on its parent's), output shapes and output bytes."""
    flops, macs, dmas, unknown = [0] * plan.size, [0] * plan.size, [0] * plan.size, [0] * plan.size
    for name, row in plan.cost_rows:
        if name not in costs:
            continue
        cost = costs[name]
        if cost is None:
            unknown[row] += 1
        else:
            flops[row] += cost.flops
            macs[row] += cost.macs
            dmas[row] += cost.dmas
    for row, parent in plan.rollup:
        flops[parent] += flops[row]
        macs[parent] += macs[row]
        dmas[parent] += dmas[row]
        unknown[parent] += unknown[row]
    nodes = graph.nodes
    rows = []
    for slot in plan.slots:  # Row(...) positionally: the plan's fields, then this analysis's
        position, known = slot.index, slot.fields
        name, kind, node = known[0], known[2], known[13]
        rows.append(
            Row(
                name,
                known[1],
                kind,
                known[3],
                known[4],
                known[5],
                known[6] if slot.shape_node is None else nodes[slot.shape_node][RECORD].outputs[0].shape,
                known[7],
                known[8],
                known[9],
                known[10],
                known[11],
                flops[position],
                macs[position],
                dmas[position],
                unknown[position],
                known[12],
                None,  # receptive fields: filled in by with_receptive_fields when asked for
                None,
                None,
                output_bytes(name, kind, node) if output_bytes is not None else 0,
                node,
                False,
            )
        )
    return tuple(rows)


def scoped_names(calls: Iterable[tuple[str, str, str]], taken: Iterable[str] = ()) -> dict[str, str]:
    """Row names of functional calls ``(fx node, module path, op)``, given in execution order.

    A call is named ``path.op`` (``op`` at the top level), the k-th call of the same op in the
    same module ``path.op_k`` (k = 1, 2… in execution order); a name in ``taken`` (module paths,
    parameter rows) or already given is skipped to the next k. Nothing else enters the name, so
    the same model and inputs give the same names on every run. Returns fx node -> row name.
    """
    used = set(taken)
    following: dict[str, int] = {}  # base name -> next k to try
    names: dict[str, str] = {}
    for node, path, op in calls:
        base = f"{path}.{op}" if path else op
        k = following.get(base, 0)
        while (name := base if k == 0 else f"{base}_{k}") in used:
            k += 1
        following[base] = k + 1
        used.add(name)
        names[node] = name
    return names


def _parameter_row(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _add_params(accs: dict[str, _Acc], owner_of: Mapping[str, str], params: ParamSummary) -> None:
    """Each module's own parameters and buffers on its row (or its owner's, inside a leaf), rows of
    their own (kind ``parameter``) where the module also has child rows; :func:`_roll_up` sums them up."""
    for path, held in params.by_module.items():
        owner = owner_of.get(path, "")
        acc = accs[owner]
        if owner == path and acc.children and held.entries:
            for entry in held.entries:  # a module with child rows: one row per direct parameter
                row_name = _parameter_row(path, entry.name)
                row = accs[row_name] = _Acc(row_name, "Parameter", "parameter", path, -1.0, entry.shape)
                acc.children.append(row_name)
                row.params, row.trainable, row.param_bytes = entry.numel, entry.numel * entry.trainable, entry.nbytes
        else:
            acc.params += held.params
            acc.trainable += held.trainable
            acc.param_bytes += held.param_bytes
        acc.shared += held.shared
        acc.buffer_bytes += held.buffer_bytes


def _roll_up(accs: dict[str, _Acc]) -> None:
    """Every row's amounts summed into all the rows above it: children come after their parents in
    ``accs`` (modules in ``named_modules`` order, then calls and parameter rows under existing rows),
    so one pass in reverse order adds each row's complete total to its parent's."""
    for name, acc in reversed(accs.items()):
        if not name:
            continue
        parent = accs[acc.parent]
        parent.params += acc.params
        parent.trainable += acc.trainable
        parent.shared += acc.shared
        parent.param_bytes += acc.param_bytes
        parent.buffer_bytes += acc.buffer_bytes
        parent.flops += acc.flops
        parent.macs += acc.macs
        parent.dmas += acc.dmas
        parent.unknown += acc.unknown


def _first_use(
    accs: dict[str, _Acc],
    ordered: list[NodeRecord],
    by_name: Mapping[str, NodeRecord],
    passed_through: Mapping[str, tuple[tuple[str, int], ...]],
) -> None:
    """Each row's order: its module's first call (a leaf's node; a call that made no node, between the node
    made before it and the next, in call order), pulled up to the rows above it."""
    calls = [(record.module_path, record.index) for record in ordered if record.op == "call_module"]
    for path, passed in passed_through.items():
        for after, place in passed:
            if after in by_name:  # the k-th such call after a node: index + 1/2, 2/3, 3/4…
                calls.append((path, by_name[after].index + 1 - 1 / (place + 2)))
    for path, index in calls:
        if path not in accs:
            continue
        name = path
        while name:
            acc = accs[name]
            if acc.order <= index:
                break
            acc.order = index
            name = acc.parent
    for acc in accs.values():  # functional rows pull their modules' first use forward too
        if acc.kind in ("function", "method"):
            name = acc.parent
            while name and accs[name].order > acc.order:
                accs[name].order = acc.order
                name = accs[name].parent


def _flatten(accs: dict[str, _Acc], index: Mapping[str, int]) -> tuple[_Slot, ...]:
    """The rows in tree order (children by first use), as :class:`_Slot` (``index``: each row's
    position in ``accs``)."""
    slots: list[_Slot] = []
    stack: list[tuple[str, int]] = [(name, 1) for name in reversed(_sorted_children(accs, ""))]
    while stack:
        name, depth = stack.pop()
        acc = accs[name]
        slots.append(
            _Slot(
                index[name],
                (  # _KNOWN's order
                    acc.name,
                    acc.type,
                    acc.kind,
                    depth,
                    acc.parent,
                    not acc.children,
                    acc.output_shape,
                    acc.params,
                    acc.trainable,
                    acc.shared,
                    acc.param_bytes,
                    acc.buffer_bytes,
                    acc.calls,
                    acc.node,
                ),
                acc.shape_node,
            )
        )
        stack.extend((child, depth + 1) for child in reversed(_sorted_children(accs, name)))
    return tuple(slots)


def _sorted_children(accs: Mapping[str, _Acc], name: str) -> list[str]:
    children = accs[name].children
    if len(children) < 2:  # most rows: nothing to order
        return list(children)
    return sorted(children, key=lambda child: accs[child].order)


def unused_parameters(rows: tuple[Row, ...], read: Collection[str] = ()) -> tuple[Diagnostic, ...]:
    """A diagnostic for modules holding parameters that this forward never read: the module was not
    called, directly or through a sub-module (e.g. auxiliary heads used only in training), and no op
    read its parameters otherwise — ``read`` holds the paths of modules whose parameters were read by
    another route (passed to a functional call, like Swin's attention weights, or tied to a module that
    was called, like T5's shared embedding). They count in the totals, not in the computation.
    Containers such as ``nn.ModuleList`` are used when a child is."""
    parents = {row.name: row.parent for row in rows}
    used = {""}
    for row in rows:
        if row.calls or row.kind != "module" or row.name in read:
            name = row.name
            while name not in used:
                used.add(name)
                name = parents.get(name, "")
    unused = [
        row for row in rows if row.kind == "module" and row.name not in used and row.params and row.parent in used
    ]
    if not unused:
        return ()
    total = sum(row.params for row in unused)
    names = ", ".join(row.name for row in unused[:6]) + (", …" if len(unused) > 6 else "")
    return (
        Diagnostic(
            code="unused-params",
            message=f"{total:,} parameters are held by modules this forward never called ({names}): "
            "they are in the parameter totals but cost nothing here",
            nodes=tuple(row.name for row in unused),
        ),
    )
