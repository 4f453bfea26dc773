"""Eager-Python liveness: what the user's Python names hold beyond the plain rule.

Two effects of running ``forward`` eagerly that an fx graph does not show (the source-line
parsing is :mod:`~torchscan.passes.memory.eager_names`, which states what is modelled and why):

- a result bound to a local name is held until the frame returns or the name is rebound
  (:func:`local_ends`), and so is a result returned out of a call into a line that binds it;
- ``y += z`` traced as ``add`` runs in place: its result aliases ``y`` (:func:`augmented_source`).

A stack trace's text is the same for every run of a line a loop repeats; where the capture counted the runs
(:attr:`~torchscan.records.NodeRecord.executions`, :mod:`~torchscan.graph.executions`), a run of a line that
calls a user function is one statement, and two calls made by two runs are two frames
(``for _ in range(n): x = self.block(x)``: ``x`` holds each result until the next run rebinds it).

Everything here is linear in the number of nodes (times the depth of user frames): frame
extents, the next rebinding of a name and the end of a statement are looked up in tables built
in one sweep, never found by scanning ahead from every node.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

from torchscan.passes.memory.eager_names import (
    AUGMENTABLE,
    appended_name,
    assigned_name,
    is_augmented,
    listed_name,
    paired_names,
    parameter_names,
    passed_name,
    rebound_names,
    root_call,
    statement_text,
    unpacked_names,
)
from torchscan.passes.memory.frames import Frame
from torchscan.records import NodeRecord
from torchscan.records.frozen import frozen_record

__all__ = ["augmented_source", "common_depth", "is_augmentable", "is_root", "local_ends"]

_NOT_BOUND = frozenset({"placeholder", "output", "get_attr"})


@frozen_record
class _Bindings:
    """Positions whose source line at a frame level binds a name, with their call sites; ``skip[i]``
    is the first entry from ``i`` on at another call site than entry ``i``."""

    positions: list[int]
    sites: list[str]
    skip: list[int]


@frozen_record
class _Frames:
    """Frame instances of an execution order, as lookup tables.

    ``level_ids[q][l]`` identifies node ``q``'s frame at level ``l`` (its outer call sites and
    function); ``frame_end[q][l]`` and ``site_end[q][l]`` are the last position of the contiguous
    run of nodes, from ``q`` on, with the same frame, resp. the same call site, at level ``l``;
    ``run_end[q][l]`` the same within one run of that line (a loop's iterations apart, where the capture
    said which run a node was made in: :attr:`~torchscan.records.NodeRecord.executions`), ``runs[q][l]`` that
    run (None: not known);
    ``owner_end[q]`` the last of the run whose caller module starts with ``q``'s (``owners[q]``: the module
    calls down to the one whose frame made node ``q``; ``call_end[q][d]``: the last of the run made in node
    ``q``'s ``d``-th module call); ``bindings``
    the positions binding a name, per (frame, name).
    """

    level_ids: list[list[int]]
    frame_end: list[list[int]]
    site_end: list[list[int]]
    run_end: list[list[int]]
    runs: list[tuple[int | None, ...]]
    owner_end: list[int]
    owners: list[tuple[tuple[str, int], ...]]
    call_end: list[list[int]]
    bindings: Mapping[tuple[int, str], _Bindings]
    library: frozenset[str] = frozenset()
    """Paths of the modules whose forward is torch's (they run no user line)."""


