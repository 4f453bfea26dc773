"""The tracer: nothing patched process-wide, traced code never reaches the user's model."""

from __future__ import annotations

import functools
import math
from typing import Any

import networkx as nx
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

import torchscan.graph.capture as capture_module
import torchscan.graph.trace as trace_module
from tests.profiles import examples
from tests.test_api import assert_same, snapshot
from torchscan import crawl_module, sweep
from torchscan.graph.trace import capture
from torchscan.inputs import model_inputs
from torchscan.ops import DEFAULT_REGISTRY


class ScalesInPlace(nn.Module):
    """Traced-through code that changes its own parameter and buffer in place."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(4))
        self.register_buffer("count", torch.zeros(()))
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.scale.mul_(2)
        self.count += 1
        return self.fc(x) * self.scale


def test_in_place_changes_in_traced_code_never_reach_the_model() -> None:
    model = ScalesInPlace()
    before = snapshot(model)
    report = crawl_module(model, (4,), batch_size=2)
    assert_same(before, snapshot(model))
    assert report.context.output_shapes == ((2, 4),)  # fx's graph drops no_grad: the recorder answers


class Counts(nn.Module):
    """Traced-through code that bumps a buffer and reads a child's buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros(()))
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.count += 1
        self.bn.running_mean.add_(1)
        return self.bn(x) + self.count + self.bn.running_var


def test_buffers_changed_by_traced_code_stay_unchanged_in_the_model() -> None:
    model = Counts().eval()
    before = snapshot(model)
    report = crawl_module(model, (4,), batch_size=2)
    assert_same(before, snapshot(model))
    assert report.context.capture == "torch.fx" and report.context.output_shapes == ((2, 4),)
    kinds = {record.type_name for record in (data["record"] for _, data in report.records.nodes(data=True))}
    assert {"get_attr", "BatchNorm1d"} <= kinds  # buffer ops at trace time act on the fakes, as fx on buffers


def test_capture_fakes_parameters_only_where_an_op_is_dispatched() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    captured = capture(model, DEFAULT_REGISTRY, model_inputs((3, 8, 8), batch_size=1))
    root = captured.root
    assert root[0].weight is model[0].weight  # the model's own parameter object, read for its shape only
    assert root[1].running_mean is model[1].running_mean  # a leaf's buffers too: traced code never sees them
    assert captured.fakes is not None
    put = captured.fakes.fill(root[0])
    assert [type(t).__name__ for t in put] == ["FakeTensor", "FakeTensor"] and root[0].weight is put[0]
    assert model[0].weight is not put[0] and type(model[0].weight) is nn.Parameter


class ReadsSizes(nn.Module):
    """A size read by Python code after two layers a rule answers and one it does not (PReLU is dispatched)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.prelu = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.PReLU(4)
        self.fc = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.prelu(self.bn(self.conv(x)))
        if y.shape[-1] == 6:  # the trace's shape pass runs the three layers here
            y = y * 2
        return self.fc(y)


def test_the_trace_s_shape_pass_fakes_only_what_it_dispatches() -> None:
    model = ReadsSizes()
    captured = capture(model, DEFAULT_REGISTRY, model_inputs((3, 8, 8), batch_size=1))
    assert captured.guards  # the size read went through the trace's shape pass
    root, fakes = captured.root, captured.fakes
    assert fakes is not None
    for layer in (root.conv, root.bn, root.fc):  # answered by their rules: read for their shapes only
        assert all(fakes.made(tensor) is tensor for tensor in (*layer.parameters(), *layer.buffers()))
    assert type(fakes.made(root.prelu.weight)).__name__ == "FakeTensor"  # dispatched: its fake made first
    assert all(type(tensor) is nn.Parameter for tensor in model.parameters())


class Probe(nn.Module):
    """Records, while it is traced, what other threads would see of torch and math."""

    def __init__(self, seen: list[tuple[object, ...]]) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.seen = seen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import math as real_math  # the module object itself, not this function's view of it

        self.seen.append(
            (
                nn.Module.__call__,
                nn.Module.__getattr__,
                real_math.sqrt,
                torch.fx._symbolic_trace.is_fx_tracing(),
                torch.fx._symbolic_trace.CURRENT_PATCHER,
            )
        )
        return self.fc(x) / math.sqrt(x.shape[-1])


def test_tracing_patches_nothing_process_wide() -> None:
    seen: list[tuple[object, ...]] = []
    outside = (nn.Module.__call__, nn.Module.__getattr__, math.sqrt, False, None)
    model = Probe(seen)
    report = crawl_module(model, (4,))
    assert report.context.capture == "torch.fx" and report.totals.complete
    assert seen == [] and model.seen is seen  # the copy's list got the entries, not the model's
    captured = capture(model, DEFAULT_REGISTRY, model_inputs((4,), batch_size=1))
    assert captured.root.seen == [outside]
    assert any(node.target is math.sqrt for node in captured.graph.nodes)  # recorded as one call


def _convnet() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))


REPARAMETRIZATIONS = {
    "weight_norm": nn.utils.parametrizations.weight_norm,
    "spectral_norm": nn.utils.parametrizations.spectral_norm,
    "legacy_weight_norm": nn.utils.weight_norm,
    "legacy_spectral_norm": nn.utils.spectral_norm,
    "l1_pruning": lambda module: nn.utils.prune.l1_unstructured(module, "weight", 0.3),
}


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("name", list(REPARAMETRIZATIONS))
def test_reparametrized_layers_count_as_the_plain_layers(name: str, training: bool) -> None:
    model = _convnet()
    for layer in (model[0], model[3]):
        REPARAMETRIZATIONS[name](layer)
    model.train(training)
    before = snapshot(model)
    report = crawl_module(model, (3, 8, 8), batch_size=2)
    assert_same(before, snapshot(model))  # spectral norm's power iteration ran on the copy only
    plain = crawl_module(_convnet().train(training), (3, 8, 8), batch_size=2)
    assert report.context.capture == "torch.fx" and report.totals.complete and not report.diagnostics
    assert (report.totals.macs, report.totals.flops) == (plain.totals.macs, plain.totals.flops)
    assert report.totals.params == sum(p.numel() for p in model.parameters())


class _Constants(nn.Module):
    """A tensor built in ``forward`` from constants, and a view of a tensor attribute the model holds."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.table = torch.ones(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) @ torch.eye(8) + self.table[:2]


