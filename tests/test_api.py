"""Public API: crawl_module / summary behaviour, input validation, model left as found."""

from __future__ import annotations

import contextlib
import gc
import io
import re
import sys
import threading
import weakref
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import torchscan
from tests.profiles import examples
from tests.strategies import RandomNet, random_nets
from torchscan import InputError, ShapeError, crawl_module, summary, sweep
from torchscan.records import RECORD


def snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "grads": {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()},
        "requires_grad": {k: p.requires_grad for k, p in model.named_parameters()},
        "training": {k: m.training for k, m in model.named_modules()},
        "dicts": {k: sorted(vars(m)) for k, m in model.named_modules()},
        "hooks": {k: (len(m._forward_hooks), len(m._forward_pre_hooks)) for k, m in model.named_modules()},
        "devices": {k: v.device for k, v in model.state_dict().items()},
    }


def assert_same(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key in ("grads", "state"):
        assert before[key].keys() == after[key].keys()
        for name, value in before[key].items():
            other = after[key][name]
            assert (value is None and other is None) or torch.equal(value, other), name
    for key in ("requires_grad", "training", "dicts", "hooks", "devices"):
        assert before[key] == after[key], key


def test_public_surface() -> None:
    assert set(torchscan.__all__) == {
        "CaptureError",
        "Context",
        "Cost",
        "Diagnostic",
        "Dim",
        "Fit",
        "InputError",
        "OpCall",
        "Report",
        "Row",
        "ShapeError",
        "SymbolicReport",
        "TensorSpec",
        "TorchscanError",
        "Totals",
        "compare",
        "crawl_module",
        "summary",
        "sweep",
    }


def test_model_left_exactly_as_found_in_training_mode() -> None:
    model = torchvision.models.resnet18(num_classes=10).train()
    model.layer1[0].bn1.eval()  # mixed flags
    model.fc.weight.requires_grad_(False)
    model(torch.randn(2, 3, 32, 32)).sum().backward()  # grads present
    calls: list[int] = []
    model.layer2.register_forward_hook(lambda *args: calls.append(1))
    before = snapshot(model)
    report = crawl_module(model, (3, 32, 32), batch_size=2)
    assert report.totals.flops > 0
    assert_same(before, snapshot(model))
    assert calls == []  # user hooks never see analysis calls


class _CountedAttention(nn.Module):
    """Attention (a call the memory pass records on the copy) whose forward counts its runs in a global list."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(16, 2, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _RUNS.append(1)
        return self.head(self.attention(x, x, x, need_weights=False)[0].relu())


_RUNS: list[int] = []


def test_the_memory_section_is_made_on_first_read_from_plain_records() -> None:
    """The memory section is made when first read, equal to the one read at once: the model may have changed
    or be gone by then, its code does not run again, and until then the report holds neither it nor a tensor."""
    model = _CountedAttention().train()
    at_once = crawl_module(model, (5, 16), batch_size=3)
    expected = at_once.memory
    held = [weakref.ref(tensor) for tensor in (*model.parameters(), *model.buffers())]
    report = crawl_module(model, (5, 16), batch_size=3)
    runs = len(_RUNS)
    with torch.no_grad():
        model.head = nn.Linear(16, 400)  # an edit after the analysis: the report answers for the model as it was
    model.eval()
    del model
    gc.collect()
    assert all(ref() is None for ref in held)  # not one parameter held by the unread report
    assert report.memory == expected and report.to_dict() == at_once.to_dict()
    assert len(_RUNS) == runs  # no forward ran for the memory section
    assert report.memory is report.memory  # made once


def test_an_analysis_makes_no_memory_section_until_read(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[int] = []
    estimate = torchscan.api.estimate_memory
    monkeypatch.setattr(
        torchscan.api, "estimate_memory", lambda *args, **kwargs: made.append(1) or estimate(*args, **kwargs)
    )
    report = crawl_module(torchvision.models.resnet18(num_classes=10).eval(), (3, 32, 32))
    assert report.totals.macs > 0 and report.rows and made == []
    assert report.memory.activation_peak_bytes > 0 and report.memory.training
    assert made == [1]


class _WithUnusedHead(nn.Module):
    """A block whose auxiliary head is never called (an ``unused-params`` diagnostic) and whose forward counts its
    runs in a global list."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
        self.aux = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _RUNS.append(1)
        return self.body(x).mean((2, 3))


def test_the_rows_and_diagnostics_are_made_on_first_read_from_plain_records() -> None:
    """Rows and diagnostics are made when first read, equal to those read at once: the model may have changed or
    be gone by then, its code does not run again, and until then the report holds neither it nor a tensor."""
    model = _WithUnusedHead().train()
    at_once = crawl_module(model, (3, 12, 12), batch_size=2)
    expected = (at_once.diagnostics, at_once.rows)
    assert [diagnostic.code for diagnostic in expected[0]] == ["unused-params"]
    held = [weakref.ref(tensor) for tensor in (*model.parameters(), *model.buffers())]
    report = crawl_module(model, (3, 12, 12), batch_size=2)
    runs = len(_RUNS)
    model.aux = nn.Linear(8, 400)  # an edit after the analysis: the report answers for the model as it was
    model.body.insert(0, nn.Identity())
    del model
    gc.collect()
    assert all(ref() is None for ref in held)  # not one parameter held by the unread report
    assert (report.diagnostics, report.rows) == expected  # the diagnostics first: they read the rows
    assert report.to_dict() == at_once.to_dict()
    assert len(_RUNS) == runs  # no forward ran for the rows
    assert report.rows is report.rows  # made once


def test_an_analysis_makes_no_rows_until_read(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[int] = []
    build = torchscan.api.build_rows
    monkeypatch.setattr(torchscan.api, "build_rows", lambda *args, **kwargs: made.append(1) or build(*args, **kwargs))
    report = crawl_module(torchvision.models.resnet18(num_classes=10).eval(), (3, 32, 32))
    assert report.totals.macs > 0 and made == []
    assert report.diagnostics == () and made == [1]  # the unused-parameters diagnostic reads the rows
    assert report.row("layer1.0.conv1").macs > 0 and sum(row.macs for row in report.rows_at_depth(1)) == (
        report.totals.macs
    )
    assert made == [1]  # the rows the diagnostics read, kept
    fields = crawl_module(torchvision.models.resnet18(num_classes=10).eval(), (3, 32, 32), receptive_field=True)
    assert made == [1, 1]  # receptive fields are written on the rows: made with them
    assert fields.row("layer1").receptive_field is not None


@pytest.mark.parametrize("part", ["memory", "rows", "diagnostics"])
def test_parts_of_a_sweep_made_on_first_read_from_threads_equal_fresh_analyses(part: str) -> None:
    """A sweep's reports share the capture's memos: each part made on its first read (the memory section, the rows,
    the diagnostics, which read the rows) read from four threads at once equals a fresh analysis's."""
    model = torchvision.models.resnet18(num_classes=10).train()
    model.aux = nn.Linear(512, 3)  # never called: an unused-params diagnostic
    sizes = [(3, size, size) for size in (64, 96, 128, 80)]
    fresh = [getattr(crawl_module(model, size), part) for size in sizes]
    reports = sweep(model, sizes)
    start = threading.Barrier(len(reports))
    read: dict[int, object] = {}

    def read_part(position: int) -> None:
        start.wait()
        read[position] = getattr(reports[position], part)

    threads = [threading.Thread(target=read_part, args=(position,)) for position in range(len(reports))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [read[position] for position in range(len(reports))] == fresh


def test_model_left_as_found_when_analysis_raises() -> None:
    model = torchvision.models.resnet18().train()
    before = snapshot(model)
    with pytest.raises(ShapeError):
        crawl_module(model, (4, 32, 32))
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("collecting", [True, False])
def test_garbage_collector_state_is_restored(collecting: bool) -> None:
    model = torchvision.models.resnet18().eval()
    (gc.enable if collecting else gc.disable)()
    try:
        crawl_module(model, (3, 32, 32))
        assert gc.isenabled() is collecting
        with pytest.raises(ShapeError):
            crawl_module(model, (4, 32, 32))
        assert gc.isenabled() is collecting
    finally:
        gc.enable()


def test_meta_device_model() -> None:
    with torch.device("meta"):
        model = torchvision.models.resnet50()
    report = crawl_module(model, (3, 224, 224))
    reference = crawl_module(torchvision.models.resnet50(), (3, 224, 224))
    assert report.totals == reference.totals
    assert report.context.device == "meta"


def test_analysis_cost_does_not_depend_on_resolution() -> None:
    # fake tensors: a 4096x4096 input with batch 64 would need 12 GiB for its first activation alone
    report = crawl_module(torchvision.models.resnet18(), (3, 4096, 4096), batch_size=64)
    assert report.context.output_shapes == ((64, 1000),)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ((), "empty"),
        ((3, -1, 8), "dimension < 1"),
        ((3, 0, 8), "dimension < 1"),
        ("3x224", "input_shape must be"),
        ([(3, 8, 8), ()], "input 1 shape is empty"),
    ],
)
def test_bad_input_shapes(bad: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        crawl_module(nn.Linear(3, 3), bad)  # type: ignore[arg-type]


def test_not_a_module() -> None:
    with pytest.raises(InputError, match=r"must be a torch\.nn\.Module"):
        crawl_module(lambda x: x, (3,))  # type: ignore[arg-type]


def test_shape_the_model_rejects_names_layer_and_shapes() -> None:
    class Mismatch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(10, 5), nn.ReLU())
            self.head = nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.encoder(x))

    with pytest.raises(ShapeError) as caught:
        crawl_module(Mismatch(), (10,))
    message = str(caught.value)
    assert "layer 'head'" in message and "(1, 5)" in message and "fx node 'head'" in message
    assert "test_api.py" in message  # points at the user's line
    assert caught.value.module_path == "head"
    assert caught.value.input_shapes == ((1, 5),)


