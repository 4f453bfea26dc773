"""Block reuse in the tracer: a replayed block gives the graph its own trace gives, and blocks that
differ (a stride, a dilation, a scale of another type, a flag, a mode) are never merged."""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import fx, nn

import torchscan.graph.capture as capture_module
from tests.profiles import examples
from torchscan import crawl_module
from torchscan.graph.reuse import MIN_SHARE, _replayable
from torchscan.graph.trace import Capture, capture
from torchscan.inputs import model_inputs
from torchscan.ops import DEFAULT_REGISTRY


def _facts(captured: Capture) -> dict[str, Any]:
    """Everything the passes read of a capture: every node (name, op, target, arguments by name,
    type, meta), the module outputs and the constants (their shapes, strides, dtypes and which
    tensor each views)."""
    nodes = []
    for node in captured.graph.nodes:
        meta = dict(node.meta)
        stack = meta.pop("nn_module_stack", None)
        nodes.append(
            (
                node.name,
                node.op,
                node.target if isinstance(node.target, str) else repr(node.target),
                repr(fx.node.map_arg(node.args, lambda used: f"%{used.name}")),
                repr(fx.node.map_arg(dict(node.kwargs), lambda used: f"%{used.name}")),
                node.type,
                None if stack is None else (type(stack), tuple(stack.items())),
                meta,
            )
        )
    attributes = {}
    for node in captured.graph.nodes:
        if node.op == "get_attr" and node.target.startswith("_tensor_constant"):
            tensor = getattr(captured.root, node.target)
            attributes[node.target] = (tuple(tensor.shape), tensor.stride(), tensor.dtype, tensor._base is not None)
    return {
        "nodes": nodes,
        "outputs": dict(captured.module_outputs),
        "passed_through": dict(captured.passed_through),
        "constants": sorted(captured.constants),
        "attributes": attributes,
    }


def _both(model: nn.Module, shape: tuple[int, ...], **kwargs: Any) -> tuple[Capture, Capture]:
    """The capture with every block traced, and with reuse wherever a block repeats (no share asked)."""
    inputs = model_inputs(shape, **{"batch_size": 2, **kwargs})
    return capture(model, DEFAULT_REGISTRY, inputs, reuse=False), capture(model, DEFAULT_REGISTRY, inputs, min_share=0)


def _assert_same_graph(plain: Capture, reused: Capture) -> None:
    one, other = _facts(plain), _facts(reused)
    assert len(one["nodes"]) == len(other["nodes"])
    for left, right in zip(one["nodes"], other["nodes"], strict=True):
        assert left == right
    assert one == other
    assert plain.replayed == ()


@contextlib.contextmanager
def _without_reuse(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(capture_module, "capture", functools.partial(capture, reuse=False))
    yield
    monkeypatch.undo()


def _reports_equal(model: nn.Module, shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> None:
    with monkeypatch.context() as patched:  # reuse wherever a block repeats, whatever the share
        patched.setattr(capture_module, "capture", functools.partial(capture, min_share=0))
        reused = crawl_module(model, shape, **kwargs).to_dict()
    with _without_reuse(monkeypatch):
        plain = crawl_module(model, shape, **kwargs).to_dict()
    assert reused == plain


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("resnet50", (3, 64, 64)),
        ("mobilenet_v3_small", (3, 64, 64)),
        ("efficientnet_b0", (3, 64, 64)),
        ("vit_b_16", (3, 224, 224)),  # asserts whose message formats a proxy ("got Proxy(getattr_4)")
        ("swin_t", (3, 64, 64)),  # fx.wrap-ed functions (``is_wrapped`` node meta), masks as arguments
    ],
)
@pytest.mark.parametrize("training", [False, True])
def test_torchvision_models_get_the_graph_a_full_trace_gives(name: str, shape: tuple[int, ...], training: bool) -> None:
    model = torchvision.models.get_model(name, weights=None).train(training)
    plain, reused = _both(model, shape)
    _assert_same_graph(plain, reused)
    assert reused.replayed  # every one of them repeats a block


