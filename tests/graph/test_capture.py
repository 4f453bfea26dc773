"""The capture chain: fx, then a recorded forward on fake tensors, then one real forward."""

from __future__ import annotations

import gc
import logging
import math
import types
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from tests.test_api import assert_same, snapshot
from torchscan import CaptureError, Report, ShapeError, crawl_module, sweep
from torchscan.graph.traced_code import TracedCode
from torchscan.records import Cost


class Traceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        y = y + x.mean(1, keepdim=True)
        return self.fc(y.mean((2, 3)))


class SizeBranching(Traceable):
    """Same computation, looping as many times as a size says and caching a size: traced by fx, the
    sizes read from the shape pass as the trace goes."""

    def repeats(self, channels: int) -> int:
        return int(channels) // 3  # int() of a proxy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        for _ in range(self.repeats(x.shape[1])):
            y = y + x.mean(1, keepdim=True)
        self.last_width = int(y.shape[-1])  # state cached during forward (must not reach the user's model)
        return self.fc(y.mean((2, 3)))


class Untraceable(SizeBranching):
    """Same computation, looping a number of times a table keyed by a size gives: a proxy is no key
    of the table (fx cannot trace it), a recorded forward reads the size."""

    table: ClassVar[dict[int, int]] = {3: 1, 4: 1}

    def repeats(self, channels: int) -> int:
        return self.table[channels]


def _as_traceable(model: nn.Module) -> Report:
    """The report of ``model`` (a twin of :class:`Traceable`), checked to leave the model as it was and to
    give the traceable twin's totals and module rows."""
    traced = crawl_module(Traceable().eval(), (3, 16, 16), batch_size=2)
    assert traced.context.capture == "torch.fx"
    before = snapshot(model)
    report = crawl_module(model, (3, 16, 16), batch_size=2)
    assert_same(before, snapshot(model))
    assert not hasattr(model, "last_width")
    assert report.totals == traced.totals
    assert [(r.name, r.flops, r.output_shape) for r in report.rows if r.kind == "module"] == [
        (r.name, r.flops, r.output_shape) for r in traced.rows if r.kind == "module"
    ]
    return report


def test_a_model_branching_on_sizes_is_traced_with_the_sizes_it_reads() -> None:
    specialized = _as_traceable(SizeBranching().eval())
    assert specialized.context.capture == "torch.fx"
    (note,) = [d for d in specialized.diagnostics if d.code == "shape-specialized"]
    assert "read 2 value(s) computed from sizes" in note.message and "as int" in note.message


def test_untraceable_model_gets_the_same_report_by_recording() -> None:
    recorded = _as_traceable(Untraceable().eval())
    assert recorded.context.capture == "eager-record"
    fallback = [d for d in recorded.diagnostics if d.code == "capture-fallback"]
    assert len(fallback) == 1 and "control flow is fixed" in fallback[0].message


def test_kwargs_forward_and_dict_output() -> None:
    class KwargsDict(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor, **kwargs: object) -> dict[str, torch.Tensor]:
            h = self.fc(x)
            if kwargs.get("activate", True):
                h = torch.sigmoid(h)
            return {"logits": h, "hidden": x}

    report = crawl_module(KwargsDict(), (8,), batch_size=3)
    assert report.context.output_shapes == ((3, 4), (3, 8))
    assert report.totals.macs == 3 * 4 * 8 and report.totals.complete


def test_data_dependent_model_falls_back_to_one_real_forward() -> None:
    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.fc(x)
            return y[torch.nonzero(y > -1e9, as_tuple=True)]  # data-dependent shape

    model = DataDependent()
    before = snapshot(model)
    report = crawl_module(model, (4,), batch_size=2)
    assert_same(before, snapshot(model))
    assert report.context.capture == "real-forward"
    assert report.context.output_shapes == ((8,),)
    assert any("REAL forward" in d.message for d in report.diagnostics)
    with torch.device("meta"):
        meta_model = DataDependent()
    with pytest.raises(CaptureError):  # never a real forward of a meta model
        crawl_module(meta_model, (4,))


def test_genuine_shape_errors_still_raise() -> None:
    with pytest.raises(ShapeError, match=r"layer .conv."):
        crawl_module(Traceable(), (3, 16, 16, 2))


