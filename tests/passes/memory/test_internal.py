"""Calls recorded at the ATen level on fake tensors: transients, saved tensors, gradients, the cache."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from tests.profiles import examples
from torchscan import crawl_module
from torchscan.measure.cpu import measure_inference, random_inputs
from torchscan.passes.memory import internal
from torchscan.passes.memory.internal import product_saves_its_own, record_calls, worth_recording
from torchscan.records import RECORD, Cost, NodeRecord, OpCall, TensorSpec


@fx.wrap
def _attention(x: torch.Tensor) -> torch.Tensor:
    """A composite call fx keeps as one node: scores and their softmax are temporaries."""
    scores = x @ x.transpose(-1, -2)
    return torch.softmax(scores, -1) @ x


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(_attention(x))


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(_Block(), _Block(), _Block())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def _record(kind: str, target: object, inputs: tuple[TensorSpec, ...], weight: TensorSpec | None = None) -> NodeRecord:
    attrs = {"weight": weight} if weight is not None else {}
    call = OpCall(kind=kind, target=target, inputs=inputs, outputs=inputs[:1], attrs=attrs)  # type: ignore[arg-type]
    return NodeRecord(
        name="n", op=f"call_{kind}", index=1, module_path="", type_name="x", call=call, outputs=inputs[:1]
    )


def test_worth_recording_follows_the_registry_families() -> None:
    spec, strided = TensorSpec((2, 8, 16)), TensorSpec((2, 8, 16), contiguous=False)
    assert worth_recording(_record("function", _attention, (spec,)))  # no family: composite
    assert not worth_recording(_record("module", nn.GELU, (spec,)))  # Saves.INPUT: declared
    assert not worth_recording(_record("function", torch.cat, (spec,)))  # Saves.NOTHING
    assert not worth_recording(_record("module", nn.Linear, (spec,), TensorSpec((16, 16))))
    assert worth_recording(_record("module", nn.Linear, (strided,), TensorSpec((16, 16))))  # reshape may copy
    token = TensorSpec((2, 16), contiguous=False)  # ``x[:, 0]`` of (2, 8, 16): no reshape, addmm reads it in place
    assert not worth_recording(_record("module", nn.Linear, (token,), TensorSpec((16, 16))))
    assert not worth_recording(_record("function", F.linear, (token, TensorSpec((16, 16)))))
    assert not worth_recording(_record("module", nn.Conv1d, (strided,), TensorSpec((16, 8, 3))))  # one ATen op
    assert worth_recording(_record("function", torch.matmul, (strided, spec)))


class _TokenHead(nn.Module):
    """ViT's head: a linear layer on the class token, a 2-D view with a row stride of a whole sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.norm, self.head = nn.LayerNorm(16), nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(x)[:, 0])


@pytest.mark.parametrize("training", [False, True])
def test_a_linear_on_a_strided_matrix_is_left_to_its_rule(monkeypatch: pytest.MonkeyPatch, training: bool) -> None:
    """Not recorded, since a recording finds nothing the linear family's rule does not say: the report
    equals one where it is recorded, at several batch sizes, in inference and in training."""
    model = _TokenHead().train(training)
    plain = [crawl_module(model, (5, 16), batch_size=batch).to_dict() for batch in (1, 3, 7)]
    chosen = internal.worth_recording
    recorded: list[str] = []

    def every_linear(record: NodeRecord, families: Any = None) -> bool:
        if record.type_name == "Linear":
            recorded.append(record.name)
            return True
        return chosen(record, families)

    monkeypatch.setattr(internal, "worth_recording", every_linear)
    assert [crawl_module(model, (5, 16), batch_size=batch).to_dict() for batch in (1, 3, 7)] == plain
    assert recorded  # the head was recorded in the second run


def _product(equation: str | None, *shapes: tuple[int, ...]) -> NodeRecord:
    """A record of ``torch.einsum(equation, ...)`` (``torch.matmul`` where ``equation`` is None)."""
    specs = tuple(TensorSpec(shape) for shape in shapes)
    target, attrs = (torch.matmul, {}) if equation is None else (torch.einsum, {"args": (equation,)})
    call = OpCall(kind="function", target=target, inputs=specs, outputs=specs[:1], attrs=attrs)
    return NodeRecord(
        name="n", op="call_function", index=1, module_path="", type_name="einsum", call=call, outputs=specs[:1]
    )


@pytest.mark.parametrize(
    ("equation", "shapes", "copies"),
    [
        # timm MViTv2's relative positions: the batch dim h between y and w, merged into one: a copy
        ("byhwc,hkc->byhwk", ((1, 2, 7, 7, 96), (7, 7, 96)), True),
        ("byhwc,wkc->byhwk", ((1, 2, 7, 7, 96), (7, 7, 96)), False),  # y and h merge as they lie: a view
        ("byhwc,hkc->byhwk", ((1, 1, 7, 7, 96), (7, 7, 96)), False),  # y of size 1: any strides merge
        ("bhqd,bhkd->bhqk", ((2, 4, 8, 16), (2, 4, 8, 16)), False),  # attention scores: views
        ("ij,jk->ik", ((3, 4), (4, 5)), False),
        (None, ((2, 3, 4, 5), (3, 5, 6)), True),  # matmul over broadcast batch dims: expanded, copied
        (None, ((2, 1, 4, 5), (3, 5, 6)), True),
        (None, ((5,), (2, 5, 6)), True),  # a vector against a batch: its reshape of the expanded copy
        (None, ((4, 5), (2, 3, 5, 6)), True),
        (None, ((2, 3, 4, 5), (2, 3, 5, 6)), False),  # equal batch dims: views
        (None, ((2, 3, 4, 5), (5, 6)), False),  # by a matrix: the left folded by a view
        (None, ((2, 3, 4, 5), (5,)), False),
    ],
)
def test_a_product_is_recorded_where_torch_saves_a_copy_of_an_operand(
    equation: str | None, shapes: tuple[tuple[int, ...], ...], copies: bool
) -> None:
    """What torch's einsum and matmul keep, told apart on meta tensors: a copy they made (recorded at the
    ATen level, the copy's bytes counted), or their operands and views of them (the matmul family's rule)."""
    assert product_saves_its_own(_product(equation, *shapes).call) is copies
    assert worth_recording(_product(equation, *shapes)) is copies


