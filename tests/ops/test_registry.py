"""The op registry: lookup along the MRO, duplicates refused, overrides copy."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops import DEFAULT_REGISTRY, DuplicateFormulaError, FormulaTable, Registry, Workspace
from torchscan.records import Cost, OpCall


def test_subclass_inherits_formula_unless_forward_overridden() -> None:
    class MyConv(nn.Conv2d):
        pass

    class WeirdConv(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * 2

    assert DEFAULT_REGISTRY.lookup(MyConv) is DEFAULT_REGISTRY.lookup(nn.Conv2d)
    assert DEFAULT_REGISTRY.lookup(WeirdConv) is None  # traced through: its mul is counted too


def test_duplicates_are_refused() -> None:
    table = FormulaTable("test")
    table.register(torch.add)(lambda call: Cost())
    with pytest.raises(DuplicateFormulaError):
        table.register(torch.add)(lambda call: Cost())
    other = FormulaTable("other")
    other.register(torch.add)(lambda call: Cost())
    with pytest.raises(DuplicateFormulaError):
        Registry.from_tables(table, other)


def test_overrides_copy_the_registry() -> None:
    def free(call: OpCall) -> Cost:
        return Cost()

    custom = DEFAULT_REGISTRY.with_overrides({nn.Conv2d: free})
    assert custom.lookup(nn.Conv2d) is free
    assert DEFAULT_REGISTRY.lookup(nn.Conv2d) is not free


def test_unknown_targets() -> None:
    assert DEFAULT_REGISTRY.lookup(torch.fft.fft) is None
    assert DEFAULT_REGISTRY.lookup(int) is None
    assert DEFAULT_REGISTRY.lookup([1, 2]) is None  # unhashable


def test_pointwise_is_declared_with_the_formulas_and_read_by_the_receptive_field() -> None:
    from torchscan.passes.receptive import DEFAULT_RULES

    pointwise = set(DEFAULT_REGISTRY.pointwise_targets())
    assert {nn.ReLU, F.relu, torch.relu, torch.Tensor.relu_, operator.add, torch.Tensor.__mul__} <= pointwise
    assert not {nn.Conv2d, torch.matmul, torch.Tensor.view, F.softmax} & pointwise  # windows, products, layouts
    elementwise = DEFAULT_RULES.lookup(nn.ReLU)
    assert all(DEFAULT_RULES.lookup(target) is elementwise for target in pointwise)

    table = FormulaTable("test")
    table.register(torch.relu, pointwise=True)(lambda call: Cost())
    with pytest.raises(DuplicateFormulaError, match="pointwise twice"):
        table.declare(torch.relu, pointwise=True)


def test_a_workspace_is_declared_once_and_kept_by_overrides() -> None:
    op = torch.ops.aten.mkldnn_rnn_layer.default
    declared = DEFAULT_REGISTRY.workspace(op)
    assert declared is not None and DEFAULT_REGISTRY.workspace(torch.ops.aten.add.Tensor) is None
    assert DEFAULT_REGISTRY.with_overrides({}).workspace(op) is declared
    table = FormulaTable("test")
    table.declare(op, workspace=Workspace(output=3, nbytes=lambda *args, **kwargs: 1))
    with pytest.raises(DuplicateFormulaError, match="workspace of"):
        table.declare(op, workspace=declared)
