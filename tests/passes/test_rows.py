"""Roll-up properties: rows partition the model at every depth; counts scale with batch."""

from __future__ import annotations

import pytest
import torch
import torchvision
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tests.gpt2 import gpt2_report
from tests.strategies import RandomNet, random_nets
from torchscan import Report, crawl_module
from torchscan.ops import DEFAULT_REGISTRY
from torchscan.passes.counts import count_costs
from torchscan.passes.params import collect_params
from torchscan.passes.rows import RowMemo, build_rows, module_types, scoped_names
from torchscan.records import RECORD


def assert_rows_sum_to_totals(report: Report) -> None:
    totals = report.totals
    for depth in range(1, report.max_depth + 1):
        rows = report.rows_at_depth(depth)
        assert sum(row.flops for row in rows) == totals.flops, depth
        assert sum(row.macs for row in rows) == totals.macs, depth
        assert sum(row.dmas for row in rows) == totals.dmas, depth
        assert sum(row.params for row in rows) == totals.params, depth
        assert sum(row.trainable_params for row in rows) == totals.trainable_params, depth
        assert sum(row.unknown_ops for row in rows) == totals.unknown_ops, depth


def assert_tree_consistent(report: Report) -> None:
    by_name = {row.name: row for row in report.rows}
    assert len(by_name) == len(report.rows), "row names are unique"
    for row in report.rows:
        assert report.row(row.name) is row
        if row.kind in ("function", "method"):  # named parent.op(_k), linked to its fx node
            assert row.node is not None and report.records.nodes[row.node][RECORD].type_name == row.type
            assert row.name.removeprefix(f"{row.parent}." if row.parent else "").startswith(row.type)
        else:
            assert row.node is None
        children = [child for child in report.rows if child.parent == row.name]
        assert row.is_leaf == (not children)
        if children:
            assert sum(child.flops for child in children) == row.flops, row.name
            assert sum(child.params for child in children) == row.params, row.name
        if row.parent:
            assert by_name[row.parent].depth == row.depth - 1


@given(random_nets())
def test_rows_sum_to_totals_at_every_depth(case: tuple[RandomNet, tuple[int, int, int]]) -> None:
    model, shape = case
    report = crawl_module(model, shape, batch_size=2)
    assert report.totals.complete
    assert_rows_sum_to_totals(report)
    assert_tree_consistent(report)


@given(random_nets(), st.integers(2, 5))
def test_counts_scale_with_batch(case: tuple[RandomNet, tuple[int, int, int]], batch: int) -> None:
    """MACs are linear in the batch; FLOPs and DMAs are affine (per-channel and parameter terms are
    paid once per call), so their second difference over the batch is zero."""
    model, shape = case
    one, two, many = (crawl_module(model, shape, batch_size=b).totals for b in (1, 2, batch))
    assert many.macs == batch * one.macs
    for metric in ("flops", "dmas"):
        slope = getattr(two, metric) - getattr(one, metric)
        assert getattr(many, metric) == getattr(one, metric) + (batch - 1) * slope, metric


def test_torchvision_rows_partition_every_depth() -> None:
    for factory in (torchvision.models.resnet18, torchvision.models.densenet121, torchvision.models.vit_b_16):
        report = crawl_module(factory().eval(), (3, 224, 224))
        assert_rows_sum_to_totals(report)
        assert_tree_consistent(report)


def test_functional_calls_get_rows_under_their_module() -> None:
    report = crawl_module(torchvision.models.resnet18(), (3, 64, 64))
    block = [row for row in report.rows if row.parent == "layer1.0"]
    adds = [row for row in block if row.type == "add"]
    assert len(adds) == 1 and adds[0].kind == "function" and adds[0].depth == 3
    assert adds[0].flops == 64 * 16 * 16  # one add per output element
    relu = report.row("layer1.0.relu")
    assert relu.calls == 2  # the block reuses its ReLU


def test_parameters_held_by_traced_modules_get_rows() -> None:
    report = crawl_module(torchvision.models.vit_b_16(), (3, 224, 224))
    assert report.row("class_token").params == 768 and report.row("class_token").kind == "parameter"
    assert report.row("encoder.pos_embedding").params == 197 * 768
    assert report.totals.params == 86_567_656


def _functional(report: Report) -> list[tuple[str, str | None]]:
    return [(row.name, row.node) for row in report.rows if row.kind in ("function", "method")]


