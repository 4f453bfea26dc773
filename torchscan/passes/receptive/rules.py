"""The receptive-field rule table: every family's rules merged, keyed by op objects."""

from __future__ import annotations

from torchscan.passes.receptive import layout, windows
from torchscan.passes.receptive.table import RuleLookup

__all__ = ["DEFAULT_RULES"]

DEFAULT_RULES: RuleLookup = RuleLookup.from_tables(windows.TABLE, layout.TABLE)
"""Windows (conv, pools, interpolation, pixel shuffle, unfold) and layout (pointwise, views,
concatenation, reductions, normalisation, products, attention)."""
