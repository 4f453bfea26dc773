"""The shape pass's errors: they name the layer, its type and the shapes, say what to change, and
never dump fx's graph."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from torch import nn

from tests.profiles import examples
from tests.strategies import random_nets
from torchscan import crawl_module
from torchscan.errors import InputError, ShapeError
from torchscan.graph.shapes import SpecTable, describe
from torchscan.records import RECORD, TensorSpec


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


def test_half_input_into_a_float_model_fails_as_the_model_would() -> None:
    with pytest.raises(RuntimeError):  # eager PyTorch refuses the mix
        _Net()(torch.zeros(1, 3, 8, 8, dtype=torch.float16))
    with pytest.raises(InputError) as caught:
        crawl_module(_Net(), (3, 8, 8), dtype=torch.float16)
    message = str(caught.value)
    assert "layer 'conv' (Conv2d, fx node 'conv')" in message
    assert "torch.float32 but gets torch.float16" in message and "dtype=torch.float32" in message
    assert "model.to(torch.float16)" in message
    assert "While executing" not in message and "num_users" not in message


def test_a_model_converted_to_the_input_dtype_is_analysed() -> None:
    report = crawl_module(_Net().to(torch.bfloat16), (3, 8, 8), dtype=torch.bfloat16)
    assert report.totals.complete and report.totals.macs > 0


def test_mixed_dtypes_in_a_functional_weighted_call_are_refused() -> None:
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(2, 4, dtype=torch.float64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.linear(x, self.weight)

    expected = r"fx node 'linear' \(linear\) computes in torch.float64 but gets torch.float32"
    with pytest.raises(InputError, match=expected):
        crawl_module(Functional(), (4,))


def test_long_input_into_a_conv_net_says_to_leave_the_dtype_float() -> None:
    with pytest.raises(ShapeError) as caught:
        crawl_module(_Net(), (3, 8, 8), dtype=torch.long)
    message = str(caught.value)
    assert "layer 'conv' (Conv2d, fx node 'conv') rejected input shapes (1, 3, 8, 8) [int64]" in message
    assert "hint: this layer computes in floating point" in message and "torch.float32" in message
    assert "num_users" not in message


class _Untraceable(nn.Module):
    """A linear layer behind a check a trace cannot pass (a proxy's shape is no ``torch.Size``): recorded on fakes."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x.shape, torch.Size):
            raise TypeError("a tensor is needed")
        return self.linear(x)


@pytest.mark.parametrize("dtype", [torch.int16, torch.int64, torch.bool])
@pytest.mark.parametrize("model", [nn.Sequential(nn.Linear(3, 3)), _Untraceable()], ids=["traced", "recorded"])
def test_integer_or_bool_input_into_a_linear_is_refused_as_eager_refuses_it(
    dtype: torch.dtype, model: nn.Module
) -> None:
    """Fake tensors' linear takes any dtypes (the report was that of a model eager PyTorch refuses to run: ``mat1
    and mat2 must have the same dtype``); a trace's shape pass and a recording on fakes both refuse it."""
    with pytest.raises(RuntimeError, match="same dtype"):
        model(torch.zeros(1, 3, dtype=dtype))
    with pytest.raises(ShapeError, match=f"the layer computes in torch.float32 but gets a {dtype} tensor"):
        crawl_module(model, (3,), dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.complex64])
@pytest.mark.parametrize("model", [nn.Sequential(nn.Linear(3, 3)), _Untraceable()], ids=["traced", "recorded"])
def test_another_floating_input_dtype_is_an_input_error_traced_or_recorded(
    dtype: torch.dtype, model: nn.Module
) -> None:
    with pytest.raises(InputError, match=f"computes in torch.float32 but gets {dtype} input"):
        crawl_module(model, (3,), dtype=dtype)


def test_float_ids_into_an_embedding_say_to_pass_long() -> None:
    with pytest.raises(ShapeError) as caught:
        crawl_module(nn.Sequential(nn.Embedding(10, 4)), (7,))
    message = str(caught.value)
    assert "(Embedding, fx node" in message and "hint: this layer takes integer ids; pass dtype=torch.long" in message
    report = crawl_module(nn.Sequential(nn.Embedding(10, 4)), (7,), dtype=torch.long)
    assert report.totals.complete


def test_each_weighted_module_checks_its_own_weights_dtype() -> None:
    """Modules of one class share a rule, not their weights: the float64 one is the one named."""

    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = nn.Linear(4, 4)
            self.second = nn.Linear(4, 4).double()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.second(self.first(x))

    with pytest.raises(InputError, match=r"layer 'second' \(Linear, fx node 'second'\) computes in torch.float64"):
        crawl_module(Two(), (4,))