def test_functional_rows_are_named_by_their_module_and_op() -> None:
    report = crawl_module(torchvision.models.resnet18(), (3, 64, 64))
    assert_tree_consistent(report)
    add = report.row("layer1.0.add")  # the residual add of layer1.0 (fx calls it add)
    assert (add.kind, add.type, add.parent, add.depth) == ("function", "add", "layer1.0", 3)
    record = report.records.nodes[add.node][RECORD]
    assert record.module_path == "layer1.0" and record.type_name == "add"
    sources = {report.records.nodes[source][RECORD].module_path for source in report.records.predecessors(add.node)}
    assert sources == {"layer1.0.bn2", "maxpool"}  # the block's last norm and the skip from its input
    residual = report.row("layer2.1.add")  # fx's add_3: the name no longer depends on what came before
    assert report.records.nodes[residual.node][RECORD].module_path == "layer2.1"
    adds = [f"layer{i}.{j}.add" for i in range(1, 5) for j in (0, 1)]
    assert [name for name, _ in _functional(report)] == [*adds, "flatten"]


def test_vit_names() -> None:
    report = crawl_module(torchvision.models.vit_b_16(), (3, 224, 224))
    assert_tree_consistent(report)
    names = {name for name, _ in _functional(report)}
    assert {"cat", "encoder.add", "getitem"} <= names  # class token, position embedding, x[:, 0]
    for layer in range(12):
        block = f"encoder.layers.encoder_layer_{layer}"
        assert {f"{block}.getitem", f"{block}.add", f"{block}.add_1"} <= names  # attention output, two residuals
        assert report.row(f"{block}.add_1").flops == 197 * 768
    assert not any(name.startswith("getitem_") for name in names)  # no global fx numbering


def test_gpt2_names() -> None:
    report = gpt2_report()
    assert_tree_consistent(report)
    names = {name for name, _ in _functional(report)}
    for layer in (0, 1):
        block = f"transformer.h.{layer}"
        assert {f"{block}.add", f"{block}.add_1", f"{block}.attn.scaled_dot_product_attention"} <= names
        assert [name for name in names if name.startswith(f"{block}.mlp.act.")] != []  # the tanh GELU's ops
        assert report.row(f"{block}.mlp.act.tanh").type == "tanh"
    assert {"transformer.arange", "transformer.le", "getitem"} <= names


def test_names_are_stable_across_runs_and_instances() -> None:
    first = crawl_module(torchvision.models.resnet18().eval(), (3, 32, 32))
    second = crawl_module(torchvision.models.resnet18().eval(), (3, 32, 32))
    assert [row.name for row in first.rows] == [row.name for row in second.rows]
    assert _functional(first) == _functional(second)


class Spellings(nn.Module):
    """Every spelling of indexing, add and relu, and a child module named like an op."""

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a = x[0]
        b = x.__getitem__(1)
        c = torch.add(a + b, y[0])
        c.add_(1)
        c += 1
        return torch.relu_(self.relu(c)) + c.relu()


def test_one_spelling_per_type_and_names_that_skip_taken_ones() -> None:
    report = crawl_module(Spellings(), [(4, 5), (4, 5)], batch_size=2)
    assert_tree_consistent(report)
    rows = [(row.name, row.type) for row in report.rows]
    assert rows == [
        ("getitem", "getitem"),  # x[0]: operator.getitem
        ("getitem_1", "getitem"),  # x.__getitem__(1): the tensor method
        ("add", "add"),  # a + b
        ("getitem_2", "getitem"),
        ("add_1", "add"),  # torch.add
        ("add_2", "add"),  # c.add_(1)
        ("add_3", "add"),  # c += 1
        ("relu", "ReLU"),  # the module owns its name
        ("relu_1", "relu"),  # torch.relu_
        ("relu_2", "relu"),  # c.relu()
        ("add_4", "add"),
    ]


def test_scoped_names() -> None:
    calls = [("add", "", "add"), ("add_1", "block", "add"), ("add_2", "block", "add"), ("relu", "block", "relu")]
    assert scoped_names(calls) == {"add": "add", "add_1": "block.add", "add_2": "block.add_1", "relu": "block.relu"}
    taken = {"block.relu", "block.add_1"}  # a module path, a parameter row
    assert scoped_names(calls, taken) == {
        "add": "add",
        "add_1": "block.add",
        "add_2": "block.add_2",
        "relu": "block.relu_1",
    }