def test_static_peak_of_a_composite_call_equals_a_real_forward() -> None:
    model = _Net().train()
    x = random_inputs([(2, 64, 16)])
    memory = crawl_module(model, args=tuple(x), batch_size=None, formulas=COMPOSITES).memory
    assert memory is not None
    assert memory.activation_peak_bytes == measure_inference(model, x).total_bytes
    assert memory.activation_peak_bytes > 2 * 2 * 64 * 64 * 4  # the call's scores and softmax, inside it


def _traced_net() -> tuple[fx.GraphModule, FakeTensorMode, torch.Tensor, list[str]]:
    """``_Net`` traced by fx, a fake mode with a fake (2, 64, 16) input, and the names of its attention calls."""
    traced = fx.symbolic_trace(_Net())
    mode = FakeTensorMode()
    with mode:
        fake = torch.empty(2, 64, 16)
    return traced, mode, fake, [node.name for node in traced.graph.nodes if node.target is _attention]


def test_each_distinct_signature_is_recorded_once() -> None:
    traced, mode, fake, names = _traced_net()
    spec = TensorSpec((2, 64, 16))
    described = {node.name: spec for node in traced.graph.nodes}
    grads = {node.name: node.op != "placeholder" for node in traced.graph.nodes}
    calls = record_calls(traced.graph, traced, (fake,), mode, described, names, grads)
    assert list(calls) == names
    first, second = calls[names[0]].call, calls[names[1]].call
    assert calls[names[2]].call is second  # same signature: one recording, shared
    assert first is not second  # the model input requires no grad: another signature
    scores = 2 * 64 * 64 * 4
    assert first.transient == second.transient == 2 * scores  # scores and their softmax, alive together
    assert not first.trained  # nothing of it requires grad
    assert second.trained and second.saved_extra == scores  # the softmax output, for both its readers' backward
    assert second.saved_args == frozenset({0})  # the input, for both products
    assert second.grad_bytes == (2 * 64 * 16 * 4,)
    assert [calls[name].arg_sources for name in names] == [("x",), ("blocks_0_proj",), ("blocks_1_proj",)]


def test_in_place_activation_saves_a_copy_of_its_input() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU6(inplace=True), nn.Conv2d(8, 4, 1)).train()
    x = random_inputs([(2, 3, 16, 16)])
    memory = crawl_module(model, args=tuple(x), batch_size=None).memory
    assert memory is not None
    copy = 2 * 8 * 14 * 14 * 4
    inputs, conv, bn, statistics = 2 * 3 * 16 * 16 * 4, copy, copy, 2 * 8 * 4  # BN's batch mean and inverse std
    assert memory.saved_activation_bytes == inputs + conv + bn + statistics + copy  # ReLU6's clone besides its result


def test_parameters_read_by_get_attr_are_model_memory() -> None:
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(256, 256))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.linear(x, self.weight)

    report = crawl_module(Functional(), (256,))
    attributes = [record for name in report.records if (record := report.records.nodes[name][RECORD]).op == "get_attr"]
    assert attributes
    assert report.memory is not None
    assert report.memory.activation_peak_bytes == 2 * 256 * 4  # input and output, no weight


def test_what_is_recorded_does_not_depend_on_what_the_process_analysed_before() -> None:
    """FakeTensor's dispatch cache is shared by the whole process: a hit skips the ops the tracker
    sees allocate, so the recording runs without it (an LSTM's backward differed by 1 KiB)."""

    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.lstm = nn.Embedding(50, 16), nn.LSTM(16, 32, 2, batch_first=True)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.lstm(self.embed(ids))[0]

    model = Tagger()
    args = (TensorSpec((4, 5), torch.long),)
    FakeTensorMode.cache_clear()  # a cold cache, as in a fresh process
    first = crawl_module(model, args=args).memory
    second = crawl_module(model, args=args).memory
    assert first.to_dict() == second.to_dict()


class _SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        return self.attn(h, h, h, need_weights=False)[0]