class _SizeReading(nn.Module):
    """A net between two sizes read by Python code: the first before any layer (the trace's shape pass
    starts at the input), the second after every layer (it runs them all while the trace goes on); a
    layer without a shape rule (dispatched with its parameters' fakes) runs during the trace and one after."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.inside, self.after = net, nn.PReLU(), nn.PReLU()  # no shape rule: dispatched

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > 0:
            x = self.inside(x)
        y = self.net(x)
        return self.after(y * int(y.shape[0]))


def _nodes(report: Any) -> list[tuple[str, Any]]:
    return [(name, dict(data)) for name, data in report.records.nodes(data=True)]


@settings(max_examples=examples(15), deadline=None)
@given(random_nets())
def test_the_trace_s_shape_pass_gives_the_shape_pass_s_values(case: tuple[nn.Module, tuple[int, ...]]) -> None:
    """A graph whose trace read sizes gets its values from the shape pass begun during the trace; the
    report equals the one a shape pass run afresh over the same graph gives (every record, storages and
    memory included)."""
    import torchscan.graph.capture as capture_module

    net, shape = case
    model = _SizeReading(net)
    specialized = crawl_module(model, shape, receptive_field=True)
    assert specialized.context.capture == "torch.fx"
    assert "shape-specialized" in {d.code for d in specialized.diagnostics}
    original = capture_module._propagate

    def afresh(captured: Any, *args: Any) -> Any:
        captured.memo.traced = None  # the trace's shape pass dropped: every node runs again
        return original(captured, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(capture_module, "_propagate", afresh)
        fresh = crawl_module(model, shape, receptive_field=True)
    assert specialized.to_dict() == fresh.to_dict()
    assert _nodes(specialized) == _nodes(fresh)


class _SizeArithmetic(nn.Module):
    """Size arithmetic of every kind the shape pass runs as it is: sizes read off shapes, operators and
    ``math`` on them, slices of shapes, comparisons, a tuple of sizes; and a reshape that takes them."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        half = n // 2 + (n % 2) - (c > 4) * 0
        rows = math.ceil(n / 2) * 2 - (n & 1) ** 2
        grid = x.shape[1:]
        y = self.fc(x).reshape(b, -n * -c // (half + rows - rows), half)
        return y.reshape(-1, grid[0] * grid[-1]) * (b == y.shape[0])


def test_size_arithmetic_gives_the_values_the_general_path_gives() -> None:
    """The arithmetic path (operators and ``math`` on plain numbers, no rule, no dispatch) gives every
    node the values the general path gives: records, storages, report."""
    import torchscan.graph.shapes as shapes_module

    model = _SizeArithmetic()
    fast = crawl_module(model, (4, 6), batch_size=3, receptive_field=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shapes_module, "_ARITHMETIC_MODULES", frozenset())
        general = crawl_module(model, (4, 6), batch_size=3, receptive_field=True)
    assert fast.to_dict() == general.to_dict()
    assert _nodes(fast) == _nodes(general)
    types = {record.type_name for _, record in fast.records.nodes(data="record")}
    assert {"floor_divide", "remainder", "ceil", "div", "getitem", "gt", "eq", "bitwise_and", "pow", "neg"} <= types
    ran: list[Any] = []
    original = shapes_module._ShapeRunner._arithmetic

    def counted(self: Any, n: Any, args: Any) -> Any:
        ran.append(n)
        return original(self, n, args)

    with pytest.MonkeyPatch.context() as patch:  # the arithmetic path is the one that ran them
        patch.setattr(shapes_module._ShapeRunner, "_arithmetic", counted)
        crawl_module(model, (4, 6), batch_size=3)
    assert len(ran) >= 15
    with pytest.raises(ShapeError, match="getitem"):  # an error there names the node, as the general path's
        crawl_module(_OutOfRange(), (4, 6))


class _OutOfRange(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x.shape[3]


def test_a_run_describes_equal_tensors_by_one_spec_and_unequal_ones_apart() -> None:
    """One frozen spec per distinct (shape, dtype, contiguity) in a run: equal values share it (fewer objects
    for the collector after an analysis), the specs compare as before, and a strided view gets its own."""
    specs: SpecTable = {}
    x = torch.empty(2, 3, device="meta")
    first, second = describe((x, x.clone()), specs)
    assert first is second and first == TensorSpec((2, 3))
    transposed = describe(x.t(), specs)
    assert transposed == TensorSpec((3, 2), contiguous=False) and not transposed.contiguous
    assert describe([x.double()], specs)[0] == TensorSpec((2, 3), torch.float64)
    assert len(specs) == 3
    assert describe(x) == first and describe(x) is not first  # without a table: a new spec each time
    report = crawl_module(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU()), (4,))
    outputs = [data[RECORD].outputs[0] for _, data in report.records.nodes(data=True) if data[RECORD].outputs]
    assert len(outputs) == 6 and all(spec is outputs[0] for spec in outputs)  # input, 4 layers, output


class _ReadsAKey(nn.Module):
    """A forward that reads its input by key (a batch dict), as data loaders' collated dicts are read."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.linear(batch["x"])


def test_a_tensor_read_by_a_string_key_says_to_give_a_mapping() -> None:
    """Given a tensor, ``batch["x"]`` fails inside torch (``new(): invalid data type 'str'``); the error names the
    node and the user's line, and says what to pass; given the dict, the model is analysed."""
    with pytest.raises(ShapeError, match=r"hint: the forward reads a tensor by the key 'x': it takes a mapping"):
        crawl_module(_ReadsAKey(), (4,))
    report = crawl_module(_ReadsAKey(), args=({"x": torch.randn(2, 4)},), batch_size=None)
    assert report.totals.complete
    assert report.totals.macs == 2 * 4 * 2
