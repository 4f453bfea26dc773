"""Memory from the graph: output bytes, the static peak of inference, a training estimate.

Pure functions over the graph records; every result is a frozen record. Conventions:

- **Bytes** are ``numel · itemsize`` of the dtype the fake run produced (fp16/bf16 halve them).
- **Storages**: each output tensor carries the id of the storage it lives in (recorded during the
  fake run), so views (``view``, ``permute``, ``getitem``, ``chunk``, ``expand``, ``reshape`` of
  contiguous data…) and in-place results (``relu_``, ``inplace=True``, ``+=``) share their base's
  storage and allocate nothing. A storage counts its full size once.
- **Liveness** (inference): a storage is live from the node that first produces it to the last
  node that reads any tensor aliasing it; graph inputs are held by the caller for the whole
  forward, graph outputs until the end. At node ``i``:
  ``live_i = Σ live storages + Σ storages new at i``; ``peak = max_i live_i`` (inputs included).
  Parameters and buffers (and views of them) are model memory, never activations.
- **Workspace**: transient bytes inside an op (:func:`workspace`) add to ``live_i`` at that op.
- **Training** (steady state: second step, ``zero_grad(set_to_none=True)``, foreach optimizers):
  see :func:`training_estimates`.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import networkx as nx
import torch
from torch import nn

from torchscan.graph.build import NodeRecord, records
from torchscan.passes.params import ParamSummary
from torchscan.records import Cost
from torchscan.report import Row

__all__ = [
    "LIBRARY_MODULES",
    "OPTIMIZERS",
    "ActivationPeak",
    "MemoryReport",
    "TrainingEstimate",
    "backward_costs",
    "estimate_memory",
    "output_bytes",
    "saved_for_backward",
    "static_peak",
    "training_estimates",
    "with_output_bytes",
]

Optimizer = Literal["sgd", "sgd_momentum", "adam", "adamw"]

OPTIMIZERS: Mapping[str, tuple[int, int]] = {
    "sgd": (0, 0),
    "sgd_momentum": (1, 0),
    "adam": (2, 1),
    "adamw": (2, 1),
}
"""Optimizer -> (state, step transient) in multiples of the trainable parameter bytes ``P``.