def local_ends(
    ordered: Sequence[NodeRecord],
    frames: Sequence[tuple[Frame, ...]],
    sources: Sequence[frozenset[str]],
    library: frozenset[str],
    call_end: list[list[int]] | None = None,
) -> dict[str, int]:
    """Eager Python keeps a result bound to a local name (``y = f(x)``) until the frame returns or
    rebinds the name, even after its last use. Node -> last index it is held that way.

    ``frames`` and ``sources`` are each node's user frames and the names of the nodes it reads.
    A frame instance is the chain of outer call sites plus the innermost function, within one
    caller module (a module in ``library`` runs no user code: its caller's counts); its extent is
    the contiguous run of nodes traced inside it. ``call_end``: ``call_ends`` of ``ordered``
    (:func:`~torchscan.passes.memory.liveness.call_ends`, whose indices are positions here), when at hand.
    """
    if ordered and ordered[-1].index != len(ordered) - 1:  # indices that are not positions: made again here
        call_end = None
    tables = _tables(ordered, frames, library, call_end)
    consumers: list[list[int]] = [[] for _ in ordered]
    position_of = {record.name: position for position, record in enumerate(ordered)}
    for position, names in enumerate(sources):
        for name in names:
            consumers[position_of[name]].append(position)
    ends: dict[str, int] = {}
    for position, record in enumerate(ordered):
        chain = frames[position]
        if not chain or record.op in _NOT_BOUND or not record.outputs:
            continue
        end = _held_until(ordered, frames, sources, tables, consumers, position)
        returned = _returned_until(frames, tables, consumers[position], position, record.returned)
        if returned is not None and (end is None or returned > end):
            end = returned
        passed = _passed_in(frames, tables, consumers[position], position)
        if passed is not None and (end is None or passed > end):
            end = passed
        if end is not None:
            ends[record.name] = ordered[end].index
    for position, record in enumerate(ordered):  # what a call reads through a name (a list's items)
        chain = frames[position]
        if chain and record.op not in _NOT_BOUND:
            held = _held_by_name(ordered, frames, tables, position)
            if held is not None:
                for name in sources[position]:
                    if held > position and ordered[held].index > ends.get(name, -1):
                        ends[name] = ordered[held].index
    return ends


def _held_by_name(
    ordered: Sequence[NodeRecord], frames: Sequence[tuple[Frame, ...]], tables: _Frames, position: int
) -> int | None:
    """Where the node at ``position`` is the call its line makes on a bare name (``torch.cat(outs, dim=1)``,
    :func:`~torchscan.passes.memory.eager_names.listed_name`), the last position that name holds what the call
    read: until a line binds it again or its frame returns; else None."""
    chain = frames[position]
    level = len(chain) - 1
    site, _, code = chain[level]
    found = listed_name(code)
    if found is None or found[1] in rebound_names(code) or not is_root(ordered[position], found[0]):
        return None  # ``x = f(x)``: the line's own binding releases it
    end = _held_by(tables, position, level, found[1], site)
    caller = _caller_list(frames, tables, position, level, found[1])
    return end if caller is None else max(end, caller)


def _held_by(tables: _Frames, position: int, level: int, name: str, site: str, extent: int | None = None) -> int:
    """The last position ``name``, in the frame at ``level`` of the node at ``position`` (its line at ``site``),
    holds what it holds now: until a line of that frame binds it again, or the frame returns (``extent``: the
    frame's last position where it is not the node's innermost module call's)."""
    if extent is None:
        extent = min(tables.frame_end[position][level], tables.owner_end[position])
    rebound = _next_binding(tables, position, level, name, site, True, extent)
    return extent if rebound is None else min(extent, tables.site_end[rebound][level])


