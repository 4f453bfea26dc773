"""Turn fx nodes into :class:`OpCall` records: the normalised view a formula gets."""

from __future__ import annotations

import functools
import inspect
import operator
import types
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import torch
from torch import fx, nn
from torch._jit_internal import boolean_dispatched
from torch.fx.operator_schemas import get_signature_for_torch_op

from torchscan.graph.clone import reparametrized_names
from torchscan.graph.fake import analysis_mode
from torchscan.graph.shapes import NodeValues, SpecTable, describe, tensor_spec
from torchscan.graph.trace import ROOT_CALL
from torchscan.records import OpCall, TensorSpec, tensor_leaves
from torchscan.records.frozen import FrozenDict, frozen_record

__all__ = ["ArgumentBinder", "CallSite", "call_site", "display_type", "make_call", "module_path_of", "resolve_target"]

_CONFIG_TYPES = (int, float, bool, str, type(None), tuple, list)
_CONFIG_EXACT = frozenset(_CONFIG_TYPES)

_PACKED_LAYERS: frozenset[type] = frozenset({torch.ao.nn.quantized.dynamic.Linear})
"""Layers with a formula whose weight and bias are packed (neither parameter nor buffer: torch.ao's dynamically
quantized ``Linear``), read through the layers' own ``weight()`` and ``bias()`` (:func:`module_config`)."""


def module_path_of(node: fx.Node) -> str:
    """The path of the module a node belongs to: the called module, or the innermost caller."""
    if node.op == "call_module":
        return "" if node.meta.get(ROOT_CALL) else str(node.target)
    stack = node.meta.get("nn_module_stack")
    if stack:
        path, _ = next(reversed(stack.values()))
        return str(path)
    return ""


def resolve_target(node: fx.Node) -> Any:
    """The Python object a call node dispatches on (function, ``torch.Tensor`` method, or module class)."""
    if node.op == "call_method":
        return getattr(torch.Tensor, str(node.target), node.target)
    return node.target


_T = torch.Tensor

_OPERATOR_SPELLINGS: tuple[tuple[str, tuple[str, ...], tuple[Any, ...]], ...] = (
    # (canonical name, torch.Tensor dunders, operator-module functions): Python's operator protocol
    ("add", ("__add__", "__radd__", "__iadd__"), (operator.add, operator.iadd)),
    ("sub", ("__sub__", "__rsub__", "__isub__"), (operator.sub, operator.isub)),
    ("mul", ("__mul__", "__rmul__", "__imul__"), (operator.mul, operator.imul)),
    (
        "div",
        ("__truediv__", "__rtruediv__", "__itruediv__", "__div__", "__rdiv__", "__idiv__"),
        (operator.truediv, operator.itruediv),
    ),
    ("floor_divide", ("__floordiv__", "__rfloordiv__", "__ifloordiv__"), (operator.floordiv, operator.ifloordiv)),
    ("remainder", ("__mod__", "__rmod__", "__imod__"), (operator.mod, operator.imod)),
    ("pow", ("__pow__", "__rpow__", "__ipow__"), (operator.pow, operator.ipow)),
    ("matmul", ("__matmul__", "__rmatmul__", "__imatmul__"), (operator.matmul, operator.imatmul)),
    ("bitwise_and", ("__and__", "__rand__", "__iand__"), (operator.and_, operator.iand)),
    ("bitwise_or", ("__or__", "__ror__", "__ior__"), (operator.or_, operator.ior)),
    ("bitwise_xor", ("__xor__", "__rxor__", "__ixor__"), (operator.xor, operator.ixor)),
    ("bitwise_left_shift", ("__lshift__", "__rlshift__", "__ilshift__"), (operator.lshift, operator.ilshift)),
    ("bitwise_right_shift", ("__rshift__", "__rrshift__", "__irshift__"), (operator.rshift, operator.irshift)),
    ("bitwise_not", ("__invert__",), (operator.invert,)),
    ("neg", ("__neg__",), (operator.neg,)),
    ("positive", ("__pos__",), (operator.pos,)),
    ("abs", ("__abs__",), (operator.abs,)),
    ("eq", ("__eq__",), (operator.eq,)),
    ("ne", ("__ne__",), (operator.ne,)),
    ("lt", ("__lt__",), (operator.lt,)),
    ("le", ("__le__",), (operator.le,)),
    ("gt", ("__gt__",), (operator.gt,)),
    ("ge", ("__ge__",), (operator.ge,)),
    ("getitem", ("__getitem__",), (operator.getitem,)),
    ("setitem", ("__setitem__",), (operator.setitem,)),
)
"""Each Python operator's spellings: ``x + y`` is traced as ``operator.add`` (``operator.iadd`` for
``+=``), ``x.__add__(y)`` as the tensor dunder; torch's own name for the op is the display name."""