@pytest.mark.parametrize("name", ["resnet18", "vit_b_16"])
def test_torchvision_reports_equal_full_analyses(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = torchvision.models.get_model(name, weights=None).eval()
    _reports_equal(model, (3, 224, 224), monkeypatch)


class Configured(nn.Module):
    """A block whose graph depends on its configuration values only (no child differs)."""

    def __init__(
        self,
        stride: int = 1,
        dilation: int = 1,
        scale: float = 1.0,
        flag: bool = True,
        mode: str = "add",
        act: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 8, 3, 3))
        self.stride, self.dilation, self.scale, self.flag, self.mode = stride, dilation, scale, flag, mode
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, stride=self.stride, padding=self.dilation, dilation=self.dilation)
        y = self.act(y) * self.scale
        if self.flag:
            y = y + 1
        if self.mode == "cat":
            y = torch.cat([y, y], dim=1)[:, :8]
        return y


CONFIGS: list[dict[str, Any]] = [
    {},
    {"stride": 2},
    {"dilation": 2},
    {"scale": 2.0},
    {"scale": 1},  # an int where the others hold a float: another graph argument
    {"flag": False},
    {"flag": 1},  # an int where the others hold a bool
    {"mode": "cat"},
    {"act": nn.GELU},
]


def test_blocks_differing_in_one_config_value_are_not_merged() -> None:
    model = nn.Sequential(*(Configured(**config) for config in [*CONFIGS, {}, {"dilation": 2}])).eval()
    plain, reused = _both(model, (8, 32, 32))
    _assert_same_graph(plain, reused)
    assert reused.replayed == (("9", "0"), ("10", "2"))  # only the two repeats


@given(st.lists(st.integers(0, len(CONFIGS) - 1), min_size=2, max_size=7), st.booleans())
@settings(max_examples=examples(15), deadline=None)
def test_random_chains_of_configured_blocks(choices: list[int], training: bool) -> None:
    model = nn.Sequential(*(Configured(**CONFIGS[choice]) for choice in choices)).train(training)
    plain, reused = _both(model, (8, 64, 64))
    _assert_same_graph(plain, reused)
    first = {}
    for position, choice in enumerate(choices):
        first.setdefault(choice, position)
    expected = tuple(
        (str(position), str(first[choice])) for position, choice in enumerate(choices) if first[choice] < position
    )
    assert reused.replayed == expected


class Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)

    def forward(self, x: torch.Tensor, scale: float | None = None) -> dict[str, torch.Tensor]:
        y = self.norm(self.fc(x))
        if scale is not None:
            y = y * scale
        return {"out": y, "skip": x}


class Outer(nn.Module):
    """Repeated blocks holding repeated blocks, one of them called twice (``path@1`` stack keys)."""

    def __init__(self) -> None:
        super().__init__()
        self.first = Inner()
        self.second = Inner()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        a = self.first(x)["out"]
        b = self.second(a, scale=0.5)["out"]
        c = self.first(b + y)["skip"]
        return c, [a, b]


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Outer() for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for position, block in enumerate(self.blocks):
            x, extra = block(x, x if position % 2 else x * 2)  # the same node twice, or two nodes
            outputs.extend(extra)
        return x + sum(outputs)


def test_nested_blocks_arguments_and_outputs_of_any_structure() -> None:
    plain, reused = _both(Nested(), (8,))
    _assert_same_graph(plain, reused)
    assert ("blocks.2", "blocks.0") in reused.replayed
    assert ("blocks.3", "blocks.1") in reused.replayed


class Counting(nn.Module):
    """A forward that changes the module's own state: each call's graph is its own."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fc(x) * self.calls


class Keeping(nn.Module):
    """A forward that keeps a proxy on the module."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last = self.fc(x)
        return self.last


class Appending(nn.Module):
    """A forward that appends to the list it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, found: list[torch.Tensor]) -> torch.Tensor:
        found.append(x)
        return self.fc(x)


class Calls(nn.Module):
    def __init__(self, cls: type[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(cls() for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            if isinstance(block, Appending):
                found: list[torch.Tensor] = []  # the same argument structure at every call
                x = block(x, found) + found[0]
            else:
                x = block(x)
        return x


@pytest.mark.parametrize("cls", [Counting, Keeping, Appending])
def test_a_forward_with_side_effects_is_never_replayed(cls: type[nn.Module]) -> None:
    plain, reused = _both(Calls(cls), (4,))
    _assert_same_graph(plain, reused)
    assert reused.replayed == ()


class Tally:
    """A plain object (not a module) every block holds: what one block's forward changes in it, the next reads."""

    def __init__(self) -> None:
        self.calls = 0
        self.seen: list[int] = []