def _caller_list(
    frames: Sequence[tuple[Frame, ...]], tables: _Frames, position: int, level: int, listed: str
) -> int | None:
    """Where the name ``listed`` a node's line adds to (``concat_list.append(conv(x))``, at ``level``) or reads through
    (``torch.cat(concat_list, 1)``) is a parameter of its function, not bound again before, and the line calling
    that function itself passes a bare name for it (VoVNet's ``x = self.conv_mid(x, output)``, ``output = [x]`` in
    the caller), the last position that name holds what it holds (the list's items): until a line of the caller's
    frame binds it again or that frame returns; else None. The caller's frame runs in the module call above the
    node's where the function is a module's ``forward`` (called by the caller's line, not by torch's forward:
    ``nn.Sequential``'s loop), else in the same one."""
    if level == 0:
        return None
    site, function, _ = frames[position][level]
    parameters = _parameters(site, function)
    if not parameters or listed not in parameters or _bound_before(tables, position, level, listed):
        return None  # not a parameter, or bound again in this frame before: no longer what the caller passed
    owners = tables.owners[position]
    if function.endswith(":forward") and owners:  # a module's forward: its caller's frame is in the call above
        call = len(owners) - 2
        if call >= 0 and owners[call][0] in tables.library:
            return None  # called by torch's forward (``nn.Sequential``'s loop), not by the caller's line
        callee = owners[-1][0].rpartition(".")[2]  # ``self.conv_mid(…)`` calls the module at ``….conv_mid``
        last = tables.call_end[position][call] if call >= 0 else len(tables.owners) - 1
    else:
        callee = function.rpartition(":")[2]
        last = tables.owner_end[position]
    caller_site, _, caller_code = frames[position][level - 1]
    name = passed_name(caller_code, callee, parameters, listed)
    if name is None or name in rebound_names(caller_code):
        return None  # ``x = block(x)``: the calling line's own binding releases it as the call returns
    return _held_by(tables, position, level - 1, name, caller_site, min(tables.frame_end[position][level - 1], last))


def _passed_in(frames: Sequence[tuple[Frame, ...]], tables: _Frames, consumers: list[int], position: int) -> int | None:
    """A value its line passes to a function of the user's (a method: ``x + self._attn(self.norm1(x))``, Swin's
    block) is held by the function's parameter until the function returns: the last position of the function's
    frame, where a node inside it reads the value, or until the first line binding one of its parameters again
    completes (which of them holds the value is not read); None where no node inside it reads the value, or where
    the function is a module's forward (the module-call rule: :func:`~torchscan.passes.memory.liveness.call_ends`)."""
    chain = frames[position]
    level = len(chain) - 1
    site, frame = chain[level][0], tables.level_ids[position][level]
    run, owner = tables.runs[position][level], tables.owners[position]
    best: int | None = None
    for reader in consumers:
        inner = frames[reader]
        if (
            len(inner) <= level + 1
            or inner[level][0] != site
            or tables.level_ids[reader][level] != frame
            or tables.runs[reader][level] != run
            or tables.owners[reader] != owner  # a module's forward: its call's own rule
        ):
            continue
        parameters = _parameters(*inner[level + 1][:2])
        if not parameters:
            continue
        end = min(tables.frame_end[reader][level + 1], tables.owner_end[reader])
        callee = tables.level_ids[reader][level + 1]
        for name in parameters:  # until the first line binding a parameter again completes (``x = roll(…)``)
            bindings = tables.bindings.get((callee, name)) if name not in ("self", "*") else None
            for bound in bindings.positions if bindings is not None else ():
                if position < bound <= end:
                    end = min(end, tables.site_end[bound][level + 1])
                    break
        if best is None or end > best:
            best = end
    return best


def _statement(site: str) -> str | None:
    """:func:`~torchscan.passes.memory.eager_names.statement_text` at a frame's site (``file:line``)."""
    file, _, line = site.rpartition(":")
    return statement_text(file, int(line)) if line.isdigit() else None


def _parameters(site: str, function: str) -> tuple[str, ...] | None:
    """:func:`~torchscan.passes.memory.eager_names.parameter_names` of a frame's function (a :data:`Frame`'s site,
    ``file:line``, and function, ``file:name``)."""
    file, _, line = site.rpartition(":")
    return parameter_names(file, int(line), function.rpartition(":")[2]) if line.isdigit() else None


def _bound_before(tables: _Frames, position: int, level: int, name: str) -> bool:
    """Whether a line of the frame at ``level`` of the node at ``position`` bound ``name`` before that node."""
    bindings = tables.bindings.get((tables.level_ids[position][level], name))
    if bindings is None:
        return False
    entry = bisect.bisect_left(bindings.positions, position) - 1
    if entry < 0:
        return False
    bound = bindings.positions[entry]
    return min(tables.frame_end[bound][level], tables.owner_end[bound]) >= position


