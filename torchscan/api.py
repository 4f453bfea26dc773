"""Public entry points: :func:`crawl_module` (no printing) and :func:`summary` (prints)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import itertools
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TextIO, TypeVar

import networkx as nx
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn.parameter import is_lazy
from torch.utils._python_dispatch import _disable_current_modes

from torchscan import collector
from torchscan.errors import CaptureError, InputError, ShapeError, TorchscanError
from torchscan.graph import autocast
from torchscan.graph.build import build_graph
from torchscan.graph.calls import module_path_of
from torchscan.graph.capture import (
    DEFAULT_REAL_FORWARD_LIMIT,
    Captured,
    RealForward,
    capture_with_fallback,
    same_call,
    with_inputs,
)
from torchscan.graph.clone import IgnoredHook, hooks_of
from torchscan.graph.kept import KeptState, kept_as_found
from torchscan.graph.rejected import RejectedByModel
from torchscan.graph.routing import wrapped_module
from torchscan.graph.script import SCRIPTED, is_scripted
from torchscan.graph.shapes import NodeValues
from torchscan.graph.trace import Capture, input_device
from torchscan.inputs import InputSpec, ModelInputs, check_binds, model_inputs
from torchscan.measure.cpu import measure_cpu
from torchscan.measure.cuda import measure_cuda
from torchscan.ops import DEFAULT_REGISTRY, Formula, Registry
from torchscan.passes.counts import count_costs
from torchscan.passes.memory import (
    CONTAINER_MODULES,
    HELD_OUTPUTS,
    LIBRARY_MODULES,
    PlanMemo,
    Replay,
    captured_memory,
    container_modules,
    estimate_memory,
    library_modules,
    row_output_bytes,
)
from torchscan.passes.params import ParamSummary, collect_params, parameter_readers
from torchscan.passes.receptive import receptive_fields, row_values, with_receptive_fields
from torchscan.passes.rows import ModuleTypes, RowMemo, build_rows, module_types, unused_parameters
from torchscan.records import COST, RECORD, Row
from torchscan.records.deferred import Deferred
from torchscan.records.frozen import frozen_record
from torchscan.render.table import parse_columns, render_table, wants_receptive_field
from torchscan.report import Context, Diagnostic, Report, Totals
from torchscan.symbolic import Dim, SymbolicReport, collect_dims, fit_report, has_dims, substitute
from torchscan.uncompiled import never_compiled

__all__ = ["DEFAULT_REAL_FORWARD_LIMIT", "crawl_module", "summary", "sweep"]

InputShape = Sequence[int | str | Dim] | Sequence[Sequence[int | str | Dim]] | torch.Tensor | Sequence[torch.Tensor]
"""A shape without the batch dim, one per positional input, or example tensors (full shapes); a
size may be named (``"H"``, ``Dim("H", multiple_of=32)``): the report is then symbolic."""

_R = TypeVar("_R")

_RF_KEYS = ("receptive_field", "effective_stride", "effective_padding")
"""Per-node receptive-field attributes kept on the report graph (for exports), like the rows' columns."""


