"""One table pattern for everything keyed by op: formulas here, shape rules and receptive-field rules.

A family file collects its entries in an :class:`OpTable` with a decorator that takes all the
spellings of an op at once (module classes, functions, operators, ``torch.Tensor`` methods, ATen
overloads); :class:`OpLookup` merges the tables into one read-only lookup, refusing a target
registered twice. :class:`Registry` is the lookup of formulas; user overrides make a new registry,
never mutate one. The shape rules (:mod:`torchscan.graph.rules`) and the receptive-field rules
(:mod:`torchscan.passes.receptive`) are tables of the same kind.

Where a formula is registered, the same decorator may state what other passes need to know about
the op, so each fact is declared once, next to the op's spellings, and read back by the call's
target object: what autograd saves for it (``saves=Saves.…``, :meth:`OpLookup.saves`, read by the
memory pass), whether it is pointwise (``pointwise=True``: output unit ``i`` reads unit ``i`` of
each operand after broadcasting; :meth:`OpLookup.pointwise_targets`, read by the receptive field),
and, for an ATen op whose kernel returns a buffer of its own that its fake kernel returns empty, the
buffer's real size (``workspace=Workspace(...)``, :meth:`OpLookup.workspace`, read by the memory
pass where it records calls on fake tensors), and the bytes of what the op's kernel makes and autograd
keeps for its backward besides the tensors its family names (``saves_extra=f``, ``f(call) -> bytes``: a
normalisation's statistics; :meth:`OpLookup.saves_extra`, read by the memory pass's training estimate).
"""

from __future__ import annotations

import enum
import functools
import sys
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import torch
from torch import nn

from torchscan.records import Cost, OpCall
from torchscan.records.frozen import frozen_record

__all__ = [
    "ALIASES",
    "DuplicateFormulaError",
    "Formula",
    "FormulaTable",
    "LazyTable",
    "OpLookup",
    "OpTable",
    "Registry",
    "SavedExtra",
    "Saves",
    "Workspace",
]

Formula = Callable[[OpCall], Cost]
SavedExtra = Callable[[OpCall], int]
ReturnsInput = Callable[[nn.Module], bool]
"""Whether a call of a module (given) returns its one argument itself (:meth:`OpTable.declare`)."""
"""Bytes of the tensors an op's kernel makes and autograd keeps for its backward, beyond its family's."""
V = TypeVar("V", bound=Callable[..., Any])


class DuplicateFormulaError(ValueError):
    """A target got two entries (formulas, or rules) in one table or across merged tables."""


