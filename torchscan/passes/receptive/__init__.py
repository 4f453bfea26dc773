"""Receptive field of every node with respect to the model input, per spatial dim.

A dynamic programme over the graph in topological order (the shape of networkx's
``dag_longest_path``): each node combines the fields of its predecessors (read under the ``RECORD``
key) through the rule of its op (:mod:`.windows`, :mod:`.layout`). Merges take, per output unit, the
hull of the paths' fields (Distill, "Computing Receptive Fields of Convolutional Neural Networks",
2019: multi-path networks need the left-most and right-most bounds over paths, and the paths must
share one effective stride). ``GLOBAL`` (the field is the whole input) absorbs everything;
``UNKNOWN`` (an op whose geometry cannot be followed, with a diagnostic) stops the field for every
descendant — never a guess.

The source is the first model input of rank ``≥ 3``, read as ``(N, C, *spatial)``; other inputs
count as constants. Definitions per spatial dim
(:class:`~torchscan.passes.receptive.geometry.RField`): ``size`` = input units seen by one output
unit, ``jump`` = effective stride, ``start`` = first input unit seen by output unit 0 (``effective
padding = −start``).

One job per module:

- :mod:`.geometry` — spans, bounds and fields per spatial dim (:class:`RField`, :class:`Marker`);
- :mod:`.table` — the rule signature, :class:`RuleTable` (one family, keyed by op objects: the same
  spellings as :mod:`torchscan.ops`) and the helpers rules share;
- :mod:`.windows`, :mod:`.layout` — the rules by family; :mod:`.rules` merges them (``DEFAULT_RULES``);
- :mod:`.propagate` — the dynamic programme over the graph (:func:`receptive_fields`);
- :mod:`.rows` — the report's columns (:func:`with_receptive_fields`, :func:`row_values`).
"""

from torchscan.passes.receptive.geometry import Field, Marker, RField
from torchscan.passes.receptive.propagate import ReceptiveFields, receptive_fields
from torchscan.passes.receptive.rows import row_values, with_receptive_fields
from torchscan.passes.receptive.rules import DEFAULT_RULES
from torchscan.passes.receptive.table import RuleLookup, RuleTable

__all__ = [
    "DEFAULT_RULES",
    "Field",
    "Marker",
    "RField",
    "ReceptiveFields",
    "RuleLookup",
    "RuleTable",
    "receptive_fields",
    "row_values",
    "with_receptive_fields",
]