@never_compiled
def crawl_module(
    model: nn.Module,
    input_shape: InputShape | None = None,
    *,
    args: Any = None,
    kwargs: Mapping[str, Any] | None = None,
    dtype: torch.dtype | Sequence[torch.dtype] | None = None,
    batch_size: int | str | Dim | None = 1,
    formulas: Mapping[Any, Formula] | None = None,
    receptive_field: bool = False,
    real_forward: bool = True,
    real_forward_limit: int | None = None,
) -> Report | SymbolicReport:
    """Analyse ``model`` for inputs of ``input_shape`` (without the batch dim) and return a report.

    ``input_shape`` is one shape or one per positional input (``batch_size`` prepended, ``dtype``
    per input: ``torch.long`` for token ids), or example tensors (full shapes). ``args``/``kwargs``
    give the call as made: tensors (or ``TensorSpec``) at any depth of tuples, lists and dicts,
    other values as is (``return_dict=False``). Example tensors are never read, except by the
    last-resort real forward.

    The model is left exactly as found: a fake copy (no storage) is traced and run on fake
    tensors, so no arithmetic is done and a model on the ``meta`` device works. Python's cyclic
    garbage collector is paused during the analysis and restored after (:func:`torchscan.collector.paused`).
    ``formulas`` adds or overrides op formulas for this call only. ``receptive_field`` adds each
    row's receptive field, effective stride and padding per spatial dim (w.r.t. the first input).
    The report's memory section is made on the first read of ``report.memory`` (``to_dict()``, the
    table), from what the analysis kept of the capture: the same values whenever it is read.

    Only where no capture on fake tensors can answer (values read by Python control flow,
    data-dependent output sizes) does one real forward run, on a private copy with seeded inputs
    and a forked, seeded RNG, and the report says so; never after a shape or dtype error, never
    when ``real_forward`` is False, never when its estimated memory exceeds ``real_forward_limit``
    bytes (default :data:`DEFAULT_REAL_FORWARD_LIMIT`). Wrappers are seen through
    (``torch.compile``, ``DataParallel``, DDP: the module they hold is analysed); user hooks are not
    run (a ``hooks-ignored`` diagnostic names them).

    A named size anywhere in the shapes (``input_shape=(3, "H", "W")``, ``batch_size="B"``, a
    :class:`~torchscan.Dim` in a ``TensorSpec``'s shape) makes the report symbolic: a
    :class:`~torchscan.symbolic.SymbolicReport` whose numbers are exact formulas of the sizes.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    limit = DEFAULT_REAL_FORWARD_LIMIT if real_forward_limit is None else int(real_forward_limit)
    policy = RealForward(allowed=bool(real_forward), limit=limit)
    if has_dims(input_shape, args, kwargs, batch_size):
        call = _Call(input_shape, args, kwargs, dtype, batch_size, autocast.current())
        return _symbolic(model, call, formulas, receptive_field, policy)
    call = _Call(input_shape, args, kwargs, dtype, batch_size, autocast.current())
    with _process_set_aside():
        return _crawl(_subject(model, formulas), call, receptive_field, policy)


def _symbolic(
    model: nn.Module,
    call: _Call,
    formulas: Mapping[Any, Formula] | None,
    receptive_field: bool,
    policy: RealForward,
) -> SymbolicReport:
    """The :class:`~torchscan.symbolic.SymbolicReport` of a call whose shapes hold named sizes: formulas
    derived from concrete analyses at a grid of sizes (one capture, reused), checked off the grid."""
    dims = collect_dims(call.input_shape, call.args, call.kwargs, call.batch_size)
    with _process_set_aside():
        analyses = _Analyses(_subject(model, formulas), policy, receptive_field)

    def sample(points: Sequence[Mapping[str, int]]) -> list[Report]:
        calls = [
            _Call(
                substitute(call.input_shape, point, shape=True),
                substitute(call.args, point),
                substitute(call.kwargs, point),
                call.dtype,
                substitute(call.batch_size, point, shape=True),
                call.autocast,
            )
            for point in points
        ]
        with _process_set_aside():  # an error at a size the caller never wrote says where, and what to change
            return analyses.reports(calls, lambda index: _sampled_at(dims, points[index]))

    return SymbolicReport(dims, fit_report(dims, sample), sample)


def _sampled_at(dims: Sequence[Dim], point: Mapping[str, int]) -> str:
    """Where an analysis of a symbolic report failed: at ``point``, one of the sizes it samples."""
    names = ", ".join(dim.name for dim in dims)
    at = ", ".join(f"{name}={value}" for name, value in point.items())
    return (
        f"analysing at {at}, one of the sizes the formulas in {names} are derived from (give each size the values "
        "the model admits: Dim(name, min=…, max=…, multiple_of=…); on the command line H%32 for multiples of 32): "
    )


@never_compiled
def sweep(
    model: nn.Module,
    inputs: Iterable[InputShape | Mapping[str, Any]],
    *,
    formulas: Mapping[Any, Formula] | None = None,
    receptive_field: bool = False,
    real_forward: bool = True,
    real_forward_limit: int | None = None,
    **common: Any,
) -> list[Report]:
    """Analyse ``model`` at each of ``inputs``: one report per item, each equal to the report of
    ``crawl_module(model, **common, **item)``, but the model is copied and traced once.

    An item is an ``input_shape`` (``sweep(model, [(3, 224, 224), (3, 320, 320)])``) or a mapping of
    ``crawl_module``'s input arguments (``input_shape``, ``args``, ``kwargs``, ``dtype``,
    ``batch_size``): ``sweep(model, [{"batch_size": b} for b in (1, 8, 64)], input_shape=(3, 224, 224))``.
    ``common`` holds the input arguments every item shares; an item's own override them.

    The torch.fx graph of the first item is reused for every later item called the same way (same
    argument structure and input names, equal non-tensor values: only shapes and dtypes differ):
    only the shapes, counts, rows and memory are computed again, and of those the parts that the graph's
    names, ops, module paths, stack traces and the parameters decide (the row tree, the liveness of names
    and module calls: :class:`~torchscan.passes.rows.RowPlan`, :class:`~torchscan.passes.memory.MemoryPlan`)
    are kept from the first item; which tensors are views of which is found again for every item. A
    graph that does not hold at an item's shapes (a shape error), and models captured by recording a
    forward (Python control flow fixed to one input) are captured afresh for that item, exactly as
    ``crawl_module`` would.
    ``crawl_module`` itself keeps no state between calls (a hidden cache could outlive an edit of
    the model); ``sweep`` is the way to analyse one model at many sizes.
    """
    unknown = set(common) - _CALL_KEYS
    if unknown:
        raise InputError(f"sweep() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    limit = DEFAULT_REAL_FORWARD_LIMIT if real_forward_limit is None else int(real_forward_limit)
    policy = RealForward(allowed=bool(real_forward), limit=limit)
    calls = []
    for item in inputs:
        given = dict(item) if isinstance(item, Mapping) else {"input_shape": item}
        if set(given) - _CALL_KEYS:
            extra = ", ".join(sorted(set(given) - _CALL_KEYS))
            raise InputError(f"a sweep item may set {', '.join(sorted(_CALL_KEYS))}; got {extra}")
        calls.append(_Call(**{**common, **given}, autocast=autocast.current()))
    with _process_set_aside():
        return _Analyses(_subject(model, formulas), policy, receptive_field).reports(calls)


class _Analyses:
    """Analyses of one model at many inputs: the model's shape-independent facts made once, and the
    last capture reused for every input called the same way (:func:`sweep`, the symbolic sampler).
    It holds the private copy of the model made by its last capture: it answers for the model as it
    was then, whatever the model becomes."""

    def __init__(self, subject: _Subject, policy: RealForward, receptive_field: bool) -> None:
        self._subject, self._policy, self._receptive_field = subject, policy, receptive_field
        self._last: tuple[ModelInputs, Captured, frozenset[str] | None, _Memos] | None = None

    def reports(self, calls: Sequence[_Call], where: Callable[[int], str] | None = None) -> list[Report]:
        """One report per call, each equal to a fresh analysis of it (``where``: the context an error of the
        ``i``-th call is told with, else it is raised as a fresh analysis raises it)."""
        subject, reports = self._subject, []
        with kept_as_found(_modules(subject) or subject.model.modules()) as kept:  # the model's code runs here
            for index, call in enumerate(calls):
                try:
                    reports.append(self._report(call, kept))
                except TorchscanError as error:
                    if where is None:
                        raise
                    raise error.said_first(where(index)) from error
        return reports

    def _report(self, call: _Call, kept: KeptState) -> Report:
        """:meth:`reports` of one call."""
        subject = self._subject
        inputs = call.inputs(subject.model)
        chain = None
        if self._last is not None and same_call(self._last[0], inputs):
            # an error on the last graph (an op rejecting shapes or dtypes its Python code would have
            # branched away from) says only that it does not hold here: captured afresh below, which
            # raises what a fresh analysis raises
            with contextlib.suppress(TorchscanError):
                chain = with_inputs(self._last[1], inputs, subject.device)
        if chain is None:
            chain = _capture(subject, call, inputs, self._policy, kept)
            self._last = (inputs, chain, _readers(subject, chain), _Memos())
        return _report(subject, chain, inputs, self._receptive_field, self._last[2], self._last[3])


@contextlib.contextmanager
def _process_set_aside() -> Iterator[None]:
    """What an analysis sets aside and puts back as found: the cyclic collector (paused), the caller's
    torch modes, a disabling of saved-tensor hooks and ``torch.autocast`` state (the call carries the latter:
    :mod:`~torchscan.graph.autocast`; what the model's own code changes is put back by the capture chain:
    :class:`~torchscan.graph.kept.KeptState`)."""
    with collector.paused(), _caller_modes_set_aside(), _saved_tensor_hooks_allowed(), autocast.applied(()):
        yield


@contextlib.contextmanager
def _saved_tensor_hooks_allowed() -> Iterator[None]:
    """Saved-tensor hooks allowed in this thread while the analysis runs, the caller's setting put back after: a
    recording for the memory section keeps what autograd saves through them, and a caller may have disabled them
    (``torch.autograd.graph.disable_saved_tensors_hooks``, as ``torch.func``'s transforms do; a per-thread setting)."""
    message = torch._C._autograd._saved_tensors_hooks_get_disabled_error_message()
    if message is None:
        yield
        return
    torch._C._autograd._saved_tensors_hooks_enable()
    try:
        yield
    finally:
        torch._C._autograd._saved_tensors_hooks_disable(message)


@contextlib.contextmanager
def _caller_modes_set_aside() -> Iterator[None]:
    """The caller's torch function and dispatch modes (``FlopCounterMode``, ``torch.device(...)``, a
    profiler's mode…) set aside while the analysis runs and put back after, in order: they never see
    the analysis's fake ops. Both stacks are per thread: no other thread is touched."""
    function_modes = [torch.overrides._pop_mode() for _ in range(torch._C._len_torch_function_stack())]
    try:
        with _disable_current_modes():
            yield
    finally:
        for mode in reversed(function_modes):
            torch.overrides._push_mode(mode)


def _batch_hint(
    model: nn.Module,
    input_shape: InputShape | None,
    dtype: torch.dtype | Sequence[torch.dtype] | None,
    batch_size: int | None,
    error: ShapeError | RejectedByModel,
) -> str:
    """A hint when the failing op (or the model's own check) got a model input whose given shape starts with 1 and
    the model takes that input without it: the batch dimension given by mistake (``input_shape`` excludes it).
    Checked by capturing again without the leading 1 (on the error path only, no real forward)."""
    if batch_size is None or not input_shape or isinstance(input_shape, torch.Tensor):
        return ""
    if not all(isinstance(size, int) for size in input_shape):  # several inputs, or example tensors
        return ""
    shape = tuple(input_shape)
    if len(shape) < 2 or shape[0] != 1 or (batch_size, *shape) not in error.input_shapes:
        return ""
    try:
        inputs = model_inputs(shape[1:], dtype=dtype, batch_size=batch_size, signature=_signature(model))
        capture_with_fallback(model, DEFAULT_REGISTRY, inputs, input_device(model), RealForward(False, 0))
    except TorchscanError:
        return ""
    return (
        f"\n  hint: input_shape excludes the batch dimension (batch_size={batch_size} is prepended): "
        f"the model takes {shape[1:]}"
    )


@frozen_record
class _Subject:
    """What an analysis knows of the model before any input (shape-independent; one per sweep)."""

    model: nn.Module
    unwrapped: tuple[Diagnostic, ...]
    hooks: tuple[IgnoredHook, ...]
    registry: Registry
    device: torch.device
    params: ParamSummary
    library: frozenset[str]
    containers: frozenset[str]
    modules: tuple[tuple[str, nn.Module], ...] = ()
    """``model.named_modules()``, walked once."""
    types: ModuleTypes = ()
    """What the rows read of the modules (:func:`~torchscan.passes.rows.module_types`)."""


def _subject(model: nn.Module, formulas: Mapping[Any, Formula] | None) -> _Subject:
    inner, unwrapped = _unwrapped(model)
    try:
        modules = tuple(inner.named_modules())  # one walk, read by every pass that needs the modules
    except AttributeError:
        _check_initialized(inner)
        raise
    _check_modules(inner, modules)
    return _Subject(
        model=inner,
        unwrapped=unwrapped,
        hooks=tuple(hooks_of(inner, modules)),
        registry=DEFAULT_REGISTRY.with_overrides(formulas) if formulas else DEFAULT_REGISTRY,
        device=input_device(inner),
        params=collect_params(inner, modules),
        modules=modules,
        types=module_types(inner, modules),
        library=library_modules(inner, modules),
        containers=container_modules(inner, modules),
    )


@frozen_record
class _Call:
    """The inputs of one analysis as given (``crawl_module``'s input arguments)."""

    input_shape: InputShape | None = None
    args: Any = None
    kwargs: Mapping[str, Any] | None = None
    dtype: torch.dtype | Sequence[torch.dtype] | None = None
    batch_size: int | None = 1
    autocast: autocast.Autocast = ()
    """The caller's ``torch.autocast`` state (read as the call is made, not an argument)."""

    def inputs(self, model: nn.Module) -> ModelInputs:
        signature = _signature(model)
        inputs = model_inputs(
            self.input_shape,
            args=self.args,
            kwargs=self.kwargs,
            dtype=self.dtype,
            batch_size=self.batch_size,
            signature=signature,
        )
        if not _rewrites_arguments(model):
            check_binds(inputs, signature, type(model).__name__)
        return dataclasses.replace(inputs, autocast=self.autocast) if self.autocast else inputs


@frozen_record
class _Memos:
    """What the passes keep of one capture for its analyses at other inputs (:class:`_Analyses`): the
    parts that depend on the graph, the model's copy and the parameters only, never on shapes."""

    memory: PlanMemo = dataclasses.field(default_factory=PlanMemo)
    rows: RowMemo = dataclasses.field(default_factory=dict)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, compare=False)
    """Held while a report of the capture makes its memory section (which reads and fills ``memory``)."""