def _returned_until(
    frames: Sequence[tuple[Frame, ...]],
    tables: _Frames,
    consumers: list[int],
    position: int,
    receivers: tuple[tuple[str, int, int, int], ...] = (),
) -> int | None:
    """A result returned out of a call into an outer frame whose line binds names (``y =
    self.block(x)``, ``out, _ = self.attn(x)``) is held by them until that frame returns or the
    statement that next rebinds one of them completes: the last such position, None when no outer
    line binds it. A result counts as returned to a level when the capture said that line received it
    (``receivers``: :attr:`~torchscan.records.NodeRecord.returned`, a module call's result, read or not, where
    the capture counted the line's runs), or when a node after the call's statement, in that frame, reads it.
    The name that holds it: a tuple target as many as the result's items, the one of its item, where the capture
    said which (``out, _ = self.attn(x)``: ``_`` holds the second); else the first of them rebound."""
    chain = frames[position]
    best: int | None = None
    for level in range(len(chain) - 1):
        names = rebound_names(chain[level][2])
        if not names:
            continue
        statement, extent = tables.run_end[position][level], tables.frame_end[position][level]
        readers = [later for later in consumers if statement < later <= extent]
        receiver = next((mark for mark in receivers if mark[0] == chain[level][0]), None) if receivers else None
        if not readers and (receiver is None or tables.runs[position][level] is None):
            # no reader, and no receiving line, or one whose runs are not told apart (a recorded forward's
            # ``x = blk(x)`` in a loop would hold every block's result)
            continue
        if receiver is not None and 0 <= receiver[2] < receiver[3] == len(names):
            names = (names[receiver[2]],)
        if readers:
            # calls of one function made where no user frame tells them apart (a library's loop: ``nn.Sequential``;
            # a recorded forward, whose runs are not counted) have one frame id: the frame's module call (the owner
            # of a reader running its own code, else of the first reader) bounds it
            own = [later for later in readers if len(frames[later]) == level + 1]
            end = extent = min(extent, _shared_call_end(tables, position, (own or readers)[0]))
        else:  # received and never read: the frame runs no longer than the module call it runs in
            call_end, depth = tables.call_end[position], receiver[1]  # type: ignore[index]
            bound = call_end[depth - 1] if 0 < depth <= len(call_end) else len(tables.owners) - 1
            end = extent = min(extent, bound)
        frame = tables.level_ids[position][level]
        for name in names:
            bindings = tables.bindings.get((frame, name))
            if bindings is None:
                continue
            entry = bisect.bisect_right(bindings.positions, statement)
            if entry < len(bindings.positions) and bindings.positions[entry] <= extent:
                end = min(end, tables.run_end[bindings.positions[entry]][level])
        best = end if best is None else max(best, end)
    return best