def test_tensors_the_forward_builds_from_constants_are_named_by_the_capture() -> None:
    """``torch.eye(8)`` and ``self.table[:2]`` run while tracing and become constants of the graph; the
    capture names the first (every real call makes it anew), not the view of the model's table."""
    captured = capture(_Constants(), DEFAULT_REGISTRY, model_inputs((8,), batch_size=2))
    shapes = {
        node.target: tuple(getattr(captured.root, str(node.target)).shape)
        for node in captured.graph.nodes
        if node.op == "get_attr"
    }
    assert sorted(shapes.values()) == [(2, 8), (8, 8)]
    assert [shapes[target] for target in captured.constants] == [(8, 8)]


class _Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x)) + x.mean()


class _Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_Inner() for _ in range(3))
        self.head = nn.Sequential(nn.Linear(8, 4), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x) * 2
        return self.head(x).softmax(-1)


@pytest.mark.parametrize("min_share", [0, 1])
def test_stacks_read_through_running_module_calls_are_the_full_walks(
    monkeypatch: pytest.MonkeyPatch, min_share: float
) -> None:
    """Every stack the tracer takes (nodes' stack traces, block reuse's call sites) walked up to the
    nearest running module call and completed from its kept callers equals a walk of every frame."""
    seen = []
    kept = trace_module._Tracer._walk

    def both(
        tracer: trace_module._Tracer, frame: object, users: list | None = None
    ) -> tuple[tuple[object, ...] | None, tuple[object, ...]]:
        above, below = kept(tracer, frame, users)
        fast = below if above is None else above + below
        stop = tracer._entry[0] if tracer._entry is not None else None
        seen.append((fast, trace_module._frames(frame, stop, tracer._codes)))
        return above, below

    monkeypatch.setattr(trace_module._Tracer, "_walk", both)
    captured = capture(_Outer(), DEFAULT_REGISTRY, model_inputs((8,), batch_size=2), min_share=min_share)
    assert bool(captured.replayed) is (min_share == 0)
    assert len(seen) > 20
    assert all(fast == full for fast, full in seen)