def _really_saved(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct storages (parameters and buffers left out) autograd saves in one real forward."""
    model_storages = {tensor.untyped_storage().data_ptr() for tensor in (*model.parameters(), *model.buffers())}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in model_storages:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x)
    return sum(saved.values())


def test_one_tensor_passed_several_times_is_recorded_as_one_object() -> None:
    # MultiheadAttention takes its packed self-attention path only when query is key is value; three
    # separate leaves made it save separate projections (a ViT's training estimate +7.1%)
    model = _SelfAttention().train()
    x = random_inputs([(2, 24, 16)])[0]
    memory = crawl_module(model, args=(x,), batch_size=None).memory
    assert memory is not None
    assert memory.saved_activation_bytes == _really_saved(model, x)


def test_a_dropout_in_training_saves_the_mask_its_device_kernel_makes() -> None:
    # on CPU, dropout draws an input-sized float mask (CUDA's fused kernel keeps a bool one): recorded
    # on fake tensors of the analysis device, what autograd really saves
    model = nn.Sequential(nn.Linear(16, 32), nn.Dropout(0.3), nn.Linear(32, 8)).train()
    x = random_inputs([(4, 16)])[0]
    memory = crawl_module(model, args=(x,), batch_size=None).memory
    assert memory is not None
    assert memory.saved_activation_bytes == _really_saved(model, x) == (4 * 16 + 2 * 4 * 32) * 4


def test_a_composite_call_s_training_transients() -> None:
    """With its input requiring grad, ``_attention`` on (2, 64, 16) keeps its softmax (S = 2·64·64·4
    bytes, the product's operand) and frees the scores (S): a transient of S past the forward. Its
    backward, from the output's gradient: the last product makes dL/dsoftmax (S) and one gradient
    of x (2·64·16·4); the softmax's backward then makes dL/dscores (S) while dL/dsoftmax is alive:
    2·S + 2·64·16·4 at most."""
    traced, mode, fake, names = _traced_net()
    described = {node.name: TensorSpec((2, 64, 16)) for node in traced.graph.nodes}
    grads = {node.name: node.op != "placeholder" for node in traced.graph.nodes}
    call = record_calls(traced.graph, traced, (fake,), mode, described, names[1:2], grads)[names[1]].call
    scores, x = 2 * 64 * 64 * 4, 2 * 64 * 16 * 4
    assert call.train_transient == scores
    assert call.backward_transient == 2 * scores + x


@fx.wrap
def _first_only(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A composite call whose result does not depend on its second argument through autograd."""
    return x * 2 + y.detach()


class _Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(16, 16), nn.Linear(16, 16)
        self.scale = nn.Parameter(torch.ones(16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _first_only(self.a(x), self.b(x)) * _first_only(self.scale, self.scale)


def test_a_call_with_an_argument_autograd_does_not_reach() -> None:
    """``_first_only(a(x), b(x))`` on (2, 64, 16): its backward makes dL/da(x) = 2·g (2·64·16·4 bytes)
    and nothing for b(x) (detached); the call is still recorded for training. Its parameter read by
    ``get_attr`` comes from a model built under the fake mode (no fakes to put in)."""
    mode = FakeTensorMode()
    with mode:
        model = _Pair()
        fake = torch.empty(2, 64, 16)
    traced = fx.symbolic_trace(model)
    names = [node.name for node in traced.graph.nodes if node.target is _first_only]
    described = {node.name: None for node in traced.graph.nodes}
    grads = {node.name: node.op != "placeholder" for node in traced.graph.nodes}
    calls = record_calls(traced.graph, traced, (fake,), mode, described, names, grads)
    assert list(calls) == names  # both calls run again, the one reading parameters too
    first = calls[names[0]].call
    assert first.trained and first.grad_bytes == (2 * 64 * 16 * 4, 0)


class _DropPath(nn.Module):
    """A residual block whose branch goes through torchvision's stochastic depth (row mode)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        from torchvision.ops import StochasticDepth

        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.drop = StochasticDepth(p, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(torch.relu(self.conv(x)))


def test_stochastic_depth_is_recorded_only_where_it_drops() -> None:
    """Declared a dropout (:attr:`Saves.DROPOUT`): an identity in eval or with ``p = 0`` (nothing
    recorded, nothing allocated), recorded in training with ``p > 0`` (its noise is kept)."""
    from torchvision.ops import stochastic_depth

    spec = TensorSpec((2, 4, 8, 8))

    def call(training: bool, p: float) -> NodeRecord:
        record = _record("function", stochastic_depth, (spec,))
        attrs = {"p": p, "mode": "row", "training": training}
        return NodeRecord(
            name="n",
            op="call_function",
            index=1,
            module_path="",
            type_name="x",
            call=OpCall(kind="function", target=stochastic_depth, inputs=(spec,), outputs=(spec,), attrs=attrs),
            outputs=record.outputs,
        )

    assert not worth_recording(call(False, 0.5)) and not worth_recording(call(True, 0.0))
    assert worth_recording(call(True, 0.5))
    x = random_inputs([(2, 4, 8, 8)])
    for p, training in ((0.5, False), (0.0, True)):
        model = _DropPath(p).train(training)
        # by hand: input 2·4·8·8·4 = 2,048 B; conv out, relu out, sum: 3 × 2,048 live at most at once is
        # conv + relu (the input held): 3 × 2,048 = 6,144 B — and what a real forward holds
        static = crawl_module(model, (4, 8, 8), batch_size=2).memory.activation_peak_bytes
        assert static == measure_inference(model, x).total_bytes == 6_144


class _Window(nn.Module):
    """Swin's block: shifted-window attention (a composite call recorded at the ATen level)."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.swin_transformer import SwinTransformerBlock

        self.block = SwinTransformerBlock(16, 2, [4, 4], [2, 2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class _Strided(nn.Module):
    """A linear on a transposed input and an in-place LeakyReLU: both recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.proj, self.act = nn.Linear(8, 12), nn.LeakyReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.proj(x.transpose(1, 2)))


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda: nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), (6, 16)),
        (_Window, (8, 8, 16)),
        (_Net, (5, 16)),
        (_Strided, (8, 6)),
    ],
)
def test_recordings_through_meta_kernels_equal_fake_tensor_dispatch(
    make: Any, shape: tuple[int, ...], training: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recorded calls whose ATen ops run their meta kernels or the pointwise layout rule
    (:mod:`torchscan.graph.aten_meta`) give the report FakeTensor's own dispatch of every op gives:
    transients, saved tensors, gradients."""
    torch.manual_seed(0)
    model = make().train(training)
    fast = crawl_module(model, shape, batch_size=2, formulas=COMPOSITES)
    assert fast.memory is not None
    monkeypatch.setattr(internal, "aten_new", lambda func, args, kwargs: None)
    monkeypatch.setattr(internal, "aten_pointwise", lambda func, args, kwargs: None)
    slow = crawl_module(model, shape, batch_size=2, formulas=COMPOSITES)
    assert fast.to_dict() == slow.to_dict()


class _Norm(nn.Module):
    """A module the registry does not know (recorded): an RMS norm, as decoders write it."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


@fx.wrap
def _pair(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A composite call of two tensors (recorded): given one tensor twice, or two."""
    return torch.softmax(a @ b.transpose(-1, -2), -1) @ b


COMPOSITES: dict[Any, Any] = {function: lambda call: Cost() for function in (_attention, _first_only, _pair)}
"""Formulas that keep the composite calls one node each (a wrapped function without one is traced through)."""


class _Decoder(nn.Module):
    """Repeated recorded calls of every kind: a norm's ``pow``, rotary ``cos``/``sin`` of ``arange``, a
    composite given one tensor twice, two, a tensor and a view of it, a composite on a view, attention of
    one tensor a rule made three times then of it and two more (not made as fakes yet), a frozen copy of a
    trainable norm."""

    def __init__(self, width: int = 8, layers: int = 3) -> None:
        super().__init__()
        self.norms = nn.ModuleList(_Norm(width) for _ in range(layers))
        self.projs = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        self.gates = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        self.qkv = nn.ModuleList(nn.Linear(width, width) for _ in range(3))
        self.frozen = _Norm(width).requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for norm, proj, gate in zip(self.norms, self.projs, self.gates, strict=True):
            angles = torch.arange(x.shape[1], dtype=x.dtype)[:, None] * torch.ones(x.shape[-1])
            h, g = proj(norm(x)) * torch.cos(angles) + torch.sin(angles), gate(x)  # new tensors, not made yet
            x = x + _pair(h, h) + _pair(h, g) + _pair(g, g.view(g.shape))
            x = x + _attention(h.transpose(1, 2)).transpose(1, 2)
        q, k, v = (project(x) for project in self.qkv)  # answered by rules: three tensors not made yet
        x = x + F.scaled_dot_product_attention(q, q, q) + F.scaled_dot_product_attention(q, k, v)
        return self.frozen(x) + self.norms[0](x)


def _checking_keys(checked: list[str], differ: list[str]) -> Any:
    """``internal._peeked`` that compares, for every node it is asked about, the signature, sources and
    differentiated arguments read from the pending values with those of the made arguments (the memo of
    made values put back after: the next node is peeked as the pass would peek it): ``checked`` and
    ``differ`` get the node's name."""
    peeked = internal._peeked

    def check(node: fx.Node, values: Any, modules: Any, grads: Any) -> Any:
        fast = peeked(node, values, modules, grads)
        if fast is not None:
            memo = dict(values._memo)
            _, args, kwargs, module = values.call(node)
            slow = internal._call_key(node, args, kwargs, module, values, modules, grads, peek=False)
            values._memo.clear()
            values._memo.update(memo)
            checked.append(node.name)
            if fast != slow:
                differ.append(node.name)
        return fast

    return check


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (_Decoder, (5, 8)),
        (lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 3), (6, 16)),
        (_Net, (5, 16)),
    ],
)
def test_a_signature_seen_before_is_found_from_the_argument_specs(
    make: Any, shape: tuple[int, ...], training: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call whose signature was recorded before is found without making its arguments' fakes or
    faking its module's tensors: the signature read from the shape pass's pending values equals the
    made arguments' (every node checked), fewer calls are made, and the report is the one the
    made arguments give."""
    torch.manual_seed(0)
    model = make().train(training)
    made: list[str] = []
    call = internal._Values.call

    def counted(self: Any, node: fx.Node) -> Any:
        made.append(node.name)
        return call(self, node)

    monkeypatch.setattr(internal._Values, "call", counted)
    fast = crawl_module(model, shape, batch_size=2, formulas=COMPOSITES)
    fast_made = len(made)
    checked: list[str] = []
    differ: list[str] = []
    monkeypatch.setattr(internal, "_peeked", _checking_keys(checked, differ))
    crawl_module(model, shape, batch_size=2, formulas=COMPOSITES)
    assert len(checked) > fast_made  # every selected node's signature compared, the repeated ones too
    assert not differ
    monkeypatch.setattr(internal, "_peeked", lambda *args: None)
    made.clear()
    slow = crawl_module(model, shape, batch_size=2, formulas=COMPOSITES)
    assert len(made) > fast_made  # the repeats made their arguments there
    assert fast.to_dict() == slow.to_dict()


class _Scatter(nn.Module):
    """RoI pooling's pattern: a result made by ``torch.zeros`` (no recording: a factory keeps nothing) and
    written by ``result[index] = values`` (recorded: an index write by a tensor), optionally behind a branch
    on a value, which only a real forward can take."""

    def __init__(self, branch: bool) -> None:
        super().__init__()
        self.branch = branch
        self.linear = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = self.linear(x).relu()
        if self.branch and bool(x.sum() > -1e9):  # a value read: fx and fake tensors cannot trace it
            values = values + 1
        result = torch.zeros(values.shape[0], 16, 16)
        index = torch.arange(values.shape[0] - 1, -1, -1)
        result[index] = values.unsqueeze(-1).expand(-1, -1, 16) * 2
        return result.sum(-1)


def test_a_real_forward_s_values_are_not_counted_as_a_recorded_call_s_allocations() -> None:
    # the real forward's node values are real tensors; a recorded call converted them to fakes inside its
    # own recording, so ``result[index] = …`` counted ``torch.zeros``' 4·64·16·16 bytes as its transient
    x = random_inputs([(64, 16)])
    traced = crawl_module(_Scatter(branch=False), args=tuple(x), batch_size=None)
    real = crawl_module(_Scatter(branch=True), args=tuple(x), batch_size=None)
    assert traced.context.capture != "real-forward" and real.context.capture == "real-forward"
    assert traced.memory is not None and real.memory is not None
    assert not worth_recording(real.records.nodes["zeros"][RECORD]) and worth_recording(
        real.records.nodes["setitem"][RECORD]
    )
    extra = 64 * 16 * 4  # the branch's ``values + 1``, alive beside ``values`` while it is made
    assert real.memory.activation_peak_bytes <= traced.memory.activation_peak_bytes + extra
    assert real.memory.activation_peak_bytes == measure_inference(_Scatter(branch=True), x).total_bytes


class _StorageTrace(TorchDispatchMode):
    """The bytes of each storage the ops inside make (``known``: storages made before), in order."""

    def __init__(self, known: set[int]) -> None:
        super().__init__()
        self.known, self.made = known, []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and tensor.untyped_storage()._cdata not in self.known:
                self.known.add(tensor.untyped_storage()._cdata)
                self.made.append(tensor.untyped_storage().nbytes())
        return out


def _product_memory(function: Any, operands: list[tuple[tuple[int, ...], tuple[int, ...]]], wants: tuple) -> Any:
    """What a product on meta operands of these sizes and strides makes (bytes of each new storage, in
    order) without grad, and with grad for ``wants``: in forward, what autograd keeps (an operand's
    storage, or the bytes of one it made) and in backward: everything its memory depends on."""
    trace: list[Any] = []
    for grad in (False, True):
        tensors = [
            torch.empty_strided(shape, stride, device="meta", requires_grad=grad and want)
            for (shape, stride), want in zip(operands, wants, strict=True)
        ]
        owners = {tensor.untyped_storage()._cdata: position for position, tensor in enumerate(tensors)}
        saved: list[Any] = []

        def pack(tensor: torch.Tensor, saved: list = saved, owners: dict = owners) -> torch.Tensor:
            storage = tensor.untyped_storage()
            saved.append(owners.get(storage._cdata, storage.nbytes()))
            return tensor

        forward = _StorageTrace(set(owners))
        with torch.set_grad_enabled(grad), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), forward:
            out = function(*tensors)
        trace.append((forward.made, saved))
        leaves = [tensor for tensor in tensors if tensor.requires_grad]
        if grad and leaves:
            seed = torch.empty_like(out)
            backward = _StorageTrace({*owners, out.untyped_storage()._cdata, seed.untyped_storage()._cdata})
            with backward:
                torch.autograd.grad(out, leaves, seed)
            trace.append(backward.made)
    return trace


def _contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    return torch.empty(shape, device="meta").stride()


@st.composite
def _strided_products(draw: Any) -> tuple[Any, list[tuple[tuple[int, ...], tuple[int, ...]]]]:
    """A product of two operands, each a permutation (a transpose, heads moved…) of a contiguous tensor."""
    function = draw(st.sampled_from([torch.matmul, torch.bmm]))
    batch = draw(st.lists(st.integers(1, 3), min_size=1, max_size=1 if function is torch.bmm else 3))
    n, k, m = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    left_batch = batch if function is torch.bmm else draw(st.sampled_from([batch, batch[1:], []]))
    right_batch = batch if function is torch.bmm else draw(st.sampled_from([batch, batch[1:]]))
    operands = []
    for shape in ((*left_batch, n, k), (*right_batch, k, m)):
        order = draw(st.permutations(range(len(shape))))
        stored = [shape[axis] for axis in order]  # the tensor as stored, then permuted back to ``shape``
        stride = _contiguous(tuple(stored))
        operands.append((tuple(shape), tuple(stride[order.index(axis)] for axis in range(len(shape)))))
    return function, operands


@settings(max_examples=examples(150), deadline=None)
@given(_strided_products(), st.tuples(st.booleans(), st.booleans()))
def test_a_strided_product_that_keeps_no_tensor_of_its_own_uses_memory_as_a_contiguous_one(
    product: Any, wants: tuple[bool, bool]
) -> None:
    """Where :func:`_strided_saves_its_own` finds no tensor the product made kept for backward (all
    operands requiring grad) and contiguous operands keep none either, its ATen ops make, keep and free
    in forward and backward, at every grad setting, what they do for contiguous operands of the same
    sizes: not recorded, it gets the rule's memory, which is the contiguous operands' one."""
    function, operands = product
    contiguous = [(shape, _contiguous(shape)) for shape, _ in operands]
    try:
        strided = _product_memory(function, operands, wants)
    except RuntimeError:  # sizes torch refuses
        return
    kept = internal._strided_saves_its_own(function, [(shape, stride, torch.float32) for shape, stride in operands])
    # as :meth:`_Operands.plain_product` asks: a matmul whose contiguous operands keep a copy is recorded anyway
    if function is torch.matmul and product_saves_its_own(_product(None, *(shape for shape, _ in operands)).call):
        return
    if not kept:
        assert strided == _product_memory(function, contiguous, wants)


@st.composite
def _strided_linears(draw: Any) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """``F.linear(x, w)`` without a bias: ``x`` of 3 or 4 dims a permutation of a contiguous tensor, ``w``
    contiguous or transposed."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=3, max_size=4)))
    order = draw(st.permutations(range(len(shape))))
    stride = _contiguous(tuple(shape[axis] for axis in order))
    weight = (draw(st.integers(1, 4)), shape[-1])
    weight_stride = (1, weight[0]) if draw(st.booleans()) else _contiguous(weight)
    return [(shape, tuple(stride[order.index(axis)] for axis in range(len(shape)))), (weight, weight_stride)]


@settings(max_examples=examples(150), deadline=None)
@given(_strided_linears(), st.tuples(st.booleans(), st.booleans()))
def test_a_strided_linear_without_bias_that_keeps_nothing_of_its_own_uses_memory_as_a_contiguous_one(
    operands: list[tuple[tuple[int, ...], tuple[int, ...]]], wants: tuple[bool, bool]
) -> None:
    """As for products: where the probe finds nothing ``F.linear`` made kept for backward, a strided input
    makes, keeps and frees what a contiguous one of its sizes does (a linear layer without a bias is left
    to its rule there: :meth:`internal._Operands.plain_product`)."""
    import torch.nn.functional as F

    (shape, _), weight = operands
    layouts = [(size, stride, torch.float32) for size, stride in operands]
    if not internal._strided_saves_its_own(F.linear, layouts):
        assert _product_memory(F.linear, operands, wants) == _product_memory(
            F.linear, [(shape, _contiguous(shape)), weight], wants
        )


def _recorded_nodes(monkeypatch: pytest.MonkeyPatch, prefix: str = "") -> list[str]:
    """The names of the nodes :func:`internal.record_calls` is asked to record from now on (those starting
    with ``prefix``), appended as analyses run."""
    recorded: list[str] = []
    chosen = internal.record_calls

    def spy(*args: Any, **kwargs: Any) -> Any:
        recorded.extend(name for name in args[5] if name.startswith(prefix))
        return chosen(*args, **kwargs)

    monkeypatch.setattr(internal, "record_calls", spy)
    return recorded


class _Scores(nn.Module):
    """Attention scores ``q @ k.transpose(-2, -1)``, heads split by ``view`` (``permuted``: from a fused
    projection as timm's attention splits them, heads moved by ``permute``)."""

    def __init__(self, permuted: bool) -> None:
        super().__init__()
        self.q, self.k, self.qk = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 32)
        self.permuted = permuted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        if self.permuted:  # (b, 4 heads, n, 4) with n between b and the heads: they fold by a view only if b == 1
            q, k = self.qk(x).view(b, n, 2, 4, 4).permute(2, 0, 3, 1, 4).unbind(0)
        else:  # contiguous heads: the transposed k folds by a view
            q, k = self.q(x).view(b, 4, n, 4), self.k(x).view(b, 4, n, 4)
        return (q @ k.transpose(-2, -1)).softmax(-1)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("permuted", [False, True])
def test_a_strided_product_is_recorded_only_where_its_strides_make_a_copy(
    monkeypatch: pytest.MonkeyPatch, training: bool, permuted: bool
) -> None:
    """``q @ k.transpose(-2, -1)`` whose batch dims fold by views is left to the rule, with the report a
    recording gives, in inference and training; where they cannot fold (heads permuted from a fused
    projection, batch > 1) its reshape copies: recorded."""
    model = _Scores(permuted).train(training)
    recorded = _recorded_nodes(monkeypatch, "matmul")
    ours = []
    for batch in (1, 3):
        recorded.clear()
        ours.append(crawl_module(model, (5, 16), batch_size=batch).to_dict())
        assert bool(recorded) is (permuted and batch > 1)
    monkeypatch.setattr(internal._Operands, "plain_product", lambda self, record, families: False)
    recorded.clear()
    assert [crawl_module(model, (5, 16), batch_size=batch).to_dict() for batch in (1, 3)] == ours
    assert len(recorded) == 2  # every strided product recorded: the same reports


class _Weighted(nn.Module):
    """``softmax(q @ kᵀ) @ v`` on heads of a fused projection split by ``view``, ``permute`` and ``split``
    (LeViT's attention): the weights a softmax's new tensor, which the shape pass keeps pending."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(16, 48)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 4, 12).permute(0, 2, 1, 3).split([4, 4, 4], dim=3)
        return (q @ k.transpose(-2, -1)).softmax(-1) @ v


@pytest.mark.parametrize("training", [False, True])
def test_a_product_of_a_pending_result_and_a_strided_slice_is_left_to_the_rule(
    monkeypatch: pytest.MonkeyPatch, training: bool
) -> None:
    """``weights @ v`` with the weights a pending result (a contiguous tensor not made yet) and ``v`` a
    slice of the heads: at batch 1 both products fold by views and are left to the rule (they were recorded
    while a pending operand was not read as the contiguous tensor it is), at batch 3 ``v``'s reshape copies:
    recorded; the reports those of recording every strided product."""
    model = _Weighted().train(training)
    recorded = _recorded_nodes(monkeypatch, "matmul")
    ours = []
    for batch, expected in ((1, []), (3, ["matmul", "matmul_1"])):
        recorded.clear()
        ours.append(crawl_module(model, (5, 16), batch_size=batch).to_dict())
        assert recorded == expected
    monkeypatch.setattr(internal._Operands, "plain_product", lambda self, record, families: False)
    assert [crawl_module(model, (5, 16), batch_size=batch).to_dict() for batch in (1, 3)] == ours


class _Tokens(nn.Module):
    """A linear layer on tokens ``x.flatten(2).transpose(1, 2)`` of a feature map (LeViT's, PVT's)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 8, 3), nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(2).transpose(1, 2))


class _UnbiasedTokens(nn.Module):
    """Tokens of a feature map into a linear layer without a bias (LeViT's ``LinearNorm``), as a module
    and as ``F.linear``."""

    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 8, 3), nn.Linear(8, 8, bias=False)
        self.functional = functional

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.conv(x).flatten(2).transpose(1, 2)
        return F.linear(tokens, self.fc.weight) if self.functional else self.fc(tokens)


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_a_linear_layer_without_bias_on_tokens_that_fold_is_left_to_the_rule(
    monkeypatch: pytest.MonkeyPatch, training: bool, functional: bool
) -> None:
    """Without a bias, a linear layer on tokens of one sample (they fold by a view) is not recorded, with
    the reports a recording gives; at batch 3 the reshape copies: recorded."""
    model = _UnbiasedTokens(functional).train(training)
    recorded = _recorded_nodes(monkeypatch)
    ours = []
    for batch in (1, 3):
        recorded.clear()
        ours.append(crawl_module(model, (3, 6, 6), batch_size=batch).to_dict())
        assert bool(recorded) is (batch > 1), recorded
    monkeypatch.setattr(internal._Operands, "plain_product", lambda self, record, families: False)
    assert [crawl_module(model, (3, 6, 6), batch_size=batch).to_dict() for batch in (1, 3)] == ours