_CALL_KEYS = frozenset(field.name for field in dataclasses.fields(_Call)) - {"autocast"}
"""The input arguments of ``crawl_module`` that a :func:`sweep` item may set."""


def _capture(
    subject: _Subject, call: _Call, inputs: ModelInputs, policy: RealForward, kept: KeptState | None = None
) -> Captured:
    """The capture chain for ``inputs``, a shape error completed with the batch-dimension hint and
    the hooks that were not run (``kept``: what the model's code may change, as the analysis found it)."""
    try:
        modules = _modules(subject)
        return capture_with_fallback(subject.model, subject.registry, inputs, subject.device, policy, modules, kept)
    except ShapeError as error:
        note = _batch_hint(subject.model, call.input_shape, call.dtype, call.batch_size, error)
        if subject.hooks:
            note += f"\n  note: hooks of the model were not run: {_hook_list(subject.hooks)}"
        if not note:
            raise
        raise ShapeError(
            error.message + note, node=error.node, module_path=error.module_path, input_shapes=error.input_shapes
        ) from None
    except RejectedByModel as error:  # the model's own check: the same hint where the batch dim was given too
        note = _batch_hint(subject.model, call.input_shape, call.dtype, call.batch_size, error)
        if not note:
            raise
        raise RejectedByModel(str(error) + note, error.input_shapes) from None
    except CaptureError as error:
        if not subject.hooks:
            raise
        raise CaptureError(f"{error}\n  note: {_HOOKS_NOT_RUN}: {_hook_list(subject.hooks)}") from None