SGD keeps nothing; momentum one buffer (``P``); Adam/AdamW ``exp_avg`` + ``exp_avg_sq`` (``2P``).
The foreach step of Adam/AdamW materialises ``sqrt(exp_avg_sq)`` (one transient ``P``)."""

_END = 1 << 62

LIBRARY_MODULES = "library_modules"
"""Graph attribute: paths of modules whose forward is torch's own (``Sequential``, ``ModuleList``…);
they never hold Python locals, so frames are attributed to the nearest user module above them."""

_WEIGHTED = frozenset(
    {
        "conv1d",
        "conv2d",
        "conv3d",
        "convtranspose1d",
        "convtranspose2d",
        "convtranspose3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
        "linear",
        "bilinear",
        "lazylinear",
    }
)
_MATMUL = frozenset({"matmul", "mm", "bmm", "einsum", "addmm", "baddbmm", "__matmul__", "mul", "__mul__", "div"})
_MATMUL_ONLY = frozenset({"matmul", "mm", "bmm", "einsum", "addmm", "baddbmm", "__matmul__"})
_SAVES_OUTPUT = frozenset(
    {"relu", "sigmoid", "tanh", "softmax", "log_softmax", "logsoftmax", "exp", "sqrt", "rsqrt", "elu"}
)
_SAVES_NOTHING = frozenset(
    {
        # views and metadata
        "getitem",
        "__getitem__",
        "view",
        "view_as",
        "reshape",
        "reshape_as",
        "flatten",
        "unflatten",
        "permute",
        "transpose",
        "swapaxes",
        "squeeze",
        "unsqueeze",
        "chunk",
        "split",
        "unbind",
        "narrow",
        "select",
        "t",
        "movedim",
        "expand",
        "expand_as",
        "contiguous",
        "detach",
        "size",
        "dim",
        "numel",
        "identity",
        # linear in their inputs: the gradient needs only shapes
        "add",
        "iadd",
        "sub",
        "isub",
        "neg",
        "cat",
        "concat",
        "concatenate",
        "stack",
        "sum",
        "mean",
        "avgpool1d",
        "avgpool2d",
        "avgpool3d",
        "avg_pool1d",
        "avg_pool2d",
        "avg_pool3d",
        "adaptiveavgpool1d",
        "adaptiveavgpool2d",
        "adaptiveavgpool3d",
        "adaptive_avg_pool1d",
        "adaptive_avg_pool2d",
        "adaptive_avg_pool3d",
        "upsample",
        "interpolate",
        "pad",
        "zeropad2d",
        "constantpad2d",
        "float",
        "to",
        "type_as",
        "clone",
    }
)
_MAX_POOL = frozenset(
    {
        "maxpool1d",
        "maxpool2d",
        "maxpool3d",
        "max_pool1d",
        "max_pool2d",
        "max_pool3d",
        "adaptivemaxpool1d",
        "adaptivemaxpool2d",
        "adaptivemaxpool3d",
        "adaptive_max_pool1d",
        "adaptive_max_pool2d",
        "adaptive_max_pool3d",
    }
)
_DROPOUT = frozenset({"dropout", "dropout1d", "dropout2d", "dropout3d", "alphadropout", "alpha_dropout"})


def _family_key(record: NodeRecord) -> str:
    return record.type_name.lower().rstrip("_") if record.type_name.endswith("_") else record.type_name.lower()


@dataclass(frozen=True, slots=True)
class ActivationPeak:
    """Static peak of live activation bytes in inference (graph inputs included).

    ``node`` is the fx node during whose execution the peak is reached (its new outputs counted),
    ``module_path`` where it sits; ``timeline`` gives ``live_i`` per node in execution order.
    """

    bytes: int
    input_bytes: int
    node: str
    module_path: str
    timeline: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class TrainingEstimate:
    """One training step's memory for one optimizer; ``peak_bytes`` is the whole step's peak.

    ``peak = params + buffers + optimizer_state + max(forward, backward, step)`` where forward
    is the live activations with saved tensors kept, backward the remaining saved tensors plus
    live activation gradients plus parameter gradients so far, and step ``grads + transient``.
    ``peak_phase`` names the phase that wins.
    """

    optimizer: str
    param_bytes: int
    buffer_bytes: int
    grad_bytes: int
    optimizer_state_bytes: int
    saved_activation_bytes: int
    peak_bytes: int
    peak_phase: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class MemoryReport:
    """The memory section of a report (bytes throughout).

    ``measured`` holds a real measurement when one was asked for (``summary(measure=True)``),
    else None; ``backward_flops``/``backward_macs`` follow :func:`backward_costs`.
    """

    param_bytes: int
    buffer_bytes: int
    input_bytes: int
    output_bytes: int
    activation_peak_bytes: int
    peak_node: str
    peak_module_path: str
    saved_activation_bytes: int
    backward_flops: int
    backward_macs: int
    training: tuple[TrainingEstimate, ...]
    measured: Any = None

    @property
    def model_bytes(self) -> int:
        """``param_bytes + buffer_bytes``."""
        return self.param_bytes + self.buffer_bytes

    @property
    def inference_peak_bytes(self) -> int:
        """Model plus static activation peak: what one forward needs in total."""
        return self.model_bytes + self.activation_peak_bytes

    def training_for(self, optimizer: str) -> TrainingEstimate:
        for estimate in self.training:
            if estimate.optimizer == optimizer:
                return estimate
        raise KeyError(optimizer)

    def to_dict(self) -> dict[str, Any]:
        measured = self.measured.to_dict() if self.measured is not None else None
        return {
            "model_bytes": self.model_bytes,
            "param_bytes": self.param_bytes,
            "buffer_bytes": self.buffer_bytes,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "activation_peak_bytes": self.activation_peak_bytes,
            "peak_node": self.peak_node,
            "peak_module_path": self.peak_module_path,
            "saved_activation_bytes": self.saved_activation_bytes,
            "backward_flops": self.backward_flops,
            "backward_macs": self.backward_macs,
            "training": [estimate.to_dict() for estimate in self.training],
            "measured": measured,
        }


def output_bytes(record: NodeRecord) -> int:
    """Logical bytes of a node's outputs: ``Σ numel · itemsize`` (a view still has its bytes)."""
    return sum(spec.nbytes for spec in record.outputs)