class ModuleSpelling(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
        self.bn = nn.BatchNorm2d(6)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 3)
        self.drop = nn.Dropout(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.bn(self.conv(x))))
        return self.fc(self.drop(torch.flatten(self.avg(x), 1)))


class FunctionalSpelling(ModuleSpelling):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, b = self.conv, self.bn
        x = F.conv2d(x, c.weight, c.bias, c.stride, c.padding, c.dilation, c.groups)
        x = F.batch_norm(x, b.running_mean, b.running_var, b.weight, b.bias, self.training, b.momentum, b.eps)
        x = F.max_pool2d(F.relu(x), 2)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return F.linear(F.dropout(x, 0.3, self.training), self.fc.weight, self.fc.bias)


@pytest.mark.parametrize("training", [False, True])
def test_module_and_functional_spellings_cost_the_same(training: bool) -> None:
    modules = crawl_module(ModuleSpelling().train(training), (4, 16, 16), batch_size=3).totals
    functions = crawl_module(FunctionalSpelling().train(training), (4, 16, 16), batch_size=3).totals
    assert (modules.flops, modules.macs, modules.dmas) == (functions.flops, functions.macs, functions.dmas)
    assert modules.complete and functions.complete


def test_unknown_op_is_reported_never_silent() -> None:
    class Fancy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.special.bessel_j0(self.fc(x))

    report = crawl_module(Fancy(), (8,))
    assert not report.totals.complete and report.totals.unknown_ops >= 1
    assert report.totals.macs == 64  # the known part is still counted
    assert any(d.code == "unknown-op" and "bessel_j0" in d.message for d in report.diagnostics)
    assert "lower bound" in torchscan.render.table.render_table(report)