class _Lines(nn.Module):
    """Ops made from several lines of one function, one of them in a loop, and one helper called from two lines:
    the same code object at different instruction offsets."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(x)  # line +1
        for _ in range(2):
            y = y + x  # line +3, twice
        y = self.helper(y)  # line +4
        return self.helper(y * 2)  # line +5

    @staticmethod
    def helper(y: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(y)  # the helper's line


def test_each_node_s_stack_names_the_line_that_made_it() -> None:
    """The stack walks read each frame's line by (code, instruction offset), once per trace: every node's stack
    trace names the line of its own call in each frame, a loop's line every time, a helper called from two lines
    each caller's line (a line cached by code alone, or by a stale offset, would give one line to all)."""
    import inspect

    start = inspect.getsourcelines(_Lines.forward)[1]
    helper = inspect.getsourcelines(_Lines.helper)[1] + 2
    graph = capture(_Lines(), DEFAULT_REGISTRY, model_inputs((4,), batch_size=2)).graph
    here = f'File "{__file__}", line '
    lines = {
        node.name: [int(entry.split(here)[1].split(",")[0]) for entry in node.stack_trace.split("\n") if here in entry]
        for node in graph.nodes
        if node.op == "call_function"
    }
    assert lines == {
        "relu": [start + 1],
        "add": [start + 3],
        "add_1": [start + 3],
        "sigmoid": [start + 4, helper],
        "mul": [start + 5],
        "sigmoid_1": [start + 5, helper],
    }, lines


def test_user_frames_are_what_fx_s_filter_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack trace filter on plain frames keeps what fx's ``Tracer._filter_traceback_frames`` keeps
    of ``FrameSummary`` objects: on every stack of a capture (nested modules, functional calls, a block
    replayed), on a stack without a ``forward`` frame and on one passing through fx's own files."""
    import traceback

    from torch.fx.experimental.symbolic_shapes import uninteresting_files

    stacks = []
    kept = trace_module.user_frames

    def recorded(stack: Any) -> Any:
        stacks.append(tuple(stack))
        return kept(stack)

    monkeypatch.setattr(trace_module, "user_frames", recorded)
    capture(_Outer(), DEFAULT_REGISTRY, model_inputs((8,), batch_size=2), min_share=0)
    assert len(stacks) > 5
    fx_file = next(iter(sorted(uninteresting_files() - {"<string>"})))
    stacks += [
        (("user.py", 1, "main"), ("user.py", 2, "helper")),  # no forward: nothing kept
        (("user.py", 1, "main"), ("model.py", 5, "forward"), (fx_file, 9, "wrapper"), ("model.py", 7, "forward")),
        (("model.py", 5, "forward"), ("<string>", 1, "forward"), ("model.py", 6, "block")),
    ]
    tracer = trace_module._Tracer.__new__(trace_module._Tracer)
    for stack in stacks:
        summary = traceback.StackSummary.from_list([traceback.FrameSummary(*f, lookup_line=False) for f in stack])
        expected = [(f.filename, f.lineno, f.name) for f in tracer._filter_traceback_frames(summary)]
        assert kept(stack) == expected, stack