# ----------------------------------------------------------------------------- storages and liveness


@dataclass(frozen=True, slots=True)
class _Storages:
    """Activation storages of a graph: size, producer index and last reader index."""

    size: Mapping[Any, int]
    born: Mapping[Any, int]
    last_use: Mapping[Any, int]
    of_node: Mapping[str, tuple[Any, ...]]
    inputs: frozenset[Any]


def _keys(record: NodeRecord) -> tuple[tuple[Any, int], ...]:
    """(storage key, bytes) of a node's non-persistent outputs, dtype-aware."""
    keys = []
    for position, spec in enumerate(record.outputs):
        ref = record.storages[position] if position < len(record.storages) else None
        if ref is None or ref.id < 0:
            keys.append(((record.name, position), spec.nbytes))
        elif not ref.persistent:
            keys.append((ref.id, ref.nbytes))
    return tuple(keys)


def _storages(graph: nx.DiGraph, ordered: list[NodeRecord]) -> _Storages:
    size: dict[Any, int] = {}
    born: dict[Any, int] = {}
    last_use: dict[Any, int] = {}
    of_node: dict[str, tuple[Any, ...]] = {}
    inputs: set[Any] = set()
    remap: dict[Any, Any] = {}
    for record in ordered:
        keys = tuple((remap.get(key, key), nbytes) for key, nbytes in _keys(record))
        alias = _augmented_source(graph, record, of_node)
        if alias is not None and len(keys) == 1:
            remap[keys[0][0]] = alias  # later views and in-place ops of the result alias it too
            keys = ((alias, size[alias]),)
        of_node[record.name] = tuple(key for key, _ in keys)
        for key, nbytes in keys:
            if key not in size:
                size[key] = nbytes
                born[key] = record.index
                last_use[key] = record.index
            if record.op == "placeholder":
                inputs.add(key)
                last_use[key] = _END
    call_end = _call_ends(ordered)
    local_end = _local_ends(graph, ordered)
    by_name = {record.name: record for record in ordered}
    for record in ordered:
        for key in of_node[record.name]:
            last_use[key] = max(last_use[key], local_end.get(record.name, -1))
        for source in graph.predecessors(record.name):
            if record.op == "output":
                end = _END
            else:  # an argument of a module call lives until the call returns (the caller holds it)
                entered = _common_depth(by_name[source].module_path, record.module_path) + 1
                end = call_end.get((record.index, entered), record.index)
            for key in of_node.get(source, ()):
                last_use[key] = max(last_use[key], end)
    return _Storages(size, born, last_use, of_node, frozenset(inputs))


_LIBRARY_DIRS = tuple(
    os.path.dirname(module.__file__ or "") + os.sep for module in (torch, importlib.import_module("torchscan"))
)
_ASSIGN = re.compile(r"^([A-Za-z_]\w*)\s*=[^=]")


def _user_frames(record: NodeRecord) -> tuple[tuple[str, str, str], ...]:
    """(file:line, function, code) of the user frames in a node's stack trace, outermost first."""
    lines = (record.stack_trace or "").splitlines()
    frames = []
    for position, line in enumerate(lines):
        match = re.match(r'\s*File "([^"]+)", line (\d+), in (\S+)', line)
        if match and not match.group(1).startswith(_LIBRARY_DIRS):
            code = lines[position + 1].strip() if position + 1 < len(lines) else ""
            frames.append((f"{match.group(1)}:{match.group(2)}", f"{match.group(1)}:{match.group(3)}", code))
    return tuple(frames)