def _modules(subject: _Subject) -> list[nn.Module] | None:
    """The model's modules as walked (None: not walked)."""
    return [module for _, module in subject.modules] if subject.modules else None


def _crawl(subject: _Subject, call: _Call, receptive_field: bool, policy: RealForward) -> Report:
    """:func:`crawl_module` with its arguments checked. The model's code runs in the capture and in later
    passes (a leaf call the memory pass records): what it changes in the process is put back at the end."""
    inputs = call.inputs(subject.model)
    with kept_as_found(_modules(subject) or subject.model.modules()) as kept:
        chain = _capture(subject, call, inputs, policy, kept)
        return _report(subject, chain, inputs, receptive_field, _readers(subject, chain), None)


def _readers(subject: _Subject, chain: Captured) -> frozenset[str] | None:
    """The modules whose parameters the captured forward reads (None for a scripted forward, which
    shows no module calls: every module would look unused)."""
    captured = chain.capture
    if captured.method == SCRIPTED:
        return None
    calls = [str(node.target) for node in captured.graph.nodes if node.op == "call_module"]
    reads = [str(node.target) for node in captured.graph.nodes if node.op == "get_attr"]
    packing = subject.params.packing
    ran = {module_path_of(node) for node in captured.graph.nodes} if packing else set()  # where ops ran: recordings
    return parameter_readers(subject.model, calls, reads, subject.modules, packing, ran)


