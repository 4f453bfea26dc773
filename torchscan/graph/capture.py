"""The capture chain: torch.fx first, then a recorded forward on fake tensors; shapes for either.

Whatever captured the model, the result is the same kind of fx graph with shapes of every node,
so the passes do not care. The capture used is named in the report's context and a fallback is
explained in a diagnostic.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import torch
from torch import fx, nn
from torch.utils._pytree import tree_flatten

from torchscan.errors import CaptureError, ShapeError
from torchscan.graph import autocast, checkpoint
from torchscan.graph.autocast import AUTOCAST
from torchscan.graph.calls import module_path_of
from torchscan.graph.checkpoint import CHECKPOINT
from torchscan.graph.clone import HELD_STATE_BUDGET, fake_copy, private_arguments, real_copy
from torchscan.graph.fake import analysis_mode
from torchscan.graph.guards import METADATA, guards_hold
from torchscan.graph.kept import KeptState
from torchscan.graph.record import NeedsValues, record
from torchscan.graph.script import is_scripted, record_scripted
from torchscan.graph.shapes import NodeValues, fake_inputs, propagate, quiet_fake_tensor_log
from torchscan.graph.trace import BRANCH, FX, GRAPH_MODULE, Capture, capture, traced_code
from torchscan.graph.traced_code import TracedCode
from torchscan.inputs import InputSpec, ModelInputs
from torchscan.ops.registry import Registry
from torchscan.records import Diagnostic, TensorSpec
from torchscan.records.frozen import frozen_record

__all__ = [
    "DEFAULT_REAL_FORWARD_LIMIT",
    "Captured",
    "RealForward",
    "capture_with_fallback",
    "same_call",
    "state_bytes",
    "with_inputs",
]

DEFAULT_REAL_FORWARD_LIMIT = 2 * 2**30
"""Default memory limit of the last-resort real forward (bytes; ``real_forward_limit`` raises it)."""


@frozen_record
class Captured:
    """A captured graph, the described values of its nodes, and what the capture had to give up."""

    capture: Capture
    values: dict[str, NodeValues]
    diagnostics: tuple[Diagnostic, ...]


def _propagate(captured: Capture, inputs: ModelInputs, device: torch.device) -> dict[str, NodeValues]:
    memo = captured.memo
    if not memo.paths:
        memo.paths.update((node.name, module_path_of(node)) for node in captured.graph.nodes)
    traced, memo.traced = memo.traced, None
    if traced is not None:  # begun during the trace, on these inputs
        return traced.finish(memo.paths)
    tensors = fake_inputs(inputs.specs, device, captured.fake_mode)
    with captured.fake_mode:
        return propagate(
            captured.root,
            captured.graph,
            tensors,
            memo.paths,
            fakes=captured.fakes,
            plans=memo.shapes,
            constants=captured.constants,
        )


def same_call(first: ModelInputs, second: ModelInputs) -> bool:
    """Whether ``second`` calls the model like ``first`` up to its tensors' shapes and dtypes: the
    same argument structure, the same input names, equal non-tensor values. A torch.fx graph traced
    for one is then the graph of the other (fx records shapes and dtypes as graph nodes, never as
    constants), up to the sizes the forward's Python code read (its guards, checked by :func:`with_inputs`),
    under the same ``torch.autocast`` state."""
    if first.autocast != second.autocast:
        return False
    first_leaves, first_spec = tree_flatten((first.args, dict(first.kwargs)))
    second_leaves, second_spec = tree_flatten((second.args, dict(second.kwargs)))
    if first_spec != second_spec:
        return False
    for a, b in zip(first_leaves, second_leaves, strict=True):
        if isinstance(a, InputSpec) or isinstance(b, InputSpec):
            if not (isinstance(a, InputSpec) and isinstance(b, InputSpec) and a.name == b.name):
                return False
            continue
        try:
            if a is not b and (type(a) is not type(b) or not bool(a == b)):
                return False
            if type(a) in (float, complex) and repr(a) != repr(b):  # 0.0 == -0.0, but a graph keeps the sign
                return False
        except Exception:  # values that cannot be compared are not known to be equal
            return False
    return True


def with_inputs(captured: Captured, inputs: ModelInputs, device: torch.device) -> Captured | None:
    """``captured`` with the shapes of its graph for ``inputs`` instead (the capture reused: no new
    trace), or None where the capture does not carry over to other inputs: a recorded or scripted
    forward (fixed to the input it saw), a fallback, a graph specialized to sizes that read otherwise
    here (:attr:`Capture.guards`). The caller checks :func:`same_call`. An error
    raised here (a shape or dtype an op rejects) means the graph does not hold for ``inputs``; a fresh
    capture decides then."""
    if captured.capture.method not in _GENERIC_METHODS or any(
        note.code == "capture-fallback" for note in captured.diagnostics
    ):
        return None
    with torch.inference_mode(False), torch.enable_grad():
        values = _propagate(captured.capture, inputs, device)
    guards = captured.capture.guards
    if guards and not guards_hold(guards, {name: value.result for name, value in values.items()}):
        return None  # the forward's Python code would read other sizes here: another graph
    return Captured(captured.capture, values, captured.diagnostics)


def capture_with_fallback(
    model: nn.Module,
    registry: Registry,
    inputs: ModelInputs,
    device: torch.device,
    policy: RealForward | None = None,
    modules: Sequence[nn.Module] | None = None,
    kept: KeptState | None = None,
) -> Captured:
    """:func:`capture_chain` with autograd on, whatever the caller's mode (``no_grad`` and
    ``inference_mode`` send some modules, e.g. ``nn.MultiheadAttention``, down other paths)."""
    with torch.inference_mode(False), torch.enable_grad():
        return capture_chain(model, registry, inputs, device, policy or RealForward(), modules, kept)


@frozen_record
class RealForward:
    """When the last-resort real forward may run: ``allowed`` at all, and only if its estimated
    memory (a real copy of the parameters and buffers, the inputs, and the tensors the fake
    recording had made before it stopped) is at most ``limit`` bytes."""

    allowed: bool = True
    limit: int = DEFAULT_REAL_FORWARD_LIMIT


def capture_chain(
    model: nn.Module,
    registry: Registry,
    inputs: ModelInputs,
    device: torch.device,
    policy: RealForward,
    modules: Sequence[nn.Module] | None = None,
    kept: KeptState | None = None,
) -> Captured:
    """torch.fx first; else record one forward on fake tensors; else (data-dependent ops such as
    NMS) record one real forward on a copy of the model, if ``policy`` allows it (``modules``:
    ``model.modules()`` when the caller has walked them).

    A shape error from a traced graph is re-checked by a recorded forward (fx graphs can be wrong
    where Python control flow depends on values): if that works its graph is used. An error found
    by running the forward on fake tensors (an op rejecting its shapes or dtypes) is final: no real
    forward follows, and it is raised rather than fx's "cannot trace". A TorchScript module is
    recorded at the ATen level. What the model's code changes in the process while it runs (globals it
    binds, caches it fills, draws from the generators it reaches, the default dtype) is put back after, and
    before each capture tried (:class:`~torchscan.graph.kept.KeptState`; ``kept``: the caller's, noted before
    the model's code ran at all and put back by the caller when its analysis ends, else one of its own); a trace
    whose forward binds a global is made again with every block traced.
    """
    if is_scripted(model):
        with quiet_fake_tensor_log():
            captured, values = record_scripted(model, registry, inputs, _make_inputs(inputs, device, real=False))
        return Captured(captured, values, (Diagnostic("scripted-module", _SCRIPTED),))
    if kept is not None:  # the caller's: put back when its analysis ends
        return _captured(model, registry, inputs, device, policy, modules, kept)
    kept = KeptState(model.modules() if modules is None else modules)
    try:
        return _captured(model, registry, inputs, device, policy, modules, kept)
    finally:
        kept.restore()  # what the forward changed in the process: as found


def _captured(
    model: nn.Module,
    registry: Registry,
    inputs: ModelInputs,
    device: torch.device,
    policy: RealForward,
    modules: Sequence[nn.Module] | None,
    kept: KeptState,
) -> Captured:
    """:func:`capture_chain` of a model that is not scripted (``kept``: what its code may change, as found)."""
    code = traced_code(registry)  # the functions of traced code, made once for every trace of this capture
    try:
        try:
            return _traced(model, registry, inputs, device, modules, kept, code=code)
        except CaptureError as error:
            if not isinstance(error.__cause__, TypeError):
                raise
            kept.restore(every_container=True)
            try:  # a size refused by torch's argument parser: again with buffers as proxies, as fx can
                return _traced(model, registry, inputs, device, modules, kept, proxy_buffers=True, code=code)
            except (CaptureError, ShapeError):
                raise error from error.__cause__  # the first trace's error is the one to report
    except CaptureError as error:
        reason = f"the torch.fx capture failed ({error})"
        first_error: Exception = _detached(error)
    except ShapeError as error:
        reason = f"the torch.fx graph failed shape propagation ({error.message.splitlines()[0]})"
        first_error = _detached(error)
    kept.restore(every_container=True)
    try:
        captured, values = _record_fake(model, registry, inputs, device)
        fallback = Diagnostic("capture-fallback", f"{reason}; {_RECORDED}")
        return Captured(captured, values, (fallback, *_notes(captured, values)))
    except ShapeError as error:  # found by running the forward on fake tensors: final (fx's names its node)
        raise (first_error if isinstance(first_error, ShapeError) else error) from None
    except NeedsValues as error:
        fake_error: CaptureError = _detached(error)
    except CaptureError as error:  # the forward failed on fake tensors in the model's own code
        fake_error = _detached(error)
        first_error = error if isinstance(first_error, CaptureError) else first_error
    if device.type == "meta":
        raise first_error from None
    _check_real_forward(model, inputs, policy, fake_error, first_error)
    kept.restore(every_container=True)
    try:
        captured, values = _record_real(model, registry, inputs, device)
    except ShapeError:
        raise
    except CaptureError as error:
        raise (error if isinstance(first_error, CaptureError) else first_error) from None
    fallback = f"{reason}; recording on fake tensors failed too ({fake_error}); {_RECORDED}"
    real = (
        "captured by ONE REAL forward pass on a private copy of the model with seeded random inputs: this "
        "analysis did real arithmetic (its time and memory grow with the input; forbid it with "
        "real_forward=False, CLI --no-real-forward)"
    )
    diagnostics = (Diagnostic("capture-fallback", fallback), Diagnostic("real-forward", real))
    return Captured(captured, values, (*diagnostics, *_notes(captured, values)))


def _traced(
    model: nn.Module,
    registry: Registry,
    inputs: ModelInputs,
    device: torch.device,
    modules: Sequence[nn.Module] | None,
    kept: KeptState,
    proxy_buffers: bool = False,
    code: TracedCode | None = None,
) -> Captured:
    """The fx capture of :func:`capture_chain` with its shapes, traced again with every block traced where a
    replay cannot stand (the forward binds globals or registers hooks, or a replay read other metadata);
    ``proxy_buffers``: as :func:`~torchscan.graph.trace.capture`'s (a retry of a trace that a size refused by torch's
    argument parser stopped: ``buffer.expand(batch, -1)``, a proxy among the separate sizes of a method); ``code``: the
    traced functions every trace of the capture shares (:func:`~torchscan.graph.trace.traced_code`)."""
    traced = capture(model, registry, inputs, modules=modules, proxy_buffers=proxy_buffers, code=code)
    # the forward binds globals (what a block read, the next may not), or registered hooks (a replayed block's
    # inner modules ran none)
    if traced.replayed and (traced.hooked or kept.written()):
        kept.restore(every_container=True)
        traced = capture(model, registry, inputs, reuse=False, modules=modules, proxy_buffers=proxy_buffers, code=code)
    values = _propagate(traced, inputs, device)
    if traced.checks and not guards_hold(traced.checks, {name: value.result for name, value in values.items()}):
        kept.restore(every_container=True)  # each capture starts from the globals as found
        traced = capture(model, registry, inputs, reuse=False, modules=modules, proxy_buffers=proxy_buffers, code=code)
        values = _propagate(traced, inputs, device)
    return Captured(traced, values, _notes(traced, values))


ErrorT = TypeVar("ErrorT", bound=BaseException)


def _detached(error: ErrorT) -> ErrorT:
    """``error`` and the errors it was raised from (causes, contexts) without their tracebacks. Kept
    past its ``except`` block (to be raised if the next capture fails too), an error's traceback
    holds the failed capture's frames in a reference cycle, and with them its copy of the model, the
    tracer and the partial graph: garbage the cyclic collector frees only after the analysis
    (20–30 ms on a timm model that falls back to recording). Our errors carry their message and
    the node; the frames inside torch.fx are not what a user needs."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending += [current.__cause__, current.__context__]
    return error