def _local_ends(graph: nx.DiGraph, ordered: list[NodeRecord]) -> dict[str, int]:
    """Eager Python keeps a result bound to a local name (``y = f(x)``) until the frame returns or
    rebinds the name, even after its last use. Node -> last index it is held that way.

    A frame instance is the chain of outer call sites plus the innermost function, within one
    caller module; its extent is the contiguous run of nodes traced inside it.
    """
    frames = [_user_frames(record) for record in ordered]
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
        match = _ASSIGN.match(code)
        if match is None:
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
        bound = _is_root(record, _root_call(code)[0])  # the statement's value, even if a loop reads it
        while later < len(ordered) and inside(later):
            theirs = frames[later][len(outer)]
            if theirs[0] == site and not bound and record.name in set(graph.predecessors(ordered[later].name)):
                consumed_on_line = True  # an inner call of the line: a temporary, not the bound value
                break
            end = later
            rebinding = _ASSIGN.match(theirs[2])
            if (theirs[0] != site or bound) and rebinding is not None and rebinding.group(1) == match.group(1):
                end = _statement_end(graph, ordered, frames, later, len(outer), record.name, theirs[2], inside)
                break
            later += 1
        if not consumed_on_line and end > position:
            ends[record.name] = ordered[end].index
    return ends


_AUGMENTED = re.compile(r"^[\w.\[\]]+\s*(\+|-|\*|/|@)=")


def _augmented_source(graph: nx.DiGraph, record: NodeRecord, of_node: Mapping[str, tuple[Any, ...]]) -> Any:
    """fx traces ``y += z`` as ``add``; eager runs it in place. For such a node (its source line is
    an augmented assignment) the storage of its first operand, else None."""
    if record.op != "call_function" or record.type_name not in ("add", "sub", "mul", "truediv", "matmul"):
        return None
    frames = _user_frames(record)
    if not frames or not _AUGMENTED.match(frames[-1][2]):
        return None
    sources = list(graph.predecessors(record.name))
    keys = of_node.get(sources[0], ()) if sources else ()
    return keys[0] if len(keys) == 1 else None


def _root_call(code: str) -> tuple[str | None, int]:
    """The outermost operation of an assignment's right-hand side (``cat``, ``add``, a module
    attribute name…) and how often the assigned name is read there; (None, 1) when unparsable."""
    try:
        statement = ast.parse(code).body[0]
    except (SyntaxError, IndexError):
        return None, 1
    if not isinstance(statement, ast.Assign) or not isinstance(statement.targets[0], ast.Name):
        return None, 1
    name = statement.targets[0].id
    value = statement.value
    reads = sum(isinstance(node, ast.Name) and node.id == name for node in ast.walk(value))
    root: str | None = None
    if isinstance(value, ast.BinOp):
        root = _BINOPS.get(type(value.op))
    elif isinstance(value, ast.Call):
        func = value.func
        root = func.attr if isinstance(func, ast.Attribute) else None
    return root, max(reads, 1)


_BINOPS: Mapping[type, str] = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.Div: "truediv",
    ast.MatMult: "matmul",
}


def _is_root(record: NodeRecord, root: str | None) -> bool:
    """Whether a node is the statement's outermost call ``root`` (see :func:`_root_call`)."""
    if root is None:
        return False
    path = record.module_path
    return record.type_name.lower().rstrip("_") == root.lower() or path == root or path.endswith(f".{root}")


def _statement_end(
    graph: nx.DiGraph,
    ordered: list[NodeRecord],
    frames: list[tuple[tuple[str, str, str], ...]],
    start: int,
    level: int,
    name: str,
    code: str,
    inside: Any,
) -> int:
    """Position of the last node of the statement that rebinds a name, starting at ``start``.

    Its old value is held until the statement completes: through the last read of the name
    (as many reads as the source has) and on to the statement's outermost call. A statement in a
    loop runs straight into its next iteration, so without a recognisable outermost call we stop
    at the last read.
    """
    root, reads = _root_call(code)
    site = frames[start][level][0]

    position, seen, end = start, 0, start
    while position < len(ordered) and inside(position) and frames[position][level][0] == site:
        record = ordered[position]
        if name in set(graph.predecessors(record.name)):
            seen += 1
            end = position
        if seen >= reads and (root is None or _is_root(record, root)):
            return end if root is None else position
        position += 1
    return end