class SharedState(nn.Module):
    """A block whose graph depends on a :class:`Tally` it shares with the others: ``count`` bumps an int in
    it, ``append`` appends to its list, ``read`` only reads it (as a layer reads a shared config)."""

    def __init__(self, tally: Tally, how: str) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.tally, self.how = tally, how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "count":
            self.tally.calls += 1
        elif self.how == "append":
            self.tally.seen.append(1)
        if (self.tally.calls + len(self.tally.seen)) % 2:
            return self.fc(x) * 2
        return torch.relu(self.fc(x))


class SharingBlocks(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        tally = Tally()
        self.blocks = nn.Sequential(*(SharedState(tally, how) for _ in range(4)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


@pytest.mark.parametrize("how", ["count", "append"])
def test_blocks_changing_an_object_they_share_are_never_replayed(how: str) -> None:
    plain, reused = _both(SharingBlocks(how), (4,))
    _assert_same_graph(plain, reused)  # relu and mul in turn, as a full trace makes them
    assert reused.replayed == ()


def test_blocks_reading_an_object_they_share_are_replayed() -> None:
    plain, reused = _both(SharingBlocks("read"), (4,))
    _assert_same_graph(plain, reused)
    assert len(reused.replayed) == 3


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight).relu()  # the parameter read by the traced code: a get_attr node


class Tied(nn.Module):
    """Blocks sharing one layer, and a parameter read before its block is called."""

    def __init__(self) -> None:
        super().__init__()
        shared = nn.Linear(4, 4)
        self.blocks = nn.ModuleList(nn.Sequential(shared, nn.ReLU()) for _ in range(2))
        self.free = nn.ModuleList(Functional() for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        x = x @ self.free[2].weight  # read before free.2 runs: its trace reuses this get_attr
        for block in self.free:
            x = block(x)
        return x


def test_shared_layers_and_parameters_read_before_the_block() -> None:
    plain, reused = _both(Tied(), (4,))
    _assert_same_graph(plain, reused)
    # blocks.1 holds blocks.0's layer: not keyable; free.2's weight was read before it ran: traced
    assert reused.replayed == (("free.1", "free.0"),)


class Rotary(nn.Module):
    """Tensors computed outside the graph from the block's own buffer (a view, and a new tensor)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("inv_freq", torch.arange(4.0))
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        view = self.inv_freq[None, :]  # runs on the buffer's fake: a view, made a root constant
        doubled = self.inv_freq * 2  # a new tensor
        return self.fc(x) * view + doubled


def test_constants_computed_from_a_block_tensor_view_the_replayed_block_tensor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = nn.Sequential(*(Rotary() for _ in range(3)))
    plain, reused = _both(model, (4,))
    _assert_same_graph(plain, reused)
    assert [path for path, _ in reused.replayed] == ["1", "2"]
    bases = [getattr(reused.root, f"_tensor_constant{n}")._base for n in (0, 2, 4)]
    assert all(base is not None for base in bases)
    assert len({id(base) for base in bases}) == 3  # each block's own buffer, as a trace of it gives
    _reports_equal(model, (4,), monkeypatch)


class Point(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor


class Pointing(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> Point:
        return Point(self.fc(x), x)


def test_an_output_of_another_structure_is_traced_each_time() -> None:
    model = nn.Sequential(*(Pointing() for _ in range(2)))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for block in self.blocks:
                x = block(x).x
            return x

    plain, reused = _both(Net(), (4,))
    _assert_same_graph(plain, reused)
    assert reused.replayed == ()


def test_a_model_with_repeated_blocks_reports_as_a_full_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    model = nn.Sequential(*(Configured(**config) for config in [{}, {}, {"stride": 2}, {}])).train()
    _reports_equal(model, (8, 32, 32), monkeypatch)
    _reports_equal(Nested(), (8,), monkeypatch)


class Reading(nn.Module):
    """A block reading a value its owner changes before each call, through a reference to the owner."""

    def __init__(self, owner: nn.Module) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.owner = [owner]  # held outside the tree (not a child)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * self.owner[0].scale


class Owner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = 1
        self.blocks = nn.ModuleList(Reading(self) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for position, block in enumerate(self.blocks):
            self.scale = position + 1
            x = block(x)
        return x


def test_a_block_holding_a_module_outside_its_tree_is_traced_each_time() -> None:
    plain, reused = _both(Owner(), (4,))
    _assert_same_graph(plain, reused)
    assert reused.replayed == ()


class Wrapping(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = Counting()  # counts its calls: its second call's graph depends on the first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


class CalledAgain(nn.Module):
    """Each wrapper's inner module is called again after the wrapper: by then its count is 1."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Wrapping() for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        for block in self.blocks:
            x = block.inner(x)
        return x


def test_a_block_whose_inner_module_changes_its_state_is_traced_each_time() -> None:
    plain, reused = _both(CalledAgain(), (4,))
    _assert_same_graph(plain, reused)
    assert reused.replayed == ()


def test_an_analysis_leaves_no_copy_of_its_blocks_to_the_collector() -> None:
    """The copy of the model is freed when the analysis returns (reference counts), not left in a
    reference cycle for the next collection of the user's process."""
    import gc

    model = nn.Sequential(*(Configured() for _ in range(4))).eval()
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        report = crawl_module(model, (8, 16, 16))
        alive = [found for found in gc.get_objects() if type(found) is Configured]
    finally:
        if enabled:
            gc.enable()
    assert report.to_dict()
    assert len(alive) == 4  # the model's own blocks only


class _Cropped(nn.Module):
    """A conv and a crop held as a tuple of slices (which Python 3.11 cannot hash) or of a list."""

    def __init__(self, index: tuple[Any, ...]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)[self.index]


def test_blocks_holding_unhashable_values_in_a_tuple_are_keyed_item_by_item(monkeypatch: pytest.MonkeyPatch) -> None:
    def crop() -> tuple[slice, ...]:  # equal values, new objects: keyed apart (by identity), never merged
        return (slice(None), slice(None), slice(1, None), slice(None, -1))

    shared = (Ellipsis, slice(None, 8), [0])  # one object held by two blocks: the same key, replayed
    model = nn.Sequential(_Cropped(crop()), _Cropped(crop()), _Cropped(shared), _Cropped(shared)).eval()
    plain, reused = _both(model, (4, 32, 32))
    _assert_same_graph(plain, reused)
    assert reused.replayed == (("3", "2"),)
    assert crawl_module(model, (4, 32, 32)).context.capture == "torch.fx"
    _reports_equal(model, (4, 32, 32), monkeypatch)


class _Scaled(nn.Module):
    """A conv whose output is scaled and shifted by the items of a tuple attribute (graph constants)."""

    def __init__(self, scale: tuple[Any, ...]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.scale[0] + self.scale[1]


@pytest.mark.parametrize(
    ("first", "second"),
    [((1, 1), (1.0, 1.0)), ((1, 2), (True, 2)), ((0.0, 1), (-0.0, 1)), ((2, (1,)), (2, (1.0,)))],
)
def test_blocks_whose_tuples_are_equal_but_differ_in_item_types_are_not_merged(
    first: tuple[Any, ...], second: tuple[Any, ...]
) -> None:
    model = nn.Sequential(_Scaled(first), _Scaled(second), _Scaled(first)).eval()
    plain, reused = _both(model, (4, 8, 8))
    _assert_same_graph(plain, reused)
    assert reused.replayed == (("2", "0"),)


def _kept(x: torch.Tensor, value: Any) -> torch.Tensor:
    """Returns ``x``: called on a block's attribute, it puts the value into the graph as an argument."""
    return x


torch.fx.wrap("_kept")

_ATOMS = st.one_of(
    st.integers(-2, 2),
    st.floats(-2, 2, width=16),
    st.sampled_from([0.0, -0.0, 1.0, float("nan"), complex(0.0, -0.0), 1j]),
    st.booleans(),
    st.none(),
    st.sampled_from(["a", "b", torch.float32, torch.int64]),
    st.builds(slice, st.none() | st.integers(0, 2), st.none() | st.integers(0, 2)),
)
_VALUES = st.recursive(
    _ATOMS,
    lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("kj"), inner),
    max_leaves=4,
)


class _Valued(nn.Module):
    def __init__(self, value: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _kept(self.conv(x), self.value)


@given(
    st.lists(_VALUES, min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 2), st.booleans()), min_size=2, max_size=6),
)
@settings(max_examples=examples(40), deadline=None)
def test_blocks_holding_any_plain_values_get_the_graph_a_full_trace_gives(
    pool: list[Any], picks: list[tuple[int, bool]]
) -> None:
    """Blocks hold values drawn from a small pool, the same object or an equal copy: whatever they
    hold (ints, floats and complexes and their signs, NaN, bools, None, strings, dtypes, slices,
    tuples, lists and dicts of them), a replay gives the graph a trace of each gives."""
    values = [pool[index % len(pool)] for index, _ in picks]
    held = [copy.deepcopy(value) if fresh else value for value, (_, fresh) in zip(values, picks, strict=True)]
    model = nn.Sequential(*(_Valued(value) for value in held)).eval()
    plain, reused = _both(model, (2, 4, 4))
    _assert_same_graph(plain, reused)


# -- when reuse is worth it ----------------------------------------------------------------------------


def _skipped_by_replays(captured: Capture, model: nn.Module) -> int:
    """Modules the replays of a capture skipped: every module of each replayed block's subtree."""
    return sum(sum(1 for _ in model.get_submodule(path).modules()) for path, _ in captured.replayed)


def test_the_share_counts_the_subtrees_a_replay_would_skip() -> None:
    block = lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU())  # noqa: E731
    model = nn.Sequential(block(), block(), block(), nn.Linear(4, 2), block())
    assert _replayable(model) == (3 * 3, 1 + 4 * 3 + 1)  # blocks 1, 2 and 4 (3 modules each) of 14 modules
    shared = block()
    assert _replayable(nn.Sequential(shared, shared, nn.Linear(4, 8))) == (0, 5)  # a module met again counts once
    assert _replayable(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 8))) == (0, 3)  # shapes differ: nothing