def _notes(captured: Capture, values: Mapping[str, NodeValues]) -> tuple[Diagnostic, ...]:
    """What the capture left out: attributes too large to copy, output objects that are not data, the ops
    that made tensors the forward computes from constants alone, sizes its Python code read (``values``: the
    shape pass's, for the tensors' shapes)."""
    notes = []
    if captured.shared:
        names = ", ".join(sorted(set(captured.shared)))
        message = (
            f"attributes holding more than {HELD_STATE_BUDGET:,} values were not copied for the analysis: {names}; "
            "the model's forward read them as they are (a change it makes to them would reach your objects)"
        )
        notes.append(Diagnostic("held-state-shared", message))
    if captured.opaque_outputs:
        kinds = collections.Counter(captured.opaque_outputs)
        names = ", ".join(f"{name} (x{count})" if count > 1 else name for name, count in kinds.items())
        message = (
            f"the forward's output holds objects that are not tensors or plain data: {names}; they are shown "
            "as None (tensors they hold are not outputs of the report)"
        )
        notes.append(Diagnostic("opaque-output", message))
    folded = [  # empty ones aside (a cache's first keys): nothing could have been computed for them
        node
        for node in captured.graph.nodes
        if node.op == "get_attr" and node.target in captured.folded and _elements(values, node.name)
    ]
    if folded:
        specs = {str(node.target): _described(values, node.name) for node in folded}
        listed = ", ".join(f"{target} {spec}" for target, spec in list(specs.items())[:3])
        more = f" and {len(specs) - 3} more" if len(specs) > 3 else ""
        message = (
            f"the forward computes {len(specs)} tensor(s) from constants alone ({listed}{more}): the trace made "
            "them once, as constants of the graph, so the ops that made them (run again by every real forward) "
            "are not in the graph and their FLOPs and MACs are not counted"
        )
        notes.append(Diagnostic("folded-constants", message, tuple(node.name for node in folded)))
    cast = [node for node in captured.graph.nodes if AUTOCAST in node.meta]
    if cast:
        states = ", ".join(dict.fromkeys(autocast.describe(node.meta[AUTOCAST]) for node in cast))
        message = (
            f"{len(cast)} op(s) run under torch.autocast ({states}): their results have the dtypes autocast gives "
            "them; the casts it makes inside a call are in the memory figures, not rows of their own, and their "
            "FLOPs, MACs and DMAs are the op's on the tensors it is given"
        )
        notes.append(Diagnostic("autocast", message, tuple(node.name for node in cast)))
    checkpointed = [node for node in captured.graph.nodes if CHECKPOINT in node.meta]
    if checkpointed:
        regions = [node.meta[CHECKPOINT] for node in checkpointed]
        message = (
            f"{len(checkpointed)} op(s) run in {checkpoint.describe(regions)} (torch.utils.checkpoint): the "
            "training estimate keeps each call's inputs, not what its ops save, and remakes that in the backward "
            "(its FLOPs in the backward's)"
        )
        if any(region.selective for region in regions):
            message += "; a context_fn (selective checkpointing) is not modelled: taken as remaking everything"
        notes.append(Diagnostic("checkpoint", message, tuple(node.name for node in checkpointed)))
    branched = [node for node in captured.graph.nodes if BRANCH in node.meta]
    if branched:
        notes.append(_conditional(branched))
    sized = [guard for guard in captured.guards if guard.kind not in METADATA]  # fixed by the graph's ops
    if sized:
        first = sized[0]
        nodes = collections.Counter(guard.node for guard in sized)
        message = (
            f"the forward's Python code read {len(sized)} value(s) computed from sizes ({len(nodes)} fx "
            f"node(s), e.g. '{first.node}' read as {first.kind}: {first.value!r}): branches, loops and sizes it "
            "decided with them are this input's; the graph is traced again for inputs where they differ"
        )
        notes.append(Diagnostic("shape-specialized", message))
    return tuple(notes)


