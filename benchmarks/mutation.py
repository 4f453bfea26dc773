"""Mutation testing of ``torchscan/ops/`` and ``torchscan/passes/``: do the tests catch small bugs?

Each mutant changes one token of one module (an AST node, the file written back with
``ast.unparse``; the round trip is checked to give the same AST):

- arithmetic ``+ ↔ -``, ``* → +``, ``/ → *``, ``// → *``, ``% → //``, ``** → *`` (also in ``x op= y``);
- comparisons ``< ↔ <=``, ``> ↔ >=``, ``== ↔ !=``, ``is ↔ is not``, ``in ↔ not in``;
- ``and ↔ or``; ``not x → x``; ``-x → x``;
- integer constants ``0 → 1``, ``1 → 2``, ``2 → 1``, ``n → n + 1``; ``True ↔ False``.

Docstrings, annotations and ``TYPE_CHECKING`` blocks are not mutated. For each mutant only the
tests of its module run (:data:`TESTS`: module -> the test folders that exercise it, default
suite only, ``-x``, hypothesis seeded with ``--hypothesis-seed=0`` and no example database), in a
private copy of the working tree (``torchscan/``, ``tests/``, ``pyproject.toml``) on ``PYTHONPATH``:
a failure, an error or a timeout (3 minutes) kills the mutant; passing tests let it survive.

Why a script and not mutmut or cosmic-ray: mutmut 3 does not mutate decorated functions, and
every formula (``@TABLE.register(...)``), shape rule and receptive-field rule here is one;
cosmic-ray runs one fixed test command per session, while a run that fits on two shared cores
needs a seeded sample and per-module tests. This script is those two things and nothing more.

Usage (from the repository root)::

    python benchmarks/mutation.py --list                      # the mutant population
    python benchmarks/mutation.py --sample 200 --seed 18 --jobs 2 --out benchmarks/mutation.md
    python benchmarks/mutation.py --only "passes/receptive/windows.py:17"   # one mutant, by id
    python benchmarks/mutation.py --rerun old.jsonl --results new.jsonl   # an earlier run's survivors again
    python benchmarks/mutation.py --sample 40 --seed 7 --under torchscan/passes/memory/   # one folder's mutants
    python benchmarks/mutation.py --sample 150 --seed 9 --results s.jsonl --resume   # go on after a cut
    python benchmarks/mutation.py --sample 150 --seed 1118 --set-aside torchscan/passes/memory/ \
        --set-aside-reason "being reworked"   # reported apart, outside the kill rate

``--rerun`` matches an earlier survivor to the current tree by module, source line and change; a
survivor whose line was rewritten since is reported as gone (not counted: the new line's mutants are
in the population a fresh sample draws from).

The report lists the kill rate and every survivor; survivors judged equivalent (no observable
change) are listed in :data:`EQUIVALENT` with the reason and reported as such.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import copy
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("torchscan/ops", "torchscan/passes")
TIMEOUT_S = 180

_HOUSE = "tests/test_frozen.py"
"""The house rule every module is held to (its dataclasses are frozen): run against every mutant."""

TESTS: dict[str, tuple[str, ...]] = {
    "torchscan/ops/": ("tests/ops", "tests/passes/test_counts.py", "tests/test_golden.py", _HOUSE),
    "torchscan/ops/registry.py": ("tests/ops", "tests/passes/memory/test_families.py", "tests/graph/rules", _HOUSE),
    "torchscan/passes/receptive/": ("tests/passes/receptive", _HOUSE),
    "torchscan/passes/memory/": ("tests/passes/memory", "tests/measure/test_cpu.py", _HOUSE),
    "torchscan/passes/": (
        "tests/passes/test_counts.py",
        "tests/passes/test_params.py",
        "tests/passes/test_rows.py",
        "tests/test_golden.py",
        _HOUSE,
    ),
}
"""Module (or folder prefix) -> the tests run against its mutants; the longest matching key wins."""

_STRICT = "zip(strict=True) -> False over sequences of equal length by construction"
_SCATTER = (
    "every registered scatter-add (index_add, scatter_add and their method and in-place spellings) takes "
    "(self, index, source) tensors, so rest is (index, source): never empty, rest[:-1] == rest[:1]"
)
_CONV = (
    "a default or position of a (transposed) convolution's window argument: the rule reads the weight by "
    "name (call.spec), so an unbound call (arguments by position only) is refused before it; a bound call "
    "has every argument (the binder applies the defaults; a module has them as attributes)"
)
_TRAINABLE = (
    "the default: every module path of a call_module is in the table (collect_params walks named_modules; a "
    "module called under two names is recorded under its first; one made inside forward is traced through, "
    "never a call_module); the comparison > 0 -> > 1: a trainable parameter has at least 2 bytes (one fp16 "
    "element; a one-element float8 parameter would be the exception)"
)
_GRADS = (
    "the default: requires_grad gives every node of the graph a flag (node_records lists them all), and the "
    "name looked up is always a node's"
)
EQUIVALENT: dict[tuple[str, str, str] | tuple[str, str, str, int], str] = {
    ("passes/memory/liveness.py", "@functools.lru_cache(maxsize=4096)", "4096 -> 4097"): "a cache's size",
    ("passes/memory/eager_names.py", "@functools.lru_cache(maxsize=4096)", "4096 -> 4097"): "a cache's size",
    (
        "passes/memory/backward_flops.py",
        'weight_grad = record.op != "call_module" or trainable.get(record.module_path, 0) > 0',
        "0 -> 1",
    ): _TRAINABLE,
    (
        "passes/memory/grads.py",
        'own = record.op == "call_module" and trainable.get(record.module_path, 0) > 0',
        "0 -> 1",
    ): _TRAINABLE,
    (
        "passes/memory/backward_flops.py",
        "input_grad = any(grads.get(source, False) for source in context.sources[record.name])",
        "False -> True",
    ): _GRADS,
    (
        "passes/memory/internal.py",
        "tensor.dtype.is_floating_point and source is not None and grads.get(source, False)",
        "False -> True",
    ): _GRADS + " (the replay's graph is the one the records were built from: checked on three models, "
    "no node without a flag)",
    ("passes/memory/liveness.py", "local = local_end.get(record.name, -1)", "1 -> 2"): "the default -1 -> -2 only "
    "enters max(last_use[key], local), where last_use[key] is a node index (>= 0): both lose",
    (
        "passes/memory/training.py",
        "if source is None or not grads.get(source) or position >= len(call.grad_bytes):",
        ">= -> >",
    ): "grad_bytes and arg_sources both have one entry per tensor argument of the call (tree_leaves order), and "
    "an empty grad_bytes is skipped before: position < len always, >= and > both false",
    ("passes/memory/grads.py", "sources = graph.pred if sources is None else sources", "is -> is not"): "its "
    "one caller (memory_graph) passes sources_of(graph), the graph's predecessors as tuples; requires_grad only "
    "iterates them, and graph.pred yields the same names",
    (
        "passes/memory/grads.py",
        "trainable = trainable_bytes(params) if trainable is None else trainable",
        "is -> is not",
    ): ("its one caller (memory_graph) passes trainable_bytes(params) of the same params: recomputing gives the same"),
    (
        "passes/memory/liveness.py",
        'while depth < len(parts) and ".".join(parts[: depth + 1]) in containers:',
        "< -> <=",
    ): "the one extra step, at depth == len(parts), returns len(parts) + 1 instead of len(parts): the caller reads "
    "ends[entered] only for entered < len(ends) == len(parts), so both fall back to the node's own index",
    ("passes/memory/storage.py", "and len(refs) == len(record.outputs) > 0", "> -> >="): (
        "a get_attr without outputs (a plain attribute) also passes all([]): its storage keys are the empty refs "
        "either way, and requires_grad needs a floating output before it asks"
    ),
    (
        "passes/memory/saved.py",
        "tensor_inputs = sum(1 for spec in record.call.inputs) if record.call is not None else 0",
        "0 -> 1",
    ): "the count is only compared with 2: a call-less node keeps nothing with 0 or 1",
    ("passes/memory/internal.py", "not isinstance(item, (nn.Module, torch.Tensor)) for item in value", "not x -> x"): (
        "a cache key's granularity: a tuple of plain values is then keyed by its identity (equal tuples of two "
        "modules miss the cache and are recorded again, to the same facts: recording is deterministic, the fake "
        "dispatch cache being off), a tuple of tensors or modules by its items' identities instead of its own"
    ),
    ("passes/memory/saved.py", "return (), sum(spec.nbytes for spec in record.outputs[:1])", "1 -> 2"): (
        "only an activation runs in place (the norms of Saves.INPUT have no in-place spelling), and every "
        "activation has one output: outputs[:1] == outputs[:2]"
    ),
    ("passes/memory/eager.py", "if returned is not None and (end is None or returned > end):", "> -> >="): (
        "the branch sets end = returned: where returned == end it sets end to the value it has"
    ),
    ("passes/memory/eager.py", "readers = [later for later in consumers if statement < later <= extent]", "<= -> <"): (
        "a reader at extent reads the node itself, so its plain last use is at least extent; the hold this "
        "function returns never passes extent (end <= extent at each level), so leaving that reader out can only "
        "lower a hold the plain rule already covers"
    ),
    ("ops/torchvision_ops.py", 'ratio = int(argument(call, "sampling_ratio", None, -1))', "-x -> x"): "the "
    "default: every spelling binds sampling_ratio (torchvision.ops.roi_align and MultiScaleRoIAlign's function are "
    "Python functions, bound with their default -1 applied; the torchvision ops' schemas require it; RoIAlign keeps "
    "it as an attribute): checked by position and by name in tests/ops/test_torchvision_ops.py",
    ("ops/norm.py", 'groups = reduced_groups(call.input, argument(call, "dim", 1, 1))', "1 -> 2"): "F.normalize, "
    "its only spelling, is a Python function: its call always binds, defaults applied (dim=1), so neither the "
    "position nor the default is read",
    (
        "passes/memory/eager.py",
        "position < later <= last and len(frames[later]) > level and frames[later][level][0] == site",
        "< -> <=",
    ): "later == position would be a node reading its own result: the graph is acyclic",
    (
        "passes/memory/eager.py",
        "position < later <= last and len(frames[later]) > level and frames[later][level][0] == site",
        "> -> >=",
    ): "every node up to last (at most the end of the frame's run at level) has a frame at level: "
    "len(frames[later]) > level always",
    (
        "passes/memory/eager.py",
        "if root is None and reads > 0:",
        "0 -> 1",
    ): "with no recognised outermost call the statement ends at a read of the held node (the first or, mutated, "
    "the last within the line's run); every read lies within the node's plain last use, and liveness takes the "
    "max of the two",
    (
        "passes/params.py",
        "for _, tensor in module.named_buffers(recurse=False, remove_duplicate=False):",
        "False -> True",
    ): "the loop skips a tensor already seen by identity (seen), which is all remove_duplicate does for one "
    "module's own buffers",
    (
        "passes/memory/eager.py",
        "if entry < len(bindings.positions) and bindings.positions[entry] <= extent:",
        "<= -> <",
    ): "a rebinding at the frame's last position: the statement end lies in [rebound, extent] = {extent}, which "
    "is also the answer without a rebinding (extent > position); and the temporary test it bounds looks at "
    "consumers on the node's own line, never the other line's node at extent",
    ("passes/memory/training.py", "held[record.name] = 0", "0 -> 1"): "the value is never read again: a node's "
    "held bytes are read once, in its own step of the backward, before this reset; later steps only test membership",
    ("passes/memory/training.py", "own = held.get(record.name, 0)", "0 -> 1"): "the default: the loop puts every node "
    "it reaches into held (its output's gradient) before this read, so the key is always there",
    (
        "passes/memory/peak.py",
        "odd = [d * (k - 1) % 2 for k, d in zip(weight.shape[2:], dilation, strict=True)]",
        "True -> False",
    ): _STRICT + " (both have one entry per spatial dim of the weight)",
    (
        "passes/memory/saved.py",
        "keep, extra_bytes = rule(record, inputs, outputs, trainable.get(record.module_path, 0) > 0)",
        "0 -> 1",
    ): "the default: every module path of a call_module is in the table (a module without parameters has 0 "
    "bytes); the comparison: a module with a trainable parameter has at least 2 bytes of them (one fp16 element)",
    **{
        ("passes/params.py", f"{field}: int = 0", "0 -> 1"): "a field default that collect_params always overrides "
        "(ModuleParams is made in one place, every field given)"
        for field in ("params", "trainable", "shared", "param_bytes", "buffer_bytes")
    },
    ("passes/memory/eager.py", "for position in range(len(owners) - 1, -1, -1):", "1 -> 2", 1): "the stop -1 -> "
    "-2 leaves out position 0, always a placeholder: never bound to a name, and no later position reads the stack",
    ("ops/linear.py", "for term, shape in zip(operands, shapes, strict=True):", "True -> False"): _STRICT
    + " (_einsum_terms raises first when the equation names another number of operands)",
    ("ops/norm.py", 'groups = argument(call, "num_groups", 0, 1)', "1 -> 2"): "the default: num_groups is a "
    "required argument of every spelling (nn.GroupNorm's attribute; F.group_norm, torch.group_norm and "
    "aten.group_norm take it as their first argument after the input, by name or by position)",
    ("ops/shape.py", "source = rest[-1].numel if rest else 0", "0 -> 1"): _SCATTER,
    ("ops/shape.py", "index = sum(spec.numel for spec in rest[:-1])", "-x -> x"): _SCATTER,
    (
        "passes/receptive/windows.py",
        "for span, k, d, p, s in zip(field.spans, kernel, dilation, padding, stride, strict=True)",
        "True -> False",
    ): _STRICT + " (unfold refuses a field whose axes are not (-2, -1): two spans; the four window arguments "
    "are ints(…, 2))",
    (
        "ops/attention.py",
        "query, key = call.inputs[0], call.inputs[1] if len(call.inputs) > 1 else call.inputs[0]",
        "> -> >=",
    ): "nn.MultiheadAttention.forward takes query, key and value: a call has at least three tensor inputs, "
    "so len > 1 and len >= 1 agree",
    (
        "passes/receptive/layout.py",
        'sequence = -2 if call.get("batch_first", False) or not batched else -3',
        "False -> True",
    ): ("the default: nn.MultiheadAttention always has its batch_first attribute (module_config records it)"),
    (
        "passes/receptive/table.py",
        "return {a for a, n in zip(field.axes, field.sizes, strict=True) if a is not None and n > 1}",
        "True -> False",
    ): _STRICT + " (a Field has one axis and one size per spatial dim)",
    (
        "passes/receptive/windows.py",
        "extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]",
        "True -> False",
    ): _STRICT + " (the kernel and the dilation are both ints(…, dims))",
    (
        "passes/receptive/windows.py",
        'pads = arg(call, "padding", 99) if call.kind == "module" else arg(call, "pad", 0)',
        "99 -> 100",
    ): "a position no call reaches (a pad module's padding is its attribute, always read by name): 99 and 100 "
    "both fall back to the name",
    (
        "passes/memory/internal.py",
        "backward_transient: int = 0",
        "0 -> 1",
    ): "a field default never read: training reads backward_transient only of a trained call with grad_bytes, and "
    "the one CallMemory(...) that gives grad_bytes gives backward_transient too (the other three give neither)",
    ("passes/memory/internal.py", "position = iter(range(1 << 30))", "30 -> 31"): "an iterator of tensor argument "
    "positions: a call never has 2**30 tensor arguments, so 1 << 30 and 1 << 31 yield the same prefix",
    (
        "passes/memory/eager.py",
        "if position < later <= extent and (rebound is None or later < rebound) and frames[later][level][0] == site:",
        "< -> <=",
    ): "later runs over the consumers of the node at position: later == position would be a node reading its own "
    "result (the graph is acyclic)",
    ("ops/recurrent.py", 'bias=bool(call.get("bias", True)),', "True -> False"): "the default: the cells are "
    "counted only as modules (hidden_size and input_size read from attrs), and RNNCellBase keeps bias as an "
    "attribute that module_config records (vars(module)), so the default is never used",
    ("ops/attention.py", "masked: bool = False", "False -> True"): "a field default that both MultiheadShape(...) "
    "constructions set explicitly (masked=len(call.inputs) > 3 and masked=call.spec('mask') is not None)",
    (
        "ops/torchvision_ops.py",
        'with_cls = bool(argument(call, "residual_with_cls_embed", 1, True))',
        "1 -> 2",
    ): "the position: mvit._add_shortcut, the only spelling, is a Python function, so its call always binds "
    "(residual_with_cls_embed by name, its default applied) and the positional index is never read",
    ("ops/pool.py", "return _max(call.output.numel, 0, _adaptive_taps(call, dims))", "0 -> 1"): "_max reads its "
    "volume only when taps is None, and _adaptive_taps always returns an int",
    ("passes/receptive/windows.py", 'stride = ints(arg(call, "stride", 2), n, 1)', "1 -> 2"): _CONV,
    ("passes/receptive/windows.py", 'stride = ints(arg(call, "stride", 2), n, 1)', "2 -> 1"): _CONV,
    ("passes/receptive/windows.py", 'padding = ints(arg(call, "padding", 3), n, 0)', "3 -> 4"): _CONV,
    ("passes/receptive/windows.py", 'padding = ints(arg(call, "padding", 3), n, 0)', "0 -> 1"): _CONV,
    (
        "passes/receptive/windows.py",
        'padding = _padding(arg(call, "padding", 3, 0), kernel, dilation)',
        "3 -> 4",
    ): _CONV,
    ("passes/receptive/windows.py", 'dilation = ints(arg(call, "dilation", 4), n, 1)', "4 -> 5"): _CONV,
    (
        "passes/receptive/table.py",
        "shifted = tuple(None if a is None or a in mixed else a + sum(m > a for m in mixed) for a in field.axes)",
        "> -> >=",
    ): "m > a and m >= a differ only for m == a, and an axis a in mixed takes the other branch (None): the "
    "sum is reached only for an a outside mixed",
    (
        "passes/receptive/geometry.py",
        "turns = self.period // math.gcd(a, self.period)  # a·turns is a multiple of the period",
        "// -> *",
    ): "Bound.compose tabulates the composed function over d·turns units, then reduces it: turns·gcd² is a "
    "multiple of turns, the function is the same, and the reduction finds its smallest period either way (the "
    "periods of a quasi-affine function are closed under gcd, so the smallest divides both tabulated lengths)",
}
"""``(module, source line, change[, occurrence])`` -> why the mutant changes nothing observable
(reported as equivalent, not as a survivor); without an occurrence, every mutant of that line and
change. Keyed by text, not by id, so that it outlives edits elsewhere."""


_SLOTS = (
    "slots=True -> False on a frozen @dataclass: its instances get a __dict__ besides their slots; frozen "
    "already refuses every assignment and no code reads __dict__ or __slots__ (only the memory footprint changes)"
)


def equivalent(mutant: Mutant) -> str | None:
    """Why ``mutant`` is equivalent, or None."""
    return EQUIVALENT.get(mutant.key) or EQUIVALENT.get(mutant.key[:3]) or _slots(mutant)


def _slots(mutant: Mutant) -> str | None:
    """:data:`_SLOTS` when the mutant turns off ``slots`` of a frozen dataclass (read on the current tree)."""
    if mutant.change != "True -> False" or "dataclass(" not in mutant.source or not (ROOT / mutant.path).exists():
        return None
    tree = ast.parse((ROOT / mutant.path).read_text())
    points = list(_points(tree))
    if mutant.index >= len(points) or getattr(points[mutant.index][0], "lineno", 0) != mutant.line:
        # lines moved since the run: the current mutant of the same source line, change and occurrence
        same = [m for m in population([mutant.path]) if m.key == mutant.key]
        if not same:
            return None
        mutant = same[0]
    node = points[mutant.index][0]
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and any(keyword.value is node for keyword in call.keywords):
            flags = {keyword.arg: getattr(keyword.value, "value", None) for keyword in call.keywords}
            slots = next(keyword.arg for keyword in call.keywords if keyword.value is node) == "slots"
            return _SLOTS if slots and flags.get("frozen") is True else None
    return None


_BINARY = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Add,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
}
_COMPARE = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_SYMBOL = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}


@dataclass(frozen=True)
class Mutant:
    """The ``index``-th mutation point of ``path`` (in :func:`_points` order)."""

    path: str
    index: int
    line: int
    change: str
    source: str
    occurrence: int = 0
    """How many mutants of the same module before this one have the same source line and change."""

    @property
    def id(self) -> str:
        return f"{self.path.removeprefix('torchscan/')}:{self.index}"

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.path.removeprefix("torchscan/"), self.source, self.change, self.occurrence)


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    status: str  # killed | survived | timeout | error
    seconds: float
    detail: str


def _skipped(tree: ast.Module) -> set[int]:
    """Ids of nodes not to mutate: annotations, docstrings, ``if TYPE_CHECKING:`` bodies."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(child) for child in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.arg, ast.AnnAssign)):
            mark(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            mark(node.returns)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            mark(node)
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            mark(first)
    return skip


def _points(tree: ast.Module) -> Iterator[tuple[ast.AST, int, str]]:
    """``(node, slot, change)`` for every mutation point, in a fixed order (``slot``: which
    comparison operator of a chain)."""
    skip = _skipped(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BINARY:
            yield node, 0, f"{_SYMBOL[type(node.op)]} -> {_SYMBOL[_BINARY[type(node.op)]]}"
        elif isinstance(node, ast.Compare):
            for slot, op in enumerate(node.ops):
                yield node, slot, f"{_SYMBOL[type(op)]} -> {_SYMBOL[_COMPARE[type(op)]]}"
        elif isinstance(node, ast.BoolOp):
            yield node, 0, "and -> or" if isinstance(node.op, ast.And) else "or -> and"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            yield node, 0, "not x -> x" if isinstance(node.op, ast.Not) else "-x -> x"
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            yield node, 0, f"{node.value} -> {not node.value}"
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            yield node, 0, f"{node.value} -> {_new_int(node.value)}"


def _new_int(value: int) -> int:
    return {0: 1, 1: 2, 2: 1}.get(value, value + 1)


class _Apply(ast.NodeTransformer):
    """Replaces the target node by its mutation."""

    def __init__(self, target: ast.AST, slot: int) -> None:
        self.target, self.slot = target, slot

    def visit(self, node: ast.AST) -> ast.AST:
        if node is not self.target:
            return self.generic_visit(node)
        if isinstance(node, (ast.BinOp, ast.AugAssign)):
            node.op = _BINARY[type(node.op)]()
        elif isinstance(node, ast.Compare):
            node.ops[self.slot] = _COMPARE[type(node.ops[self.slot])]()
        elif isinstance(node, ast.BoolOp):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif isinstance(node, ast.UnaryOp):
            return node.operand
        elif isinstance(node, ast.Constant):
            node.value = (not node.value) if type(node.value) is bool else _new_int(node.value)
        return node


def modules() -> list[str]:
    return sorted(str(path.relative_to(ROOT)) for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def population(paths: list[str]) -> list[Mutant]:
    """Every mutant of ``paths``."""
    mutants = []
    for path in paths:
        text = (ROOT / path).read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        seen: dict[tuple[str, str], int] = {}
        for index, (node, _, change) in enumerate(_points(tree)):
            line = getattr(node, "lineno", 0)
            source = lines[line - 1].strip() if line else ""
            occurrence = seen[source, change] = seen.get((source, change), -1) + 1
            mutants.append(Mutant(path, index, line, change, source, occurrence))
    return mutants


def mutated_source(mutant: Mutant, root: Path = ROOT) -> str:
    tree = ast.parse((root / mutant.path).read_text())
    node, slot, _ = list(_points(tree))[mutant.index]
    before = ast.dump(tree)
    assert ast.dump(ast.parse(ast.unparse(copy.deepcopy(tree)))) == before, "ast.unparse round trip"
    return ast.unparse(ast.fix_missing_locations(_Apply(node, slot).visit(tree)))


def tests_for(path: str) -> tuple[str, ...]:
    key = max((key for key in TESTS if path.startswith(key)), key=len)
    return TESTS[key]


def _workspace() -> Path:
    place = Path(tempfile.mkdtemp(prefix="torchscan-mutation-"))
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", "*.pyc")
    for name in ("torchscan", "tests"):
        shutil.copytree(ROOT / name, place / name, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", place / "pyproject.toml")
    return place


def run(mutant: Mutant, place: Path) -> Outcome:
    """Run the mutant's tests in ``place`` (a :func:`_workspace`), restoring the module after."""
    target = place / mutant.path
    original = target.read_text()
    shutil.rmtree(place / ".hypothesis", ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(place), "HYPOTHESIS_PROFILE": "default"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-W", "ignore"]
    command += ["--hypothesis-seed=0", *tests_for(mutant.path)]
    start = time.perf_counter()
    try:
        target.write_text(mutated_source(mutant))
        done = subprocess.run(command, cwd=place, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        tail = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))][:1]
        status = {0: "survived", 1: "killed", 2: "killed", 3: "killed"}.get(done.returncode, "error")
        detail = tail[0] if tail else done.stdout.strip().splitlines()[-1:][0] if done.stdout.strip() else ""
    except subprocess.TimeoutExpired:
        status, detail = "timeout", f"over {TIMEOUT_S} s"
    finally:
        target.write_text(original)
    return Outcome(mutant, status, time.perf_counter() - start, detail)


def _outcome(data: dict) -> Outcome:
    return Outcome(Mutant(**data["mutant"]), data["status"], data["seconds"], data["detail"])


def _current(mutant: Mutant, everything: list[Mutant], occurrence: bool = True) -> Mutant | None:
    """The mutant of the current tree with the same module, source line and change — and occurrence,
    when the earlier run recorded it (results written before occurrences were: the nearest by index) —
    the nearest by index when several are; None when that line was rewritten or removed."""
    same = [m for m in everything if m.key[:3] == mutant.key[:3] and (not occurrence or m.key == mutant.key)]
    return min(same, key=lambda m: abs(m.index - mutant.index)) if same else None


def _rate(outcomes: list[Outcome]) -> tuple[int, int]:
    """``(killed, judged)``: killed or timed out, over the mutants run less the equivalent ones, the
    errors and the gone ones."""
    killed = sum(o.status in ("killed", "timeout") for o in outcomes)
    judged = sum(
        o.status in ("killed", "timeout") or (o.status == "survived" and not equivalent(o.mutant)) for o in outcomes
    )
    return killed, judged


def report(outcomes: list[Outcome], total: int, args: argparse.Namespace) -> str:
    aside = [o for o in outcomes if args.set_aside and o.mutant.path.startswith(args.set_aside)]
    everything, outcomes = outcomes, [o for o in outcomes if o not in aside]
    killed = [o for o in outcomes if o.status in ("killed", "timeout")]
    same = [o for o in outcomes if o.status == "survived" and equivalent(o.mutant)]
    survived = [o for o in outcomes if o.status == "survived" and not equivalent(o.mutant)]
    errors = [o for o in outcomes if o.status == "error"]
    gone = [o for o in outcomes if o.status == "gone"]
    judged = len(outcomes) - len(same) - len(errors) - len(gone)
    rate = 100 * len(killed) / judged if judged else 0.0
    all_killed, all_judged = _rate(everything)
    lines = [
        "# Mutation testing of `torchscan/ops/` and `torchscan/passes/`",
        "",
        f"Generated by `python benchmarks/mutation.py {' '.join(args.argv)}` (see its docstring for the",
        "mutation operators, the tests run per module and why a script). "
        f"Population: {total} one-token mutants; run: {len(everything)}"
        + (f" (a random sample, seed {args.seed})." if args.sample else ".")
        + (f" Drawn only among the mutants under {', '.join(args.under)}." if args.under else "")
        + (
            f" Survivors under {args.rerun_under} of that run ({args.rerun.name}) run again with the current tests."
            if args.rerun
            else ""
        ),
        "",
        f"**Kill rate: {len(killed)} / {judged} = {rate:.1f}%** (killed or timed out, over the mutants run less "
        f"the {len(same)} equivalent ones{f' and {len(errors)} errors' if errors else ''}"
        f"{f' and {len(gone)} whose line is gone' if gone else ''}"
        f"{f'; the {len(aside)} under {args.set_aside} set aside, see below' if aside else ''}).",
        "",
    ]
    if aside:
        lines += [
            f"With the set-aside mutants: {all_killed} / {all_judged} = "
            f"{100 * all_killed / all_judged if all_judged else 0:.1f}%.",
            "",
        ]
    lines += [
        f"Wall time: {sum(o.seconds for o in outcomes) / 60:.0f} CPU-minutes of test runs.",
        "",
        "## Survivors",
        "",
    ]
    lines += [f"- `{o.mutant.id}` line {o.mutant.line}, `{o.mutant.change}`: `{o.mutant.source}`" for o in survived]
    lines += ["- none"] if not survived else []
    lines += ["", "## Equivalent mutants", ""]
    lines += [
        f"- `{o.mutant.id}` line {o.mutant.line}, `{o.mutant.change}`: `{o.mutant.source}` — {equivalent(o.mutant)}"
        for o in same
    ]
    lines += ["- none"] if not same else []
    if gone:
        lines += ["", "## Gone (the mutated line was rewritten or removed since; not counted)", ""]
        lines += [f"- `{o.mutant.id}` line {o.mutant.line}, `{o.mutant.change}`: `{o.mutant.source}`" for o in gone]
    if aside:
        lines += ["", f"## Set aside: {args.set_aside} ({args.set_aside_reason or 'not counted above'})", ""]
        lines += [
            f"- `{o.mutant.id}` line {o.mutant.line}, `{o.mutant.change}`: {o.status}"
            + (f" (equivalent: {equivalent(o.mutant)})" if o.status == "survived" and equivalent(o.mutant) else "")
            + f": `{o.mutant.source}`"
            for o in aside
            if o.status not in ("killed", "timeout")
        ]
        lines.append(f"- killed: {sum(o.status in ('killed', 'timeout') for o in aside)} of {len(aside)}")
    lines += ["", "## Per module", "", "| module | run | killed | survived | equivalent |", "|---|---|---|---|---|"]
    for path in sorted({o.mutant.path for o in everything}):
        mine = [o for o in everything if o.mutant.path == path]
        lines.append(
            f"| `{path}` | {len(mine)} | {sum(o.status in ('killed', 'timeout') for o in mine)} | "
            f"{sum(o.status == 'survived' and not equivalent(o.mutant) for o in mine)} | "
            f"{sum(o.status == 'survived' and bool(equivalent(o.mutant)) for o in mine)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print the population and exit")
    parser.add_argument("--sample", type=int, default=0, help="run a random sample of this many mutants")
    parser.add_argument("--seed", type=int, default=18, help="seed of the sample")
    parser.add_argument("--only", nargs="*", default=(), help="mutant ids to run")
    parser.add_argument(
        "--under", nargs="*", default=(), help="draw the sample (or run) only among the mutants under these paths"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --results: skip the mutants already in that file (a run cut short goes on where it stopped; "
        "the same arguments draw the same sample) and report them with the new ones",
    )
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (one copy of the tree each)")
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    parser.add_argument("--results", type=Path, help="write one JSON line per mutant here")
    parser.add_argument(
        "--rerun",
        type=Path,
        help="the --results of an earlier run: run its survivors again (matched by module, line and change), "
        "report them with its other outcomes",
    )
    parser.add_argument("--rerun-under", default="torchscan/", help="with --rerun: only the survivors under this path")
    parser.add_argument(
        "--set-aside", default="", help="report the mutants under this path apart, not in the kill rate"
    )
    parser.add_argument("--set-aside-reason", default="", help="why, in the report")
    parser.add_argument(
        "--shuffle",
        action="store_true",
        help="run the chosen mutants in an order drawn with --seed, not by id: a run cut short is then a "
        "uniform random part of its sample",
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip running the tests on the unmutated tree first (with --resume: the run resumed checked it)",
    )
    parser.add_argument("--from-results", type=Path, help="write the report of an earlier --results file, run nothing")
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    everything = population(modules())
    if args.list:
        for mutant in everything:
            print(f"{mutant.id}\tline {mutant.line}\t{mutant.change}\t{mutant.source}")
        print(f"{len(everything)} mutants", file=sys.stderr)
        return 0
    if args.from_results:  # report only: the outcomes of a run (possibly cut short) as they were written
        done = [_outcome(json.loads(line)) for line in args.from_results.read_text().splitlines() if line.strip()]
        text = report(done, len(everything), args)
        if args.out:
            args.out.write_text(text)
        print(text)
        return 0
    earlier: list[Outcome] = []
    chosen = [m for m in everything if m.id in set(args.only)] if args.only else everything
    if args.under:
        chosen = [m for m in chosen if m.path.startswith(tuple(args.under))]
    if args.rerun:
        data = [json.loads(line) for line in args.rerun.read_text().splitlines() if line.strip()]
        earlier = [_outcome(item) for item in data]
        recorded = {id(o): "occurrence" in item["mutant"] for o, item in zip(earlier, data, strict=True)}
        again = [  # survivors judged equivalent since are reported as such, not run again
            o
            for o in earlier
            if o.status == "survived" and o.mutant.path.startswith(args.rerun_under) and not equivalent(o.mutant)
        ]
        found = [(o, _current(o.mutant, everything, recorded[id(o)])) for o in again]
        chosen = [current for _, current in found if current is not None]
        gone = [
            Outcome(o.mutant, "gone", 0.0, "the line was rewritten or removed")
            for o, current in found
            if current is None
        ]
        earlier = [o for o in earlier if o not in again] + gone
    elif args.sample:
        chosen = sorted(random.Random(args.seed).sample(chosen, min(args.sample, len(chosen))), key=lambda m: m.id)
    if args.resume and args.results and args.results.exists():
        data = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
        before = {Mutant(**item["mutant"]).key: _outcome(item) for item in data}
        earlier += [before[m.key] for m in chosen if m.key in before]
        chosen = [m for m in chosen if m.key not in before]
    if args.shuffle:
        random.Random(args.seed).shuffle(chosen)
    places = [_workspace() for _ in range(max(1, args.jobs))]
    free = list(places)
    for tests in sorted({tests_for(m.path) for m in chosen} if not args.no_check else ()):  # must pass unmutated
        env = {**os.environ, "PYTHONPATH": str(places[0]), "HYPOTHESIS_PROFILE": "default"}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore"]
        done = subprocess.run([*command, "--hypothesis-seed=0", *tests], cwd=places[0], env=env, capture_output=True)
        if done.returncode != 0:
            print(f"the unmutated tree fails {' '.join(tests)}:\n{done.stdout.decode()[-3000:]}", file=sys.stderr)
            return 1
    outcomes: list[Outcome] = []
    try:
        with concurrent.futures.ThreadPoolExecutor(len(places)) as pool:

            def work(mutant: Mutant) -> Outcome:
                place = free.pop()
                try:
                    return run(mutant, place)
                finally:
                    free.append(place)

            for count, outcome in enumerate(pool.map(work, chosen), 1):
                outcomes.append(outcome)
                print(
                    f"[{count}/{len(chosen)}] {outcome.status:8} {outcome.seconds:5.0f} s  {outcome.mutant.id}  "
                    f"{outcome.mutant.change}  {outcome.detail}",
                    flush=True,
                )
                if args.results:
                    with args.results.open("a") as stream:
                        stream.write(json.dumps({**asdict(outcome), "id": outcome.mutant.id}) + "\n")
    finally:
        for place in places:
            shutil.rmtree(place, ignore_errors=True)
    text = report([*earlier, *outcomes], len(everything), args)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