def test_tied_parameters_count_once() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(5, 7, bias=False)
            self.head = nn.Linear(7, 5, bias=False)
            self.unembed = nn.Linear(7, 5, bias=False)
            self.unembed.weight = self.head.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.embed(x)
            return self.head(h) + self.unembed(h)

    report = crawl_module(Tied(), (5,))
    assert report.totals.params == 35 + 35
    assert report.row("unembed").shared_params == 35 and report.row("unembed").params == 0
    assert sum(row.params for row in report.rows_at_depth(1)) == report.totals.params


def test_summary_prints_table_and_returns_report() -> None:
    buffer = io.StringIO()
    report = summary(torchvision.models.resnet18(), (3, 64, 64), max_depth=1, file=buffer)
    text = buffer.getvalue()
    assert "├─layer1" in text and "Sequential" in text and "11,689,512" in text
    assert "│    " not in text  # depth 1 only
    assert "GFLOPs" in text or "MFLOPs" in text
    assert report.totals.params == 11_689_512


def test_summary_at_a_prompt_shows_the_table_then_one_line() -> None:
    """What an interactive prompt prints for ``summary(...)``: the table, then the result's repr (one line)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        sys.displayhook(summary(torchvision.models.resnet50(), (3, 64, 64), max_depth=1))
    table, shown = buffer.getvalue().rstrip("\n").rsplit("\n", 1)
    assert table.endswith("_") and shown.startswith("<torchscan Report ResNet: 25.6M params") and len(shown) < 120


def test_summary_columns_and_width() -> None:
    buffer = io.StringIO()
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 5))
    report = summary(model, (3, 32, 32), columns="all,receptive_field", width=60, file=buffer)
    text = buffer.getvalue()
    assert report.row("2").receptive_field == (7, 7)  # naming the column turned receptive_field on
    assert all(len(line) <= 60 for line in text.splitlines())
    assert all(header in text for header in ("Kernel", "FLOPs %", "Receptive field", "Output Bytes"))
    buffer = io.StringIO()
    summary(model, (3, 32, 32), columns=["flops", "kernel"], width=0, file=buffer)
    assert re.split(r" {2,}", buffer.getvalue().splitlines()[1]) == ["Layer", "FLOPs", "Kernel"]


def test_summary_checks_columns_before_the_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torchscan.api, "crawl_module", lambda *args, **kwargs: pytest.fail("analysed"))
    with pytest.raises(InputError, match=r"unknown column 'flop' \(did you mean 'flops'\?\); valid columns: type, "):
        summary(nn.Linear(2, 2), (2,), columns="kernel,flop")


def test_multiple_inputs_and_dtypes() -> None:
    class Two(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a @ b

    report = crawl_module(Two(), [(2, 3), (3, 4)], dtype=torch.float16)
    assert report.context.input_shapes == ((1, 2, 3), (1, 3, 4))
    assert report.context.dtypes == ("float16", "float16")
    assert report.totals.macs == 2 * 4 * 3


@given(random_nets())
def test_output_shapes_equal_a_real_forward(case: tuple[RandomNet, tuple[int, int, int]]) -> None:
    model, shape = case
    seen: dict[str, tuple[int, ...]] = {}

    def record(name: str) -> object:
        def hook(module: nn.Module, args: object, output: torch.Tensor) -> None:
            seen.setdefault(name, tuple(output.shape))

        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in model.named_modules() if name]
    try:
        with torch.no_grad():
            output = model.eval()(torch.randn(2, *shape))
    finally:
        for handle in handles:
            handle.remove()
    report = crawl_module(model, shape, batch_size=2)
    assert report.context.output_shapes == (tuple(output.shape),)
    for row in report.rows:
        if row.kind == "module" and row.name in seen:
            assert row.output_shape == seen[row.name], row.name


@given(random_nets())
def test_model_unchanged_property(case: tuple[RandomNet, tuple[int, int, int]]) -> None:
    model, shape = case
    before = snapshot(model)
    crawl_module(model, shape, batch_size=2)
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_report_does_not_depend_on_the_callers_grad_mode(context: type) -> None:
    model = torchvision.models.vit_b_16(image_size=64).eval()  # MultiheadAttention has a no-grad fast path
    reference = crawl_module(model, (3, 64, 64)).to_dict()
    with context():
        assert crawl_module(model, (3, 64, 64)).to_dict() == reference


class _Counting(torch.overrides.TorchFunctionMode):
    """A caller's torch function mode: counts every call it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.calls += 1
        return func(*args, **(kwargs or {}))