def test_a_plain_node_is_the_node_fx_makes() -> None:
    """``plain_node`` (the tracer's and the recorder's node, made without fx's argument scan) equals
    ``Graph.create_node``'s: name, op, target, arguments (containers made immutable alike), users
    and inputs, over plain values, nested containers of nodes, keyword arguments, a repeated target
    (fx's numbered names) and no arguments at all."""
    import operator

    from torch import fx

    from torchscan.graph.trace import plain_node

    none: Any = lambda x, y: {}  # noqa: E731
    calls: list[tuple[str, Any, Any, Any]] = [
        ("call_function", torch.relu, lambda x, y: (x,), none),
        ("call_function", operator.getitem, lambda x, y: (x, slice(1, None, 2)), none),
        ("call_function", torch.cat, lambda x, y: ([x, y, x],), lambda x, y: {"dim": -1}),
        ("call_method", "view", lambda x, y: (x, (2, -1)), none),
        ("call_function", torch.add, lambda x, y: (x,), lambda x, y: {"other": y, "alpha": 2}),
        ("call_function", torch.stack, lambda x, y: ({"a": (x, [y])},), none),
        ("call_module", "layer.conv", lambda x, y: (x,), none),
        ("get_attr", "weight", lambda x, y: (), none),
        ("call_function", torch.relu, lambda x, y: (y,), none),
    ]

    def build(make: Any) -> fx.Graph:
        graph = fx.Graph()
        x, y = graph.placeholder("x"), graph.placeholder("y")
        for kind, target, args, kwargs in calls:
            make(graph, kind, target, args(x, y), kwargs(x, y))
        return graph

    def fx_made(graph: fx.Graph, kind: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        graph.create_node(kind, target, args, kwargs)

    def plain(graph: fx.Graph, kind: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        plain_node(graph, kind, target, args, kwargs)

    def described(graph: fx.Graph) -> list[tuple[Any, ...]]:
        def spell(value: Any) -> Any:
            if isinstance(value, fx.Node):
                return ("node", value.name)
            if isinstance(value, (tuple, list)):
                return (type(value).__name__, tuple(spell(item) for item in value))
            if isinstance(value, dict):
                return (type(value).__name__, tuple((key, spell(item)) for key, item in value.items()))
            return value

        return [
            (
                node.name,
                node.op,
                node.target,
                spell(node.args),
                spell(node.kwargs),
                tuple(user.name for user in node.users),
                tuple(source.name for source in node.all_input_nodes),
            )
            for node in graph.nodes
        ]

    assert described(build(plain)) == described(build(fx_made))


class _Unpacks(nn.Module):
    """``a, b = proxy`` (two values) and, compiled from source, an unpacking of 300 values: its count
    needs an ``EXTENDED_ARG`` before the ``UNPACK_SEQUENCE`` (the low byte alone says 44)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b + _many(y).unsqueeze(1)


_names = ", ".join(f"v{index}" for index in range(300))
_scope: dict[str, Any] = {}
exec(f"def _many(y):\n    {_names} = y.unbind(1)\n    return v0 + v299\n", _scope)
_many = _scope["_many"]


def test_a_proxy_unpacked_by_an_assignment_gives_as_many_items() -> None:
    """Each unpacking gives one ``getitem`` per target (300 for the second), the trace needs no value:
    a torch.fx capture with its mul and two adds (one FLOP per element of (2, 1) or (2,) each)."""
    report = crawl_module(_Unpacks(), [(2,), (300,)], batch_size=2)
    assert report.context.capture == "torch.fx"
    assert report.context.output_shapes == ((2, 1),)
    assert report.totals.flops == 3 * 2
    getitems = [name for name in report.records if report.records.nodes[name]["record"].type_name == "getitem"]
    assert len(getitems) == 2 + 300


class ChecksRank(nn.Module):
    """A normalization layer checking its input's rank as timm's do, and branching on it."""

    def __init__(self) -> None:
        super().__init__()
        self.bn, self.fc = nn.BatchNorm1d(4), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch._assert(x.ndim in (2, 3), f"expected 2D or 3D input (got {x.ndim}D input)")
        torch._assert(x.dim() == x.ndim, "dim() is the rank too")
        y = self.bn(x)
        if y.ndim == 3:  # a sequence: pooled over its last dim
            y = y.mean(-1)
        return self.fc(y)


def test_a_rank_read_by_python_code_is_an_int_of_the_trace_not_a_node() -> None:
    model = ChecksRank().eval()
    for shape, ranks in (((4,), [2, 2, 2, 2, 2]), ((4, 5), [3, 3, 3, 3, 3])):
        captured = capture(model, DEFAULT_REGISTRY, model_inputs(shape, batch_size=2))
        called = {getattr(node.target, "__name__", "") for node in captured.graph.nodes if node.op == "call_function"}
        assert not called & {"getattr", "eq", "contains", "_assert"}  # the check ran on ints: no node for it
        assert "dim" not in {node.target for node in captured.graph.nodes if node.op == "call_method"}
        assert [(guard.kind, guard.value) for guard in captured.guards] == [("ndim", rank) for rank in ranks]
        report = crawl_module(model, shape, batch_size=2)
        assert "shape-specialized" not in {note.code for note in report.diagnostics}  # ranks are no sizes
        assert report.context.output_shapes == ((2, 2),)
        assert ("mean" in {record.type_name for _, record in report.records.nodes(data="record")}) is (len(shape) == 2)
    with pytest.raises(Exception, match="expected 2D or 3D input"):  # the check still runs, on the trace's ints
        capture(model, DEFAULT_REGISTRY, model_inputs((4, 5, 6), batch_size=2))


class ReadsDtypeAndDevice(nn.Module):
    """EfficientViT's and Llama's patterns: an autocast region keyed by the input's device type, a mask
    filled with its dtype's smallest value, a cast to a parameter's dtype — values fx's attribute proxy
    cannot stand for (``torch.autocast`` rejects it, ``torch.finfo`` too)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = self.fc(x.to(self.fc.weight.dtype))
        floor = torch.finfo(y.dtype).min
        if y.dtype == torch.float64:  # a branch on the dtype: fixed where the graph is
            y = y.abs()
        return y.clamp(min=floor).to(x.dtype)


def test_a_dtype_or_device_read_by_python_code_is_a_value_of_the_trace_not_a_node() -> None:
    model = ReadsDtypeAndDevice().eval()
    captured = capture(model, DEFAULT_REGISTRY, model_inputs((4,), batch_size=2))
    attributes = [node.args[1] for node in captured.graph.nodes if node.target is getattr]
    assert attributes == []  # fx made a ``getattr`` node per read (and failed at ``autocast``)
    # the input's device and dtype, the linear's output dtype (twice); the weight's is the model's: no guard
    assert [(guard.kind, guard.value) for guard in captured.guards] == [
        ("device", torch.device("cpu")),
        ("dtype", torch.float32),
        ("dtype", torch.float32),
        ("dtype", torch.float32),
    ]
    assert "get_attr" not in {node.op for node in captured.graph.nodes}  # the weight read for its dtype only
    report = crawl_module(model, (4,), batch_size=2)
    assert report.context.capture == "torch.fx" and not report.diagnostics
    types = [record.type_name for _, record in report.records.nodes(data="record") if record.op != "placeholder"]
    assert types == ["to", "Linear", "clamp", "to", "output"]
    double = crawl_module(model.double(), (4,), batch_size=2, dtype=torch.float64)
    assert "abs" in {record.type_name for _, record in double.records.nodes(data="record")}


class BuildsOnItsDevice(nn.Module):
    """A positional table built on the input's device from constants alone (xcit's and edgenext's pattern)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        table = torch.arange(8, device=x.device, dtype=x.dtype) / 8
        return self.fc(x + table)


def test_a_device_read_on_the_cpu_or_meta_is_a_constant_of_the_trace() -> None:
    """On the CPU and on meta, the table is a constant (made as ``torch.arange(8)`` would be): the graph
    adds it to the input; a meta model's constant is a meta tensor, no data made."""
    for device in ("cpu", "meta"):
        model = BuildsOnItsDevice().to(device)
        captured = capture(model, DEFAULT_REGISTRY, model_inputs((8,), batch_size=2))
        assert ("device", torch.device(device)) in {(guard.kind, guard.value) for guard in captured.guards}
        assert "arange" not in {getattr(node.target, "__name__", "") for node in captured.graph.nodes}
        constants = [getattr(captured.root, name) for name in captured.constants]
        assert [(tuple(t.shape), t.device.type) for t in constants] == [((8,), device)]
        report = crawl_module(model, (8,), batch_size=2)
        assert report.context.capture == "torch.fx" and report.totals.macs == 2 * 8 * 8


@pytest.mark.cuda
def test_a_device_read_on_an_accelerator_builds_nothing_there() -> None:
    """On a GPU, a constant built on ``x.device`` would run a real kernel and hold device memory: the
    read stays fx's attribute node, the table a node of the graph, and the analysis allocates nothing."""
    model = BuildsOnItsDevice().cuda()
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    captured = capture(model, DEFAULT_REGISTRY, model_inputs((8,), batch_size=2))
    assert "arange" in {getattr(node.target, "__name__", "") for node in captured.graph.nodes}
    assert not captured.constants and "device" not in {guard.kind for guard in captured.guards}
    report = crawl_module(model, (8,), batch_size=2)
    assert report.totals.macs == 2 * 8 * 8
    del captured
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == before


class CallsTorchFunctions(nn.Module):
    """Torch functions called on proxies: plain, with keywords, a parameter among the arguments, a list
    of proxies, a tuple of them given as a keyword."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(x)
        y = torch.nn.functional.layer_norm(y, (4,), weight=self.norm.weight, eps=1e-3)
        y = torch.cat([x, y], dim=-1)
        z = torch.stack(tensors=(x, y[:, :4]), dim=0)
        return torch.flatten(z, 1).sum(-1, keepdim=True)


def test_torch_functions_on_proxies_make_fx_s_own_nodes() -> None:
    """The tracer's torch-function path (the tracer found among the arguments) makes the nodes fx's
    ``symbolic_trace`` makes: the same ops, targets, names and arguments."""
    model = CallsTorchFunctions().eval()
    ours = capture(model, DEFAULT_REGISTRY, model_inputs((4,), batch_size=2)).graph
    theirs = torch.fx.symbolic_trace(model).graph

    def described(graph: torch.fx.Graph) -> list[tuple[Any, ...]]:
        def name(node: torch.fx.Node) -> str:  # fx names the input after the forward's argument
            return "input" if node.op == "placeholder" else node.name

        return [
            (node.op, node.target, node.name, str(torch.fx.node.map_arg((node.args, node.kwargs), name)))
            for node in graph.nodes
            if node.op != "placeholder"
        ]

    assert described(ours) == described(theirs)


class _Spellings(nn.Module):
    """One block calling each op several times under several spellings (a function, an operator, its dunder,
    a tensor method, an in-place method): fx names every node after its target, then numbers repeats."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.add(x, x) + x
        y = y.__add__(1).relu().relu()
        y = torch.nn.functional.relu(y * 2) * y
        return y[:, :2].sum(-1, keepdim=True).add_(1)


_PATH_PARTS = st.sampled_from(
    ["layer", "conv", "0", "12", "_x", "__init__", "Block", "bN", "input", "list", "a_1", "q_k_v", "é", "a-b", ""]
)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.lists(_PATH_PARTS, min_size=1, max_size=4).map(".".join), min_size=1, max_size=12))
def test_a_module_node_s_name_candidate_gives_fx_s_names(targets: list[str]) -> None:
    """Nodes of module paths and attributes named from :func:`path_candidate` get the names fx derives
    itself (``_snake_case``, illegal characters, a leading digit, Python's reserved names, numbered
    repeats), whatever the path: where the shortcut is not certain it gives None and fx derives it."""
    from torch import fx

    from torchscan.graph.trace import path_candidate

    ours, theirs = fx.Graph(), fx.Graph()
    for index, target in enumerate(targets):
        kind = "call_module" if index % 2 else "get_attr"
        made = ours.create_node(kind, target, name=path_candidate(target))
        assert made.name == theirs.create_node(kind, target).name
    assert path_candidate("features.1.block.0") == "features_1_block_0"
    assert path_candidate("layer1.0.downsample") == "layer1_0_downsample"
    assert path_candidate("Block.conv") is None