def _conditional(branched: Sequence[fx.Node]) -> Diagnostic:
    """The ``conditional`` diagnostic of the nodes the branches of ``torch.cond`` calls on tensor data made
    (:meth:`~torchscan.graph.trace._Tracer.both_branches`)."""
    calls = collections.Counter(node.meta[BRANCH] for node in branched)
    count = len({call for call, _ in calls})
    sizes = "; ".join(
        f"{calls[(call, 0)]} node(s) in the true branch, {calls[(call, 1)]} in the false one"
        for call in sorted({call for call, _ in calls})[:3]
    )
    message = (
        f"{count} torch.cond call(s) decide on tensor data ({sizes}): which branch runs depends on the input's "
        "values, so both branches are traced and counted (the totals, rows and memory figures are an upper bound "
        "of one forward's; each branch's rows show its own cost), and the call's result is the true branch's (the "
        "receptive field after it too)"
    )
    return Diagnostic("conditional", message, tuple(node.name for node in branched))


def _elements(values: Mapping[str, NodeValues], name: str) -> int:
    """How many elements node ``name``'s tensor has (as the shape pass found it; 1 where it is not one)."""
    spec = values[name].output
    return math.prod(spec.shape) if isinstance(spec, TensorSpec) else 1


def _described(values: Mapping[str, NodeValues], name: str) -> str:
    """``float32[2, 32]``: the dtype and shape of node ``name``'s tensor (as the shape pass found it)."""
    spec = values[name].output
    if not isinstance(spec, TensorSpec):
        return ""
    return f"{str(spec.dtype).removeprefix('torch.')}{list(spec.shape)}"