def test_the_callers_modes_never_see_the_analysis() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    counting = _Counting()
    with FlopCounterMode(display=False) as counter, counting, torch.device("meta"):
        stacks = (torch.overrides._get_current_function_mode_stack(), _dispatch_stack())
        seen = counting.calls
        report = crawl_module(model, (3, 8, 8))
        with pytest.raises(ShapeError):
            crawl_module(model, (3, 9, 9))
        assert counting.calls == seen
        assert (torch.overrides._get_current_function_mode_stack(), _dispatch_stack()) == stacks
    assert counter.get_total_flops() == 0
    assert report.totals.macs == 8 * 3 * 9 * 36 + 288 * 4


def _dispatch_stack() -> list[object]:
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    return _get_current_dispatch_mode_stack()


class _BatchNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_a_batch_dimension_given_by_mistake_is_pointed_out() -> None:
    with pytest.raises(ShapeError) as caught:
        crawl_module(_BatchNet(), (1, 3, 8, 8))
    message = str(caught.value)
    assert "hint: input_shape excludes the batch dimension (batch_size=1 is prepended)" in message
    assert "the model takes (3, 8, 8)" in message


def test_no_batch_hint_when_the_leading_one_is_not_the_problem() -> None:
    with pytest.raises(ShapeError) as caught:
        crawl_module(_BatchNet(), (1, 8, 8))  # one channel where three are expected: no rank problem
    assert "hint" not in str(caught.value)