def _held_until(
    ordered: Sequence[NodeRecord],
    frames: Sequence[tuple[Frame, ...]],
    sources: Sequence[frozenset[str]],
    tables: _Frames,
    consumers_of: Sequence[list[int]],
    position: int,
) -> int | None:
    """The last position the name bound by the node at ``position`` holds its result, None when
    it binds none, is read again on its own line (a temporary), or is held no longer.

    The node is its statement's value when it is the line's recognised outermost call, or when the
    line does not read its own target and no later node of the line reads the node: every other
    node of an expression feeds its parent, and this finds the value where the outermost call is a
    plain name (``y = relu(block(x))``) or a container whose nodes are its children's
    (``y = self.seq(x)``: ``seq.1``). A line reading its target (``y = f(y)``) may feed its next
    iteration, so there it is not inferred.
    A value is held until the next binding of its name (the next iteration of a loop included)
    completes. A value a line adds to a list bound to a name (``outs.append(conv(x))``: the node no later node
    of the line reads) is held by the list until the frame returns or a line binds the name again."""
    consumers = consumers_of[position]
    chain = frames[position]
    level = len(chain) - 1
    site, _, code = chain[level]
    name = assigned_name(code)
    record = ordered[position]
    extent = min(tables.frame_end[position][level], tables.owner_end[position])
    after = position  # where the next binding of the name is looked for: past the statement's run, for items
    listed = appended_name(code) if name is None else None
    if listed is not None:
        # an inner call of the line (of this run of it, where the runs are known: ``outs.append(f(outs[-1]))`` in a
        # loop reads the last run's item): the list gets what reads it
        statement = tables.run_end[position][level] if tables.runs[position][level] is not None else extent
        if _read_on_site(frames, consumers, position, level, site, statement):
            return None
        end = _held_by(tables, position, level, listed, site)
        caller = _caller_list(frames, tables, position, level, listed)
        if caller is not None:  # the caller's list, handed in: its name holds the items after this frame returns
            end = max(end, caller)
        return end if end > position else None
    if name is None:  # ``q, k = self.q(x), self.k(x)``, ``k, v = kv.split(…)``: each name holds its item's value
        names = paired_names(code)
        unpacked = () if names else unpacked_names(code)
        if not names and not unpacked and len(rebound_names(code)) > 1:  # tuple targets of a statement over lines
            unpacked = unpacked_names(_statement(site) or "")
        paired = _paired_name(ordered, frames, tables, consumers_of, position, level, names or unpacked, bool(unpacked))
        if paired is None:
            return None
        name, after = paired
        bound = True
    else:
        root, reads = root_call(code)
        # the statement's value: its outermost call (even if a loop reads it), or, on a line that does not
        # read its target, the node no later node of the line reads (a plain-name call; a Sequential's last)
        bound = is_root(record, root) or (
            reads == 0 and not _read_on_site(frames, consumers, position, level, site, extent)
        )
    rebound = _next_binding(tables, after, level, name, site, bound, extent)
    if not bound:  # an inner call of the line read on that line: a temporary, not the bound value
        for later in consumers:
            if position < later <= extent and (rebound is None or later < rebound) and frames[later][level][0] == site:
                return None
    if rebound is None:
        return extent if extent > position else None
    runs = _called(frames, rebound, level, tables)
    last = min(extent, tables.run_end[rebound][level] if runs else tables.site_end[rebound][level])
    if paired_names(frames[rebound][level][2]) or runs:
        # ``p, q = f(x), g(x)``: every item is made before any name is rebound; a run of a line that calls a
        # function of the user's: the statement completes with the run
        return last
    values = _StatementValue(frames, consumers_of, level, frames[rebound][level][0], last)
    return _statement_end(ordered, sources, rebound, last, record.name, frames[rebound][level][2], values)


def _called(frames: Sequence[tuple[Frame, ...]], position: int, level: int, tables: _Frames) -> bool:
    """Whether the node at ``position`` is made inside a user function called by its line at ``level``, in a
    run of that line the capture counted (its runs then tell the line's runs apart)."""
    return len(frames[position]) > level + 1 and tables.runs[position][level] is not None


def _paired_name(
    ordered: Sequence[NodeRecord],
    frames: Sequence[tuple[Frame, ...]],
    tables: _Frames,
    consumers_of: Sequence[list[int]],
    position: int,
    level: int,
    names: tuple[str, ...],
    unpacked: bool = False,
) -> tuple[str, int] | None:
    """The name of tuple targets bound item by item (:func:`~torchscan.passes.memory.eager_names.paired_names`)
    that holds the node at ``position``, and the last position of the statement's run (its contiguous nodes
    at that call site, in that frame): the items' values are the run's nodes that no later node of the line
    reads, in order — one per name, else (a loop running the line again, an item that made no node) none
    is bound. ``unpacked``: the names unpack one value
    (:func:`~torchscan.passes.memory.eager_names.unpacked_names`), whose items the trace makes as ``getitem``
    nodes: only those are items (a statement spelled over several lines makes its other calls at its other
    lines, which this line's nodes feed)."""
    if not names:
        return None
    site, frame = frames[position][level][0], tables.level_ids[position][level]

    def same(index: int) -> bool:
        return (
            len(frames[index]) > level and frames[index][level][0] == site and tables.level_ids[index][level] == frame
        )

    start, last = position, tables.site_end[position][level]
    while start > 0 and same(start - 1):
        start -= 1
    values = [
        index
        for index in range(start, last + 1)
        if ordered[index].outputs
        and ordered[index].op not in _NOT_BOUND
        and (not unpacked or ordered[index].type_name == "getitem")
        and not _read_on_site(frames, consumers_of[index], index, level, site, last)
    ]
    if len(values) != len(names) or position not in values:
        return None
    return names[values.index(position)], last


