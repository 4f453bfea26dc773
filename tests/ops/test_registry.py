"""The op registry: lookup along the MRO, duplicates refused, overrides copy."""

from __future__ import annotations

import operator
import re
import types
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.ops.helpers import function_cost, method_cost
from torchscan import crawl_module
from torchscan.ops import DEFAULT_REGISTRY, TRACE_THROUGH, DuplicateFormulaError, FormulaTable, Registry, Workspace
from torchscan.ops.registry import ALIASES
from torchscan.records import Cost, OpCall, TensorSpec


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
    assert DEFAULT_REGISTRY.lookup(torch.special.bessel_j0) is None
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


def test_what_a_kernel_keeps_is_declared_once_bound_like_the_formula_and_inherited() -> None:
    """A normalisation's statistics are declared with its formula: the ``fixed`` arguments of the formula
    are bound in it too (an InstanceNorm1d's ``dims``), a subclass that keeps ``forward`` inherits it."""

    class MyNorm(nn.InstanceNorm1d):
        pass

    declared = DEFAULT_REGISTRY.saves_extra(nn.InstanceNorm1d)
    assert declared is not None and DEFAULT_REGISTRY.saves_extra(MyNorm) is declared
    assert DEFAULT_REGISTRY.saves_extra(nn.ReLU) is None and DEFAULT_REGISTRY.saves_extra(nn.RMSNorm) is None
    assert DEFAULT_REGISTRY.with_overrides({}).saves_extra(nn.InstanceNorm1d) is declared
    spec = TensorSpec((5, 10), torch.float32)  # unbatched: 5 instances of one sample (dims=1 bound)
    call = OpCall(target=nn.InstanceNorm1d, kind="module", inputs=(spec,), outputs=(spec,), attrs={"training": True})
    assert declared(call) == 2 * 5 * 4
    table = FormulaTable("test")
    table.register(nn.LayerNorm, saves_extra=lambda call: 1)(lambda call: Cost())
    with pytest.raises(DuplicateFormulaError, match="keeps is declared twice"):
        table.declare(nn.LayerNorm, saves_extra=lambda call: 2)


_ARGUMENTS: dict[tuple[str, ...], tuple[Any, ...]] = {
    ("Tensor",): (),
    ("Tensor", "Tensor"): (torch.rand(2, 3, 4) + 0.5,),
    ("Tensor", "number"): (2,),
    ("Tensor", "int"): (1,),
}
"""The required arguments after the first tensor (2×3×4) of the ATen overloads checked below."""


def _output_shape(function: Any, x: torch.Tensor, rest: tuple[Any, ...]) -> tuple[int, ...] | None:
    """The shape of ``function``'s first result on these arguments (None: it refuses them)."""
    try:
        result = function(x.clone(), *rest)
    except Exception:  # an op that refuses these arguments is not drawn
        return None
    first = result[0] if isinstance(result, (tuple, list)) else result
    return tuple(first.shape) if isinstance(first, torch.Tensor) else ()


def _aten_and_torch_spellings() -> list[Any]:
    """Each registered ATen overload whose required arguments are in :data:`_ARGUMENTS`, with its
    registered ``torch``, ``torch.Tensor`` or ``F`` spelling of the same name, and a float (or, for
    an op of integers, an int) 2×3×4 tensor that both accept with those arguments."""
    found = []
    for target in DEFAULT_REGISTRY.targets():
        if not isinstance(target, torch._ops.OpOverload):
            continue
        schema = target._schema.arguments
        required = tuple(str(a.type) for a in schema if not a.has_default_value())
        if required not in _ARGUMENTS:
            continue
        rest, name = _ARGUMENTS[required], target._schema.name.split("::")[1]
        for namespace in (torch, torch.Tensor, F):
            spelled = getattr(namespace, name, None)
            if spelled is None or DEFAULT_REGISTRY.lookup(spelled) is None:
                continue
            for x in (torch.rand(2, 3, 4) + 0.5, torch.randint(1, 5, (2, 3, 4))):
                # both run, and compute one thing: ``torch.kl_div``'s default reduction is not ATen's
                shape = _output_shape(target, x, rest)
                if shape is not None and shape == _output_shape(spelled, x, rest):
                    where = namespace.__name__.rsplit(".", 1)[-1]
                    found.append(pytest.param(target, spelled, x, rest, id=f"{target}-{where}.{name}"))
                    break
    return found