def _report(
    subject: _Subject,
    chain: Captured,
    inputs: ModelInputs,
    receptive_field: bool,
    readers: frozenset[str] | None,
    memos: _Memos | None,
) -> Report:
    """The report of one captured call: records, counts, rows, memory (and receptive fields);
    ``readers`` from :func:`_readers` and ``memos`` (None: nothing kept) the same for every input of
    one capture."""
    model, registry, params = subject.model, subject.registry, subject.params
    captured, values = chain.capture, chain.values
    graph = build_graph(captured.graph, captured.root, values, captured.memo.records, captured.memo.shapes.submodules)

    outputs = tuple(
        spec.shape
        for node in captured.graph.nodes
        if node.op == "output"
        for spec in graph.nodes[node.name][RECORD].outputs
    )
    costs, diagnostics = count_costs(graph, registry)
    diagnostics = (*subject.unwrapped, *_hook_diagnostics(subject.hooks), *chain.diagnostics, *diagnostics)
    nx.set_node_attributes(graph, costs, COST)  # per-node costs stay available to exports
    graph.graph[LIBRARY_MODULES] = subject.library
    graph.graph[CONTAINER_MODULES] = subject.containers
    graph.graph[HELD_OUTPUTS] = captured.held_outputs + captured.held_state
    # the rows (and the diagnostic that reads them) made on their first read: a reader of the totals alone does not
    # pay for them; what they read is plain records, never the model or its copy
    outputs_of = captured.module_outputs
    deferred_rows = Deferred(
        functools.partial(
            _paused,
            build_rows,
            subject.types,
            graph,
            costs,
            params,
            outputs_of,
            row_output_bytes(graph, outputs_of),
            memos.rows if memos is not None else None,
            captured.passed_through,
        )
    )
    rows: tuple[Row, ...] | Deferred[tuple[Row, ...]] = deferred_rows
    made: tuple[Diagnostic, ...] | Deferred[tuple[Diagnostic, ...]] = diagnostics
    if readers is not None:
        made = Deferred(functools.partial(_with_unused_parameters, diagnostics, deferred_rows, readers))
    if receptive_field:  # the fields' rows made now
        fields = receptive_fields(graph)
        rows = with_receptive_fields(deferred_rows.get(), fields, captured.module_outputs)
        nx.set_node_attributes(
            graph, {name: dict(zip(_RF_KEYS, row_values(fields.of(name)), strict=True)) for name in graph}
        )
        made = (*(made.get() if isinstance(made, Deferred) else made), *fields.diagnostics)
    memo = memos.memory if memos is not None else None
    # what of the memory section only the capture answers, made now; the rest on the section's first read
    held = captured_memory(graph, params, _replay(captured, values, inputs.specs, subject.device), memo)
    known = [cost for cost in costs.values() if cost is not None]
    unknown = sum(cost is None for cost in costs.values())
    totals = Totals(
        params=params.params,
        trainable_params=params.trainable,
        non_trainable_params=params.params - params.trainable,
        param_bytes=params.param_bytes,
        buffer_bytes=params.buffer_bytes,
        flops=sum(cost.flops for cost in known),
        macs=sum(cost.macs for cost in known),
        dmas=sum(cost.dmas for cost in known),
        complete=unknown == 0,
        unknown_ops=unknown,
    )
    return Report(
        rows=rows,
        totals=totals,
        diagnostics=made,
        context=_context(model, inputs.specs, outputs, captured.method, subject.device),
        records=graph,
        memory=Deferred(
            functools.partial(_paused, estimate_memory, graph, params, costs, captured=held, memo=memo),
            lock=memos.lock if memos is not None else None,
        ),
    )