@pytest.mark.parametrize("batch", [1, 3])
def test_a_linear_layer_on_strided_tokens_stays_recorded(batch: int) -> None:
    """Tokens of one sample fold by a view, yet torch adds the bias to a new tensor on a strided input:
    the layer stays recorded (not :meth:`_Operands.plain_product`'s), its peak what a real forward measures."""
    model = _Tokens().eval()
    x = random_inputs([(batch, 3, 6, 6)])
    memory = crawl_module(model, args=tuple(x), batch_size=None).memory
    assert memory is not None
    assert memory.activation_peak_bytes == measure_inference(model, x).total_bytes


@st.composite
def _tensor_indexings(draw: Any) -> tuple[tuple[int, ...], tuple[Any, ...], torch.dtype, bool, bool]:
    """A table's shape, an index of int64 tensors (broadcast shapes), whole slices and at most one ``...``,
    the table's dtype, whether it is read transposed (strided) and whether it requires grad."""
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    dims = draw(st.integers(1, len(shape)))
    kinds = draw(st.lists(st.sampled_from(["tensor", "slice"]), min_size=dims, max_size=dims))
    if "tensor" not in kinds:
        kinds[draw(st.integers(0, dims - 1))] = "tensor"
    index_shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=2)))
    items: list[Any] = [
        ("tensor", shape[dim], index_shape) if kind == "tensor" else slice(None) for dim, kind in enumerate(kinds)
    ]
    if draw(st.booleans()) and dims < len(shape):
        items.insert(draw(st.integers(0, len(items))), Ellipsis)
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
    return shape, tuple(items), dtype, draw(st.booleans()) and len(shape) > 1, draw(st.booleans())