@pytest.mark.parametrize(("aten", "spelled", "x", "rest"), _aten_and_torch_spellings())
def test_aten_overloads_count_as_their_torch_spellings(
    aten: Any, spelled: Any, x: torch.Tensor, rest: tuple[Any, ...]
) -> None:
    """What a scripted or decomposed model records (``aten.log.default``) costs what the same call
    spelled in Python (``torch.log``, ``Tensor.log``) costs: registered apart, checked together."""
    method = spelled is getattr(torch.Tensor, spelled.__name__, None)
    expected = (method_cost if method else function_cost)(spelled, x.clone(), *rest)
    assert function_cost(aten, x.clone(), *rest) == expected


def test_aten_spellings_are_drawn() -> None:
    """The check above covers the registered pointwise and reduction overloads, not a handful."""
    drawn = {str(param.values[0]) for param in _aten_and_torch_spellings()}
    assert {"aten.log.default", "aten.sqrt.default", "aten.relu.default", "aten.mean.default"} <= drawn
    assert len(drawn) >= 60


def _aliased_names(function: Any) -> set[str]:
    doc = " ".join((function.__doc__ or "").split())
    return {name.rsplit(".", 1)[-1] for name in re.findall(r"Alias (?:for|of) :(?:func|meth):`([\w.]+)`", doc)}


def test_each_alias_is_one_torch_documents() -> None:
    """The alias table is torch's: of each ``torch``, ``torch.special`` or ``torch.linalg`` alias and the op it maps
    to, one's docstring says it is an alias of the other ("Alias for :func:`torch.gt`"); a ``Tensor`` method's
    alias maps to the method of that op's name; ``torch.relu_`` (a function form of an in-place method) to
    ``Tensor.relu_``."""
    checked = 0
    for alias, op in ALIASES.items():
        if alias.__name__.endswith("_") and getattr(torch, alias.__name__, None) is alias:  # ``torch.relu_``
            assert (
                op is getattr(torch.Tensor, alias.__name__) or ALIASES.get(getattr(torch.Tensor, alias.__name__)) is op
            )
            continue
        if isinstance(alias, (types.MethodDescriptorType, types.WrapperDescriptorType)):
            assert alias.__name__.rstrip("_") in dir(torch) and op.__name__ in dir(torch.Tensor)
            continue
        name = alias.__name__.removeprefix("special_").removeprefix("linalg_")
        assert op.__name__ in _aliased_names(alias) or name in _aliased_names(op), (alias, op)
        checked += 1
    assert checked >= 40


def test_an_alias_is_looked_up_as_its_op_in_every_table() -> None:
    """Formulas, what autograd saves, pointwise (the receptive field), shape rules: an alias gets all of them."""
    from torchscan.graph.rules import RULES
    from torchscan.passes.receptive import DEFAULT_RULES

    pointwise = set(DEFAULT_REGISTRY.pointwise_targets())
    for alias, op in ALIASES.items():
        assert DEFAULT_REGISTRY.lookup(alias) is DEFAULT_REGISTRY.lookup(op), alias
        assert DEFAULT_REGISTRY.saves(alias) is DEFAULT_REGISTRY.saves(op), alias
        assert (alias in pointwise) is (op in pointwise), alias
        assert RULES.lookup(alias) is RULES.lookup(op), alias
        assert DEFAULT_RULES.lookup(alias) is DEFAULT_RULES.lookup(op), alias
    assert DEFAULT_REGISTRY.lookup(torch.greater) is not None and torch.greater is not torch.gt
    assert torch.Tensor.multiply_ in pointwise and RULES.lookup(torch.swapdims) is not None


