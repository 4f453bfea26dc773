"""The counting machinery: a tally, an instrumented scalar and instrumented tensors.

Everything the reference ops compute on element values goes through :class:`Num`, whose operators
count themselves in a :class:`Tally`; every element read goes through :class:`Source` and every
element written through :class:`Sink`, which count themselves too. Index, coordinate and
shape-derived arithmetic (window bounds, interpolation weights, ``1/√E``) is plain Python and is
not counted: it does not touch element values.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import product

import torch

__all__ = [
    "Counted",
    "Num",
    "Sink",
    "Source",
    "Tally",
    "dot",
    "erf",
    "exp",
    "indices",
    "lerp",
    "log",
    "log1p",
    "mac",
    "maximum",
    "minimum",
    "power",
    "sigmoid",
    "sqrt",
    "tanh",
    "total",
]

Index = tuple[int, ...]


@dataclass
class Tally:
    """What one reference call did: elementary operations by kind, fused multiply-adds, and the
    element reads (all of them, the distinct elements, taps that fell in the padding) and writes
    per named tensor. One tally per call: nothing is shared between calls."""

    ops: Counter[str] = field(default_factory=Counter)
    macs: int = 0
    reads: Counter[str] = field(default_factory=Counter)
    padding: Counter[str] = field(default_factory=Counter)
    touched: dict[str, set[Index]] = field(default_factory=dict)
    writes: Counter[str] = field(default_factory=Counter)

    @property
    def flops(self) -> int:
        """Every elementary operation is one FLOP, a transcendental (exp, log, sqrt, erf, pow) too."""
        return sum(self.ops.values())

    def distinct(self, name: str) -> int:
        """Distinct elements of ``name`` read at least once."""
        return len(self.touched.get(name, ()))

    def taps(self, name: str) -> int:
        """Every read of ``name``, the window taps that fell in the padding included."""
        return self.reads[name] + self.padding[name]

    @classmethod
    def of(cls, **parts: Tally) -> Tally:
        """The tally of a composite op: its parts' counts added, their tensors named ``part.name``."""
        whole = cls()
        for prefix, part in parts.items():
            whole.ops.update(part.ops)
            whole.macs += part.macs
            for mine, theirs in ((whole.reads, part.reads), (whole.padding, part.padding), (whole.writes, part.writes)):
                mine.update({f"{prefix}.{name}": count for name, count in theirs.items()})
            whole.touched.update({f"{prefix}.{name}": elements for name, elements in part.touched.items()})
        return whole

    @property
    def sources(self) -> tuple[str, ...]:
        """The names of every tensor read."""
        return tuple(self.touched)

    def dmas(self, *, per_read: Iterable[str] = (), once: Iterable[str] = ()) -> int:
        """Element reads + writes: the tensors of ``per_read`` as many times as they were read
        (padding taps included), those of ``once`` once per distinct element, every write once."""
        return (
            sum(self.taps(name) for name in per_read) + sum(self.distinct(name) for name in once) + self.writes.total()
        )


def _value(x: Num | float) -> float:
    return x.value if isinstance(x, Num) else float(x)


class Num:
    """A float whose arithmetic counts itself: ``+ − · / neg`` and comparisons are one operation
    each, on the tally of the operand(s). Plain floats mixed in are constants (``0.5·x`` is one
    multiply), never counted by themselves."""

    __slots__ = ("tally", "value")

    def __init__(self, value: float, tally: Tally) -> None:
        self.value = float(value)
        self.tally = tally

    def _count(self, kind: str, value: float) -> Num:
        self.tally.ops[kind] += 1
        return Num(value, self.tally)

    def __add__(self, other: Num | float) -> Num:
        return self._count("add", self.value + _value(other))

    __radd__ = __add__

    def __sub__(self, other: Num | float) -> Num:
        return self._count("sub", self.value - _value(other))

    def __rsub__(self, other: float) -> Num:
        return self._count("sub", _value(other) - self.value)

    def __mul__(self, other: Num | float) -> Num:
        return self._count("mul", self.value * _value(other))

    __rmul__ = __mul__

    def __truediv__(self, other: Num | float) -> Num:
        return self._count("div", self.value / _value(other))

    def __rtruediv__(self, other: float) -> Num:
        return self._count("div", _value(other) / self.value)

    def __neg__(self) -> Num:
        return self._count("neg", -self.value)

    def __gt__(self, other: Num | float) -> bool:
        self.tally.ops["cmp"] += 1
        return self.value > _value(other)

    def __lt__(self, other: Num | float) -> bool:
        self.tally.ops["cmp"] += 1
        return self.value < _value(other)

    def __repr__(self) -> str:
        return f"Num({self.value})"


def _transcendental(kind: str, x: Num, value: float) -> Num:
    x.tally.ops[kind] += 1
    return Num(value, x.tally)


def exp(x: Num) -> Num:
    return _transcendental("exp", x, math.exp(x.value))


def log(x: Num) -> Num:
    return _transcendental("log", x, math.log(x.value))


def log1p(x: Num) -> Num:
    """``log(1 + x)`` in one instruction (``torch.log1p``): one transcendental."""
    return _transcendental("log1p", x, math.log1p(x.value))


