"""Display names: one name per op whatever the spelling traced, read from a table keyed by the target."""

from __future__ import annotations

import gc
import inspect
import operator
import weakref
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from torchscan.graph.calls import ArgumentBinder, _signatures, display_type

T = torch.Tensor
aten = torch.ops.aten


@pytest.mark.parametrize(
    ("spellings", "name"),
    [
        ((operator.getitem, T.__getitem__), "getitem"),
        ((operator.add, operator.iadd, torch.add, T.add, T.add_, T.__add__, T.__radd__, T.__iadd__), "add"),
        ((operator.sub, operator.isub, torch.sub, T.sub_, T.__sub__, T.__rsub__), "sub"),
        ((operator.truediv, operator.itruediv, torch.div, T.div, T.div_, T.__truediv__, T.__rtruediv__), "div"),
        ((operator.matmul, torch.matmul, T.matmul, T.__matmul__, T.__rmatmul__), "matmul"),
        ((operator.and_, operator.iand, torch.bitwise_and, T.bitwise_and_, T.__and__, T.__iand__), "bitwise_and"),
        ((operator.neg, torch.neg, T.neg_, T.__neg__), "neg"),
        ((operator.le, torch.le, T.le, T.le_, T.__le__), "le"),
        ((torch.relu, torch.relu_, F.relu, F.relu_, T.relu, T.relu_), "relu"),
        ((F.leaky_relu, F.leaky_relu_), "leaky_relu"),
        ((torch.sigmoid, torch.sigmoid_, T.sigmoid, T.sigmoid_), "sigmoid"),
        ((aten.add.Tensor, aten.add.Scalar, aten.add), "add"),
        ((nn.Conv2d,), "Conv2d"),
        (("custom_method",), "custom_method"),  # a call_method target not on torch.Tensor
    ],
)
def test_one_name_per_op(spellings: tuple[Any, ...], name: str) -> None:
    assert {display_type(target) for target in spellings} == {name}


def test_every_in_place_tensor_method_is_named_as_its_out_of_place_op() -> None:
    pairs = [
        (getattr(T, attribute), getattr(T, attribute[:-1]))
        for attribute in dir(T)
        if attribute.endswith("_") and not attribute.startswith("_") and callable(getattr(T, attribute[:-1], None))
    ]
    assert len(pairs) > 100
    assert all(display_type(in_place) == display_type(plain) for in_place, plain in pairs)


def test_ops_with_only_an_in_place_form_keep_their_name() -> None:
    assert display_type(T.zero_) == "zero_" and display_type(T.fill_) == "fill_"


def test_names_never_hold_addresses() -> None:
    class Scale:
        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    assert display_type(Scale()) == "Scale"  # no __name__: the class name, not a repr with an address
    assert display_type(lambda x: x) == "<lambda>"


def test_binding_keeps_no_user_function_alive() -> None:
    """Signatures of Python functions are read per analysis (the binder's own memo): nothing
    process-wide keeps a user's function, or what its closure holds, alive after the analysis."""

    def make() -> Any:
        held = torch.empty(1 << 10)

        def scale(x: Any, factor: float = 2.0) -> Any:
            return x * factor + held.numel()

        return scale

    function = make()
    binder = ArgumentBinder()
    assert binder.bind(function, (1,), {}) == {"x": 1, "factor": 2.0}
    gone = weakref.ref(function)
    del function, binder
    gc.collect()
    assert gone() is None


def test_builtin_signatures_bind_as_torch_documents_them() -> None:
    binder = ArgumentBinder()
    bound = binder.bind(torch.conv2d, (torch.empty(1, 1, 3, 3), torch.empty(1, 1, 1, 1)), {"stride": 2})
    assert list(bound) == ["input", "weight", "bias", "stride", "padding", "dilation", "groups"]
    assert bound["stride"] == 2 and bound["bias"] is None and bound["groups"] == 1


def _reference_bind(function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """What ``inspect`` binds (the first signature that takes the call), ``**kwargs`` flattened."""
    for signature in _signatures(function):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            continue
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        for parameter in signature.parameters.values():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD and parameter.name in arguments:
                arguments.update(arguments.pop(parameter.name))
        return arguments
    return {"args": tuple(args), **kwargs}


def _everything(a: Any, b: Any = 1, /, c: Any = None, *rest: Any, d: Any, e: Any = (), **extra: Any) -> None:
    """Every kind of parameter: positional-only, either, ``*args``, keyword-only, ``**kwargs``."""


_BOUND = [_everything, torch.conv2d, F.layer_norm, torch.add, operator.getitem, torch.sum, T.view, F.interpolate]
_KEYWORDS = ["a", "b", "c", "d", "e", "input", "weight", "bias", "stride", "dim", "alpha", "size", "mode", "other", "z"]


@given(
    function=st.sampled_from(_BOUND),
    calls=st.lists(
        st.tuples(st.integers(0, 5), st.lists(st.sampled_from(_KEYWORDS), max_size=4, unique=True)), max_size=6
    ),
)
def test_a_planned_binding_binds_as_inspect_does(function: Any, calls: list[tuple[int, list[str]]]) -> None:
    """The binder binds a structure (positional count, keywords) once with ``inspect`` and replays the
    plan after: every call — repeated structures with other values included — gives ``inspect``'s dict,
    in its order, or the unbindable fallback where no signature takes the call."""
    binder = ArgumentBinder()
    for round_ in range(2):  # the second round replays the plans the first made
        for count, keywords in calls:
            args = tuple(object() for _ in range(count))
            kwargs = {name: (name, round_) for name in keywords}
            bound, expected = binder.bind(function, args, kwargs), _reference_bind(function, args, kwargs)
            assert list(bound.items()) == list(expected.items())
            assert all(bound[name] is expected[name] for name in bound)


def test_a_property_getter_binds_its_arguments() -> None:
    """A recorded forward reads ``x.T`` as a call of ``Tensor.T.__get__``, a method-wrapper that no weak
    reference can point to: its arguments are bound all the same (a TypeError from torch's table of
    boolean-dispatched functions escaped the analysis as a raw traceback)."""
    getter = T.T.__get__
    tensor = torch.empty(2, 3)
    bound = ArgumentBinder().bind(getter, (tensor,), {})
    assert tensor in tuple(bound.values()) or tensor in bound.get("args", ())


class _Gram(nn.Module):
    """``h @ h.T`` after a branch on a value: only a real forward can capture it."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if bool(x.sum() > -1e9):
            h = h + 1
        return h @ h.T


def test_a_recorded_property_read_is_analysed() -> None:
    from torchscan import crawl_module

    report = crawl_module(_Gram(), args=(torch.rand(3, 4),), batch_size=None)
    assert report.context.capture == "real-forward"
    assert report.totals.macs == 3 * 4 * 4 + 3 * 3 * 4  # the Linear, then a (3, 4) @ (4, 3) product