def test_an_override_of_an_op_reaches_its_aliases_unless_they_are_overridden() -> None:
    def free(call: OpCall) -> Cost:
        return Cost()

    def other(call: OpCall) -> Cost:
        return Cost(flops=1)

    custom = DEFAULT_REGISTRY.with_overrides({torch.gt: free, torch.Tensor.mul: free, torch.Tensor.multiply: other})
    assert custom.lookup(torch.greater) is free and custom.lookup(torch.Tensor.multiply) is other
    assert DEFAULT_REGISTRY.lookup(torch.greater) is not free


class _Canonical(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.clamp(x.mul(2.0), -1.0, 1.0) - torch.sigmoid(x)
        mask = torch.gt(y, 0.0) | torch.le(x, 0.5)
        parts = [torch.transpose(y, 1, 2), torch.movedim(torch.where(mask, y, x), 1, 2)]
        return torch.cat(parts, dim=1).sub(x.mT.repeat(1, 2, 1))


class _Aliased(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.clip(x.multiply(2.0), -1.0, 1.0) - torch.special.expit(x)
        mask = torch.greater(y, 0.0) | torch.less_equal(x, 0.5)
        parts = [torch.swapdims(y, 1, 2), torch.moveaxis(torch.where(mask, y, x), 1, 2)]
        return torch.concat(parts, dim=1).subtract(x.mT.repeat(1, 2, 1))


def test_a_model_spelled_with_aliases_counts_as_the_same_model_spelled_with_the_ops() -> None:
    """No alias is an unknown op: totals, and each row's costs and shapes, equal the canonical spelling's."""
    from torchscan import crawl_module

    aliased, canonical = (crawl_module(model, (4, 4), batch_size=2) for model in (_Aliased(), _Canonical()))
    assert aliased.totals == canonical.totals and aliased.totals.complete and aliased.totals.flops > 0
    assert [(row.flops, row.macs, row.dmas, row.output_shape) for row in aliased.rows] == [
        (row.flops, row.macs, row.dmas, row.output_shape) for row in canonical.rows
    ]
    assert aliased.memory.activation_peak_bytes == canonical.memory.activation_peak_bytes


def _counted_names() -> set[str]:
    """The names (a trailing ``_`` dropped) of the counted functions of ``torch``, ``torch.Tensor``, ``F``,
    ``torch.special``, ``torch.linalg`` and ``torch.fft``."""
    namespaces = (torch, torch.Tensor, F, torch.special, torch.linalg, torch.fft)
    names = set()
    for target in DEFAULT_REGISTRY.targets():
        name = getattr(target, "__name__", None)
        if (
            isinstance(name, str)
            and not isinstance(target, type)
            and any(getattr(namespace, name, None) is target for namespace in namespaces)
        ):
            names.add(name.rstrip("_"))
    return names


def test_every_spelling_of_a_counted_function_is_counted() -> None:
    """An op counted in one of ``torch``, ``torch.Tensor`` and ``F`` is counted in the others that have it, out of
    place and in place (``F.dropout``: ``torch.dropout``, ``torch.dropout_``; ``Tensor.fill_``: ``torch.fill``):
    a model spelling it otherwise is not reported incomplete. Its arguments are read by name (an alias's table
    entry, or a registration of its own where torch orders them otherwise)."""
    names = _counted_names()
    assert len(names) > 300
    missing = [
        f"{label}.{spelled}"
        for name in sorted(names)
        for namespace, label in ((torch, "torch"), (torch.Tensor, "Tensor"), (F, "F"))
        for spelled in (name, f"{name}_")
        if callable(function := getattr(namespace, spelled, None))
        and not isinstance(function, type)
        and DEFAULT_REGISTRY.lookup(function) is None
    ]
    assert missing == []


_NOT_COUNTED: dict[type[nn.Module], str] = {
    nn.CTCLoss: "a dynamic programme over the targets' lengths, which are values",
    nn.MultiLabelMarginLoss: "its pairs are the target classes listed before a -1 in each row: values",
    nn.TripletMarginWithDistanceLoss: "its distance is any callable the user gives",
}
"""torch.nn layers reported as unknown ops (partial totals and a diagnostic), and why."""

_NOT_LAYERS: dict[type[nn.Module], str] = {
    nn.Module: "the base class",
    nn.Sequential: "a container: its layers are counted",
    nn.ModuleList: "a container",
    nn.ModuleDict: "a container",
    nn.ParameterList: "a container of parameters",
    nn.ParameterDict: "a container of parameters",
    nn.Container: "a deprecated container",
    nn.RNNBase: "the base class of RNN, LSTM and GRU",
    nn.RNNCellBase: "the base class of the RNN cells",
    nn.AdaptiveLogSoftmaxWithLoss: "traced through: its linear heads, log-softmaxes and gathers are counted",
    **dict.fromkeys(
        (
            nn.LazyBatchNorm1d,
            nn.LazyBatchNorm2d,
            nn.LazyBatchNorm3d,
            nn.LazyInstanceNorm1d,
            nn.LazyInstanceNorm2d,
            nn.LazyInstanceNorm3d,
        ),
        "a lazy layer: refused before its first forward, its concrete class after it",
    ),
}
"""torch.nn classes that are no layer of their own."""


def test_every_torch_nn_layer_is_counted() -> None:
    """Each ``torch.nn`` module class has a formula, is traced through (``TRACE_THROUGH``: its parts are counted),
    or is listed above with the reason it is not (a container, a base class, a loss whose work depends on the
    targets' values): a layer torch adds is noticed here, not in a user's partial totals."""
    found = {
        cls
        for name in dir(nn)
        if isinstance(cls := getattr(nn, name), type)
        and issubclass(cls, nn.Module)
        and cls.__module__.startswith("torch.nn.modules")
    }
    missing = sorted(
        cls.__name__
        for cls in found
        if DEFAULT_REGISTRY.lookup(cls) is None
        and cls not in TRACE_THROUGH
        and cls not in _NOT_COUNTED
        and cls not in _NOT_LAYERS
    )
    assert missing == []
    assert len(found) > 150


def test_a_layer_traced_through_is_complete() -> None:
    """``nn.AdaptiveLogSoftmaxWithLoss.log_prob`` in a model: its heads are linear layers, the rest log-softmaxes,
    additions and copies: complete."""

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.AdaptiveLogSoftmaxWithLoss(16, 100, [10, 50])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head.log_prob(x)

    assert crawl_module(Head(), (16,), batch_size=4).totals.complete


class _Scored(nn.Module):
    """A linear layer's scores into a loss module, with the loss's other arguments as made by ``extra``."""

    def __init__(self, loss: nn.Module, extra: Any) -> None:
        super().__init__()
        self.linear, self.loss, self.extra = nn.Linear(4, 6), loss, extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.loss(*self.extra(self.linear(x)))


_UNCOUNTED_CASES = {
    nn.CTCLoss: lambda y: (
        y.log_softmax(-1).unsqueeze(1).expand(-1, 2, -1),
        torch.ones(2, 3, dtype=torch.long),
        torch.full((2,), y.shape[0], dtype=torch.long),
        torch.full((2,), 3, dtype=torch.long),
    ),
    nn.MultiLabelMarginLoss: lambda y: (y, torch.zeros_like(y, dtype=torch.long)),
    nn.TripletMarginWithDistanceLoss: lambda y: (y, y * 2, y * 3),
}


@pytest.mark.parametrize("cls", sorted(_NOT_COUNTED, key=lambda cls: cls.__name__))
def test_a_layer_not_counted_is_reported_unknown(cls: type[nn.Module]) -> None:
    """Its call is an unknown op: the totals partial (the linear layer's, a lower bound) and a diagnostic naming it."""
    report = crawl_module(_Scored(cls(), _UNCOUNTED_CASES[cls]), (4,), batch_size=5)
    assert not report.totals.complete
    assert report.totals.macs == 5 * 4 * 6
    named = cls.__name__.lower()  # the module, or the function a real forward recorded (ctc_loss)
    assert any(d.code == "unknown-op" and named in d.message.replace("_", "").lower() for d in report.diagnostics)