@pytest.mark.parametrize("min_share", [0.0, 1.1])  # every repeated block replayed; none
def test_node_names_are_fx_s_for_repeated_targets_and_replayed_blocks(min_share: float) -> None:
    """The tracer hands fx a node's name candidate it remembered per target (in traced and replayed blocks
    alike): fx makes the names its own ``symbolic_trace`` makes."""
    model = nn.Sequential(*(_Spellings() for _ in range(3))).eval()
    ours = capture(model, DEFAULT_REGISTRY, model_inputs((4,), batch_size=2), min_share=min_share).graph
    theirs = torch.fx.symbolic_trace(model).graph
    assert [node.name for node in ours.nodes][1:] == [node.name for node in theirs.nodes][1:]  # the input aside
    assert len({node.name for node in ours.nodes}) == len(ours.nodes) > 30


class _Caching(nn.Module):
    """Keeps a table computed from the input's size in a buffer (timm's ConViT does), read back at once."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table", torch.zeros(1, 1), persistent=False)
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        if self.table.shape[1] != n:
            table = torch.zeros(1, n)
            table[:, 0] = 1.0
            self.table = table
        return self.fc(x) * self.table.expand(x.shape[0], -1)


def test_a_value_of_the_trace_stored_in_a_buffer_is_read_back_and_the_model_keeps_its_own() -> None:
    model = _Caching()
    report = crawl_module(model, (4,), batch_size=3)
    assert report.context.capture == "torch.fx"
    assert report.totals.flops == 2 * 3 * 4 * 4 + 3 * 4  # the linear's products and the product with the table
    assert tuple(model.table.shape) == (1, 1) and "setitem" in report.records


class _PassingThrough(nn.Module):
    """Calls that return their argument itself: a shortcut ``Identity`` on the block's input, a ``drop_path``
    after the block's ops, a dropout, an ``Identity`` called twice and one as the block's last call."""

    def __init__(self, channels: int = 4, p: float = 0.1) -> None:
        super().__init__()
        self.shortcut, self.drop_path = nn.Identity(), nn.Identity()
        self.twice, self.last = nn.Identity(), nn.Identity()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(x)
        y = self.drop(torch.relu(self.conv(x)))
        y = self.twice(self.twice(y))
        return self.last(self.drop_path(y) + shortcut)


def _kept_formulas() -> dict[Any, Any]:
    """The registry's own formulas for the calls that return their argument: given as overrides, they make the
    trace keep a node for each call (:meth:`Registry.with_overrides` drops ``returns_input`` for them)."""
    return {kind: DEFAULT_REGISTRY.lookup(kind) for kind in (nn.Identity, nn.Dropout)}


def test_calls_returning_their_argument_make_no_node() -> None:
    model = nn.Sequential(_PassingThrough(), _PassingThrough()).eval()
    captured = capture(model, DEFAULT_REGISTRY, model_inputs((4, 8, 8), batch_size=2))
    called = [node.target for node in captured.graph.nodes if node.op == "call_module"]
    assert called == ["0.conv", "1.conv"]
    assert captured.module_outputs["0.shortcut"] == ("input_0",) and len(captured.module_outputs["0.twice"]) == 2
    assert [place for _, place in captured.passed_through["0.twice"]] == [1, 2]  # after the dropout's, in order
    training = capture(model.train(), DEFAULT_REGISTRY, model_inputs((4, 8, 8), batch_size=2))
    assert [node.target for node in training.graph.nodes if node.op == "call_module"] == [
        "0.conv",
        "0.drop",
        "1.conv",
        "1.drop",
    ]  # a dropout that drops is an op
    unchanged = nn.Sequential(_PassingThrough(p=0.0)).train()  # p = 0: it returns its input in training too
    captured = capture(unchanged, DEFAULT_REGISTRY, model_inputs((4, 8, 8), batch_size=2))
    assert [node.target for node in captured.graph.nodes if node.op == "call_module"] == ["0.conv"]
    kept = capture(model.eval(), DEFAULT_REGISTRY.with_overrides(_kept_formulas()), model_inputs((4, 8, 8)))
    assert sum(node.op == "call_module" for node in kept.graph.nodes) == 14  # a user's formula is called


@given(
    st.lists(st.sampled_from(["conv", "relu", "identity", "dropout", "shortcut", "block"]), min_size=1, max_size=8),
    st.booleans(),
)
@example(["conv", "block", "block", "identity", "identity", "block"], False)  # a replay's calls placed after others
@settings(max_examples=examples(20), deadline=None)
def test_a_report_without_nodes_for_calls_returning_their_argument_is_the_report_with_them(
    layers: list[str], training: bool
) -> None:
    """Rows (names, order, calls, shapes, output bytes), totals, memory and receptive fields equal whether the calls
    that return their argument are nodes or not, wherever they are: first, last, twice in a row, on the input, in
    repeated blocks (replayed: block reuse wherever a block repeats, whatever share of the model it skips)."""
    made = {
        "conv": lambda: nn.Conv2d(4, 4, 3, padding=1),
        "relu": nn.ReLU,
        "identity": nn.Identity,
        "dropout": lambda: nn.Dropout(0.0 if training else 0.2),
        "shortcut": _Shortcut,
        "block": _PassingThrough,
    }
    model = nn.Sequential(*(made[layer]() for layer in layers)).train(training)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(capture_module, "capture", functools.partial(capture, min_share=0))
        elided = crawl_module(model, (4, 8, 8), receptive_field=True)
        kept = crawl_module(model, (4, 8, 8), receptive_field=True, formulas=_kept_formulas())
    assert elided.to_dict() == kept.to_dict()
    assert elided.records.number_of_nodes() <= kept.records.number_of_nodes()


class _Shortcut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.skip, self.relu = nn.Identity(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x) + self.skip(x)


class _Reparametrized(nn.Module):
    """A VAE's sampling step: ``Normal(mu, sigma).rsample()`` (the distribution validates its parameters, ``if not
    torch._is_all_true(constraint.check(value)): raise``; asked here, whatever the process's default, which a
    library may have turned off) and a categorical draw."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, log_sigma = self.encode(x).chunk(2, -1)
        z = torch.distributions.Normal(mu, log_sigma.exp(), validate_args=True).rsample()
        picked = torch.distributions.Categorical(logits=z, validate_args=True).sample()
        return z + picked.unsqueeze(-1)


