"""torchscan: a static analyzer for PyTorch models.

Give it a model and an input shape; it reports, per layer and in total, output shapes,
parameters, FLOPs, MACs and memory accesses (DMAs) — computed on a torch.fx graph with fake
tensors, so the model is never run and never changed.
"""

from torchscan.api import crawl_module, summary, sweep
from torchscan.comparison import compare
from torchscan.errors import CaptureError, InputError, ShapeError, TorchscanError
from torchscan.records import Cost, OpCall, TensorSpec
from torchscan.report import Context, Diagnostic, Report, Row, Totals
from torchscan.symbolic import Dim, Fit, SymbolicReport
from torchscan.version import __version__ as __version__

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
