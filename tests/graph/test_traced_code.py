"""Traced code sees fx-wrapped and math functions through private copies of globals, as fx would."""

from __future__ import annotations

import math
import types

import pytest
import torch
from torch import cond, nn

from torchscan import crawl_module, sweep
from torchscan.graph.trace import capture
from torchscan.inputs import model_inputs
from torchscan.ops import DEFAULT_REGISTRY
from torchscan.records import Cost

HELPERS = """
import math
import types
import torch.nn.functional as F


def pad_same(x, k):
    pad = (math.ceil(x.size(-1) / 2) - 1) * 2 + k - x.size(-1)  # math on a traced size
    return F.pad(x, (pad // 2, pad - pad // 2))
"""

MODEL = """
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3, stride=2)

    def forward(self, x):
        return self.conv(pad_same(x, 3))
"""


def test_math_in_a_helper_of_another_module_is_recorded_as_fx_would() -> None:
    helpers = types.ModuleType("torchscan_test_helpers")
    exec(compile(HELPERS, "helpers.py", "exec"), vars(helpers))
    models = types.ModuleType("torchscan_test_models")
    models.pad_same = helpers.pad_same  # type: ignore[attr-defined]  # `from helpers import pad_same`
    exec(compile(MODEL, "models.py", "exec"), vars(models))
    report = crawl_module(models.Net(), (3, 17))
    assert report.context.capture == "torch.fx" and not report.diagnostics
    assert report.context.output_shapes == ((1, 4, 9),)
    assert helpers.math is math and vars(helpers)["pad_same"] is helpers.pad_same  # their globals untouched


WRAPPED = """
import torch
import torch.fx
from torch import nn
from torch.nn.functional import rms_norm  # a torch function imported by name, as timm does


def bias_of(table):
    return table.t().contiguous().unsqueeze(0)


torch.fx.wrap("bias_of")  # the model's author keeps it one node under fx


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(8, 4))
        self.fc = nn.Linear(8, 8)

    def bias(self):  # a method, not forward, reaches the wrapped function
        return bias_of(self.table)

    def forward(self, x):
        return rms_norm(self.fc(x), (8,)) + self.bias()
"""


def test_wrapped_functions_reached_from_methods_and_imported_torch_functions_keep_their_identity() -> None:
    """A wrapped function the registry has a formula for (here a user's) is one node, as ``fx.wrap`` asks;
    one it has none for is traced through, its ops counted one by one (``t``, ``contiguous``,
    ``unsqueeze``), never an unknown node."""
    module = types.ModuleType("torchscan_test_wrapped")
    exec(compile(WRAPPED, "wrapped.py", "exec"), vars(module))
    model = module.Net()
    report = crawl_module(model, (4, 8))
    assert report.totals.complete and not report.diagnostics
    assert {"t", "contiguous", "unsqueeze"} <= {row.type for row in report.rows}
    formula = {module.bias_of: lambda call: Cost(dmas=call.output.numel)}
    registry = DEFAULT_REGISTRY.with_overrides(formula)
    targets = [node.target for node in capture(model, registry, model_inputs((4, 8))).graph.nodes]
    assert module.bias_of in targets  # one node, as fx.wrap asks
    assert torch.nn.functional.rms_norm in targets  # the registry's own object, not a copy
    leaf = crawl_module(model, (4, 8), formulas=formula)
    assert (
        leaf.totals.dmas == report.totals.dmas - 2 * 32 + 32
    )  # its ops' copy (read and write) for its formula's write
    assert "bias" not in vars(model) and module.rms_norm is torch.nn.functional.rms_norm


SIZED = """
import torch
from torch import nn
from torch import zeros as blank


def noise(x):
    b, n = x.shape
    return torch.randn(b, n) * 0 + blank(b, n)


class Sized(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        n = x.shape[-1]
        mask = torch.ones(n, n).tril()  # sizes given one by one, the first a traced size
        return self.fc(x @ mask + torch.empty(x.shape[0], n).fill_(1) + noise(x))
"""