def _parts(path: str) -> tuple[str, ...]:
    return tuple(path.split(".")) if path else ()


def _common_depth(first: str, second: str) -> int:
    depth = 0
    for a, b in zip(_parts(first), _parts(second), strict=False):
        if a != b:
            break
        depth += 1
    return depth


def _call_ends(ordered: list[NodeRecord]) -> dict[tuple[int, int], int]:
    """``(i, d) -> j``: the last index of the run of nodes, from node ``i`` on, inside the same
    depth-``d`` module as node ``i`` — the end of that module call."""
    parts = [_parts(record.module_path) for record in ordered]
    ends: dict[tuple[int, int], int] = {}
    for depth in range(1, max((len(p) for p in parts), default=0) + 1):
        following: tuple[str, ...] | None = None
        end = -1
        for position in range(len(ordered) - 1, -1, -1):
            prefix = parts[position][:depth] if len(parts[position]) >= depth else None
            if prefix is None:
                following = None
                continue
            if prefix != following:
                end = ordered[position].index
            ends[(ordered[position].index, depth)] = end
            following = prefix
    return ends


def workspace(record: NodeRecord) -> int:
    """Transient bytes inside one op, freed when it returns: max pools compute int64 indices
    (``8·N_out``; ATen always does on CUDA, and on CPU for ``ceil_mode``; counted always)."""
    if _family_key(record) in _MAX_POOL:
        return 8 * sum(spec.numel for spec in record.outputs[:1])
    return 0


def _walk(ordered: list[NodeRecord], storages: _Storages, kept: Iterable[Any] = ()) -> ActivationPeak:
    """Forward walk; storages in ``kept`` stay live to the end (saved for backward)."""
    kept = frozenset(kept)
    allocs: dict[int, int] = {}
    frees: dict[int, int] = {}
    live = 0
    for key, nbytes in storages.size.items():
        if key in storages.inputs:
            live += nbytes
            continue
        allocs[storages.born[key]] = allocs.get(storages.born[key], 0) + nbytes
        end = _END if key in kept else storages.last_use[key]
        frees[end] = frees.get(end, 0) + nbytes
    input_bytes = live
    best, best_node, best_path = live, "", ""
    timeline = []
    for record in ordered:
        if record.op == "placeholder":
            best_node = best_node or record.name
            continue
        live += allocs.get(record.index, 0)
        during = live + workspace(record)
        timeline.append((record.name, during))
        if during > best:
            best, best_node, best_path = during, record.name, record.module_path
        live -= frees.get(record.index, 0)
    return ActivationPeak(best, input_bytes, best_node, best_path, tuple(timeline))


def static_peak(graph: nx.DiGraph) -> ActivationPeak:
    """Peak live activation bytes of one inference forward (see the module docstring)."""
    ordered = records(graph)
    return _walk(ordered, _storages(graph, ordered))


# ----------------------------------------------------------------------------- training


def _requires_grad(graph: nx.DiGraph, ordered: list[NodeRecord], params: ParamSummary) -> dict[str, bool]:
    """Which node outputs require grad: trainable parameters start it, data flow spreads it.

    A ``call_module`` node with trainable parameters, and a ``get_attr`` of a floating tensor
    when the model has trainable parameters, require grad; so does any node reading one.
    """
    flags: dict[str, bool] = {}
    any_trainable = params.trainable > 0
    trainable = _trainable_bytes(params)
    for record in ordered:
        if record.op == "placeholder":
            flags[record.name] = False
        elif record.op == "get_attr":
            flags[record.name] = any_trainable and any(spec.dtype.is_floating_point for spec in record.outputs)
        else:
            own = record.op == "call_module" and trainable.get(record.module_path, 0) > 0
            flows = any(flags.get(source, False) for source in graph.predecessors(record.name))
            floating = any(spec.dtype.is_floating_point for spec in record.outputs)
            flags[record.name] = (own or flows) and floating
    return flags