@given(st.lists(st.integers(0, len(CONFIGS) - 1), min_size=2, max_size=7), st.booleans())
@settings(max_examples=examples(15), deadline=None)
def test_the_share_bounds_what_replays_skip(choices: list[int], training: bool) -> None:
    model = nn.Sequential(*(Configured(**CONFIGS[choice]) for choice in choices)).train(training)
    _, reused = _both(model, (8, 16, 16))
    skippable, total = _replayable(model)
    assert total == sum(1 for _ in model.modules())
    assert _skipped_by_replays(reused, model) <= skippable


@pytest.mark.parametrize(("name", "keyed"), [("resnet50", False), ("mobilenet_v3_large", False), ("vit_b_16", True)])
def test_blocks_are_keyed_only_where_replays_could_skip_most_of_the_model(name: str, keyed: bool) -> None:
    """ResNet-50's repeats cover 0.69 of its modules, MobileNetV3's 0.48: traced block by block (keying
    every module costs more than their replays save); ViT-B/16's encoder layers 0.90: replayed. The graph
    is a full trace's either way."""
    model = torchvision.models.get_model(name, weights=None).eval()
    skippable, total = _replayable(model)
    assert (skippable >= MIN_SHARE * total) is keyed
    inputs = model_inputs((3, 224, 224), batch_size=1)
    gated, plain = capture(model, DEFAULT_REGISTRY, inputs), capture(model, DEFAULT_REGISTRY, inputs, reuse=False)
    _assert_same_graph(plain, gated)
    assert bool(gated.replayed) is keyed


