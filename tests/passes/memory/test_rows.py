"""Per-row output bytes: a functional row reads its own fx node (``Row.node``), whatever its name."""

from __future__ import annotations

import torch
import torchvision
from torch import fx, nn

from torchscan import Report, crawl_module
from torchscan.passes.memory import output_bytes, row_output_bytes, with_output_bytes
from torchscan.passes.params import collect_params
from torchscan.passes.rows import build_rows, module_types
from torchscan.records import COST, RECORD, node_records


def test_functional_rows_read_their_node() -> None:
    report = crawl_module(torchvision.models.resnet18().eval(), (3, 64, 64))
    for row in report.rows:
        if row.kind in ("function", "method"):
            assert row.node is not None
            assert row.output_bytes == output_bytes(report.records.nodes[row.node][RECORD])
    assert report.row("layer1.0.add").output_bytes == 64 * 16 * 16 * 4  # float32, batch 1
    assert report.row("layer4.1.add").output_bytes == 512 * 2 * 2 * 4


def test_rows_made_with_their_bytes_equal_rows_given_them_after() -> None:
    """``build_rows(..., output_bytes=row_output_bytes(...))`` (one Row per row, what the analysis does)
    gives the rows :func:`with_output_bytes` gives from rows built without bytes."""
    model = torchvision.models.mobilenet_v3_small().eval()
    report = crawl_module(model, (3, 96, 96))
    graph, outputs = report.records, _module_outputs(report)
    params = collect_params(model)
    costs = {name: data.get(COST) for name, data in graph.nodes(data=True) if COST in data}
    plain = build_rows(module_types(model), graph, costs, params, outputs)
    assert all(row.output_bytes == 0 for row in plain)
    made = build_rows(module_types(model), graph, costs, params, outputs, row_output_bytes(graph, outputs))
    assert made == with_output_bytes(plain, graph, outputs)
    assert sum(row.output_bytes > 0 for row in made) > 50


def _module_outputs(report: Report) -> dict[str, tuple[str, ...]]:
    """The output node of each leaf module's call (the tracer's record of traced-through modules is not
    kept on the report: their rows take their bytes from this mapping or get 0, alike both ways)."""
    return {record.module_path: (record.name,) for record in node_records(report.records) if record.op == "call_module"}


class _Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.gru = nn.LSTM(4, 8), nn.GRU(8, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        y, _ = self.gru(out)
        return y


def test_a_leaf_module_returning_several_tensors_counts_them_all() -> None:
    """Input (1, 3, 4), sequence first: the LSTM returns out, h and c, each 1·3·8 floats (96 bytes):
    its row holds 288; the GRU returns y and h_n, 1·3·6 floats each: 144. The unpacking getitems are
    rows of their own (out 96, (h, c) 192)."""
    report = crawl_module(_Recurrent(), (3, 4))
    assert report.row("rnn").output_bytes == 3 * 96
    assert report.row("gru").output_bytes == 2 * 72
    assert [row.output_bytes for row in report.rows if row.kind == "function"][:2] == [96, 192]


def test_the_rows_of_a_graph_module_read_their_leaf_calls() -> None:
    """A ``GraphModule`` is analysed as given (no module outputs recorded by a tracer): each row reads
    its call. Input (1, 3, 4): the Linear's and the ReLU's outputs 1·3·8 floats (96 bytes); the LSTM's
    out, h and c 1·3·6 each (216)."""
    graph_module = fx.symbolic_trace(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.LSTM(8, 6)))
    report = crawl_module(graph_module, (3, 4))
    assert [(row.name, row.output_bytes) for row in report.rows] == [("0", 96), ("1", 96), ("2", 3 * 72)]


class _Uncalled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used, self.unused = nn.Linear(4, 4), nn.Linear(4, 4)
        self.blocks = nn.ModuleList([nn.ReLU(), nn.ReLU()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.used(x)


def test_modules_never_called_output_nothing() -> None:
    """A module never called and a ModuleList (only its children are called) output nothing: 0 bytes;
    each ReLU and the Linear output 4 floats (16)."""
    report = crawl_module(_Uncalled(), (4,))
    assert {row.name: row.output_bytes for row in report.rows} == {
        "blocks": 0,
        "blocks.0": 16,
        "blocks.1": 16,
        "used": 16,
        "unused": 0,
    }