@settings(max_examples=examples(60), deadline=None)
@given(_tensor_indexings())
def test_a_tensor_index_in_closed_form_is_what_its_recording_finds(case: Any) -> None:
    """``x[..., idx, :]`` with int64 index tensors: :func:`internal.tensor_index_memory` gives the
    :class:`CallMemory` that recording the call on fake tensors gives (and makes nothing to find it)."""
    import operator

    shape, items, dtype, transposed, grad = case
    with FakeTensorMode() as mode, torch.enable_grad():
        x = torch.empty(shape[::-1] if transposed else shape, dtype=dtype)
        x = x.t() if transposed and len(shape) == 2 else (x.permute(*reversed(range(len(shape)))) if transposed else x)
        x = x.requires_grad_(grad) if x.is_leaf else x
        index = tuple(
            torch.zeros(item[2], dtype=torch.int64).random_(item[1]) if type(item) is tuple else item for item in items
        )
        index = index[0] if len(index) == 1 and not isinstance(items[0], slice) else index
        wants = [grad, *(False for item in items if type(item) is tuple)]
        closed = internal.tensor_index_memory(operator.getitem, (x, index), {}, wants)
        recorded, _ = internal._record(operator.getitem, (x, index), {}, wants, [], None)
    assert mode is not None and closed == recorded, (closed, recorded)