@never_compiled
def _paused(function: Callable[..., _R], *args: Any, **kwargs: Any) -> _R:
    """``function(*args, **kwargs)`` with the collector paused, as in an analysis: what a report makes on a first read
    (:class:`~torchscan.records.deferred.Deferred`: its rows, its memory section) from plain records."""
    with collector.paused():
        return function(*args, **kwargs)


def _with_unused_parameters(
    diagnostics: tuple[Diagnostic, ...], rows: Deferred[tuple[Row, ...]], readers: frozenset[str]
) -> tuple[Diagnostic, ...]:
    """``diagnostics`` and the one that names modules holding parameters the forward never read (it reads the rows)."""
    return (*diagnostics, *unused_parameters(rows.get(), readers))


_EAGER_TENSORS = frozenset({nn.Parameter, torch.Tensor})
"""The exact types of nearly every parameter and buffer: never lazy (``is_lazy``'s ``isinstance``
goes through ``nn.Parameter``'s metaclass, six times the cost of a set lookup)."""


def _check_initialized(model: nn.Module) -> None:
    """An :class:`InputError` naming the first module (depth first) that ``nn.Module.__init__`` never ran on: a
    subclass whose ``__init__`` does not call ``super().__init__()`` holds none of a module's state."""
    pending: list[tuple[str, nn.Module]] = [("", model)]
    while pending:
        path, module = pending.pop()
        state = vars(module)
        if "_modules" not in state or "_parameters" not in state:
            where = f"layer '{path}' ({type(module).__name__})" if path else type(module).__name__
            raise InputError(
                f"{where} was never initialised as a torch.nn.Module: its __init__ does not call "
                "super().__init__(), so it holds none of a module's state (its layers, parameters, buffers); call it "
                "first in __init__"
            )
        prefix = f"{path}." if path else ""
        pending.extend(
            (prefix + name, child) for name, child in reversed(state["_modules"].items()) if child is not None
        )


def _check_modules(model: nn.Module, modules: Sequence[tuple[str, nn.Module]]) -> None:
    """An :class:`InputError` naming the first layer whose parameters or buffers are still lazy
    (``nn.LazyLinear`` before its first forward: their shapes are not known yet), a :class:`CaptureError` naming a
    TorchScript layer inside a Python model (the analysis copies a Python model module by module; a scripted model
    as a whole is recorded from its TorchScript graph instead); ``modules``: the model's ``named_modules()``."""
    scripted = is_scripted(model)
    for path, module in modules:
        if path and not scripted and is_scripted(module):
            raise CaptureError(
                f"layer '{path}' ({type(module).__name__}) is a TorchScript module (torch.jit.script or "
                f"torch.jit.trace) inside the Python model {type(model).__name__}: torchscan cannot copy it for "
                "analysis. Analyse the model built with that layer before scripting it, or script the whole model "
                "(a scripted model is analysed from its TorchScript graph)"
            )
        for name, tensor in itertools.chain(module._parameters.items(), module._buffers.items()):
            if tensor is not None and type(tensor) not in _EAGER_TENSORS and is_lazy(tensor):
                raise InputError(
                    f"layer '{path or type(model).__name__}' ({type(module).__name__}) has an uninitialized "
                    f"parameter or buffer '{name}' (a lazy module before its first forward): its shape is not "
                    "known yet. Run one forward on a real input first (it fixes the shapes), then analyse the model"
                )