class _ModeProperty(nn.Module):
    """A module keeping its training flag out of its ``__dict__`` (a property over another attribute)."""

    def __init__(self) -> None:
        self._mode = True
        super().__init__()
        self.fc = nn.Linear(4, 4)

    @property  # type: ignore[override]
    def training(self) -> bool:
        return self._mode

    @training.setter
    def training(self, value: bool) -> None:
        self._mode = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).relu()


def test_the_share_of_a_model_whose_training_flag_is_a_property() -> None:
    model = nn.Sequential(*(_ModeProperty() for _ in range(4))).eval()
    assert "training" not in vars(model[0])
    assert _replayable(model) == (3 * 2, 1 + 4 * 2)
    plain, reused = _both(model, (4,))
    _assert_same_graph(plain, reused)


class _RankChecked(nn.Module):
    """A block whose Python code reads ranks (timm's normalization layers check theirs) and a dtype, and
    branches on a rank."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch._assert(x.ndim >= 2, f"expected a batch (got {x.ndim}D input)")
        y = self.fc(x).clamp(min=torch.finfo(x.dtype).min)
        return y if y.ndim == 2 else y.amax(1)


def test_blocks_reading_ranks_and_dtypes_are_replayed_with_their_reads_checked() -> None:
    model = nn.Sequential(*(_RankChecked() for _ in range(4)))
    plain, reused = _both(model, (4,))
    _assert_same_graph(plain, reused)
    # a block reads its input's rank twice and dtype once, its output's rank once
    assert len(reused.replayed) == 3 and len(reused.checks) == 3 * 4
    assert {(guard.kind, guard.value) for guard in reused.guards} == {("ndim", 2), ("dtype", torch.float32)}


class _RanksApart(nn.Module):
    """Two equal blocks given inputs of other ranks: the second replays the first's recording, read at rank 2."""

    def __init__(self) -> None:
        super().__init__()
        self.one, self.two = _RankChecked(), _RankChecked()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.one(x[:, 0]).sum() + self.two(x).sum()  # the replay's graph would run: only its check tells