def _display_names() -> Mapping[Any, str]:
    """The table :func:`display_type` reads, keyed by target object (built once, read-only).

    Operators and tensor dunders take torch's name (:data:`_OPERATOR_SPELLINGS`); an in-place
    spelling (``Tensor.relu_``, ``torch.relu_``, ``F.relu_``) takes the name of its out-of-place op,
    found in the same namespace under the name without the trailing underscore. Only torch's
    namespaces are read, once, here; targets themselves are never parsed.
    """
    names: dict[Any, str] = {}
    for canonical, dunders, functions in _OPERATOR_SPELLINGS:
        for target in (*(getattr(_T, dunder, None) for dunder in dunders), *functions):
            if target is not None:
                names[target] = canonical
    for namespace in (_T, torch, nn.functional):
        for attribute in dir(namespace):
            if attribute.startswith("_") or not attribute.endswith("_"):
                continue
            in_place, out_of_place = getattr(namespace, attribute, None), getattr(namespace, attribute[:-1], None)
            if callable(in_place) and callable(out_of_place) and in_place not in names:
                names[in_place] = names.get(out_of_place) or getattr(out_of_place, "__name__", attribute[:-1])
    return MappingProxyType(names)


_DISPLAY_NAMES = _display_names()


def display_type(target: Any) -> str:
    """The one name of an op in a report (the Type column, row names, ``NodeRecord.type_name``).

    A module class: its class name. A function, operator or tensor method: the name torch gives
    the op, whatever the spelling traced: ``x + y``, ``torch.add``, ``x.add(y)``, ``x.add_(y)``,
    ``x += y`` and ``x.__add__(y)`` are all ``add``; ``x[i]`` and ``x.__getitem__(i)`` are
    ``getitem``; ``relu_`` is ``relu`` (see :func:`_display_names`). An ATen overload is its
    packet's name (``aten.add.Tensor`` → ``add``); a method name not on ``torch.Tensor`` (a string
    target) is itself; anything else its ``__name__``, or its class name.
    """
    if isinstance(target, type):
        return target.__name__
    if isinstance(target, str):
        return target
    try:
        known = _DISPLAY_NAMES.get(target)
    except TypeError:  # unhashable target
        known = None
    if known is not None:
        return known
    if isinstance(target, torch._ops.OpOverload):
        target = target.overloadpacket
    name = getattr(target, "__name__", None)
    return name if isinstance(name, str) and name else type(target).__name__