def sqrt(x: Num) -> Num:
    return _transcendental("sqrt", x, math.sqrt(x.value))


def erf(x: Num) -> Num:
    return _transcendental("erf", x, math.erf(x.value))


def power(x: Num, exponent: float) -> Num:
    """``x^p`` for a constant ``p``: one transcendental (``exp(p·log x)`` in one instruction)."""
    return _transcendental("pow", x, x.value**exponent)


def tanh(x: Num) -> Num:
    """By its definition ``(eˣ − e⁻ˣ)/(eˣ + e⁻ˣ)``: neg, 2 exp, sub, add, div = 6 operations."""
    up, down = exp(x), exp(-x)
    return (up - down) / (up + down)


def sigmoid(x: Num) -> Num:
    """``1/(1 + e⁻ˣ)``: neg, exp, add, div = 4 operations."""
    return 1.0 / (1.0 + exp(-x))


def absolute(x: Num) -> Num:
    """``|x|``: one operation (the sign bit cleared), as ``torch.abs`` counts."""
    return _transcendental("abs", x, abs(x.value))


def maximum(a: Num, b: Num | float) -> Num:
    """One comparison."""
    return a if a > b else (b if isinstance(b, Num) else Num(b, a.tally))


def minimum(a: Num, b: Num | float) -> Num:
    """One comparison."""
    return a if a < b else (b if isinstance(b, Num) else Num(b, a.tally))


def mac(acc: Num | None, a: Num, b: Num | float) -> Num:
    """One multiply-accumulate ``acc + a·b`` (one MAC; a multiply, and an add unless ``acc`` is
    None: the first product of a sum starts it)."""
    a.tally.macs += 1
    product = a * b
    return product if acc is None else acc + product


def dot(pairs: Iterable[tuple[Num, Num | float]]) -> Num:
    """``Σ aᵢ·bᵢ`` over ``k`` pairs: ``k`` MACs, ``k`` multiplies, ``k − 1`` adds."""
    acc: Num | None = None
    for a, b in pairs:
        acc = mac(acc, a, b)
    if acc is None:
        raise ValueError("an empty dot product")
    return acc


def total(values: Iterable[Num]) -> Num:
    """``Σ v`` of ``k`` values left to right: ``k − 1`` adds."""
    values = list(values)
    result = values[0]
    for value in values[1:]:
        result = result + value
    return result


def lerp(a: Num, b: Num, weight: float) -> Num:
    """``a + w·(b − a)``: a subtract and one MAC (a multiply and an add)."""
    return mac(a, b - a, weight)


def indices(shape: Sequence[int]) -> Iterator[Index]:
    """Every index of ``shape`` in row-major order."""
    return product(*(range(size) for size in shape))


class Source:
    """A tensor the reference reads, element by element: each read is counted under ``name``."""

    def __init__(self, name: str, tensor: torch.Tensor, tally: Tally) -> None:
        self.name = name
        self.shape: Index = tuple(tensor.shape)
        self.values: list[float] = tensor.detach().to(torch.float64).flatten().tolist()
        self.strides: Index = tuple(math.prod(self.shape[d + 1 :]) for d in range(len(self.shape)))
        self.tally = tally
        tally.touched.setdefault(name, set())

    def __getitem__(self, index: Index) -> Num:
        self.tally.reads[self.name] += 1
        self.tally.touched[self.name].add(index)
        return Num(self.values[sum(i * s for i, s in zip(index, self.strides, strict=True))], self.tally)

    def padded(self, index: Index, fill: float = 0.0) -> Num:
        """The element at ``index``, or ``fill`` where ``index`` lies outside the tensor: a window
        tap in the padding, counted under ``padding`` (the kernel reads a padded input)."""
        if all(0 <= i < size for i, size in zip(index, self.shape, strict=True)):
            return self[index]
        self.tally.padding[self.name] += 1
        return Num(fill, self.tally)

    @property
    def numel(self) -> int:
        return len(self.values)


class Sink:
    """The output the reference writes, element by element: each write is counted."""

    def __init__(self, name: str, shape: Sequence[int], tally: Tally) -> None:
        self.name = name
        self.shape: Index = tuple(shape)
        self.values: dict[Index, float] = {}
        self.tally = tally

    def __setitem__(self, index: Index, value: Num) -> None:
        if index in self.values:
            raise AssertionError(f"{self.name}{index} written twice")
        self.tally.writes[self.name] += 1
        self.values[index] = value.value

    def tensor(self) -> torch.Tensor:
        """The written values as a float64 tensor (every element must have been written)."""
        missing = [index for index in indices(self.shape) if index not in self.values]
        if missing:
            raise AssertionError(f"{self.name}: {len(missing)} elements never written, e.g. {missing[0]}")
        flat = [self.values[index] for index in indices(self.shape)]
        return torch.tensor(flat, dtype=torch.float64).reshape(self.shape)


@dataclass(frozen=True)
class Counted:
    """A reference op's result: its output (float64) and what computing it took."""

    output: torch.Tensor
    tally: Tally