def _replay(
    captured: Capture, values: Mapping[str, NodeValues], specs: Sequence[InputSpec], device: torch.device
) -> Replay | None:
    """What the memory pass needs to run the captured calls again on fake tensors (None when the
    capture ran real tensors)."""
    if not isinstance(captured.fake_mode, FakeTensorMode):
        return None
    fake_mode = captured.fake_mode

    def inputs() -> tuple[torch.Tensor, ...]:
        with fake_mode, torch.inference_mode(False):
            return tuple(torch.empty(spec.shape, dtype=spec.dtype, device=device) for spec in specs)

    described = {name: value.output for name, value in values.items()}
    results = {name: value.result for name, value in values.items() if value.result is not None}
    return Replay(captured.graph, captured.root, captured.fake_mode, inputs, described, captured.fakes, results)


def _unwrapped(model: nn.Module) -> tuple[nn.Module, tuple[Diagnostic, ...]]:
    """The module a wrapper holds (``torch.compile``, ``DataParallel``, DDP; nested ones too) and a
    diagnostic per wrapper seen through."""
    diagnostics: list[Diagnostic] = []
    inner = wrapped_module(model)
    while inner is not None:
        diagnostics.append(
            Diagnostic(
                "wrapper-unwrapped",
                f"{type(model).__name__} was seen through: the {type(inner).__name__} it wraps was analysed "
                "(nothing compiled or replicated was run)",
            )
        )
        model, inner = inner, wrapped_module(inner)
    return model, tuple(diagnostics)


def _hook_list(hooks: Sequence[IgnoredHook]) -> str:
    shown = ", ".join(hook.describe() for hook in hooks[:8])
    return shown + (f" and {len(hooks) - 8} more" if len(hooks) > 8 else "")


_HOOKS_NOT_RUN = (
    "the model's hooks were not run (no hook found on the model sees an analysis call; hooks its code registers "
    "as the analysis runs it do run, and so do transformers' output-capture hooks): a forward that reads what "
    "one collects fails or returns less without it"
)


def _hook_diagnostics(hooks: Sequence[IgnoredHook]) -> tuple[Diagnostic, ...]:
    if not hooks:
        return ()
    message = (
        f"{len(hooks)} user hook(s) were not run (user callbacks never see analysis calls): {_hook_list(hooks)}; "
        "if a hook changes inputs or outputs, or collects outputs the forward returns, the report describes "
        "the model without it"
    )
    return (Diagnostic("hooks-ignored", message),)


def _rewrites_arguments(model: nn.Module) -> bool:
    """Whether the arguments of the call may reach the forward changed: by a ``__call__`` of the model's class's
    own, or a TorchScript module's (the model's hooks are not run by an analysis: its forward gets them as given)."""
    return type(model).__call__ is not nn.Module.__call__ or is_scripted(model)


def _signature(model: nn.Module) -> inspect.Signature | None:
    try:
        return inspect.signature(model.forward)
    except (TypeError, ValueError):
        return None
    except AttributeError:  # no forward (a scripted nn.LSTM keeps only its overloads): not callable
        raise InputError(
            f"{type(model).__name__} has no forward method: the model cannot be called, so it cannot be analysed"
            + (
                " (TorchScript keeps no forward for a module whose forward is overloaded, as nn.LSTM's: analyse the "
                "module unscripted, or a scripted module that calls it)"
                if isinstance(model, torch.jit.ScriptModule)
                else ""
            )
        ) from None


def _context(
    model: nn.Module,
    specs: Sequence[InputSpec],
    outputs: tuple[tuple[int, ...], ...],
    method: str,
    device: torch.device,
) -> Context:
    return Context(
        model=type(model).__name__,
        torch_version=torch.__version__,
        capture=method,
        input_shapes=tuple(spec.shape for spec in specs),
        output_shapes=outputs,
        dtypes=tuple(str(spec.dtype).removeprefix("torch.") for spec in specs),
        device=str(device),
        training=model.training,
    )