def _check_real_forward(
    model: nn.Module, inputs: ModelInputs, policy: RealForward, fake_error: CaptureError, first_error: Exception
) -> None:
    """Raise a :class:`CaptureError` if ``policy`` forbids the real forward or its estimate exceeds the limit."""
    if not policy.allowed:
        raise CaptureError(
            f"{first_error}; on fake tensors: {fake_error}. Only a real forward pass could capture this model, "
            "and real_forward=False (CLI: --no-real-forward) forbids it"
        ) from None
    state = state_bytes(model)
    given = sum(math.prod(spec.shape) * spec.dtype.itemsize for spec in inputs.specs)
    made = getattr(fake_error, "recorded_bytes", 0)
    estimate = state + given + made
    if estimate > policy.limit:
        raise CaptureError(
            f"{first_error}; on fake tensors: {fake_error}. Only a real forward pass could capture this model; "
            f"it was not run: it would need about {_size(estimate)} (a copy of the parameters and buffers "
            f"{_size(state)}, inputs {_size(given)}, tensors made before the fake recording stopped "
            f"{_size(made)}), above the limit of {_size(policy.limit)} "
            "(raise it with real_forward_limit=… or the CLI's --real-forward-limit)"
        ) from None


def state_bytes(model: nn.Module) -> int:
    """Bytes of ``model``'s parameters and buffers (what a real copy of it takes; on meta: what it would)."""
    return sum(tensor.numel() * tensor.element_size() for tensor in (*model.parameters(), *model.buffers()))


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