def test_other_indexings_are_recorded() -> None:
    """A partial slice, an integer, ``None``, a list, a bool mask, an int32 or a 0-dim index: no closed form."""
    import operator

    with FakeTensorMode():
        x, idx = torch.empty(4, 6), torch.zeros(3, dtype=torch.int64)
        for index in (
            (slice(1, 3), idx),
            (0, idx),
            (None, idx),
            [0, 1],
            torch.zeros(4, dtype=torch.bool),
            idx.int(),
            torch.zeros((), dtype=torch.int64),
            (slice(None), slice(None)),
        ):
            assert internal.tensor_index_memory(operator.getitem, (x, index), {}, [True, False]) is None, index


@st.composite
def _attentions(draw: Any) -> tuple[Any, ...]:
    """``q``, ``k``, ``v`` of 3 or 4 dims (contiguous, heads moved by a transpose, or slices of one fused
    projection), head dims equal or not, a dtype, causal or not, a scale, which inputs require grad."""
    heads = draw(st.sampled_from([None, 1, 3]))
    batch, lq, lk = draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    e = draw(st.integers(1, 8))
    ev = e if draw(st.booleans()) else draw(st.integers(1, 8))
    layout = draw(st.sampled_from(["contiguous", "transposed", "fused"]))
    dtype = draw(st.sampled_from([torch.float32, torch.bfloat16, torch.float16, torch.float64]))
    causal = draw(st.booleans())
    scale = draw(st.sampled_from([None, 0.5]))
    wants = draw(st.tuples(st.booleans(), st.booleans(), st.booleans()))
    return heads, batch, lq, lk, e, ev, layout, dtype, causal, scale, wants