def test_torch_factories_of_separate_traced_sizes_are_traced() -> None:
    """``torch.ones(n, n)``, ``torch.empty(b, n)``, ``torch.randn(b, n)`` and ``zeros`` imported by another
    name, with traced sizes, in a forward and in a module-level helper: torch's argument parser takes a
    proxy first among separate sizes for the size sequence and raises before fx sees the call, so the
    capture fell back to recording (a fixed graph, no sweep reuse). Each is one node of its size tuple now,
    the sizes follow the input, and torch itself is unchanged."""
    module = types.ModuleType("sized_model")
    exec(compile(SIZED, "sized_model.py", "exec"), module.__dict__)
    model = module.Sized().eval()
    report = crawl_module(model, (8,), batch_size=3)
    assert report.context.capture == "torch.fx"
    kinds = [report.records.nodes[name]["record"].type_name for name in report.records]
    assert {"ones", "empty", "randn", "zeros"} <= set(kinds)
    outputs = {
        report.records.nodes[name]["record"].type_name: report.records.nodes[name]["record"].outputs[0].shape
        for name in report.records
        if report.records.nodes[name]["record"].type_name in ("ones", "empty", "randn", "zeros")
    }
    assert outputs == {"ones": (8, 8), "empty": (3, 8), "randn": (3, 8), "zeros": (3, 8)}
    assert torch.ones is torch._C._VariableFunctions.ones and module.torch is torch
    swept = sweep(model, [{"input_shape": (8,), "batch_size": batch} for batch in (1, 4)])
    assert [item.to_dict() for item in swept] == [
        crawl_module(model, (8,), batch_size=batch).to_dict() for batch in (1, 4)
    ]


class ScaledAttention(torch.nn.Module):
    """Scales by ``torch.sqrt(torch.tensor(d))`` (RAFT's correlation volume, many attention layers) and builds
    a tensor from a list holding a size (``torch.as_tensor([h, w])``)."""

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        h, d = q.shape[-2:]
        scale = torch.sqrt(torch.tensor(d, dtype=q.dtype))
        return (q @ q.transpose(-1, -2)) / scale + torch.as_tensor([h, d]).sum()


def test_tensors_made_from_traced_sizes_are_traced() -> None:
    """``torch.tensor(d)`` of a traced size could not be traced (torch takes the proxy for an array: a
    ``TypeError`` about ``__cuda_array_interface__``) and the capture fell back to recording. The sizes are
    read as a forward reads them (guards: a sweep traces again where they differ), the tensor is a constant of
    the graph, and the report equals the recorded one's but for the constant's own ops (named by the
    ``folded-constants`` diagnostic)."""
    model = ScaledAttention()
    report = crawl_module(model, (5, 16), batch_size=2)
    assert report.context.capture == "torch.fx"
    codes = {diagnostic.code for diagnostic in report.diagnostics}
    assert {"shape-specialized", "folded-constants"} <= codes
    kinds = [report.records.nodes[name]["record"].type_name for name in report.records]
    assert kinds.count("matmul") == 1 and "sqrt" not in kinds  # the scale is a constant: its sqrt not counted
    shapes = [(5, 16), (5, 32), (7, 16)]
    swept = sweep(model, shapes)
    assert [item.to_dict() for item in swept] == [crawl_module(model, shape).to_dict() for shape in shapes]


DECORATED = """
import functools

import torch
from torch import nn


def returns_tuple(function):  # a decorator: the wrapper calls the forward through its closure
    calls = 0

    @functools.wraps(function)
    def wrapper(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        return (function(self, *args, **kwargs), calls)

    return wrapper


class Decorated(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    @returns_tuple
    def forward(self, x):
        mask = torch.ones(x.shape[0], x.shape[1])  # separate traced sizes, in the wrapped forward
        return self.fc(x) * mask
"""


