"""A counting reference: naive ops that count what they do while they compute.

Each op is written as plain Python loops over tiny tensors, the way a textbook writes it, and
returns a :class:`~tests.reference.counting.Counted`: its output (float64, compared with torch's
output on the same inputs by every test that uses it: the reference *is* the op) and a
:class:`~tests.reference.counting.Tally` of what computing it took.

How the counting works (``counting.py``): an **instrumented scalar**. Element values are
:class:`~tests.reference.counting.Num` objects whose ``+ − · /``, negation and comparisons add one
to ``Tally.ops[kind]`` (``add``, ``sub``, ``mul``, ``div``, ``neg``, ``cmp``); ``exp``, ``log``,
``sqrt``, ``erf`` and ``power`` are one transcendental each; ``tanh`` and ``sigmoid`` are spelled
by their definitions (6 and 4 operations). :func:`~tests.reference.counting.mac` is one multiply-accumulate
(``Tally.macs``): dot products and lerps use it, nothing else does. Tensors are read through
:class:`~tests.reference.counting.Source` (every element read is counted per tensor, with the set
of distinct elements read and, apart, the window taps that fell in the padding) and written
through :class:`~tests.reference.counting.Sink` (every write counted, an element written twice is
an error). ``Tally.flops`` is the sum of all operations (a transcendental is one FLOP);
``Tally.dmas(per_read=…, once=…)`` adds the reads of the tensors named in ``per_read`` (every
read) and ``once`` (distinct elements) to the writes. A composite op (MultiheadAttention) adds its
parts' tallies with ``Tally.of``, naming each part's tensors ``part.tensor``.

Not counted, anywhere: arithmetic on indices, coordinates, window bounds and shape-derived
constants (``1/√E``, interpolation weights, a divisor computed from window extents) — plain Python
ints and floats — and integer bookkeeping (BatchNorm's batch counter).

The families: ``conv`` (ConvNd, ConvTransposeNd), ``linear`` (Linear, matmul/bmm), ``pool``
(max/avg with dilation, padding, ``ceil_mode``; adaptive), ``norm`` (batch with the running
update, layer, group, instance, RMS, local response), ``activation`` (ReLU… GELU both forms,
softmax, log-softmax), ``elementwise`` (broadcast ``+ − · /``, scalars), ``attention`` (SDPA:
mask, causal, GQA; MultiheadAttention as its parts) and ``upsample`` (nearest, d-linear, bicubic).
The property tests in ``tests/ops/`` compare torchscan's formulas with these counts under the
conventions of ``torchscan/ops/__init__.py``; each departure of a convention from the literal count
is stated and checked exactly there.
"""

from tests.reference.counting import Counted, Num, Sink, Source, Tally

__all__ = ["Counted", "Num", "Sink", "Source", "Tally"]