_GENERIC_METHODS = frozenset({FX, GRAPH_MODULE})
"""Capture methods whose graph holds for any input of the same call structure (torch.fx, fx graphs)."""

_SCRIPTED = (
    "a TorchScript module hides its Python code from tracing and hooks: one forward of a copy was recorded "
    "op by ATen op on fake tensors; shapes and counts are exact for this input, but every op is attributed "
    "to the root module (sub-module rows show their parameters only)"
)

_RECORDED = (
    "captured instead by recording one forward pass: Python control flow is fixed to this input "
    "(branches not taken are absent) and size arithmetic is constant"
)

_SEED = 0
"""Seed of the private generator of the real forward's random inputs (same report every call)."""


def _tensor(
    spec: InputSpec, device: torch.device, real: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """An input tensor for ``spec`` on ``device``: empty (fake), or for the real forward a copy of
    the example tensor, else random floats from ``generator`` / zeros (token ids, masks)."""
    example = spec.example
    if real and example is not None and example.device.type != "meta":
        return example.detach().clone().to(device)
    if real and spec.dtype.is_floating_point:
        return torch.randn(spec.shape, dtype=spec.dtype, device=device, generator=generator)
    if real:
        return torch.zeros(spec.shape, dtype=spec.dtype, device=device)
    return torch.empty(spec.shape, dtype=spec.dtype, device=device)


def _make_inputs(
    inputs: ModelInputs, device: torch.device, real: bool
) -> Callable[[], tuple[tuple[Any, ...], dict[str, Any], list[tuple[str, torch.Tensor]]]]:
    def make() -> tuple[tuple[Any, ...], dict[str, Any], list[tuple[str, torch.Tensor]]]:
        generator = torch.Generator(device=device).manual_seed(_SEED) if real else None
        args, kwargs, tensors = inputs.build(lambda spec: _tensor(spec, device, real, generator))
        args, kwargs = private_arguments((args, kwargs))  # the user's objects (a cache the forward fills): copied
        names = [spec.name or "input" for spec in inputs.specs]
        return args, kwargs, list(zip(names, tensors, strict=True))

    return make


def _record_fake(
    model: nn.Module, registry: Registry, inputs: ModelInputs, device: torch.device
) -> tuple[Capture, dict[str, NodeValues]]:
    fake_mode = analysis_mode()
    copied = fake_copy(model, fake_mode)
    with quiet_fake_tensor_log():  # a failure here is reported by the fallback's diagnostic
        return record(
            copied, registry, fake_mode, _make_inputs(inputs, device, real=False), autocast_state=inputs.autocast
        )


def _record_real(
    model: nn.Module, registry: Registry, inputs: ModelInputs, device: torch.device
) -> tuple[Capture, dict[str, NodeValues]]:
    """One real no-grad forward of a private copy, on seeded inputs, with the global RNG forked
    and seeded (ops such as dropout are deterministic, and the caller's RNG state is restored)."""
    copied = real_copy(model)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        torch.manual_seed(_SEED)
        return record(
            copied,
            registry,
            torch.no_grad(),
            _make_inputs(inputs, device, real=True),
            "real-forward",
            autocast_state=inputs.autocast,
        )