def test_a_decorated_forward_sees_torch_as_traced_code_does() -> None:
    """A forward behind a decorator (Hugging Face's ``can_return_tuple`` on BART's decoder) is reached through the
    wrapper's closure, which the tracer did not follow: ``torch.ones(b, n)`` of traced sizes raised in torch's
    argument parser and the capture fell back to recording. The closure's function is seen as traced code sees
    any other now, and the wrapper's ``nonlocal`` counter, which the trace's call moved, is as found after."""
    module = types.ModuleType("decorated_model")
    exec(compile(DECORATED, "decorated_model.py", "exec"), module.__dict__)
    model = module.Decorated().eval()
    report = crawl_module(model, (8,), batch_size=3)
    assert report.context.capture == "torch.fx"
    assert not [d for d in report.diagnostics if d.code == "capture-fallback"]
    records = [report.records.nodes[name]["record"] for name in report.records]
    assert [record.outputs[0].shape for record in records if record.type_name == "ones"] == [(3, 8)]
    assert model(torch.zeros(2, 8))[1] == 1  # the analyses' calls are not counted
    swept = sweep(model, [{"input_shape": (8,), "batch_size": batch} for batch in (1, 4)])
    assert [item.to_dict() for item in swept] == [
        crawl_module(model, (8,), batch_size=batch).to_dict() for batch in (1, 4)
    ]


CHECKS = """
def check_matches(cond, message):  # as transformers' torch_compilable_check: torch imported where it is used
    import torch

    if callable(cond):
        cond = cond()
    if isinstance(cond, torch.Tensor):
        torch._check_tensor_all_with(ValueError, cond, lambda: message)
    else:
        torch._check_with(ValueError, cond, lambda: message)
"""

SCATTERED = """
import torch
from torch import nn

IMAGE = 7


class Scattered(nn.Module):
    \"\"\"Image features put at the image tokens' places, once their count is checked (LLaVA's).\"\"\"

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(16, 8)

    def forward(self, ids, features):
        mask = ids == IMAGE
        check_matches(mask.sum() * features.shape[-1] == features.numel(), "image tokens do not match the features")
        torch._check_tensor_all(mask.sum() > 0)  # in the model's own code too
        return self.embed(ids).masked_scatter(mask.unsqueeze(-1), features)
"""


def test_assertions_on_traced_data_are_taken_as_holding() -> None:
    """``torch._check(cond)`` on data (the number of image tokens of LLaVA's ids) asserts what a valid input is:
    a trace cannot decide it, and nothing the report counts depends on it. torch's own refuse a proxy (``cond must
    be a bool``), and ``callable(proxy)`` is True (fx's ``Proxy`` defines ``__call__``): the capture fell back to
    recording on fake tensors, which needs the data too. Traced code now sees them take a traced condition as
    holding, in the model's code and in a helper of another module that imports torch in its body; a condition
    of plain values is still checked."""
    helpers = types.ModuleType("torchscan_test_checks")
    exec(compile(CHECKS, "checks.py", "exec"), vars(helpers))
    models = types.ModuleType("torchscan_test_scattered")
    models.check_matches = helpers.check_matches  # type: ignore[attr-defined]  # `from checks import ...`
    exec(compile(SCATTERED, "scattered.py", "exec"), vars(models))
    model = models.Scattered().eval()
    ids, features = torch.tensor([[1, 7, 7, 2]]), torch.randn(2, 8)
    assert model(ids, features).shape == (1, 4, 8)  # valid data: eager passes its checks
    report = crawl_module(model, args=(ids, features))
    assert report.context.capture == "torch.fx" and report.totals.complete
    assert not [d for d in report.diagnostics if d.code == "capture-fallback"]
    assert report.context.output_shapes == ((1, 4, 8),)
    with pytest.raises(ValueError, match="do not match"):  # plain values: checked as torch checks them
        helpers.check_matches(False, "image tokens do not match the features")
    assert "torch" not in vars(helpers) and vars(helpers)["__builtins__"] is not None


class _Either(nn.Module):
    """A branch on the input's data (``torch.cond``): a 3×3 convolution, or a padded 5×5 one and a ReLU; then a
    1×1 convolution of either."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3)
        self.b = nn.Conv2d(3, 8, 5, padding=1)
        self.c = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.cond(x.mean() > 0, self.a, lambda t: self.b(t).relu(), (x,)))


class _Taken(_Either):
    """:class:`_Either` with its predicate computed and its true branch taken in plain Python."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.mean() > 0  # noqa: B015 (computed as the branching model computes it)
        return self.c(self.a(x))