class Saves(enum.Enum):
    """What autograd keeps for an op's backward (read by the memory pass's training estimate).

    An op declared with none of these saves every activation input (the conservative default).
    """

    WEIGHTED = "weighted"
    """conv / linear / bilinear: the input, for ``dL/dW``."""
    MATMUL = "matmul"
    """Matrix products (``matmul``, ``mm``, ``bmm``, ``einsum``, ``addmm``…): of two tensor operands,
    each one when the other requires grad (``dL/da = g·bᵀ`` needs ``b``); of more, every input."""
    PRODUCT = "product"
    """``mul`` out of place: of two tensor operands, each one when the other requires grad; a product
    with a number keeps nothing."""
    QUOTIENT = "quotient"
    """``div`` / ``/`` out of place: of two tensor operands, the divisor (both gradients read it) and the
    dividend when the divisor requires grad; a tensor divided by a number keeps nothing. A number
    divided by a tensor (``2 / x``, a reciprocal and a product inside) and a rounding division are
    recorded at the ATen level."""
    INDEX = "index"
    """``x[...]``: basic indexing (integers, slices, ``None``, ``...``) is a view and keeps nothing;
    an index holding a tensor or a list (advanced indexing: a gather that keeps its indices) is
    recorded at the ATen level."""
    INDEX_WRITE = "index_write"
    """``x[index] = value``: a basic index writes through a view and keeps nothing; an index holding a
    tensor or a list (``index_put_``: it keeps its indices) is recorded at the ATen level."""
    INPUT = "saves_input"
    """Pointwise ops and normalisations whose gradient needs their input (a normalisation's per-row or
    per-channel statistics besides, declared with ``saves_extra``); in place, autograd saves a copy of the
    input first."""
    OUTPUT = "saves_output"
    """Pointwise ops whose gradient is a function of their output."""
    INPUT_OR_RESULT = "saves_input_or_result"
    """ELU: its input out of place; run in place (``nn.ELU(inplace=True)``, ``F.elu(..., inplace=True)``)
    its result, which ``elu_``'s backward reads (no copy is made)."""
    NOTHING = "saves_nothing"
    """Views, metadata, and ops linear in their inputs (the gradient needs only shapes)."""
    NEW = "new_tensor"
    """A new tensor made from sizes, or from another tensor's shape, dtype and device only (factories,
    ``zeros_like``, ``x.new_empty``): keeps nothing, and its output requires no grad whatever it read (DropPath's
    mask, ``x.new_empty(shape).bernoulli_(p)``, makes ``x * mask`` keep the mask, not ``x``)."""
    SUM = "sum_of_operands"
    """``x + y`` out of place: keeps nothing, and its backward hands its output's gradient itself (no new
    tensor) to each operand of the output's shape and dtype when ``alpha`` is 1 (a broadcast operand gets
    a reduced copy, another dtype a converted one)."""
    CONCAT = "concatenation"
    """``torch.cat`` / ``torch.stack``: keeps nothing, and its backward hands each operand a piece of its output's
    gradient, a view (``narrow``, ``select``: no new tensor), so that gradient lives until the last piece's
    reader has run; a piece of a dim after the first (of non-unit leading dims) is strided, and a reader that
    reshapes its gradient (a linear layer on more than two dims) copies it first."""
    MAX_POOL = "max_pool"
    """Max pools: input + int64 indices."""
    PAD = "pad"
    """``F.pad``: nothing in ``constant`` and ``circular`` modes; its input in ``reflect`` and ``replicate``
    modes, whose backward kernels take it (:func:`torchscan.ops.shape.pad_keeps_input`)."""
    RESAMPLE = "resample"
    """Interpolation: nothing (its backward needs only sizes), but in ``area`` mode, an adaptive average pool:
    the input, unless to size 1 in every dim (:func:`torchscan.ops.upsample.resample_keeps_input`)."""
    AVG_POOL = "avg_pool"
    """Average pools: the input (``avg_pool*d_backward`` and ``_adaptive_avg_pool*d_backward`` take it); an
    adaptive pool to size 1 in every pooled dim runs ``mean`` instead and keeps nothing
    (:func:`torchscan.ops.pool.pools_to_one`)."""
    DROPOUT = "dropout"
    """Dropout: a bool mask in training."""
    ATTENTION = "attention"
    """``flex_attention``: its query, key and value, its result, and what its kernel makes beside
    (:func:`torchscan.ops.attention.flex_statistics`): the float32 log-sum-exp and max score of each query row
    and, given no block mask, the one-block mask it makes."""


@frozen_record
class Workspace:
    """A buffer that an ATen op's kernel makes and returns as its result number ``output`` (e.g.
    what it keeps for its backward), while the op's fake (meta) kernel returns it empty: fake tensors
    never see its bytes. ``nbytes(*args, **kwargs)``, called with the op's own arguments in the
    grad mode of the call, is the real buffer's size in bytes (0 where the kernel makes none)."""

    output: int
    nbytes: Callable[..., int]


def _describe(target: Any) -> str:
    return getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)