def _next_binding(
    tables: _Frames, position: int, level: int, name: str, site: str, bound: bool, extent: int
) -> int | None:
    """The first position after ``position`` and up to ``extent`` whose line in the same frame
    binds ``name`` again — at another call site, unless the node is its statement's value."""
    bindings = tables.bindings.get((tables.level_ids[position][level], name))
    if bindings is None:
        return None
    entry = bisect.bisect_right(bindings.positions, position)
    if entry < len(bindings.positions) and not bound and bindings.sites[entry] == site:
        entry = bindings.skip[entry]
    if entry < len(bindings.positions) and bindings.positions[entry] <= extent:
        return bindings.positions[entry]
    return None


def _read_on_site(
    frames: Sequence[tuple[Frame, ...]], consumers: list[int], position: int, level: int, site: str, last: int
) -> bool:
    """Whether a node after ``position`` and up to ``last`` whose frame at ``level`` is at call
    site ``site`` (the same source line, at any depth below it) reads the node."""
    return any(
        position < later <= last and len(frames[later]) > level and frames[later][level][0] == site
        for later in consumers
    )


@frozen_record
class _StatementValue:
    """Which nodes of a rebinding statement's run (call site ``site`` at ``level``, up to
    ``last``) are a statement's value when its outermost call is not recognised: those no later
    node of the line reads."""

    frames: Sequence[tuple[Frame, ...]]
    consumers_of: Sequence[list[int]]
    level: int
    site: str
    last: int

    def __call__(self, position: int) -> bool:
        return not _read_on_site(self.frames, self.consumers_of[position], position, self.level, self.site, self.last)


def _statement_end(
    ordered: Sequence[NodeRecord],
    sources: Sequence[frozenset[str]],
    start: int,
    last: int,
    name: str,
    code: str,
    values: _StatementValue,
) -> int:
    """Position of the last node of the statement that rebinds a name, starting at ``start``
    (its nodes run to ``last`` at most).

    Its old value is held until the statement completes: through the last read of the name
    (as many reads as the source has) and on to the statement's outermost call. A statement that
    does not read its own target ends at its value either way (the first node its line does not read
    on: ``values``, as in :func:`_held_until`); one that reads it, without a recognisable outermost
    call, may run straight into its next iteration, so we stop at the last read.
    """
    root, reads = root_call(code)
    seen, end = 0, start
    for position in range(start, last + 1):
        if name in sources[position]:
            seen += 1
            end = position
        if seen < reads:
            continue
        if is_root(ordered[position], root) or (reads == 0 and values(position)):
            return position
        if root is None and reads > 0:
            return end
    return end


def is_root(record: NodeRecord, root: str | None) -> bool:
    """Whether a node is the statement's outermost call ``root`` (see
    :func:`~torchscan.passes.memory.eager_names.root_call`)."""
    if root is None:
        return False
    path = record.module_path
    return record.type_name.lower().rstrip("_") == root.lower() or path == root or path.endswith(f".{root}")


