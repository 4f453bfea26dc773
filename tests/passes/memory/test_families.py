"""Memory op families: declared with the formulas (once), found by the call's target object."""

from __future__ import annotations

import operator
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops import DEFAULT_REGISTRY, DuplicateFormulaError, FormulaTable, Registry, Saves
from torchscan.passes.memory.families import family
from torchscan.records import Cost, NodeRecord, OpCall, TensorSpec

T = torch.Tensor


def test_families_are_found_by_target_object_along_the_mro() -> None:
    assert DEFAULT_REGISTRY.saves(nn.ReLU) is Saves.OUTPUT
    assert DEFAULT_REGISTRY.saves(F.relu_) is Saves.OUTPUT
    assert DEFAULT_REGISTRY.saves(torch.Tensor.relu) is Saves.OUTPUT
    assert DEFAULT_REGISTRY.saves(operator.matmul) is Saves.MATMUL
    assert DEFAULT_REGISTRY.saves(torch.cat) is Saves.CONCAT
    assert DEFAULT_REGISTRY.saves(nn.MaxPool2d) is Saves.MAX_POOL
    assert DEFAULT_REGISTRY.saves(nn.GELU) is Saves.INPUT
    assert DEFAULT_REGISTRY.saves(nn.BatchNorm2d) is Saves.INPUT
    assert DEFAULT_REGISTRY.saves(nn.RMSNorm) is None  # composite: recorded at the ATen level
    assert DEFAULT_REGISTRY.saves(nn.UpsamplingBilinear2d) is Saves.RESAMPLE  # nn.Upsample's forward
    assert DEFAULT_REGISTRY.saves(nn.AvgPool2d) is Saves.AVG_POOL
    assert DEFAULT_REGISTRY.saves(F.pad) is Saves.PAD

    class OwnForward(nn.ReLU):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    def relu(x: torch.Tensor) -> torch.Tensor:  # a user function that only shares the name
        return x

    assert DEFAULT_REGISTRY.saves(OwnForward) is None
    assert DEFAULT_REGISTRY.saves(relu) is None


def test_a_node_s_family_is_its_call_target_s() -> None:
    call = OpCall(kind="module", target=nn.Sigmoid, inputs=(TensorSpec((2, 3)),), outputs=(TensorSpec((2, 3)),))
    record = NodeRecord(
        name="act", op="call_module", index=1, module_path="act", type_name="Whatever", call=call, outputs=()
    )
    assert family(record) is Saves.OUTPUT
    assert family(replace(record, call=None, type_name="Sigmoid")) is None


def test_what_an_op_saves_is_declared_once() -> None:
    table = FormulaTable("test")
    table.register(torch.relu, saves=Saves.OUTPUT)(lambda call: Cost())
    with pytest.raises(DuplicateFormulaError, match="declared twice"):
        table.declare(torch.relu, saves=Saves.NOTHING)
    other = FormulaTable("other")
    other.declare(torch.relu, saves=Saves.NOTHING)
    with pytest.raises(DuplicateFormulaError, match="already registered"):
        Registry.from_tables(table, other)


@pytest.mark.parametrize(
    ("spellings", "saves"),
    [
        ((operator.mul, torch.mul, torch.multiply, T.mul, T.__mul__, T.__rmul__), Saves.PRODUCT),
        (
            (operator.truediv, torch.div, torch.divide, torch.true_divide, T.div, T.__truediv__),
            Saves.QUOTIENT,
        ),
        ((operator.add, torch.add, T.add, T.__add__, T.__radd__), Saves.SUM),  # its gradient passed on as it is
        ((T.add_, T.__iadd__, operator.iadd), Saves.NOTHING),
        (
            (operator.sub, torch.sub, torch.subtract, torch.rsub, T.sub, T.__sub__, T.__rsub__, T.__isub__),
            Saves.NOTHING,
        ),
        ((operator.matmul, torch.matmul, T.matmul, T.__matmul__, T.__rmatmul__), Saves.MATMUL),
        ((operator.getitem, T.__getitem__), Saves.INDEX),
        # in place, autograd keeps a copy of the overwritten factor: recorded at the ATen level
        ((T.mul_, T.__imul__, operator.imul, T.div_, T.__itruediv__, operator.itruediv, T.__rtruediv__), None),
    ],
)
def test_every_spelling_of_an_op_saves_alike(spellings: tuple[object, ...], saves: Saves | None) -> None:
    """What autograd keeps does not depend on how the op was written: fx traces ``x * y`` as
    ``operator.mul``, a recorded forward sees ``Tensor.__mul__`` (the memory estimate of one model
    moved with the capture that read it)."""
    assert {DEFAULT_REGISTRY.saves(target) for target in spellings} == {saves}