class ArgumentBinder:
    """Binds call arguments to parameter names, remembering signatures and bindings for one analysis.

    Whether a signature binds a call, and which parameter each argument lands on, depends only on the
    call's structure (how many positional arguments, which keywords): ``inspect.Signature.bind`` looks
    at no value. The first call of each structure is bound by ``inspect`` with placeholders; the
    others follow the plan it gave (~1 µs against ~8 µs), to the same dict in the same order."""

    def __init__(self) -> None:
        self._signatures: dict[int, tuple[inspect.Signature, ...]] = {}
        self._plans: dict[tuple[int, int, tuple[str, ...]], _Plan | None] = {}

    def _signatures_of(self, function: Callable[..., Any]) -> tuple[inspect.Signature, ...]:
        key = id(function)
        if key not in self._signatures:
            self._signatures[key] = _find_signatures(function)
        return self._signatures[key]

    def bind(self, function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Arguments by parameter name, defaults applied; ``{"args": …, **kwargs}`` when unbindable."""
        key = (id(function), len(args), tuple(kwargs))
        if key in self._plans:
            plan = self._plans[key]
        else:
            plan = self._plans[key] = _plan(self._signatures_of(function), len(args), key[2])
        if plan is None:
            return {"args": tuple(args), **kwargs}
        steps, var_keyword = plan
        arguments = {name: _take(step, args, kwargs) for name, step in steps}
        if var_keyword is not None and var_keyword in arguments:
            arguments.update(arguments.pop(var_keyword))
        return arguments


class _Slot:
    """A placeholder argument of a planned binding: its position (int) or keyword (str)."""

    __slots__ = ("key",)

    def __init__(self, key: int | str) -> None:
        self.key = key


_Step = tuple[str, Any]
"""Where a bound parameter's value comes from: ``("arg", position)``, ``("kwarg", name)``, ``("default",
value)``, ``("args", steps)`` (a ``*args`` tuple) or ``("kwargs", ((name, step), …))`` (a ``**kwargs`` dict)."""

_Plan = tuple[tuple[tuple[str, _Step], ...], str | None]
"""(each parameter's name and step, in ``BoundArguments.arguments`` order; the ``**kwargs`` parameter's name)."""


def _plan(signatures: tuple[inspect.Signature, ...], count: int, keywords: tuple[str, ...]) -> _Plan | None:
    """How the first of ``signatures`` that binds ``count`` positional arguments and ``keywords`` binds
    them (:class:`ArgumentBinder`), or None where none does."""
    for signature in signatures:
        try:
            bound = signature.bind(*(_Slot(position) for position in range(count)), **{k: _Slot(k) for k in keywords})
        except TypeError:
            continue
        bound.apply_defaults()
        var_keyword = next(
            (p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD), None
        )
        return tuple((name, _step(value)) for name, value in bound.arguments.items()), var_keyword
    return None


def _step(value: Any) -> _Step:
    if type(value) is _Slot:
        return ("arg", value.key) if type(value.key) is int else ("kwarg", value.key)
    if type(value) is tuple and value and all(type(item) is _Slot for item in value):
        return "args", tuple(_step(item) for item in value)
    if type(value) is dict and all(type(item) is _Slot for item in value.values()):
        return "kwargs", tuple((name, _step(item)) for name, item in value.items())
    return "default", value


def _take(step: _Step, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """The value ``step`` (:data:`_Step`) names in this call's arguments."""
    kind, where = step
    if kind == "arg":
        return args[where]
    if kind == "kwarg":
        return kwargs[where]
    if kind == "args":
        return tuple(_take(item, args, kwargs) for item in where)
    if kind == "kwargs":
        return {name: _take(item, args, kwargs) for name, item in where}
    return where


def _find_signatures(function: Callable[..., Any]) -> tuple[inspect.Signature, ...]:
    """The signatures ``function`` may be called with (several for an overloaded torch op).

    A Python function or method (user code, fx-wrapped leaf functions) is read as it is: a
    process-wide cache would keep it, and what it holds, alive after the analysis. Only builtins
    and torch's op objects, which live as long as the process anyway, are remembered."""
    if isinstance(function, (types.FunctionType, types.MethodType, functools.partial)):
        return _signatures(function)
    try:
        return _builtin_signatures(function)
    except TypeError:  # unhashable
        return _signatures(function)


@functools.lru_cache(maxsize=1024)
def _builtin_signatures(function: Callable[..., Any]) -> tuple[inspect.Signature, ...]:
    """:func:`_signatures` of a builtin or a torch op object, remembered: a pure function of an
    object that lives as long as the process (parsing a builtin's text signature costs ~100 µs)."""
    return _signatures(function)


def _signatures(function: Callable[..., Any]) -> tuple[inspect.Signature, ...]:
    try:
        dispatched = boolean_dispatched.get(function)  # F.max_pool2d and friends wrap two functions
    except TypeError:  # not weakly referable (a property's getter, ``Tensor.T.__get__``): none of them
        dispatched = None
    if dispatched is not None:
        function = dispatched["if_false"]
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        signature = None
    if signature is not None and not any(
        p.kind is inspect.Parameter.VAR_POSITIONAL for p in signature.parameters.values()
    ):
        return (signature,)
    try:
        return tuple(get_signature_for_torch_op(function) or ())
    except Exception:
        return ()


@functools.lru_cache(maxsize=1024)
def _public(names: tuple[str, ...]) -> tuple[str, ...]:
    """The names of an attribute layout that do not start with ``_`` (a module's ``__dict__`` keys: mostly
    ``nn.Module``'s private state; one layout per class, nearly always)."""
    return tuple(name for name in names if name[:1] != "_")


