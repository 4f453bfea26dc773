"""An analysis called from a function ``torch.compile`` compiles runs eagerly, as outside it."""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torchvision
from torch import nn

from tests.test_api import _CountedAttention  # attention: its memory section records a call on fake tensors
from torchscan import compare, crawl_module, summary, sweep
from torchscan.uncompiled import never_compiled


def _compiled(function: Any) -> Any:
    """``function`` compiled by ``torch.compile`` (dynamo, run eagerly: no code generated)."""
    torch._dynamo.reset()
    return torch.compile(function, backend="eager")


def test_an_analysis_inside_a_compiled_function_equals_one_outside() -> None:
    """``crawl_module``, ``sweep``, ``summary`` and ``compare`` called in a compiled function (a frozen record's
    ``__init__`` failed inside dynamo before), the memory section read there too: what they give outside."""
    model = _CountedAttention().train()
    resnet = torchvision.models.resnet18(num_classes=10).eval()

    def analyse(x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        report = crawl_module(model, (5, 16), batch_size=2)
        swept = sweep(resnet, [(3, 32, 32), (3, 48, 48)])
        table = summary(resnet, (3, 32, 32), max_depth=1)
        return x + 1, (report.to_dict(), report.memory, [item.to_dict() for item in swept], table, compare(*swept))

    _, inside = _compiled(analyse)(torch.zeros(1))
    report = crawl_module(model, (5, 16), batch_size=2)
    swept = sweep(resnet, [(3, 32, 32), (3, 48, 48)])
    outside = (report.to_dict(), report.memory, [item.to_dict() for item in swept])
    assert inside[:3] == outside
    assert inside[3] == summary(resnet, (3, 32, 32), max_depth=1)
    assert inside[4] == compare(*swept)


def test_a_deferred_part_read_inside_a_compiled_function_equals_one_read_outside() -> None:
    """A report made outside, its rows and memory section first read in a compiled function."""
    model = _CountedAttention().train()
    report, fresh = crawl_module(model, (5, 16)), crawl_module(model, (5, 16))

    def read(x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return x + 1, (report.memory, report.rows)

    _, (memory, rows) = _compiled(read)(torch.zeros(1))
    assert (memory, rows) == (fresh.memory, fresh.rows)


def test_an_entry_point_keeps_its_signature_and_docstring() -> None:
    def entry(model: nn.Module, *, depth: int = 1) -> int:
        """An entry point."""
        return depth

    wrapped = never_compiled(entry)
    assert inspect.signature(wrapped) == inspect.signature(entry) and wrapped.__doc__ == entry.__doc__
    assert wrapped(nn.Identity(), depth=3) == 3
    assert inspect.signature(crawl_module).parameters["input_shape"].default is None


def test_a_process_without_dynamo_imports_it_inside_the_analysis_with_the_collector_paused() -> None:
    """Nothing compiles before ``torch._dynamo`` is imported: the entry point calls the analysis as it is, and the
    fake mode imports dynamo inside it, with the collector paused (it was imported before the pause, 0.2 s more)."""
    import subprocess
    import sys

    script = (
        "import builtins, gc, sys\n"
        "import torch\n"
        "from torch import nn\n"
        "assert 'torch._dynamo' not in sys.modules\n"
        "seen, original = [], builtins.__import__\n"
        "def spy(name, *args, **kwargs):\n"
        "    if name.startswith('torch._dynamo') and 'torch._dynamo' not in sys.modules:\n"
        "        seen.append(gc.isenabled())\n"
        "    return original(name, *args, **kwargs)\n"
        "builtins.__import__ = spy\n"
        "import torchscan\n"
        "report = torchscan.crawl_module(nn.Linear(3, 3), (3,))\n"
        "print(seen[:1], report.totals.macs, gc.isenabled())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.split() == ["[False]", "9", "True"]