def _trainable_bytes(params: ParamSummary) -> dict[str, int]:
    """Module path -> bytes of the trainable parameters registered on it and below, owned there
    (one pass over the modules and their ancestors: a lookup per node stays O(1))."""
    totals: dict[str, int] = {}
    for module_path, held in params.by_module.items():
        nbytes = sum(entry.nbytes for entry in held.entries if entry.trainable)
        path = module_path
        while True:
            totals[path] = totals.get(path, 0) + nbytes
            if not path:
                break
            path = path.rpartition(".")[0]
    return totals


def saved_for_backward(
    graph: nx.DiGraph, params: ParamSummary
) -> tuple[dict[str, tuple[Any, ...]], dict[str, int], dict[str, bool]]:
    """What autograd keeps per node: (storage keys saved, extra bytes saved, requires-grad flags).

    Conventions per family (only for nodes whose output requires grad):

    - conv / linear / bilinear: their activation input when they have trainable weights
      (needed for ``dL/dW``); matmul / bmm / einsum, and ``mul``/``div`` of two tensors: every
      activation input.
    - ReLU, sigmoid, tanh, softmax, log-softmax, exp, sqrt, ELU: their output.
    - Batch/layer/group/instance norm, GELU, SiLU, Hardswish, ReLU6/Hardtanh, LeakyReLU and other
      pointwise ops: their input (per-channel statistics are negligible and not counted).
    - Max pools: input + int64 indices (``8·N_out`` extra bytes). Dropout in training: a bool
      mask (``N_out`` extra bytes); in eval nothing.
    - Views, add/sub, cat/stack, sum/mean, average pools, padding, interpolation: nothing.
    - Anything unknown: every activation input (conservative).

    A storage saved by several nodes counts once.
    """
    ordered = records(graph)
    storages = _storages(graph, ordered)
    grads = _requires_grad(graph, ordered, params)
    trainable = _trainable_bytes(params)
    saved: dict[str, tuple[Any, ...]] = {}
    extra: dict[str, int] = {}
    for record in ordered:
        if record.op not in ("call_module", "call_function", "call_method") or not grads.get(record.name):
            continue
        key = _family_key(record)
        inputs = tuple(
            stored for source in graph.predecessors(record.name) for stored in storages.of_node.get(source, ())
        )
        outputs = storages.of_node.get(record.name, ())
        if key in _SAVES_NOTHING:
            continue
        if key in _WEIGHTED:
            keep = inputs if trainable.get(record.module_path, 0) > 0 or record.op != "call_module" else ()
        elif key in _MATMUL:
            tensor_inputs = sum(1 for spec in record.call.inputs) if record.call is not None else 0
            keep = inputs if key in _MATMUL_ONLY or tensor_inputs >= 2 else ()
        elif key in _SAVES_OUTPUT:
            keep = outputs
        elif key in _MAX_POOL:
            keep = inputs
            extra[record.name] = 8 * sum(spec.numel for spec in record.outputs[:1])
        elif key in _DROPOUT:
            training = record.call is not None and bool(record.call.get("training", record.call.training))
            keep = ()
            if training and float(record.call.get("p", 0.5) if record.call else 0) > 0:
                extra[record.name] = sum(spec.numel for spec in record.outputs[:1])
        else:
            keep = inputs
        saved[record.name] = tuple(dict.fromkeys(keep))
    return saved, extra, grads