def test_a_branch_on_data_traces_and_counts_both_branches() -> None:
    """``torch.cond`` on data gave no report: fx's trace handed it a proxy for its predicate (refused), and
    recordings ran it under a dispatch mode, where its own ``torch.compile`` cannot capture it. Traced code now runs
    it without torch's compiler: both branches traced and counted (an upper bound, said by a ``conditional``
    diagnostic naming their nodes), the true branch's result read on. The report is the true branch's plain
    model's plus the false branch's rows, each as analysed alone."""
    counters = {key: dict(value) for key, value in torch._dynamo.utils.counters.items()}
    model = _Either().eval()
    report = crawl_module(model, (3, 16, 16))
    assert {key: dict(value) for key, value in torch._dynamo.utils.counters.items()} == counters  # no compile
    assert report.context.capture == "torch.fx" and report.totals.complete
    assert report.context.output_shapes == (tuple(model(torch.randn(1, 3, 16, 16)).shape),)
    (note,) = [d for d in report.diagnostics if d.code == "conditional"]
    assert note.nodes == ("a", "b", "relu")
    assert "1 node(s) in the true branch, 2 in the false one" in note.message
    taken = crawl_module(_Taken().eval(), (3, 16, 16)).totals
    alone_b = crawl_module(model.b, (3, 16, 16)).totals
    relu = report.row("relu")
    assert report.row("b").flops == alone_b.flops and relu.flops == 8 * 14 * 14
    assert report.totals.flops == taken.flops + alone_b.flops + relu.flops
    assert report.totals.macs == taken.macs + alone_b.macs
    assert report.totals.params == taken.params  # the model's, both branches' modules


class _Sized(nn.Module):
    """A branch on the input's width (``from torch import cond``, operands as a list): a 3×3 convolution on wide
    inputs, a padded 5×5 one on narrow ones."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3)
        self.b = nn.Conv2d(3, 8, 5, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cond(x.shape[-1] > 12, lambda t: self.a(t), self.b, [x])


class _Direct(_Sized):
    """:class:`_Sized`'s branch taken by an ``if`` on the same size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) if x.shape[-1] > 12 else self.b(x)


@pytest.mark.parametrize("width", [8, 16])
def test_a_branch_on_sizes_is_decided_as_an_if(width: int) -> None:
    """A predicate computed from sizes is decided by the trace (a guard, as an ``if`` on sizes is): only the branch
    the input takes is traced, and the report is the one of the model taking it by an ``if``; a sweep across the
    decision equals fresh analyses (the graph traced again where the guard reads otherwise)."""
    report = crawl_module(_Sized().eval(), (3, width, width))
    direct = crawl_module(_Direct().eval(), (3, width, width))
    assert report.context.capture == "torch.fx"
    assert not [d for d in report.diagnostics if d.code == "conditional"]
    assert report.totals == direct.totals
    assert [(row.name, row.flops) for row in report.rows] == [(row.name, row.flops) for row in direct.rows]
    items = [(3, 8, 8), (3, 16, 16), (3, 10, 10), (3, 14, 14)]
    for swept, shape in zip(sweep(_Sized().eval(), items), items, strict=True):
        assert swept.to_dict() == crawl_module(_Sized().eval(), shape).to_dict()


class _Flagged(nn.Module):
    """``torch.cond`` on a Python bool (torch's eager ``cond`` runs the branch) and on a buffer (data)."""

    def __init__(self, flag: bool) -> None:
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 4)
        self.flag = flag
        self.register_buffer("held", torch.tensor(flag))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        plain = torch.cond(self.flag, lambda t: self.a(t)[..., :4], self.b, (x,))
        held = torch.cond(self.held, lambda t: self.a(t)[..., :4], self.b, (x,))
        return plain, held


@pytest.mark.parametrize("flag", [True, False])
def test_a_bool_picks_its_branch_and_a_buffer_is_data(flag: bool) -> None:
    """A Python bool picks its branch, as torch's eager ``cond`` does; a buffer's value is data the trace does not
    read (its fake): both branches, as for any predicate on data."""
    report = crawl_module(_Flagged(flag).eval(), (8,))
    (note,) = [d for d in report.diagnostics if d.code == "conditional"]
    assert "1 torch.cond call(s)" in note.message
    linear_a, linear_b = 8 * (2 * 8 - 1 + 1), 4 * (2 * 8 - 1 + 1)
    plain = linear_a if flag else linear_b
    assert report.totals.flops == plain + linear_a + linear_b