# sweep(): one capture, many input shapes, reports equal to fresh analyses


def _fresh(model: nn.Module, items: list[dict]) -> list[torchscan.Report]:
    return [crawl_module(model, **item) for item in items]


def _assert_equal_reports(swept: list[torchscan.Report], fresh: list[torchscan.Report]) -> None:
    assert len(swept) == len(fresh)
    for one, other in zip(swept, fresh, strict=True):
        assert one.to_dict() == other.to_dict()


@contextlib.contextmanager
def _counted_traces(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many times the model was traced (the fx capture) while the block ran."""
    import torchscan.graph.capture as capture_module

    calls = [0]
    original = capture_module.capture

    def counting(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(capture_module, "capture", counting)
    yield calls


@given(random_nets(), st.integers(1, 3), st.integers(0, 3))
@settings(max_examples=examples(10), deadline=None)
def test_a_sweep_equals_fresh_analyses_on_random_nets(
    case: tuple[RandomNet, tuple[int, ...]], batch: int, grow: int
) -> None:
    model, shape = case
    channels, *spatial = shape
    larger = (channels, *(size + grow for size in spatial))  # every layer accepts a larger input
    items = [
        {"input_shape": shape},
        {"input_shape": larger, "batch_size": batch},
        {"input_shape": shape, "batch_size": batch + 1},
    ]
    before = snapshot(model)
    swept = torchscan.sweep(model, items, receptive_field=True)
    assert_same(before, snapshot(model))
    _assert_equal_reports(swept, [crawl_module(model, **item, receptive_field=True) for item in items])


@pytest.mark.parametrize(
    ("name", "items"),
    [
        ("resnet18", [(3, 224, 224), (3, 160, 192), (3, 64, 64), (3, 321, 321)]),
        ("mobilenet_v3_small", [(3, 224, 224), (3, 97, 131)]),
        ("vit_b_16", [{"input_shape": (3, 224, 224), "batch_size": b} for b in (1, 4, 2)]),
    ],
)
def test_a_sweep_traces_once_and_equals_fresh_analyses_on_torchvision(
    name: str, items: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = torchvision.models.get_model(name, weights=None).eval()
    as_items = [item if isinstance(item, dict) else {"input_shape": item} for item in items]
    with _counted_traces(monkeypatch) as traces:
        swept = torchscan.sweep(model, items)
    assert traces[0] == 1
    _assert_equal_reports(swept, _fresh(model, as_items))


class _Aliasing(nn.Module):
    """Views or copies depending on the input's shape: with one channel, ``transpose`` gives a
    contiguous tensor, so ``reshape`` is a view and ``contiguous()`` a no-op; with several, both copy."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 8)
        self.drop = nn.Dropout(0.25)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.linear(x)  # (B, C, 8)
        t = y.transpose(1, 2)
        flat = t.reshape(t.shape[0], -1)
        c = t.contiguous()
        z = self.drop(flat).sum(1, keepdim=True)
        z += 1  # eager Python runs it in place
        return c * 2, z


def _shares_storage(report: torchscan.Report, type_name: str) -> bool:
    """Whether the first node of ``type_name`` lives in the storage of the tensor it reads."""
    graph = report.records
    name = next(node for node in graph if graph.nodes[node][RECORD].type_name == type_name)
    (source,) = (node for node in graph.predecessors(name) if graph.nodes[node][RECORD].outputs)
    return graph.nodes[name][RECORD].storages[0].id == graph.nodes[source][RECORD].storages[0].id


@pytest.mark.parametrize("training", [False, True])
def test_a_sweep_whose_items_change_aliasing_equals_fresh_analyses(training: bool) -> None:
    model = _Aliasing().train(training)
    items = [
        {"input_shape": (3, 8), "batch_size": 2},
        {"input_shape": (1, 8), "batch_size": 2},  # one channel: reshape a view, contiguous() a no-op
        {"input_shape": (5, 8), "batch_size": 1},
        {"input_shape": (1, 8), "batch_size": 1},
    ]
    swept = torchscan.sweep(model, items)
    fresh = _fresh(model, items)
    _assert_equal_reports(swept, fresh)
    for one, other in zip(swept, fresh, strict=True):
        assert one.memory == other.memory
    assert [_shares_storage(report, "reshape") for report in swept] == [False, True, False, True]
    assert [_shares_storage(report, "contiguous") for report in swept] == [False, True, False, True]


@pytest.mark.parametrize("training", [False, True])
def test_a_sweep_over_sizes_and_batches_with_skip_connections_equals_fresh_analyses(training: bool) -> None:
    model = torchvision.models.resnet18(weights=None).train(training)
    items = [
        {"input_shape": (3, 64, 64)},
        {"input_shape": (3, 64, 64), "batch_size": 3},
        {"input_shape": (3, 97, 40), "batch_size": 2},
        {"input_shape": (3, 33, 33)},
    ]
    swept = torchscan.sweep(model, items)
    fresh = _fresh(model, items)
    _assert_equal_reports(swept, fresh)
    for one, other in zip(swept, fresh, strict=True):
        assert one.memory == other.memory
        assert one.context.training is training


def test_a_sweep_shares_common_arguments_and_items_override_them() -> None:
    model = nn.Sequential(nn.MaxPool2d(3, stride=2), nn.ReLU(), nn.Flatten(1))  # no weights: any float dtype
    items = [{"batch_size": 2}, {"batch_size": 5, "dtype": torch.float64}]
    swept = torchscan.sweep(model, items, input_shape=(3, 9, 9))
    assert [report.context.input_shapes for report in swept] == [((2, 3, 9, 9),), ((5, 3, 9, 9),)]
    assert [report.context.dtypes for report in swept] == [("float32",), ("float64",)]
    _assert_equal_reports(swept, [crawl_module(model, (3, 9, 9), **item) for item in items])
    assert swept[1].totals.flops == swept[0].totals.flops * 5 // 2  # batch-linear


class _Flagged(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor, twice: bool = False) -> torch.Tensor:
        y = self.conv(x)
        return self.conv(x) + y if twice else y


def test_a_sweep_never_reuses_a_graph_traced_for_other_non_tensor_values(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _Flagged()
    x = torchscan.TensorSpec((1, 3, 8, 8))
    items = [
        {"args": (x,), "kwargs": {"twice": False}},
        {"args": (x,), "kwargs": {"twice": True}},
        {"args": (torchscan.TensorSpec((2, 3, 8, 8)),), "kwargs": {"twice": True}},
    ]
    with _counted_traces(monkeypatch) as traces:
        swept = torchscan.sweep(model, items)
    assert traces[0] == 2  # the flag changed the graph: traced again; the batch change reused it
    _assert_equal_reports(swept, _fresh(model, items))
    assert swept[1].totals.macs == 2 * swept[0].totals.macs


class _Shifted(nn.Module):
    def forward(self, x: torch.Tensor, shift: float = 0.0) -> torch.Tensor:
        return x + shift


def test_a_sweep_tells_a_negative_zero_from_a_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torchscan.TensorSpec((1, 3))
    items = [{"args": (x,), "kwargs": {"shift": 0.0}}, {"args": (x,), "kwargs": {"shift": -0.0}}]
    with _counted_traces(monkeypatch) as traces:
        swept = torchscan.sweep(_Shifted(), items)
    assert traces[0] == 2  # the graph holds the constant, sign included
    _assert_equal_reports(swept, _fresh(_Shifted(), items))


class _Branchy(nn.Module):
    """Python control flow on a size: the trace takes the branch the shape pass says (the graph is
    specialized to it); a sweep traces again where the branch differs."""

    def __init__(self) -> None:
        super().__init__()
        self.small, self.large = nn.Linear(8, 8), nn.Linear(8, 8, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.small(x) if x.shape[1] < 4 else self.large(x).relu()


def test_a_sweep_traces_a_specialized_graph_again_where_its_sizes_read_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    items = [{"input_shape": (length, 8)} for length in (2, 6, 3, 1, 5)]
    with _counted_traces(monkeypatch) as traces:
        swept = torchscan.sweep(_Branchy(), items)
    assert traces[0] == 4  # 2 and 6 take other branches, 3 too after 6, 1 reuses 3's graph, 5 does not
    _assert_equal_reports(swept, _fresh(_Branchy(), items))
    assert [report.row("small").flops > 0 for report in swept] == [True, False, True, True, False]
    assert all(report.context.capture == "torch.fx" for report in swept)


class _RankBranchy(nn.Module):
    """A branch on the input's rank: ``Linear`` takes a 3-D input too, so only the rank read tells the graphs apart."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x if x.ndim == 2 else x.amax(1))


def test_a_sweep_traces_again_where_an_input_s_rank_reads_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [{"input_shape": shape} for shape in ((8,), (5, 8), (3, 8), (8,))]
    with _counted_traces(monkeypatch) as traces:
        swept = torchscan.sweep(_RankBranchy(), items)
    assert traces[0] == 3  # (5, 8) reads rank 3 where (8,)'s graph read 2; (3, 8) reuses it; (8,) reads 2 again
    _assert_equal_reports(swept, _fresh(_RankBranchy(), items))
    assert [report.totals.macs for report in swept] == [32, 32, 32, 32]
    ops = [{record.type_name for _, record in report.records.nodes(data="record")} for report in swept]
    assert ["amax" in found for found in ops] == [False, True, True, False]


class _DtypeCast(nn.Module):
    """Computes in its weights' dtype, answers in its input's: only the dtype reads tell the graphs apart."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x if x.dtype == self.fc.weight.dtype else x.to(self.fc.weight.dtype))
        return y.clamp(min=torch.finfo(x.dtype).min).to(x.dtype)


def test_a_sweep_traces_again_where_an_input_s_dtype_reads_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [{"input_shape": (8,), "dtype": dtype} for dtype in (torch.float32, torch.float64, torch.float64)]
    with _counted_traces(monkeypatch) as traces:
        swept = torchscan.sweep(_DtypeCast(), items)
    assert traces[0] == 2  # float64 reads otherwise than float32's graph; the second float64 reuses the first
    _assert_equal_reports(swept, _fresh(_DtypeCast(), items))
    casts = [sum(record.type_name == "to" for _, record in report.records.nodes(data="record")) for report in swept]
    assert casts == [1, 2, 2] and all(report.context.capture == "torch.fx" for report in swept)


class _FixedView(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = nn.Conv2d(1, 2, 3), nn.Linear(2 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).view(-1, 2 * 6 * 6))


def test_a_sweep_raises_where_a_fresh_analysis_raises() -> None:
    model = _FixedView()
    with pytest.raises(ShapeError) as fresh:
        crawl_module(model, (1, 9, 9))
    with pytest.raises(ShapeError) as swept:
        torchscan.sweep(model, [(1, 8, 8), (1, 9, 9)])
    assert swept.value.message == fresh.value.message
    assert swept.value.node == fresh.value.node


def test_sweep_rejects_unknown_arguments() -> None:
    model = nn.Linear(3, 3)
    with pytest.raises(InputError, match="unexpected keyword argument"):
        torchscan.sweep(model, [(3,)], max_depth=2)
    with pytest.raises(InputError, match="a sweep item may set"):
        torchscan.sweep(model, [{"input_shape": (3,), "formulas": {}}])
    assert torchscan.sweep(model, []) == []


def test_a_lazy_module_is_a_clear_input_error() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LazyLinear(5))
    with pytest.raises(InputError, match=r"layer '1' \(LazyLinear\) has an uninitialized parameter"):
        crawl_module(model, (3,))


class _NotInitialized(nn.Module):
    def __init__(self) -> None:  # no super().__init__(): none of a module's state
        self.width = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_a_module_never_initialised_is_a_clear_input_error() -> None:
    """A subclass whose ``__init__`` skips ``super().__init__()`` failed with torch's raw ``AttributeError: ... has
    no attribute '_modules'`` (the command's "bug" exit status); the error names the layer and what to do."""
    with pytest.raises(InputError, match=r"^_NotInitialized was never initialised as a torch.nn.Module: its __init__"):
        crawl_module(_NotInitialized(), (3,))
    model = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.ReLU(), _NotInitialized()))
    with pytest.raises(InputError, match=r"^layer '1.1' \(_NotInitialized\) was never initialised .* super"):
        crawl_module(model, (3,))