def _tables(
    ordered: Sequence[NodeRecord],
    frames: Sequence[tuple[Frame, ...]],
    library: frozenset[str],
    call_end: list[list[int]] | None = None,
) -> _Frames:
    """The lookup tables of :class:`_Frames`, in one sweep each (a chain of frames shared by
    several nodes, e.g. every iteration of a loop, is read once)."""
    chains: dict[tuple[tuple[Frame, ...], tuple[int | None, ...]], _Chain] = {}
    prefixes: dict[tuple[int, str, int | None], int] = {}
    functions: dict[tuple[int, str], int] = {}
    per_node = []
    counted = False  # whether any node's runs are known: else a run of a line is its call site's run
    for chain, record in zip(frames, ordered, strict=True):
        executions = record.executions
        counted = counted or bool(executions)
        runs = executions if len(executions) == len(chain) else _aligned(len(chain), executions)
        known = chains.get((chain, runs))
        if known is None:
            known = chains[chain, runs] = _read_chain(chain, runs, prefixes, functions)
        per_node.append(known)
    level_ids = [known.level_ids for known in per_node]
    owners = _owners(ordered, library)
    site_end = _run_ends([known.sites for known in per_node])
    return _Frames(
        level_ids=level_ids,
        frame_end=_run_ends(level_ids),
        site_end=site_end,
        run_end=_run_ends([known.runs for known in per_node]) if counted else site_end,
        runs=[tuple(run for _, run in known.runs) for known in per_node],
        owner_end=_owner_ends(owners),
        owners=owners,
        call_end=_run_ends([record.module_calls for record in ordered]) if call_end is None else call_end,
        bindings=_bindings(per_node),
        library=library,
    )


@frozen_record
class _Chain:
    """One chain of user frames: per level its frame id and call site, and the levels whose
    source line binds a name (level, name; each name of tuple targets)."""

    level_ids: list[int]
    sites: list[str]
    binds: list[tuple[int, str]]
    runs: list[Any]
    """Per level its call site, with the run of its line where known (:func:`_aligned`)."""


def _read_chain(
    chain: tuple[Frame, ...],
    runs: tuple[int | None, ...],
    prefixes: dict[tuple[int, str, int | None], int],
    functions: dict[tuple[int, str], int],
) -> _Chain:
    """A chain's frame ids — (the call sites of the outer levels with the runs of their lines, the level's
    function), interned in ``prefixes`` and ``functions``: two calls made by two runs of one line are two
    frames — its sites and what its lines bind."""
    prefix, level_ids, binds = 0, [], []
    for level, (site, function, code) in enumerate(chain):
        level_ids.append(functions.setdefault((prefix, function), len(functions)))
        prefix = prefixes.setdefault((prefix, site, runs[level]), len(prefixes) + 1)
        binds.extend((level, name) for name in rebound_names(code))
    sites = [site for site, _, _ in chain]
    return _Chain(level_ids, sites, binds, [(site, run) for site, run in zip(sites, runs, strict=True)])


def _aligned(levels: int, executions: tuple[int, ...]) -> tuple[int | None, ...]:
    """A node's runs (:attr:`~torchscan.records.NodeRecord.executions`: its innermost user frames', outermost
    first) per level of its ``levels`` parsed frames; None where not known."""
    offset = len(executions) - levels
    size = len(executions)
    return tuple(executions[level + offset] if 0 <= level + offset < size else None for level in range(levels))


def _run_ends(keys: Sequence[Sequence[Any]]) -> list[list[int]]:
    """``ends[q][l]``: the last position of the contiguous run from ``q`` on with ``keys[·][l]``
    equal to ``keys[q][l]``."""
    ends: list[list[int]] = [[] for _ in keys]
    following: Sequence[Any] = ()
    for position in range(len(keys) - 1, -1, -1):
        own = keys[position]
        after = ends[position + 1] if position + 1 < len(keys) else []
        ends[position] = [
            after[level] if level < len(following) and following[level] == key else position
            for level, key in enumerate(own)
        ]
        following = own
    return ends