class OpTable(Generic[V]):
    """Entries of one op family, keyed by every spelling of each op."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[Any, V] = {}
        self._saves: dict[Any, Saves] = {}
        self._pointwise: dict[Any, None] = {}
        self._workspaces: dict[Any, Workspace] = {}
        self._saved_extras: dict[Any, SavedExtra] = {}
        self._returns_input: dict[Any, ReturnsInput] = {}

    def register(
        self,
        *targets: Any,
        saves: Saves | None = None,
        pointwise: bool = False,
        workspace: Workspace | None = None,
        saves_extra: SavedExtra | None = None,
        **fixed: Any,
    ) -> Callable[[V], V]:
        """Register the decorated entry under ``targets``; ``fixed`` keyword arguments are bound.

        ``fixed`` lets one formula serve several dimensionalities, e.g. ``dims=2`` for 2-D pools (bound in
        ``saves_extra`` too); ``saves``, ``pointwise``, ``workspace`` and ``saves_extra`` declare facts about
        these spellings (see :meth:`declare`).
        """

        def decorate(entry: V) -> V:
            bound = functools.partial(entry, **fixed) if fixed else entry
            if fixed:
                functools.update_wrapper(bound, entry)
            for target in dict.fromkeys(targets):  # an alias listed twice (F.x is torch.x) is one
                if target in self._entries:
                    raise DuplicateFormulaError(f"{self.family}: {_describe(target)} registered twice")
                self._entries[target] = bound  # type: ignore[assignment]
            extra = functools.partial(saves_extra, **fixed) if fixed and saves_extra is not None else saves_extra
            if saves is not None or pointwise or workspace is not None or extra is not None:
                self.declare(*targets, saves=saves, pointwise=pointwise, workspace=workspace, saves_extra=extra)
            return entry

        return decorate

    def declare(
        self,
        *targets: Any,
        saves: Saves | None = None,
        pointwise: bool = False,
        workspace: Workspace | None = None,
        saves_extra: SavedExtra | None = None,
        returns_input: ReturnsInput | None = None,
    ) -> None:
        """State what autograd saves for ``targets`` (its family, and the bytes of what the kernel makes and
        keeps besides), whether they are pointwise, the buffer their kernel makes that fake tensors do
        not see (also for spellings without an entry), and for module classes when a call returns its one
        argument itself (``returns_input(module)``: ``nn.Identity``, a dropout in eval: the trace makes no node
        of such a call); a fact declared twice for one target is refused."""
        for target in dict.fromkeys(targets):
            if returns_input is not None:
                if target in self._returns_input:
                    raise DuplicateFormulaError(f"{self.family}: what {_describe(target)} returns is declared twice")
                self._returns_input[target] = returns_input
            if saves_extra is not None:
                if target in self._saved_extras:
                    raise DuplicateFormulaError(f"{self.family}: what {_describe(target)} keeps is declared twice")
                self._saved_extras[target] = saves_extra
            if saves is not None:
                if target in self._saves:
                    raise DuplicateFormulaError(f"{self.family}: what {_describe(target)} saves is declared twice")
                self._saves[target] = saves
            if pointwise:
                if target in self._pointwise:
                    raise DuplicateFormulaError(f"{self.family}: {_describe(target)} declared pointwise twice")
                self._pointwise[target] = None
            if workspace is not None:
                if target in self._workspaces:
                    raise DuplicateFormulaError(f"{self.family}: workspace of {_describe(target)} declared twice")
                self._workspaces[target] = workspace

    def items(self) -> tuple[tuple[Any, V], ...]:
        return tuple(self._entries.items())

    def saves_items(self) -> tuple[tuple[Any, Saves], ...]:
        return tuple(self._saves.items())

    def pointwise_items(self) -> tuple[tuple[Any, None], ...]:
        return tuple(self._pointwise.items())

    def workspace_items(self) -> tuple[tuple[Any, Workspace], ...]:
        return tuple(self._workspaces.items())

    def saved_extra_items(self) -> tuple[tuple[Any, SavedExtra], ...]:
        return tuple(self._saved_extras.items())

    def returns_input_items(self) -> tuple[tuple[Any, ReturnsInput], ...]:
        return tuple(self._returns_input.items())


FormulaTable = OpTable[Formula]
"""The formulas of one op family (``ops/<family>.py``)."""


@frozen_record
class LazyTable(Generic[V]):
    """A family for an optional library (e.g. torchvision's fx-wrapped functions).

    ``load`` imports the library and returns its table; it runs at the first lookup miss after
    ``module`` has been imported by someone else — a model that calls the library's functions
    has imported it — so importing torchscan never imports the library.
    """

    module: str
    load: Callable[[], OpTable[V]]


_ALIAS_NAMES: dict[str, str] = {
    "absolute": "abs",
    "arccos": "acos",
    "arccosh": "acosh",
    "arcsin": "asin",
    "arcsinh": "asinh",
    "arctan": "atan",
    "arctan2": "atan2",
    "arctanh": "atanh",
    "clip": "clamp",
    "concat": "cat",
    "concatenate": "cat",
    "divide": "div",
    "fix": "trunc",
    "ger": "outer",
    "greater": "gt",
    "greater_equal": "ge",
    "less": "lt",
    "less_equal": "le",
    "moveaxis": "movedim",
    "multiply": "mul",
    "negative": "neg",
    "not_equal": "ne",
    "row_stack": "vstack",
    "subtract": "sub",
    "swapaxes": "transpose",
    "swapdims": "transpose",
    "true_divide": "div",
}
"""torch's aliases (documented "Alias for :func:`torch.gt`" on one side or the other), by name: each in ``torch``
and as a ``Tensor`` method, in place too (``multiply_``) where torch has both spellings."""

_SPECIAL_ALIASES: dict[str, str] = {
    "digamma": "digamma",
    "erf": "erf",
    "erfc": "erfc",
    "erfinv": "erfinv",
    "exp2": "exp2",
    "expit": "sigmoid",
    "expm1": "expm1",
    "i0": "i0",
    "log1p": "log1p",
    "logit": "logit",
    "logsumexp": "logsumexp",
    "multigammaln": "mvlgamma",
    "psi": "digamma",
    "round": "round",
    "sinc": "sinc",
    "xlogy": "xlogy",
}
"""``torch.special``'s aliases of ``torch`` functions (documented as such on one side: ``torch.sigmoid`` is "Alias for
:func:`torch.special.expit`", ``torch.special.round`` for :func:`torch.round`)."""


def _aliases() -> dict[Any, Any]:
    pairs: dict[Any, Any] = {}
    for alias, op in _ALIAS_NAMES.items():
        for owner, suffix in ((torch, ""), (torch.Tensor, ""), (torch.Tensor, "_")):
            spelled, named = getattr(owner, alias + suffix, None), getattr(owner, op + suffix, None)
            if spelled is not None and named is not None and spelled is not named:
                pairs[spelled] = named
    for alias, op in _SPECIAL_ALIASES.items():
        spelled, named = getattr(torch.special, alias, None), getattr(torch, op, None)
        if spelled is not None and named is not None and spelled is not named:
            pairs[spelled] = named
    pairs[torch.linalg.matmul] = torch.matmul
    for name in dir(torch):  # ``torch.relu_(x)`` is ``x.relu_()``: the function form of an in-place method
        if name.endswith("_") and not name.startswith("_"):
            function, method = getattr(torch, name), getattr(torch.Tensor, name, None)
            if method is not None and callable(function) and function is not method:
                pairs.setdefault(function, pairs.get(method, method))
    return pairs


ALIASES: Mapping[Any, Any] = MappingProxyType(_aliases())
"""Each alias torch documents (``torch.greater``, ``Tensor.multiply_``, ``torch.special.expit``), and each function
form of an in-place method (``torch.relu_(x)``, ``x.relu_()``), to the op it names:
every table (formulas, shape rules, receptive-field rules) gives an alias what it gives the op, unless it
registers the alias itself."""


def _with_aliases(merged: dict[Any, Any]) -> dict[Any, Any]:
    """``merged`` with each alias of a target it holds mapped to that target's value (an alias it holds: kept)."""
    for alias, op in ALIASES.items():
        if alias not in merged and op in merged:
            merged[alias] = merged[op]
    return merged


def _merged(tables: Iterable[OpTable[Any]], pairs: Callable[[OpTable[Any]], Iterable[tuple[Any, Any]]]) -> dict:
    merged: dict[Any, Any] = {}
    for table in tables:
        for target, value in pairs(table):
            if target in merged:
                raise DuplicateFormulaError(f"{table.family}: {_describe(target)} already registered")
            merged[target] = value
    return _with_aliases(merged)


class OpLookup(Generic[V]):
    """Read-only lookup from op targets to entries, merged from :class:`OpTable`\\ s.

    With ``inherit`` (formulas, receptive-field rules) a module class is looked up along its MRO,
    so a subclass gets its base's entry unless it overrides ``forward``; without it (shape rules)
    only the exact class matches.
    """

    def __init__(
        self,
        entries: Mapping[Any, V],
        lazy: tuple[LazyTable[V], ...] = (),
        *,
        inherit: bool = True,
        saves: Mapping[Any, Saves] | None = None,
        pointwise: Iterable[Any] = (),
        workspaces: Mapping[Any, Workspace] | None = None,
        saved_extras: Mapping[Any, SavedExtra] | None = None,
        returns_input: Mapping[Any, ReturnsInput] | None = None,
    ) -> None:
        self._entries: Mapping[Any, V] = MappingProxyType(dict(entries))
        self._returns_input: Mapping[Any, ReturnsInput] = MappingProxyType(dict(returns_input or {}))
        self._saved_extras: Mapping[Any, SavedExtra] = MappingProxyType(dict(saved_extras or {}))
        self._workspaces: Mapping[Any, Workspace] = MappingProxyType(dict(workspaces or {}))
        self._saves: Mapping[Any, Saves] = MappingProxyType(dict(saves or {}))
        self._pointwise: tuple[Any, ...] = tuple(dict.fromkeys(pointwise))
        self._lazy = lazy
        self._pending = list(lazy)
        self._loaded: dict[Any, V] = {}
        self._loaded_saves: dict[Any, Saves] = {}
        self._loaded_workspaces: dict[Any, Workspace] = {}
        self._loaded_saved_extras: dict[Any, SavedExtra] = {}
        self._inherit = inherit

    @classmethod
    def from_tables(cls, *tables: OpTable[V], lazy: tuple[LazyTable[V], ...] = (), inherit: bool = True) -> Any:
        entries = _merged(tables, OpTable.items)
        saves = _merged(tables, OpTable.saves_items)
        return cls(
            entries,
            lazy,
            inherit=inherit,
            saves=saves,
            pointwise=_merged(tables, OpTable.pointwise_items),
            workspaces=_merged(tables, OpTable.workspace_items),
            saved_extras=_merged(tables, OpTable.saved_extra_items),
            returns_input=_merged(tables, OpTable.returns_input_items),
        )

    def __contains__(self, target: Any) -> bool:
        return self.lookup(target) is not None

    def __len__(self) -> int:
        return len(self._entries)

    def targets(self) -> tuple[Any, ...]:
        return tuple(self._entries)

    def _late(self, target: Any, loaded: Mapping[Any, Any]) -> Any:
        """``loaded[target]`` after loading the lazy tables whose library is imported by now."""
        if not self._pending:  # every lazy table loaded: most misses of a lookup (one per base of a module class)
            return loaded.get(target)
        for lazy in [lazy for lazy in self._pending if lazy.module in sys.modules]:
            self._pending.remove(lazy)
            table = lazy.load()
            for key, entry in table.items():
                self._loaded.setdefault(key, entry)
            for key, saves in table.saves_items():
                self._loaded_saves.setdefault(key, saves)
            for key, workspace in table.workspace_items():
                self._loaded_workspaces.setdefault(key, workspace)
            for key, extra in table.saved_extra_items():
                self._loaded_saved_extras.setdefault(key, extra)
        return loaded.get(target)

    def _get(self, target: Any, entries: Mapping[Any, Any], loaded: Mapping[Any, Any]) -> Any:
        if isinstance(target, type) and self._inherit:
            if not issubclass(target, nn.Module):
                return None
            for base in target.__mro__:
                entry = entries.get(base) or self._late(base, loaded)
                if entry is not None:
                    return entry if getattr(target, "forward", None) is getattr(base, "forward", None) else None
            return None
        try:
            entry = entries.get(target)
            return entry if entry is not None else self._late(target, loaded)
        except TypeError:  # unhashable target
            return None

    def lookup(self, target: Any) -> V | None:
        """The entry of a function, operator, tensor method or module class (see the class docstring)."""
        return self._get(target, self._entries, self._loaded)

    def pointwise_targets(self) -> tuple[Any, ...]:
        """The spellings declared pointwise (the eagerly merged tables')."""
        return self._pointwise

    def saves(self, target: Any) -> Saves | None:
        """What autograd saves for the op ``target`` as declared with its formula (None: undeclared)."""
        return self._get(target, self._saves, self._loaded_saves)

    def workspace(self, target: Any) -> Workspace | None:
        """The kernel's own buffer of the ATen op ``target`` that fake tensors do not see (None: none declared)."""
        return self._get(target, self._workspaces, self._loaded_workspaces)

    def saves_extra(self, target: Any) -> SavedExtra | None:
        """The bytes of what the op ``target``'s kernel makes and autograd keeps for its backward besides its
        family's tensors, as declared with its formula (None: nothing declared)."""
        return self._get(target, self._saved_extras, self._loaded_saved_extras)

    def returns_input(self, cls: type) -> ReturnsInput | None:
        """Of a module class, whether a call of a module returns its one argument itself (the predicate declared
        ``returns_input``, None: none; a class that overrides ``forward`` declares nothing): a trace makes no
        node of such a call."""
        return self._get(cls, self._returns_input, {})


class Registry(OpLookup[Formula]):
    """Read-only lookup from op targets to formulas."""

    def with_overrides(self, overrides: Mapping[Any, Formula]) -> Registry:
        """A new registry where ``overrides`` replace or add formulas (this one is unchanged); an op's override is
        its aliases' too (:data:`ALIASES`), unless they have their own."""
        overridden = {
            alias: overrides[op] for alias, op in ALIASES.items() if op in overrides and alias not in overrides
        }
        return Registry(
            {**self._entries, **overridden, **overrides},
            self._lazy,
            saves=self._saves,
            pointwise=self._pointwise,
            workspaces=self._workspaces,
            saved_extras=self._saved_extras,
            returns_input={target: fact for target, fact in self._returns_input.items() if target not in overrides},
        )