def training_estimates(
    graph: nx.DiGraph,
    params: ParamSummary,
    optimizers: Iterable[str] = tuple(OPTIMIZERS),
) -> tuple[tuple[TrainingEstimate, ...], int]:
    """Training-step memory per optimizer, and the saved activation bytes.

    With ``P`` the trainable parameter bytes, ``S`` the saved bytes (distinct storages + extras):

    - forward: the inference walk with saved storages kept to the end;
    - backward: reverse execution order; the gradient of a non-view node output is live from
      its last consumer's backward to its own; a node's saved storages are released after the
      backward of their first saver; parameter gradients (``P`` in total) accumulate;
    - step: ``P`` of gradients + the optimizer's transient (:data:`OPTIMIZERS`);
    - ``peak = params + buffers + state + max(forward, backward, step)``.
    """
    ordered = records(graph)
    storages = _storages(graph, ordered)
    saved, extra, grads = saved_for_backward(graph, params)
    kept = {key for keys in saved.values() for key in keys}
    saved_bytes = sum(storages.size[key] for key in kept) + sum(extra.values())
    # forward: saved storages stay; extras are allocated at their node and stay too
    forward = _walk(ordered, storages, kept).bytes + sum(extra.values())
    backward = _backward_peak(graph, ordered, storages, saved, extra, grads, params)
    trainable = sum(entry.nbytes for held in params.by_module.values() for entry in held.entries if entry.trainable)
    estimates = []
    for name in optimizers:
        state_factor, transient_factor = OPTIMIZERS[name]
        state = state_factor * trainable
        phases = {"forward": forward, "backward": backward, "step": trainable + transient_factor * trainable}
        phase = max(phases, key=lambda key: phases[key])
        estimates.append(
            TrainingEstimate(
                optimizer=name,
                param_bytes=params.param_bytes,
                buffer_bytes=params.buffer_bytes,
                grad_bytes=trainable,
                optimizer_state_bytes=state,
                saved_activation_bytes=saved_bytes,
                peak_bytes=params.param_bytes + params.buffer_bytes + state + phases[phase],
                peak_phase=phase,
            )
        )
    return tuple(estimates), saved_bytes


def _backward_peak(
    graph: nx.DiGraph,
    ordered: list[NodeRecord],
    storages: _Storages,
    saved: Mapping[str, tuple[Any, ...]],
    extra: Mapping[str, int],
    grads: Mapping[str, bool],
    params: ParamSummary,
) -> int:
    """Peak of (remaining saved + live activation grads + parameter grads) over the backward."""
    first_saver: dict[Any, int] = {}
    for record in ordered:
        for key in saved.get(record.name, ()):
            first_saver.setdefault(key, record.index)
    kept = set(first_saver)
    outputs = {key for record in ordered if record.op == "output" for key in _input_keys(graph, record, storages)}
    live = sum(storages.size[key] for key in kept | outputs | set(storages.inputs)) + sum(extra.values())
    release: dict[int, int] = {}
    for key, index in first_saver.items():
        if key not in outputs and key not in storages.inputs:
            release[index] = release.get(index, 0) + storages.size[key]
    grad_bytes = {
        record.name: output_bytes(record)
        for record in ordered
        if grads.get(record.name)
        and record.op in ("call_module", "call_function", "call_method")
        and not _is_view(record, storages)
    }
    allocated: set[str] = set()
    modules_done: set[str] = set()
    trainable = _trainable_bytes(params)
    peak = live
    for record in reversed(ordered):
        if record.op in ("placeholder", "output") or not grads.get(record.name):
            continue
        if record.name not in allocated:  # the gradient of the loss/output
            live += grad_bytes.get(record.name, 0)
            allocated.add(record.name)
        new = 0
        for source in graph.predecessors(record.name):
            if grads.get(source) and source not in allocated:
                allocated.add(source)
                new += grad_bytes.get(source, 0)
        if record.op == "call_module" and record.module_path not in modules_done:
            modules_done.add(record.module_path)
            new += trainable.get(record.module_path, 0)
        live += new
        peak = max(peak, live)
        live -= grad_bytes.get(record.name, 0) + release.get(record.index, 0) + extra.get(record.name, 0)
    return peak


def _input_keys(graph: nx.DiGraph, record: NodeRecord, storages: _Storages) -> set[Any]:
    return {key for source in graph.predecessors(record.name) for key in storages.of_node.get(source, ())}


def _is_view(record: NodeRecord, storages: _Storages) -> bool:
    """A node is a view when it allocates no storage of its own."""
    return all(storages.born.get(key) != record.index for key in storages.of_node.get(record.name, ()))


# ----------------------------------------------------------------------------- backward FLOPs


