"""Shape rules: output shapes of the most common ops, from their inputs' shapes, without a torch dispatch.

The fast path of the shape pass. FakeTensor dispatch costs 0.3-0.9 ms per op on CPU (more
than the op itself on a small input); these rules answer the common ops (convolutions, norms,
activations, pools, linear, elementwise arithmetic, concatenation) in a few microseconds.

A rule sees the call as the interpreter makes it (the module object for a ``call_module`` node,
else the function, a tensor method for ``call_method``; fake tensors as arguments) and answers:

- :class:`Fresh`: the op returns a new contiguous tensor of that shape, dtype and device (the shape
  pass passes it on as a :class:`Pending` tensor, made into a fake tensor only where an op must be
  dispatched: the next rules read a ``Pending`` argument as they read a contiguous fake);
- a tensor of its arguments: the op returns that very tensor (in place, identity, eval dropout);
- views (``view``, ``reshape``, ``permute``, ``transpose``, slicing, ``chunk``…): the fake tensor(s)
  made by the op's own C++ meta kernel on the argument's meta data (no FakeTensor dispatch), so
  sizes, strides and storage sharing are torch's own — a copying ``reshape``/``contiguous`` gets
  a new storage, a view its base's;
- a new fake tensor laid out as torch lays it out: a pointwise op (arithmetic, an activation) of
  operands in another dense layout (permuted, channels-last), none requiring grad, its layout learned once per pattern
  (:func:`~torchscan.graph.rules.common.strided_pointwise`), a convolution of a strided input;
- ``None``: anything unusual (gapped layouts, mixed dtypes or devices, an extra argument, a
  shape torch would reject): the interpreter dispatches the op on fake tensors as before, so
  torch's own checks and error messages stand.

One file per op family (``conv``, ``pool``, ``norm``, ``activation``, ``elementwise``, ``linear``,
``attention``, ``shape``, ``upsample``, ``spectral``; ``torchvision`` loaded once torchvision is imported), each a
:class:`~torchscan.graph.rules.table.RuleTable` keyed by every spelling, merged here into one
read-only :class:`~torchscan.graph.rules.table.ShapeRules` (a target registered twice is refused),
the pattern of the op registry (:mod:`torchscan.ops`).

Every rule is checked against FakeTensor dispatch (``tests/graph/rules/``): same shape,
dtype, device, contiguity and the same aliasing, on random configurations and on whole models.
"""

from __future__ import annotations

from torchscan.graph.rules import (
    activation,
    attention,
    conv,
    elementwise,
    linear,
    norm,
    pool,
    shape,
    spectral,
    upsample,
)
from torchscan.graph.rules.table import (
    Answer,
    Fresh,
    Pending,
    Rule,
    RuleTable,
    ShapeRules,
    answer,
    is_tensor,
    materialize,
)
from torchscan.ops.registry import LazyTable

__all__ = [
    "NO_RULES",
    "RULES",
    "Answer",
    "Fresh",
    "Pending",
    "Rule",
    "RuleTable",
    "ShapeRules",
    "answer",
    "is_tensor",
    "materialize",
]


def _load_torchvision() -> RuleTable:
    from torchscan.graph.rules import torchvision

    return torchvision.TABLE


RULES = ShapeRules.from_tables(
    conv.TABLE,
    pool.TABLE,
    norm.TABLE,
    activation.TABLE,
    elementwise.TABLE,
    linear.TABLE,
    attention.TABLE,
    shape.TABLE,
    upsample.TABLE,
    spectral.TABLE,
    lazy=(LazyTable("torchvision.models.swin_transformer", _load_torchvision),),
    inherit=False,
)
"""The default rules (read-only)."""

NO_RULES = ShapeRules({}, inherit=False)
"""No fast path: every op is dispatched on fake tensors (the reference the rules are tested against)."""