def test_checks_of_tensor_data_hold_in_the_trace() -> None:
    """A value of tensor data read as a bool by torch's own checks (``_is_all_true``) is taken as true: the model is
    traced (was a real forward: fx refused the branch), its checks counted as ``all`` over their elements."""
    report = crawl_module(_Reparametrized(), (8,))
    assert report.totals.complete and report.context.capture == "torch.fx"
    assert not {"capture-fallback", "real-forward"} & {note.code for note in report.diagnostics}
    records = [report.records.nodes[name]["record"] for name in report.records]
    checks = [record for record in records if record.type_name == "_is_all_true"]
    costs = [report.records.nodes[record.name]["cost"] for record in checks]
    assert checks and None not in costs and sum(cost.flops for cost in costs) > 0


def test_a_branch_on_tensor_data_is_still_refused() -> None:
    """Only torch's checks hold: ``if x.sum() > 0`` in the model's own code is decided by values (a real forward)."""

    class Branching(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.exp() if torch._is_any_true(x > 0) else x

    report = crawl_module(Branching(), (8,))
    assert report.context.capture != "torch.fx"


class _Cached(nn.Module):
    """A key/value cache kept in a plain tensor attribute the forward rebinds (``self.cache = self.cache.to(x)``, as
    Meta's Llama reference does) and writes into, then reads back."""

    def __init__(self, rebind: bool) -> None:
        super().__init__()
        self.rebind = rebind
        self.project = nn.Linear(8, 8)
        self.cache = torch.zeros(2, 16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rebind:
            self.cache = self.cache.to(x)
        n = x.shape[1]
        self.cache[: x.shape[0], :n] = self.project(x)
        return self.cache[: x.shape[0], :n].softmax(-1) * x


def test_an_attribute_the_forward_rebinds_reads_as_found() -> None:
    """Its ``get_attr`` node stands for the tensor the trace found there: the shape pass (during the trace, after it,
    and at a sweep's other inputs) and the memory recordings read that one, not the trace's value the copy holds
    afterwards (the shape pass read a proxy there: a RecursionError, and a recorded forward instead of the graph)."""
    report = crawl_module(_Cached(rebind=True), (5, 8))
    plain = crawl_module(_Cached(rebind=False), (5, 8))
    assert report.context.capture == "torch.fx"
    assert not {"capture-fallback", "real-forward"} & {note.code for note in report.diagnostics}
    assert report.totals == plain.totals
    assert report.to_dict()["memory"] == plain.to_dict()["memory"]
    shapes = [(5, 8), (7, 8)]
    fresh = [crawl_module(_Cached(rebind=True), shape).to_dict() for shape in shapes]
    assert [item.to_dict() for item in sweep(_Cached(rebind=True), shapes)] == fresh


class _Written(nn.Module):
    """A traced value written into a tensor of the model's (a buffer, or a plain attribute), then read back by name
    and computed on alone (a softmax of the cached rows): every op on it is the model's, none a constant."""

    def __init__(self, buffer: bool) -> None:
        super().__init__()
        self.project = nn.Linear(8, 8)
        if buffer:
            self.register_buffer("cache", torch.zeros(2, 16, 8), persistent=False)
        else:
            self.cache = torch.zeros(2, 16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        self.cache[: x.shape[0], :n] = self.project(x)
        return self.cache[: x.shape[0], :n].softmax(-1) * x


@pytest.mark.parametrize("buffer", [True, False])
def test_a_tensor_written_with_a_traced_value_stands_for_the_write(buffer: bool) -> None:
    """Read again by name, the tensor is the write's node: the softmax of the cached rows is counted (1·5·8 rows of 8:
    190 FLOPs) and reads the write, where it was computed once while tracing, a constant of the graph (a
    ``folded-constants`` diagnostic and 190 FLOPs missing); the report equals the one of a rebinding forward's."""
    report = crawl_module(_Written(buffer), (5, 8))
    assert not report.diagnostics
    rebinding = crawl_module(_Cached(rebind=True), (5, 8)).totals
    assert (report.totals.flops, report.totals.macs, report.totals.dmas) == (
        rebinding.flops,
        rebinding.macs,
        rebinding.dmas,
    )
    records = report.records
    softmax = next(name for name in records if records.nodes[name]["record"].type_name == "softmax")
    assert records.nodes[softmax]["cost"].flops == 190
    assert "setitem" in nx.ancestors(records, softmax)


class _KeyValueCache(nn.Module):
    """gpt-fast's cache: its buffers bound to local names, written at the given positions, returned and attended to."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv, self.out = nn.Linear(32, 96), nn.Linear(32, 32)
        self.register_buffer("k_cache", torch.zeros(1, 4, 16, 8))
        self.register_buffer("v_cache", torch.zeros(1, 4, 16, 8))

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q, k, v = (t.view(b, s, 4, 8).transpose(1, 2) for t in self.qkv(x).split(32, -1))
        k_out, v_out = self.k_cache, self.v_cache
        k_out[:, :, positions] = k
        v_out[:, :, positions] = v
        y = torch.nn.functional.scaled_dot_product_attention(q, k_out, v_out)
        return self.out(y.transpose(1, 2).contiguous().view(b, s, 32))


def test_a_cache_bound_to_a_local_name_reads_its_writes() -> None:
    """The attention reads the two writes (its data flow), not the buffers as they were."""
    report = crawl_module(_KeyValueCache(), args=(torch.randn(1, 5, 32), torch.arange(5)))
    records = report.records
    attention = next(n for n in records if records.nodes[n]["record"].type_name == "scaled_dot_product_attention")
    assert {"setitem", "setitem_1"} <= set(records.predecessors(attention))