def _attention_inputs(heads: Any, batch: int, lq: int, lk: int, e: int, ev: int, layout: str, dtype: Any) -> list:
    def one(length: int, dim: int) -> torch.Tensor:
        if heads is None:
            return torch.empty(batch, length, dim, dtype=dtype)
        if layout == "transposed":
            return torch.empty(batch, length, heads, dim, dtype=dtype).transpose(1, 2)
        return torch.empty(batch, heads, length, dim, dtype=dtype)

    if layout == "fused" and heads is not None and lq == lk and e == ev:
        fused = torch.empty(batch, lq, 3, heads, e, dtype=dtype).permute(2, 0, 3, 1, 4)
        return list(fused.unbind(0))
    return [one(lq, e), one(lk, e), one(lk, ev)]


@settings(max_examples=examples(200), deadline=None)
@given(_attentions())
def test_an_attention_in_closed_form_is_what_its_recording_finds(case: Any) -> None:
    """``F.scaled_dot_product_attention``: where torch runs its CPU flash kernel,
    :func:`internal.attention_memory` gives the :class:`CallMemory` a recording on fake tensors gives;
    elsewhere (unequal head dims: the math path) it gives none."""
    *shape, causal, scale, wants = case
    function = F.scaled_dot_product_attention
    with FakeTensorMode(), torch.enable_grad():
        query, key, value = _attention_inputs(*shape)
        kwargs = {"is_causal": causal, "scale": scale}
        closed = internal.attention_memory(function, (query, key, value), kwargs, list(wants))
        try:
            recorded, _ = internal._record(function, (query, key, value), kwargs, list(wants), [], None)
        except RuntimeError:  # sizes torch refuses
            assert closed is None
            return
    assert closed is None or closed == recorded, (closed, recorded)
    if shape[4] != shape[5]:  # no flash kernel for unequal head dims
        assert closed is None


