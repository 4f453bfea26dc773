"""torchscan: a static analyzer for PyTorch models.

Give it a model and an input shape; it reports, per layer and in total, output shapes,
parameters, FLOPs, MACs and memory accesses (DMAs) — computed on a torch.fx graph with fake
tensors, so the model is never run and never changed.

The names below are imported from their modules on first use (:mod:`torchscan.lazy`): ``import
torchscan`` alone imports neither torch nor the analysis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torchscan.lazy import exports
from torchscan.version import __version__ as __version__

if TYPE_CHECKING:
    from torchscan.api import crawl_module, summary, sweep
    from torchscan.comparison import compare
    from torchscan.errors import CaptureError, InputError, ShapeError, TorchscanError
    from torchscan.records import Cost, OpCall, TensorSpec
    from torchscan.report import Context, Diagnostic, Report, Row, Totals
    from torchscan.symbolic import Dim, Fit, SymbolicReport

_HOMES = {
    "CaptureError": "torchscan.errors",
    "Context": "torchscan.report",
    "Cost": "torchscan.records",
    "Diagnostic": "torchscan.report",
    "Dim": "torchscan.symbolic",
    "Fit": "torchscan.symbolic",
    "InputError": "torchscan.errors",
    "OpCall": "torchscan.records",
    "Report": "torchscan.report",
    "Row": "torchscan.report",
    "ShapeError": "torchscan.errors",
    "SymbolicReport": "torchscan.symbolic",
    "TensorSpec": "torchscan.records",
    "TorchscanError": "torchscan.errors",
    "Totals": "torchscan.report",
    "compare": "torchscan.comparison",
    "crawl_module": "torchscan.api",
    "summary": "torchscan.api",
    "sweep": "torchscan.api",
}
"""The module each public name is defined in."""

__all__ = [
    "CaptureError",
    "Context",
    "Cost",
    "Diagnostic",
    "Dim",
    "Fit",
    "InputError",
    "OpCall",
    "Report",
    "Row",
    "ShapeError",
    "SymbolicReport",
    "TensorSpec",
    "TorchscanError",
    "Totals",
    "compare",
    "crawl_module",
    "summary",
    "sweep",
]


__getattr__, __dir__ = exports(__name__, _HOMES)