def test_an_analysis_where_the_caller_disabled_saved_tensor_hooks_equals_one_where_they_are_allowed() -> None:
    """``torch.autograd.graph.disable_saved_tensors_hooks`` (per thread; ``torch.func``'s transforms set it): a
    recording for the memory section keeps what autograd saves through such hooks, and failed there, leaving the
    attention to its family's rule (another memory section). Allowed while the analysis runs, the caller's setting
    put back after."""
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True).train()
    expected = crawl_module(layer, (5, 16), batch_size=2)
    with torch.autograd.graph.disable_saved_tensors_hooks("the caller's message"):
        report = crawl_module(layer, (5, 16), batch_size=2)
        assert torch._C._autograd._saved_tensors_hooks_get_disabled_error_message() == "the caller's message"
    assert report.memory == expected.memory and report.to_dict() == expected.to_dict()


class _WithScriptedLayer(nn.Module):
    """A Python model holding a TorchScript layer (scripted or traced)."""

    def __init__(self, traced: bool) -> None:
        super().__init__()
        inner = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
        self.body = torch.jit.trace(inner, torch.zeros(1, 8)) if traced else torch.jit.script(inner)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("traced", [False, True])
def test_a_torchscript_layer_inside_a_python_model_is_named_in_a_clear_error(traced: bool) -> None:
    """The copy failed with a raw ``TypeError`` (a scripted module's parameters are no dict); the error names the
    layer and what to do, and the model scripted as a whole is analysed."""
    model = _WithScriptedLayer(traced)
    expected = r"layer 'body' \(\w+\) is a TorchScript module .* script the whole"
    with pytest.raises(torchscan.CaptureError, match=expected):
        torchscan.crawl_module(model, (8,))
    report = torchscan.crawl_module(torch.jit.script(model), (8,))
    assert report.totals.macs == 8 * 8 + 8 * 4