@st.composite
def _biased_linears(draw: Any) -> tuple[Any, ...]:
    """An ``nn.Linear`` with a bias on a strided input of 3 or 4 dims (a permutation of a contiguous tensor),
    its dtype, which of input, weight and bias require grad."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=3, max_size=4)))
    order = draw(st.permutations(range(len(shape))))
    stride = _contiguous(tuple(shape[axis] for axis in order))
    out = draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([torch.float32, torch.bfloat16, torch.float64]))
    grads = draw(st.tuples(st.booleans(), st.booleans(), st.booleans()))
    return shape, tuple(stride[order.index(axis)] for axis in range(len(shape))), out, dtype, grads


@settings(max_examples=examples(200), deadline=None)
@given(_biased_linears())
def test_a_biased_linear_on_a_folding_strided_input_in_closed_form_is_what_its_recording_finds(case: Any) -> None:
    """:func:`internal.biased_linear_memory` gives what recording the layer on fake tensors gives, wherever it
    answers (a strided input that folds to rows by a view); none for a contiguous input."""
    shape, stride, out, dtype, (x_grad, w_grad, b_grad) = case
    with FakeTensorMode(), torch.enable_grad():
        layer = nn.Linear(shape[-1], out, dtype=dtype)
        layer.weight.requires_grad_(w_grad)
        layer.bias.requires_grad_(b_grad)
        x = torch.empty_strided(shape, stride, dtype=dtype)
        params = [layer.weight, layer.bias]
        closed = internal.biased_linear_memory(layer, (x,), {}, [x_grad], params)
        recorded, _ = internal._record(layer.forward, (x,), {}, [x_grad], params, None)
    assert closed is None or closed == recorded, (closed, recorded)
    if x.is_contiguous():
        assert closed is None


@pytest.mark.parametrize("shape", [(2, 10, 32), (3, 7, 16)])
def test_a_backward_of_several_nodes_frees_its_output_gradient_once_read(shape: tuple[int, ...]) -> None:
    """``nn.RMSNorm``'s backward (six autograd nodes): with its output's gradient held by nothing else, its peak
    is that gradient's bytes lower (read by the weight's product first, freed before the input's gradient is
    made); a softmax's backward is one node, the gradient alive while it runs: one figure."""
    norm, x = nn.RMSNorm(shape[-1]), torch.randn(shape)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = mode.from_tensor(x)
        memory, _ = internal._record(norm, (fake,), {}, [True], list(norm.parameters()))
        softmax, _ = internal._record(nn.Softmax(-1), (fake,), {}, [True], [])
    assert memory.backward_released == memory.backward_transient - x.numel() * 4
    assert softmax.backward_released is None and softmax.backward_transient == x.numel() * 4


@st.composite
def _normalizations(draw: Any) -> tuple[Any, ...]:
    """``F.normalize`` on a tensor of 1–4 dims in any layout (permuted, sliced with a step), ``p`` of 1, 2 or
    others, a dim, a dtype, given by position or keyword, requiring grad or not."""
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    order = draw(st.permutations(range(len(shape))))
    step = draw(st.sampled_from([1, 1, 2]))
    p = draw(st.sampled_from([1, 2, 1.0, 2.0, 3.0, float("inf")]))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.float16]))
    positional, grad = draw(st.booleans()), draw(st.booleans())
    return shape, order, step, p, dim, dtype, positional, grad


@settings(max_examples=examples(200), deadline=None)
@given(_normalizations())
def test_a_normalization_in_closed_form_is_what_its_recording_finds(case: Any) -> None:
    """:func:`internal.normalize_memory` gives the :class:`CallMemory` recording ``F.normalize`` on fake tensors
    gives wherever it answers (``p`` 1 or 2), and answers for every layout of those."""
    shape, order, step, p, dim, dtype, positional, grad = case
    with FakeTensorMode(), torch.enable_grad():
        x = torch.empty(shape, dtype=dtype).permute(*order)[..., ::step]
        args, kwargs = ((x, p, dim), {}) if positional else ((x,), {"p": p, "dim": dim})
        closed = internal.normalize_memory(F.normalize, args, kwargs, [grad])
        recorded, _ = internal._record(F.normalize, args, kwargs, [grad], [], None)
    assert (closed is not None) == (p in (1, 2)), (closed, p)
    assert closed is None or closed == recorded, (closed, recorded)


@pytest.mark.parametrize("shape", [(2, 10, 32), (3, 7, 16)])
def test_an_argument_kept_by_the_call_alone_is_freed_inside_its_backward(shape: tuple[int, ...]) -> None:
    """``tanh(x) * g + x`` keeps ``g`` (the product's) and ``tanh(x)``, not ``x``: the recording tells the
    backward's peaks where ``g`` is held by nothing else, so freed once the product's backward has run; its
    peak comes after that (``tanh``'s backward making ``x``'s gradient), ``|g|`` lower."""

    def keep_second(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * g + x

    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        x, g = mode.from_tensor(torch.randn(shape)), mode.from_tensor(torch.randn(shape))
        memory, _ = internal._record(keep_second, (x, g), {}, [True, True], [])
    size = g.numel() * 4
    assert memory.saved_args == frozenset({1})
    assert memory.freed == (internal.FreedMemory(1, size, memory.backward_transient - size),), memory


@pytest.mark.parametrize("check_nan", [True, False])
def test_a_recording_under_the_caller_s_anomaly_mode_finds_what_it_finds_without_it(check_nan: bool) -> None:
    """Autograd's anomaly mode (a debugging setting left on) checks each backward node's outputs for NaN: on fake
    tensors that check's ``item()`` failed, so the attention's recordings (its gradients waiting: the residual reads
    its input too) fell back to the family's rule, with a different memory section and a warning per node. The
    recorded call now finds what it finds without the mode, the check's tensors not counted, and nothing is said."""
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True).train()
    expected = crawl_module(layer, (5, 16), batch_size=2)
    with torch.autograd.detect_anomaly(check_nan=check_nan), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = crawl_module(layer, (5, 16), batch_size=2)
    assert report.memory == expected.memory and report.to_dict() == expected.to_dict()
    assert not [warning for warning in caught if "Error detected" in str(warning.message)]
    assert not torch.is_anomaly_enabled()  # as found


class _LowerRightCausal(nn.Module):
    """SDPA with a lower-right causal bias (a tensor subclass): its recording fails inside FakeTensor's meta kernel."""

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        from torch.nn.attention.bias import causal_lower_right

        keys = q[:, :, :20]
        return F.scaled_dot_product_attention(q, keys, keys, attn_mask=causal_lower_right(32, 20))


def test_a_recording_that_fails_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    """A call whose recording fails takes its family's rule: FakeTensor's error log of the failing meta kernel
    (a traceback on stderr, ERROR level) is not printed (it was, before the report)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own: a lower-right bias over fewer keys than queries
        report = crawl_module(_LowerRightCausal(), (4, 32, 16))
    assert report.totals.complete
    assert "failed while attempting to run meta" not in capfd.readouterr().err