def module_config(module: nn.Module, specs: SpecTable | None = None) -> dict[str, Any]:
    """A module's plain configuration attributes plus specs of its own parameters and buffers (``specs``:
    a :data:`~torchscan.graph.shapes.SpecTable` they are taken from)."""
    state = vars(module)
    config: dict[str, Any] = {}
    for name in _public(tuple(state)):
        value = state[name]
        if type(value) in _CONFIG_EXACT or isinstance(value, _CONFIG_TYPES):  # exact types first: cheaper
            config[name] = value
    config["training"] = module.training
    parameters, buffers = state["_parameters"], state["_buffers"]
    if parameters or buffers:
        seen: set[int] = set()
        for name, tensor in (*dict.items(parameters), *dict.items(buffers)):  # named_*(recurse=False), raw
            if tensor is not None and id(tensor) not in seen:
                seen.add(id(tensor))
                config[name] = tensor_spec(tensor, specs)
    if type(module) in _PACKED_LAYERS:  # the int8 (or float16) weight and float bias it packs
        for name in ("weight", "bias"):
            tensor = getattr(module, name)()
            if isinstance(tensor, torch.Tensor):
                config[name] = tensor_spec(tensor, specs)
    for name in reparametrized_names(module):  # the weight a formula reads, as the module computes it
        with analysis_mode():  # from the copy's tensors, no arithmetic
            value = getattr(module, name, None)
        if isinstance(value, torch.Tensor):
            config[name] = describe(value, specs)
    return config


@frozen_record
class CallSite:
    """What an :class:`OpCall` of a node takes from the graph and the model's copy alone: the same
    for every input (a sweep makes it once per capture). ``attrs`` is a called module's config
    (None for a function or method, whose attributes are its bound arguments)."""

    kind: str
    target: Any
    attrs: Mapping[str, Any] | None
    """Read-only (a view of a dict nothing else holds), shared by the site's calls."""
    training: bool
    module_path: str


def call_site(
    node: fx.Node,
    root: nn.Module,
    modules: Mapping[str, nn.Module] | None = None,
    specs: SpecTable | None = None,
    path: str | None = None,
) -> CallSite | None:
    """The :class:`CallSite` of a call node (None for placeholders, attributes and the output).

    ``root`` is the traced (fake) copy of the model: module configs and training flags come
    from it; ``modules`` (its submodules by path, duplicates included) saves the lookups; ``specs``:
    the table of :func:`module_config`; ``path``: :func:`module_path_of` the node, when the caller has it.
    """
    if node.op not in ("call_module", "call_function", "call_method"):
        return None
    if path is None:
        path = module_path_of(node)
    owner = _owner_module(root, path, modules)
    training = owner.training if owner is not None else root.training
    attrs: Mapping[str, Any] | None = None
    if node.op == "call_module":
        module = modules.get(str(node.target)) if modules is not None else None
        if module is None:
            module = root.get_submodule(str(node.target))
        target: Any = type(module)
        attrs = FrozenDict(module_config(module, specs))  # frozen once: every OpCall of the site shares it
        training = module.training
    elif node.op == "call_function":
        target = node.target
    else:
        target = resolve_target(node)
    return CallSite(node.op.removeprefix("call_"), target, attrs, training, path)


def make_call(
    node: fx.Node,
    values: NodeValues,
    site: CallSite,
    binder: ArgumentBinder,
    outputs: tuple[TensorSpec, ...] | None = None,
) -> OpCall:
    """The :class:`OpCall` of a call node from its :class:`CallSite` and its described values
    (``outputs``: the specs of ``values.output``, when the caller has them already)."""
    if site.attrs is not None:
        attrs: Mapping[str, Any] = site.attrs  # frozen already: OpCall keeps it as is
    elif site.kind == "function":
        attrs = binder.bind(site.target, values.args, values.kwargs)
    else:
        attrs = {"args": values.args[1:], **values.kwargs}
    return OpCall(
        kind=site.kind,  # type: ignore[arg-type]
        target=site.target,
        inputs=tuple(tensor_leaves((values.args, values.kwargs))),
        outputs=tuple(tensor_leaves(values.output)) if outputs is None else outputs,
        attrs=attrs,
        training=site.training,
        name=node.name,
        module_path=site.module_path,
    )


def _owner_module(root: nn.Module, path: str, modules: Mapping[str, nn.Module] | None) -> nn.Module | None:
    found = modules.get(path) if modules is not None else None
    if found is not None:
        return found
    try:
        return root.get_submodule(path) if path else root
    except AttributeError:
        return None