def _owners(ordered: Sequence[NodeRecord], library: frozenset[str]) -> list[tuple[tuple[str, int], ...]]:
    """Per node, the module calls down to the innermost one whose forward is user code and ran the node's
    line (:attr:`~torchscan.records.NodeRecord.module_calls`; a ``call_module`` node's own call is not its
    caller; a module whose forward is torch's, ``nn.Sequential``, runs no user line): the call whose frame made
    it. Calls, not paths: two calls of one module are two owners, and a forward calling a grandchild's module
    directly is that call's owner, not the child's."""
    found: dict[tuple[int, bool], tuple[tuple[str, int], ...]] = {}
    owners = []
    for record in ordered:
        calls, own = record.module_calls, record.op == "call_module"
        key = (id(calls), own)
        owner = found.get(key)
        if owner is None:
            depth = len(calls) - 1 if own and calls else len(calls)
            while depth and calls[depth - 1][0] in library:
                depth -= 1
            owner = found[key] = calls[:depth]
        owners.append(owner)
    return owners


def _shared_call_end(tables: _Frames, position: int, reader: int) -> int:
    """The last position of the innermost module call whose frames made both the node at ``position`` and a
    later ``reader`` of it (the end of the graph where they share none): a frame that made both runs no
    longer than that call."""
    shared = common_depth(tables.owners[position], tables.owners[reader])
    return tables.call_end[reader][shared - 1] if shared else len(tables.owners) - 1


def common_depth(first: Sequence[Any], second: Sequence[Any]) -> int:
    """Number of leading items two sequences share (module calls, parts of paths)."""
    depth = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        depth += 1
    return depth


def _owner_ends(owners: Sequence[tuple[tuple[str, int], ...]]) -> list[int]:
    """``ends[q]``: the last position of the run from ``q`` on whose owners are all within ``q``'s call (a
    monotonic stack: a position dominated by a later start is never the first to leave)."""
    ends = [0] * len(owners)
    stack: list[int] = []
    for position in range(len(owners) - 1, -1, -1):
        own = owners[position]
        while stack and owners[stack[-1]][: len(own)] == own:
            stack.pop()
        ends[position] = (stack[-1] if stack else len(owners)) - 1
        stack.append(position)
    return ends


def _bindings(chains: Sequence[_Chain]) -> dict[tuple[int, str], _Bindings]:
    """Per (frame id, name): the positions whose line at that frame binds the name."""
    found: dict[tuple[int, str], tuple[list[int], list[str]]] = {}
    for position, chain in enumerate(chains):
        for level, name in chain.binds:
            positions, sites = found.setdefault((chain.level_ids[level], name), ([], []))
            positions.append(position)
            sites.append(chain.sites[level])
    return {key: _Bindings(positions, sites, _skips(sites)) for key, (positions, sites) in found.items()}


def _skips(sites: Sequence[str]) -> list[int]:
    """``skip[i]``: the first index from ``i`` on whose site differs from ``sites[i]``."""
    skip = [len(sites)] * len(sites)
    for entry in range(len(sites) - 2, -1, -1):
        skip[entry] = entry + 1 if sites[entry + 1] != sites[entry] else skip[entry + 1]
    return skip


def augmented_source(
    record: NodeRecord, frames: tuple[Frame, ...], sources: Sequence[str], of_node: Mapping[str, tuple[Any, ...]]
) -> Any:
    """fx traces ``y += z`` as ``add``; eager runs it in place. For such a node (its source line is
    an augmented assignment; ``frames`` its user frames, ``sources`` what it reads, in order) the
    storage of its first operand, else None."""
    if not is_augmentable(record, frames):
        return None
    keys = of_node.get(sources[0], ()) if sources else ()
    return keys[0] if len(keys) == 1 else None


def is_augmentable(record: NodeRecord, frames: tuple[Frame, ...]) -> bool:
    """Whether a node is an ``add``-like call traced from an augmented assignment (``y += z``;
    ``frames``: its user frames): :func:`augmented_source` gives it its first operand's storage."""
    return (
        record.op == "call_function"
        and record.type_name in AUGMENTABLE
        and bool(frames)
        and is_augmented(frames[-1][2])
    )