class Doubled(nn.Module):
    """Functional calls only: no child module marks where it is first used."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) * 2


def test_a_module_of_functional_calls_keeps_its_place() -> None:
    """Rows follow execution order: the middle module of three, made of functional calls only, is
    the second row (its first call places it), its calls under it, before the last conv."""
    report = crawl_module(nn.Sequential(nn.Conv2d(1, 2, 3), Doubled(), nn.Conv2d(2, 2, 3)), (1, 8, 8))
    assert [row.name for row in report.rows] == ["0", "1", "1.relu", "1.mul", "2"]


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 4)
        self.scale = nn.Parameter(torch.ones(4, dtype=torch.float16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.lin(x)) * self.scale


def test_parameter_bytes_per_row() -> None:
    """The Linear holds (3·4 + 4)·4 = 64 bytes, the block's own fp16 scale 4·2 = 8 (72 under the
    block); the relu and the product hold none."""
    report = crawl_module(nn.Sequential(_Block()), (3,))
    held = {row.name: row.param_bytes for row in report.rows}
    assert held["0.lin"] == 64 and held["0"] == 72
    assert {row.param_bytes for row in report.rows if row.kind in ("function", "method")} == {0}


class _OnceAndTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(self.a(x)))


def test_rows_count_the_calls_of_each_module() -> None:
    """``a`` is called twice, ``b`` once: the rows say 2 and 1."""
    report = crawl_module(_OnceAndTwice(), (4,))
    assert (report.row("a").calls, report.row("b").calls) == (2, 1)


class _Heads(nn.Module):
    """A Linear(2, 1) trunk (3 parameters) called, and ``unused`` heads of 2 parameters never called."""

    def __init__(self, unused: int) -> None:
        super().__init__()
        self.trunk = nn.Linear(2, 1)
        for i in range(unused):
            setattr(self, f"head{i}", nn.Linear(1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


@pytest.mark.parametrize(("unused", "listed"), [(6, "head0, head1, head2, head3, head4, head5)"), (7, "head5, …)")])
def test_unused_parameters_name_six_modules_at_most(unused: int, listed: str) -> None:
    """The diagnostic's message names the first six unused modules, then ``…``; its nodes are all of them."""
    report = crawl_module(_Heads(unused), (2,))
    (diagnostic,) = [d for d in report.diagnostics if d.code == "unused-params"]
    assert f"{2 * unused} parameters" in diagnostic.message
    assert diagnostic.message.count("head") == 6 and listed in diagnostic.message
    assert diagnostic.nodes == tuple(f"head{i}" for i in range(unused))


class _OwnProjection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mha(x, x, x, need_weights=False)[0]
        return self.mha.out_proj(y)  # a child of a module counted as one op, called on its own


def test_a_child_of_a_module_counted_as_one_op_is_counted_when_called_alone() -> None:
    """MultiheadAttention (E = 4, one head, 3 tokens) is one row: 4 projections of 3·4·4 MACs and
    q·kᵀ, attn·v of 3·3·4 each = 264 MACs; its out_proj called again on its own (no row of its
    own) adds 3·4·4 = 48 MACs to the totals."""
    report = crawl_module(_OwnProjection().eval(), (3, 1, 4), batch_size=None)
    assert report.totals.complete
    assert report.row("mha").macs == 264
    assert report.totals.macs == 264 + 48


def test_a_kept_row_plan_gives_the_rows_made_afresh() -> None:
    model = torchvision.models.resnet18(weights=None)
    params = collect_params(model)
    first, second = (crawl_module(model, (3, size, size)) for size in (64, 40))
    memo: RowMemo = {}
    rows = {}
    for report in (first, second):
        costs, _ = count_costs(report.records, DEFAULT_REGISTRY)
        rows[report is first] = (
            build_rows(module_types(model), report.records, costs, params, {}, memo=memo),
            build_rows(module_types(model), report.records, costs, params, {}),
        )
    assert len(memo) == 1
    for kept, fresh in rows.values():
        assert kept == fresh
    assert rows[True][0] != rows[False][0]  # other shapes and costs


def test_filled_rows_keep_every_other_field_of_the_plan() -> None:
    """``_rows`` builds each row field by field: every field it does not fill comes from the plan's slot,
    in :data:`_KNOWN`'s order (each a distinct sentinel: a field read from the wrong position shows)."""
    import dataclasses

    import networkx as nx

    from torchscan.passes.rows import _KNOWN, RowPlan, _rows, _Slot
    from torchscan.records import Cost, Row

    values = {field.name: f"<{field.name}>" for field in dataclasses.fields(Row)}
    plan = RowPlan(
        slots=(_Slot(0, tuple(values[name] for name in _KNOWN), None),), size=1, cost_rows=(("n", 0),), rollup=()
    )
    (row,) = _rows(plan, nx.DiGraph(), {"n": Cost(flops=3, macs=2, dmas=1)}, lambda name, kind, node: 7)
    filled = {"flops": 3, "macs": 2, "dmas": 1, "unknown_ops": 0, "output_bytes": 7}
    unset = {"receptive_field": None, "effective_stride": None, "effective_padding": None}
    assert set(_KNOWN) | set(filled) | set(unset) | {"receptive_field_statistics"} == set(values)
    assert row == Row(**{**values, **filled, **unset, "receptive_field_statistics": False})