@never_compiled
def summary(
    model: nn.Module,
    input_shape: InputShape | None = None,
    *,
    args: Any = None,
    kwargs: Mapping[str, Any] | None = None,
    max_depth: int | None = None,
    dtype: torch.dtype | Sequence[torch.dtype] | None = None,
    batch_size: int | str | Dim | None = 1,
    formulas: Mapping[Any, Formula] | None = None,
    receptive_field: bool = False,
    measure: bool | str = False,
    device: str | None = None,
    file: TextIO | None = None,
    real_forward: bool = True,
    real_forward_limit: int | None = None,
    columns: str | Sequence[str] | None = None,
    width: int | None = None,
    show_free: bool = False,
) -> Report | SymbolicReport:
    """Print the keras-style summary of ``model`` (to ``file``, stdout by default); return the report
    (its ``repr`` is one line, so a Python prompt shows the table and that line).

    Bookkeeping rows (views, indexing, small factories and casts: no FLOPs, next to no DMAs; see
    :func:`torchscan.records.rows.is_bookkeeping`) are folded into their parents unless
    ``show_free=True``; the returned report keeps every row.

    ``columns`` chooses the table's columns by name or preset (``"all"``, ``"cost"``, ``"memory"``,
    ``["output_shape", "flops", "kernel"]``…; see :func:`torchscan.render.table.parse_columns`,
    checked before the analysis); naming ``"receptive_field"`` turns ``receptive_field`` on. ``width``
    is the line width (default: the terminal's; 0: no limit). ``measure=True`` (or ``device="cuda"``)
    also runs one real no-grad forward on CUDA with random inputs and reports the measured peak beside
    the static one (see :func:`torchscan.measure.cuda.measure_cuda`); without CUDA the report says so.
    ``measure="cpu"`` runs on CPU one no-grad forward and one steady-state training step with SGD and
    with Adam on a private copy, within ``real_forward_limit`` (:func:`torchscan.measure.cpu.measure_cpu`).
    """
    parse_columns(columns)
    receptive_field = receptive_field or wants_receptive_field(columns)
    report = crawl_module(
        model,
        input_shape,
        args=args,
        kwargs=kwargs,
        dtype=dtype,
        batch_size=batch_size,
        formulas=formulas,
        receptive_field=receptive_field,
        real_forward=real_forward,
        real_forward_limit=real_forward_limit,
    )
    if isinstance(report, SymbolicReport):  # formulas: their own text (no per-layer table of formulas)
        print(report, file=file or sys.stdout)
        return report
    if measure or str(device or "").startswith("cuda"):
        inputs = _Call(input_shape, args, kwargs, dtype, batch_size).inputs(model)  # the call the report analysed
        if measure == "cpu":
            report = _measured(report, model, "cpu", real_forward_limit, inputs)
        else:
            report = _measured(report, model, "cuda", None, inputs)
    table = render_table(report, max_depth=max_depth, columns=columns, width=width, show_free=show_free)
    print(table, file=file or sys.stdout)
    return report


def with_measurement(
    report: Report,
    model: nn.Module,
    device: str = "cuda",
    limit: int | None = None,
    *,
    args: Any = None,
    kwargs: Mapping[str, Any] | None = None,
) -> Report:
    """``report`` with real passes of ``model`` on its input shapes and dtypes in ``memory.measured``:
    one CUDA forward (:func:`torchscan.measure.cuda.measure_cuda`; without CUDA it says so), or with
    ``device="cpu"`` a forward and a training step per optimizer on CPU within ``limit`` bytes
    (:func:`torchscan.measure.cpu.measure_cpu`). The model is called with its inputs positional, or as
    ``args``/``kwargs`` give the call (``crawl_module``'s: tensors or ``TensorSpec`` at any depth, other values
    as is; each tensor a seeded random one of its shape and dtype). What the model's code changes in the process
    while they run is put back as by an analysis (:class:`~torchscan.graph.kept.KeptState`)."""
    if args is None and kwargs is None:
        return _measured(report, model, device, limit, None)
    return _measured(report, model, device, limit, model_inputs(args=args, kwargs=kwargs, signature=_signature(model)))


def _measured(report: Report, model: nn.Module, device: str, limit: int | None, inputs: ModelInputs | None) -> Report:
    """:func:`with_measurement` of the call ``inputs`` describes (None: the report's inputs, positional)."""
    if report.memory is None:
        return report
    call = None
    if inputs is None or inputs.positional_only:
        dtypes = [getattr(torch, name) for name in report.context.dtypes]
        shapes: Sequence[tuple[int, ...]] = report.context.input_shapes
    else:
        shapes, dtypes = [spec.shape for spec in inputs.specs], [spec.dtype for spec in inputs.specs]
        call = inputs.rebuild
    with kept_as_found((wrapped_module(model) or model).modules()):  # the real passes run the model's code too
        if device == "cpu":
            limit = DEFAULT_REAL_FORWARD_LIMIT if limit is None else int(limit)
            measured: Any = measure_cpu(model, shapes, dtypes, report.memory, limit, call=call)
        else:
            measured = measure_cuda(model, shapes, dtypes, report.memory.activation_peak_bytes, call=call)
    return dataclasses.replace(report, memory=dataclasses.replace(report.memory, measured=measured))