class ValueBranch(nn.Module):
    """Python control flow on a value: only a real forward can capture it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return y if y.sum() > 0 else -y


def test_real_forward_can_be_forbidden_and_is_limited() -> None:
    model = ValueBranch()
    state = torch.get_rng_state()
    first, second = crawl_module(model, (4,)), crawl_module(model, (4,))
    assert first.totals == second.totals and first.context.capture == "real-forward"
    assert any(d.code == "real-forward" for d in first.diagnostics)
    assert torch.equal(state, torch.get_rng_state())  # seeded private inputs, forked RNG
    with pytest.raises(CaptureError, match="real_forward=False"):
        crawl_module(model, (4,), real_forward=False)
    with pytest.raises(CaptureError, match=r"above the limit of 100 B"):
        crawl_module(model, (4,), real_forward_limit=100)


def test_a_shape_error_on_fake_tensors_is_final_and_beats_the_fx_error() -> None:
    class WrongAfterBranch(ValueBranch):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[-1] > 2:  # fx cannot trace this (a proxy in a condition)
                x = x.flatten(1)
            return self.fc(x)

    calls: list[int] = []
    model = WrongAfterBranch()
    model.fc.register_forward_hook(lambda *_: calls.append(1))
    with pytest.raises(ShapeError, match=r"layer 'fc'.*\(1, 12\)") as caught:
        crawl_module(model, (3, 4))
    assert "control flow" not in str(caught.value) and calls == []
    assert "note: hooks of the model were not run: forward hook" in str(caught.value)


class Experts(nn.Module):
    """An op whose fake kernel rejects float32 (its meta kernel wants bf16) while the CPU kernel accepts it: the
    ATen spelling of ``grouped_mm``, which no shape rule answers (``torch._grouped_mm``'s rule does)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 16, 8))
        self.register_buffer("offs", torch.tensor([2, 4, 6, 8], dtype=torch.int32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten._grouped_mm.default(x, self.w, self.offs)


def test_an_op_whose_fake_kernel_disagrees_with_the_real_one_gets_the_real_forward() -> None:
    report = crawl_module(Experts(), (16,), batch_size=8)
    assert report.context.capture == "real-forward" and report.context.output_shapes == ((8, 8),)


class ReturnsACache(nn.Module):
    """Returns its output with an object that is not data (as Hugging Face decoders return a cache)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, object]:
        return self.fc(x), {"cache": types.SimpleNamespace(layers=[x])}


@pytest.mark.parametrize("traceable", [True, False])
def test_output_objects_that_are_not_data_are_named_and_left_out(traceable: bool) -> None:
    model = ReturnsACache()
    if not traceable:
        model.forward = lambda x: (model.fc(x) if x.sum() > -1e9 else x, object())  # type: ignore[method-assign]
    report = crawl_module(model, (4,))
    (note,) = [d for d in report.diagnostics if d.code == "opaque-output"]
    assert ("SimpleNamespace" if traceable else "object") in note.message
    assert report.context.output_shapes == ((1, 4),) and report.totals.macs == 16
    with pytest.raises(CaptureError, match="returned no tensor"):
        crawl_module(_NoTensor(), (4,))


class _NoTensor(nn.Module):
    def forward(self, x: torch.Tensor) -> object:
        return (i for i in range(3))


class Tagged(list):  # type: ignore[type-arg]
    """An output container whose constructor takes more than its items."""

    def __init__(self, items: list[torch.Tensor], tag: str) -> None:
        super().__init__(items)
        self.tag = tag


def test_output_containers_of_any_subclass_are_kept() -> None:
    class Returns(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> Tagged:
            return Tagged([self.fc(x), x], "out")

    report = crawl_module(Returns(), (4,))
    assert report.context.capture == "torch.fx" and report.context.output_shapes == ((1, 4), (1, 4))


def test_modules_named_like_graph_module_attributes_are_captured() -> None:
    """The graph is interpreted against the copy itself (no fx.GraphModule): submodules may be called
    ``graph``, ``code`` or ``forward_impl`` like any other name."""
    model = nn.Sequential()
    model.add_module("graph", nn.Conv2d(3, 4, 3))
    model.add_module("code", nn.ReLU())
    model.add_module("meta", nn.Flatten())
    report = crawl_module(model, (3, 8, 8))
    assert [row.name for row in report.rows if row.depth == 1] == ["graph", "code", "meta"]
    assert report.totals.complete and report.row("graph").output_shape == (1, 4, 6, 6)


class _Windows(nn.Module):
    """Sizes unpacked from ``x.shape`` (fx's lazy attribute proxy), as window attention does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        batch, channels, height, width = y.shape
        return y.reshape(batch, channels, height // 2, 2, width).sum(3)


class _ShapeBranch(_Windows):
    """A parameter read, then a branch on a size: fx fails, the forward is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(4, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x) * self.scale
        return y.flip(-1) if y.shape[-1] > 3 else y


def _left_in_cycles(model: nn.Module, shape: tuple[int, ...]) -> list[object]:
    """Frames and modules (copies of the model's) of the analysis that only the cyclic garbage
    collector would free."""
    gc.collect()
    gc.disable()
    try:
        crawl_module(model, shape)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        return [found for found in gc.garbage if isinstance(found, (types.FrameType, nn.Module))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


@pytest.mark.parametrize("model", [_Windows(), _ShapeBranch()], ids=["fx", "recorded"])
def test_an_analysis_leaves_no_frames_or_copies_in_reference_cycles(model: nn.Module) -> None:
    """No frame or module copy of the analysis outlives it in a reference cycle (fx's own iteration
    of an attribute proxy makes one per ``a, b = x.shape``; an error kept for the fallback's
    diagnostic holds its traceback; a failed trace's proxies refer to its tracer): such a cycle keeps
    the copy of the model, the tracer and the graph until the cyclic collector runs after the
    analysis, tens of milliseconds on a transformer."""
    assert _left_in_cycles(model, (3, 8, 6)) == []


class Writing(nn.Module):
    """Writes into slices of a new tensor and of an activation (``x[index] = value``: fx's proxy has no
    ``__setitem__``), by a slice, an integer, a mask and an index tensor, then reads what it wrote."""

    table: ClassVar[dict[int, int]] = {8: 1}

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)
        self.register_buffer("index", torch.tensor([0, 2]))

    def repeats(self, channels: int) -> int:
        return 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        z = torch.zeros_like(y)
        for _ in range(self.repeats(y.shape[1])):
            z[:, :4] = y[:, 4:] * 2
        z[:, 5] = 1.0
        z[z > 0.5] = 0.25
        y[:, self.index] = z[:, 6:]  # into an activation that requires grad
        return self.fc((z.relu() + y).mean((2, 3)))


class WritingUntraceable(Writing):
    """The same, looping a number of times a table keyed by a size gives: recorded."""

    def repeats(self, channels: int) -> int:
        return self.table[channels]


def test_writes_into_tensors_are_traced_and_counted_as_a_recorded_forward_counts_them() -> None:
    traced = crawl_module(Writing().train(), (3, 8, 8), batch_size=2)
    recorded = crawl_module(WritingUntraceable().train(), (3, 8, 8), batch_size=2)
    assert (traced.context.capture, recorded.context.capture) == ("torch.fx", "eager-record")
    assert traced.totals == recorded.totals and traced.totals.complete
    assert traced.memory == recorded.memory
    writes = {n: d["cost"] for n, d in traced.records.nodes(data=True) if d["record"].type_name == "setitem"}
    elements = 2 * 8 * 8  # batch · height · width
    assert list(writes.values()) == [
        Cost(dmas=2 * 4 * elements),  # z[:, :4] = …: written and read
        Cost(dmas=elements),  # z[:, 5] = 1.0
        Cost(dmas=2 * 8 * elements),  # z[mask] = 0.25: every element the mask covers, and the mask
        Cost(dmas=2 * 2 * elements + 2),  # y[:, index] = z[:, 6:]: written, read, and the index
    ]
    relu = next(n for n, d in traced.records.nodes(data=True) if d["record"].type_name == "relu")
    assert any(traced.records.nodes[p]["record"].type_name == "setitem" for p in traced.records.pred[relu])


def test_a_write_of_a_value_that_does_not_fit_names_the_node_and_shapes() -> None:
    class Misfit(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.zeros_like(x)
            y[:, :2] = x  # three channels into two
            return y

    with pytest.raises(ShapeError) as caught:
        crawl_module(Misfit(), (3, 8, 8))
    assert "fx node 'setitem'" in str(caught.value) and "(1, 3, 8, 8), (1, 3, 8, 8)" in str(caught.value)
    assert "y[:, :2] = x" in str(caught.value)  # the user's line


class FourierPositions(nn.Module):
    """A positional code the forward builds from constants alone (``arange`` on the input's device, then
    arithmetic on it), added to the input: fx makes the code once, a constant of the graph."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(16, dtype=torch.float32, device=x.device)
        code = 10000 ** (2 * (steps // 2) / 16)
        empty = torch.zeros(1, 4, 0)  # made from constants too, but empty: nothing to count, not named
        return torch.cat([self.proj(x + code) + code, empty], -1)


def test_tensors_made_from_constants_alone_are_named_as_not_counted() -> None:
    report = crawl_module(FourierPositions(), (4, 16))
    (note,) = [d for d in report.diagnostics if d.code == "folded-constants"]
    assert "1 tensor(s)" in note.message and "float32[16]" in note.message and "not counted" in note.message
    # one constant, read by two nodes of the graph: each named
    assert len(note.nodes) == 2 and all(name in report.records for name in note.nodes)
    assert report.records.nodes[note.nodes[0]]["record"].op == "get_attr"
    assert not [d for d in crawl_module(Traceable(), (3, 8, 8)).diagnostics if d.code == "folded-constants"]


class HeldTable(nn.Module):
    """A table held in a plain list (not a buffer), read as it is or scaled in the forward."""

    def __init__(self, scaled: bool) -> None:
        super().__init__()
        self.tables = [torch.ones(16)]
        self.scaled = scaled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        table = self.tables[0] * 2 if self.scaled else self.tables[0]
        return x + table


def test_a_held_tensor_read_as_it_is_is_not_taken_for_one_the_forward_computes() -> None:
    assert not [d for d in crawl_module(HeldTable(scaled=False), (16,)).diagnostics if d.code == "folded-constants"]
    (note,) = [d for d in crawl_module(HeldTable(scaled=True), (16,)).diagnostics if d.code == "folded-constants"]
    assert "1 tensor(s)" in note.message and "float32[16]" in note.message


class _Experts(nn.Module):
    """Mixture-of-experts experts as Hugging Face's ``grouped_mm`` implementation runs them on the CPU: tokens
    sorted by expert, one grouped matmul over float32 weights held transposed."""

    def __init__(self, experts: int = 4, hidden: int = 16, inner: int = 32) -> None:
        super().__init__()
        self.up = nn.Parameter(torch.randn(experts, inner, hidden))
        self.experts = experts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.reshape(-1, x.shape[-1])
        chosen = torch.arange(tokens.shape[0], device=x.device) % self.experts
        order = torch.argsort(chosen)
        counts = torch.histc(chosen.float(), bins=self.experts, min=0, max=self.experts - 1)  # a static size
        offsets = torch.cumsum(counts, dim=0, dtype=torch.int32)
        return torch.nn.functional.grouped_mm(tokens[order], self.up.transpose(-2, -1), offs=offsets)


def test_a_float32_grouped_matmul_is_traced_on_fake_tensors(caplog: pytest.LogCaptureFixture) -> None:
    """torch's meta kernel of ``grouped_mm`` refuses float32 (the CPU kernel runs it): the shape rule answers, so
    the capture neither falls back to a real forward nor lets FakeTensor log the refusal."""
    with caplog.at_level(logging.ERROR, logger="torch._subclasses.fake_tensor"):
        report = crawl_module(_Experts(), (8, 16), batch_size=2)
    assert report.context.capture == "torch.fx" and not caplog.records
    assert report.records.graph is not None and report.totals.macs == 16 * 32 * 16  # N_out·K (ops/linear.py)


class ExpandedIds(nn.Module):
    """Hugging Face's BERT without ``token_type_ids``: a buffer of ids expanded to the batch, ``buffer.expand(b,
    -1)``. torch's argument parser refuses a proxy among a method's separate sizes (a ``TypeError`` before any
    ``__torch_function__`` sees it), so a trace handing traced code the buffer's fake failed there."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("ids", torch.zeros(1, 16, dtype=torch.long))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.embed = nn.Embedding(10, 8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.add_(1)  # an in-place write into a buffer, as a traced node now
        ids = self.ids[:, : x.shape[1]].expand(x.shape[0], -1)
        return self.fc(self.embed(x) + self.embed(ids))


def test_a_buffer_method_given_traced_sizes_is_traced_with_buffers_as_proxies() -> None:
    """The trace runs again with buffers read by name as their ``get_attr`` proxies (fx's
    ``proxy_buffer_attributes``): the graph follows the batch size (a sweep reuses it), and the model's buffers
    are as found. Before, the capture fell back to recording one forward (a graph fixed to its input)."""
    model = ExpandedIds().eval()
    before = snapshot(model)
    inputs = [torch.zeros(batch, 12, dtype=torch.long) for batch in (2, 5)]
    reports = [crawl_module(model, args=(x,)) for x in inputs]
    assert [report.context.capture for report in reports] == ["torch.fx", "torch.fx"]
    assert not [d for report in reports for d in report.diagnostics if d.code == "capture-fallback"]
    for report, batch in zip(reports, (2, 5), strict=True):
        records = [report.records.nodes[name]["record"] for name in report.records]
        assert [record.outputs[0].shape for record in records if record.type_name == "expand"] == [(batch, 12)]
        assert report.totals.macs == batch * 12 * 8 * 4  # the projection; embeddings and the expand cost none
    assert_same(before, snapshot(model))
    assert int(model.calls) == 0
    swept = sweep(model, [{"args": (x,)} for x in inputs])
    assert [item.to_dict() for item in swept] == [report.to_dict() for report in reports]


class _Helped(ExpandedIds):
    """:class:`ExpandedIds` whose forward calls a method of its own that reaches ``math`` (seen through the traced
    code's functions)."""

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        return x * math.sqrt(x.shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale(super().forward(x))


def test_the_traces_of_one_capture_share_their_traced_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trace stopped by the buffer's expand and the one made again share one table of traced functions: a
    method of the model's class is made once for both (it was made again by each trace)."""
    made: list[type] = []
    methods = TracedCode.methods

    def counted(self: TracedCode, cls: type, stop: Any) -> Any:
        if cls not in self._methods:
            made.append(cls)
        return methods(self, cls, stop)

    monkeypatch.setattr(TracedCode, "methods", counted)
    report = crawl_module(_Helped().eval(), args=(torch.zeros(2, 12, dtype=torch.long),))
    assert report.context.capture == "torch.fx" and report.totals.macs == 2 * 12 * 8 * 4
    assert made.count(_Helped) == 1


@pytest.mark.parametrize(
    ("model", "config", "decoder"),
    [
        (
            "BertModel",
            {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
            0,
        ),
        (
            "BartModel",
            {
                "d_model": 32,
                "encoder_layers": 1,
                "decoder_layers": 1,
                "encoder_attention_heads": 2,
                "decoder_attention_heads": 2,
                "encoder_ffn_dim": 64,
                "decoder_ffn_dim": 64,
            },
            8,
        ),
    ],
)
def test_hugging_face_models_called_without_their_optional_inputs_are_traced(
    model: str, config: dict, decoder: int
) -> None:
    """BERT without ``token_type_ids`` (its buffer expanded to the batch: the buffer-proxy retry) and BART without
    ``attention_mask`` (``torch.ones(batch, n)`` in a forward behind ``can_return_tuple``: the wrapper's closure
    followed) were recorded on fake tensors (a fixed graph, a capture-fallback diagnostic); both are traced now."""
    transformers = pytest.importorskip("transformers")
    built = getattr(transformers, model)(getattr(transformers, model.replace("Model", "Config"))(**config)).eval()
    kwargs = {"input_ids": torch.zeros(2, 16, dtype=torch.long)}
    if decoder:
        kwargs["decoder_input_ids"] = torch.zeros(2, decoder, dtype=torch.long)
    report = crawl_module(built, kwargs=kwargs)
    assert report.context.capture == "torch.fx" and report.totals.complete
    assert not [d for d in report.diagnostics if d.code == "capture-fallback"]


def _tiny_llava() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    text = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}
    text |= {"num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000}
    vision = {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    vision |= {"num_attention_heads": 4, "image_size": 64, "patch_size": 16}
    config = transformers.LlavaConfig(text_config=text, vision_config=vision, image_seq_length=16, image_token_id=999)
    return transformers.LlavaModel(config).eval()


def test_hugging_face_output_capture_runs_on_the_copy() -> None:
    """Transformers collects ``hidden_states`` and ``attentions`` by forward hooks its decorators register at a
    model's first call asking for them. LLaVA asks its vision tower for them inside its forward and reads one
    (``hidden_states[-2]``), and checks its image tokens with ``torch._check`` on data: it failed (``IndexError``
    on fake tensors, no real forward on meta) and is traced by fx now, its outputs and MACs a real forward's
    (FlopCounterMode's with SDPA decomposed, the kernel it counts on CPU). BERT's ``output_hidden_states=True``
    returned no hidden state; it returns the real forward's. Once the model has been called so, it holds the hooks
    (and a flag that keeps its forward from registering them again): the copy keeps them, and the reports are the
    ones made before that call (LLaVA failed then, BERT returned no hidden state)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model = _tiny_llava()
    ids = torch.randint(0, 990, (1, 24))
    ids[0, 2:18] = 999  # the image's 16 tokens
    inputs = {"input_ids": ids, "pixel_values": torch.randn(1, 3, 64, 64)}
    report = crawl_module(model, kwargs=inputs)
    assert report.context.capture == "torch.fx" and report.totals.complete
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        output = model(**inputs)
    leaves = [leaf for leaf in torch.utils._pytree.tree_leaves(dict(output)) if torch.is_tensor(leaf)]
    assert report.context.output_shapes == tuple(tuple(leaf.shape) for leaf in leaves)
    norms = sum(row.macs for row in report.rows if row.kind == "module" and row.type == "LayerNorm")
    assert report.totals.macs - norms == counter.get_total_flops() // 2
    assert any(module._forward_hooks for module in model.modules())
    assert crawl_module(model, kwargs=inputs).to_dict() == report.to_dict()

    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64)
    bert = transformers.BertModel(config).eval()
    asked = {"input_ids": torch.zeros(2, 8, dtype=torch.long), "output_hidden_states": True}
    report = crawl_module(bert, kwargs=asked)
    assert report.context.output_shapes == ((2, 8, 32), (2, 32), *[(2, 8, 32)] * 4)
    assert len(bert(**asked).hidden_states) == 4
    assert crawl_module(bert, kwargs=asked).to_dict() == report.to_dict()
    assert not [d for d in crawl_module(bert, kwargs=asked).diagnostics if d.code == "hooks-ignored"]
    calls: list[str] = []
    bert.encoder.layer[0].register_forward_hook(lambda module, args, output: calls.append("user"))
    again = crawl_module(bert, kwargs=asked)
    assert calls == [] and again.context.output_shapes == report.context.output_shapes
    (ignored,) = [d for d in again.diagnostics if d.code == "hooks-ignored"]
    assert ignored.message.startswith("1 user hook(s)") and "encoder.layer.0" in ignored.message


class _Derivatives(nn.Module):
    """A physics-informed network: its output and the output's derivative with respect to the input."""

    def __init__(self, method: bool) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
        self.method = method

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        u = self.net(x)
        if self.method:
            u.sum().backward(create_graph=True)
            return u, x.grad
        (du,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        return u, du


@pytest.mark.parametrize("method", [False, True])
def test_a_backward_pass_inside_the_forward_is_said_unsupported(method: bool) -> None:
    """``torch.autograd.grad`` (or ``.backward()``) in a forward failed with torch's 'element 0 of tensors does not
    require grad', as if the model were wrong: the analysis keeps no autograd graph of the forward's values."""
    model = _Derivatives(method)
    assert model(torch.zeros(4, 2))[1].shape == (4, 2)  # eager runs it
    with pytest.raises(CaptureError, match=r"runs a backward pass inside the forward .*: not supported") as caught:
        crawl_module(model, (2,), batch_size=4)
    assert "test_capture.py" in str(caught.value)