def test_a_replay_whose_rank_reads_otherwise_is_traced_again(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _RanksApart()
    traces = []
    original = capture_module.capture

    def counted(*args: Any, **kwargs: Any) -> Capture:
        made = original(*args, **{**kwargs, "min_share": kwargs.get("min_share", 0)})
        traces.append(made)
        return made

    monkeypatch.setattr(capture_module, "capture", counted)
    report = crawl_module(model, (3, 4), batch_size=2)
    assert [bool(made.replayed) for made in traces] == [True, False]  # the replay read rank 2 of a 3-D input
    monkeypatch.undo()
    plain = crawl_module(model, (3, 4), batch_size=2)
    assert report.to_dict() == plain.to_dict() and report.context.capture == "torch.fx"
    assert "amax" in {record.type_name for _, record in report.records.nodes(data="record")}


class WritingBlock(nn.Module):
    """Writes into a tensor it makes and, with ``into_argument``, into its argument (``x[…] = value``)."""

    def __init__(self, into_argument: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.into_argument = into_argument

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        out = torch.zeros_like(y)
        out[:, 1:] = y[:, :-1]
        if self.into_argument:
            x[:, 0] = y[:, 0]  # the caller's tensor from then on: its argument changed
        return out.relu()


class WritingBlocks(nn.Module):
    def __init__(self, into_argument: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(WritingBlock(into_argument) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = x
        for block in self.blocks:
            total = total + block(x)
        return total + x


@pytest.mark.parametrize("into_argument", [False, True])
def test_blocks_writing_into_tensors_get_the_graph_a_full_trace_gives(
    into_argument: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A block writing into a tensor of its own is replayed; one writing into its argument (which the
    caller then reads as the write) is traced each time."""
    plain, reused = _both(WritingBlocks(into_argument).train(), (4,))
    _assert_same_graph(plain, reused)
    assert bool(reused.replayed) is not into_argument
    _reports_equal(WritingBlocks(into_argument).train(), (4,), monkeypatch)


class _LoopedHelper(nn.Module):
    """A block whose forward calls a method of its own from one line in a loop."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def step(self, t: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.lin(t))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(2):
            x = self.step(x)
        return x


def test_a_replayed_block_counts_the_runs_of_its_lines_as_its_trace_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay's nodes carry the runs of the lines above its own call and, below it, its recording's: as a trace
    of the block would (node meta compared, then the reports, memory included)."""
    model = nn.Sequential(*(_LoopedHelper() for _ in range(3)))
    plain, reused = _both(model, (8,))
    assert reused.replayed
    assert [node.meta.get("torchscan_executions") for node in reused.graph.nodes if node.op == "call_module"] == [
        (1, 1),
        (2, 1),
    ] * 3
    _assert_same_graph(plain, reused)
    _reports_equal(model, (8,), monkeypatch)


class _Skipping(nn.Module):
    """A block whose first and last calls return their argument (timm's shortcut and ``drop_path`` as
    ``nn.Identity``): no node, the first on the block's own argument."""

    def __init__(self) -> None:
        super().__init__()
        self.shortcut, self.fc, self.drop_path = nn.Identity(), nn.Linear(8, 8), nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(x)
        return self.drop_path(self.fc(x)) + shortcut


def test_blocks_passing_their_argument_through_a_call_are_replayed() -> None:
    model = nn.Sequential(_Skipping(), _Skipping(), _Skipping()).eval()
    plain, reused = _both(model, (8,))
    _assert_same_graph(plain, reused)
    assert reused.replayed == (("1", "0"), ("2", "0"))
    assert reused.passed_through["2.shortcut"] == plain.passed_through["2.shortcut"]