def backward_costs(graph: nx.DiGraph, costs: Mapping[str, Cost | None], params: ParamSummary) -> dict[str, Cost]:
    """Backward cost per node whose output requires grad.

    - conv / linear / matmul: one forward-sized product per gradient taken — ``dL/dx`` when the
      input requires grad, ``dL/dW`` when the weight is trainable — so ``2×`` the forward FLOPs
      and MACs in the common case, ``1×`` for a first layer on raw input.
    - every other op: ``1×`` its forward FLOPs (one pass over the gradient); views and
      ``add``-like ops therefore cost what their forward costs (mostly 0).
    - unknown ops (no forward cost): 0, like their forward.
    """
    ordered = records(graph)
    grads = _requires_grad(graph, ordered, params)
    trainable = _trainable_bytes(params)
    result: dict[str, Cost] = {}
    for record in ordered:
        cost = costs.get(record.name)
        if cost is None or not grads.get(record.name):
            continue
        key = _family_key(record)
        if key in _WEIGHTED or key in _MATMUL_ONLY:
            input_grad = any(grads.get(source, False) for source in graph.predecessors(record.name))
            weight_grad = record.op != "call_module" or trainable.get(record.module_path, 0) > 0
            factor = int(input_grad) + int(weight_grad) if key in _WEIGHTED else 2
            result[record.name] = Cost(flops=cost.flops * factor, macs=cost.macs * factor, dmas=cost.dmas * factor)
        else:
            result[record.name] = Cost(flops=cost.flops, macs=cost.macs, dmas=cost.dmas)
    return result


# ----------------------------------------------------------------------------- everything


def library_modules(model: nn.Module) -> frozenset[str]:
    """Paths of the modules whose ``forward`` is defined by torch itself (value of
    :data:`LIBRARY_MODULES`)."""
    return frozenset(
        path
        for path, module in model.named_modules()
        if path and getattr(getattr(type(module), "forward", None), "__module__", "").startswith("torch.")
    )


def estimate_memory(
    graph: nx.DiGraph,
    params: ParamSummary,
    costs: Mapping[str, Cost | None] | None = None,
    optimizers: Iterable[str] = tuple(OPTIMIZERS),
) -> MemoryReport:
    """The memory section of a report: static inference peak, training estimates, backward cost."""
    ordered = records(graph)
    peak = static_peak(graph)
    training, saved_bytes = training_estimates(graph, params, optimizers)
    backward = backward_costs(graph, costs or {}, params)
    outputs = sum(spec.nbytes for record in ordered if record.op == "output" for spec in record.outputs)
    return MemoryReport(
        param_bytes=params.param_bytes,
        buffer_bytes=params.buffer_bytes,
        input_bytes=peak.input_bytes,
        output_bytes=outputs,
        activation_peak_bytes=peak.bytes,
        peak_node=peak.node,
        peak_module_path=peak.module_path,
        saved_activation_bytes=saved_bytes,
        backward_flops=sum(cost.flops for cost in backward.values()),
        backward_macs=sum(cost.macs for cost in backward.values()),
        training=training,
    )


def with_output_bytes(
    rows: tuple[Row, ...], graph: nx.DiGraph, module_outputs: Mapping[str, tuple[str, ...]]
) -> tuple[Row, ...]:
    """Rows with ``output_bytes`` set: the outputs of the row's node (functional rows), of its
    leaf call, or of the node producing its first call's output (traced-through modules)."""
    ordered = records(graph)
    by_name = {record.name: record for record in ordered}
    leaf_nodes: dict[str, NodeRecord] = {}
    for record in ordered:
        if record.op == "call_module":
            leaf_nodes.setdefault(record.module_path, record)
    result = []
    for row in rows:
        record = by_name.get(row.name) if row.kind in ("function", "method") else leaf_nodes.get(row.name)
        if record is None and row.kind == "module":
            names = module_outputs.get(row.name, ())
            record = by_name.get(names[0]) if names else None
        nbytes = output_bytes(record) if record is not None else 0
        result.append(replace(row, output_bytes=nbytes) if nbytes != row.output_bytes else row)
    return tuple(result)
