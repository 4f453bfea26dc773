"""Traced code sees fx-wrapped and math functions through private copies of globals, as fx would."""

from __future__ import annotations

import math
import types

import torch

from torchscan import crawl_module
from torchscan.graph.trace import capture
from torchscan.inputs import model_inputs
from torchscan.ops import DEFAULT_REGISTRY
from torchscan.records import Cost

HELPERS = """
import math
import types
import torch.nn.functional as F


def pad_same(x, k):
    pad = (math.ceil(x.size(-1) / 2) - 1) * 2 + k - x.size(-1)  # math on a traced size
    return F.pad(x, (pad // 2, pad - pad // 2))
"""

MODEL = """
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3, stride=2)

    def forward(self, x):
        return self.conv(pad_same(x, 3))
"""


def test_math_in_a_helper_of_another_module_is_recorded_as_fx_would() -> None:
    helpers = types.ModuleType("torchscan_test_helpers")
    exec(compile(HELPERS, "helpers.py", "exec"), vars(helpers))
    models = types.ModuleType("torchscan_test_models")
    models.pad_same = helpers.pad_same  # type: ignore[attr-defined]  # `from helpers import pad_same`
    exec(compile(MODEL, "models.py", "exec"), vars(models))
    report = crawl_module(models.Net(), (3, 17))
    assert report.context.capture == "torch.fx" and not report.diagnostics
    assert report.context.output_shapes == ((1, 4, 9),)
    assert helpers.math is math and vars(helpers)["pad_same"] is helpers.pad_same  # their globals untouched


WRAPPED = """
import torch
import torch.fx
from torch import nn
from torch.nn.functional import rms_norm  # a torch function imported by name, as timm does


def bias_of(table):
    return table.t().contiguous().unsqueeze(0)


torch.fx.wrap("bias_of")  # the model's author keeps it one node under fx


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(8, 4))
        self.fc = nn.Linear(8, 8)

    def bias(self):  # a method, not forward, reaches the wrapped function
        return bias_of(self.table)

    def forward(self, x):
        return rms_norm(self.fc(x), (8,)) + self.bias()
"""


def test_wrapped_functions_reached_from_methods_and_imported_torch_functions_keep_their_identity() -> None:
    """A wrapped function the registry has a formula for (here a user's) is one node, as ``fx.wrap`` asks;
    one it has none for is traced through, its ops counted one by one (``t``, ``contiguous``,
    ``unsqueeze``), never an unknown node."""
    module = types.ModuleType("torchscan_test_wrapped")
    exec(compile(WRAPPED, "wrapped.py", "exec"), vars(module))
    model = module.Net()
    report = crawl_module(model, (4, 8))
    assert report.totals.complete and not report.diagnostics
    assert {"t", "contiguous", "unsqueeze"} <= {row.type for row in report.rows}
    formula = {module.bias_of: lambda call: Cost(dmas=call.output.numel)}
    registry = DEFAULT_REGISTRY.with_overrides(formula)
    targets = [node.target for node in capture(model, registry, model_inputs((4, 8))).graph.nodes]
    assert module.bias_of in targets  # one node, as fx.wrap asks
    assert torch.nn.functional.rms_norm in targets  # the registry's own object, not a copy
    leaf = crawl_module(model, (4, 8), formulas=formula)
    assert (
        leaf.totals.dmas == report.totals.dmas - 2 * 32 + 32
    )  # its ops' copy (read and write) for its formula's write
    assert "bias" not in vars(model) and module.rms_norm is torch.nn.functional.rms_norm
