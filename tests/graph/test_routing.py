"""Calls on the copy run through each module's own call slot: no hook of the user's runs, not even torch's global
ones; hooks the model's own code registers on the copy as it runs do."""

from __future__ import annotations

import contextvars
import copy
import subprocess
import sys
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from tests.graph.test_capture import ValueBranch
from torchscan import crawl_module, sweep


@pytest.mark.parametrize("model", [nn.Sequential(nn.Linear(4, 4), nn.ReLU()), ValueBranch()], ids=["fx", "real"])
def test_global_module_hooks_never_see_analysis_calls(model: nn.Module) -> None:
    calls: list[str] = []
    handles = [
        nn.modules.module.register_module_forward_pre_hook(lambda module, args: calls.append("pre")),
        nn.modules.module.register_module_forward_hook(lambda module, args, output: calls.append("post")),
    ]
    try:
        report = crawl_module(model, (4,))
    finally:
        for handle in handles:
            handle.remove()
    assert calls == []
    (ignored,) = [d for d in report.diagnostics if d.code == "hooks-ignored"]
    assert "global forward pre-hook" in ignored.message and "global forward hook" in ignored.message


DDP = """
import sys, tempfile
import torch.distributed as dist
from torch import nn
from torchscan import crawl_module, sweep

dist.init_process_group("gloo", init_method=f"file://{tempfile.mktemp()}", rank=0, world_size=1)
try:
    inner = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(288, 4)).eval()
    wrapped, plain = crawl_module(nn.parallel.DistributedDataParallel(inner), (3, 8, 8)), crawl_module(inner, (3, 8, 8))
    assert (wrapped.totals.params, wrapped.totals.macs) == (plain.totals.params, plain.totals.macs), wrapped.totals
    assert [d.code for d in wrapped.diagnostics] == ["wrapper-unwrapped"], wrapped.diagnostics
finally:
    dist.destroy_process_group()
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_distributed_data_parallel_is_seen_through() -> None:
    # in a process of its own: a process group is process-wide state
    done = subprocess.run([sys.executable, "-c", DDP], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


_COLLECTED: contextvars.ContextVar[list[torch.Tensor] | None] = contextvars.ContextVar("collected", default=None)
"""What the hooks of :class:`Collecting` append to while its forward runs (Hugging Face's output capture)."""


def _collect(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
    found = _COLLECTED.get()
    if found is not None:
        found.append(output)


class _Layer(nn.Module):
    def __init__(self, table: dict[int, int] | None = None) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.table = table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.table is not None:  # a proxy is no key: fx cannot trace it, a recorded forward reads the size
            x = x * self.table[x.shape[-1]]
        return torch.relu(self.lin(x)) + x


LAYERS = 24
"""Identical layers of :class:`Collecting`: replays skip 46 of its 50 modules, enough for block reuse
(:data:`~torchscan.graph.reuse.MIN_SHARE`)."""


class Collecting(nn.Module):
    """Registers forward hooks on its layers (and, with ``leaves``, on their linear layers) at its first call,
    and returns what they collected while its forward ran — as ``transformers`` collects ``hidden_states``."""

    def __init__(self, leaves: bool = False, untraceable: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_Layer({8: 2} if untraceable else None) for _ in range(LAYERS))
        self.leaves = leaves
        self.installed = False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        if not self.installed:
            for layer in self.layers:
                layer.register_forward_hook(_collect)
                if self.leaves:
                    layer.lin.register_forward_hook(_collect)
            self.installed = True
        collected: list[torch.Tensor] = []
        token = _COLLECTED.set(collected)
        try:
            for layer in self.layers:
                x = layer(x)
        finally:
            _COLLECTED.reset(token)
        return x, tuple(collected)


@pytest.mark.parametrize(("leaves", "untraceable"), [(False, False), (True, False), (True, True)])
def test_hooks_the_model_registers_as_it_runs_are_run(leaves: bool, untraceable: bool) -> None:
    """The copy starts with none of the user's hooks: the ones it holds were registered by the model's own code as
    the analysis ran it, and are part of its forward. The identical layers are one block, replayed;
    with hooks on their inner linears too, the replays would run none of them: traced again, every block traced.
    A forward fx cannot trace is recorded on fake tensors, hooks run as well. The user's model gets no hook."""
    model = Collecting(leaves, untraceable)
    report = crawl_module(model, (8,), batch_size=2)
    expected = copy.deepcopy(model)(torch.randn(2, 8))
    assert report.context.output_shapes == tuple(tuple(t.shape) for t in tree_leaves(expected))
    assert len(report.context.output_shapes) == 1 + LAYERS * (1 + leaves)
    assert report.context.capture == ("eager-record" if untraceable else "torch.fx")
    assert report.totals.macs == LAYERS * 2 * 8 * 8
    assert not model.installed and not any(module._forward_hooks for module in model.modules())


def test_a_sweep_of_a_model_running_its_own_hooks_equals_fresh_analyses() -> None:
    model = Collecting(leaves=True)
    swept = sweep(model, [{"input_shape": (8,), "batch_size": batch} for batch in (1, 3)])
    assert [item.to_dict() for item in swept] == [
        crawl_module(model, (8,), batch_size=batch).to_dict() for batch in (1, 3)
    ]
    assert not any(module._forward_hooks for module in model.modules())


def test_hooks_of_the_user_are_still_not_run() -> None:
    """Not in a trace, nor in a recording, nor in the last-resort real forward (a forward branching on values)."""
    model = Collecting()
    calls: list[str] = []
    model.layers[0].register_forward_hook(lambda module, args, output: calls.append("user"))
    report = crawl_module(model, (8,), batch_size=2)
    assert calls == [] and len(report.context.output_shapes) == 1 + LAYERS
    (ignored,) = [d for d in report.diagnostics if d.code == "hooks-ignored"]
    assert "layers.0" in ignored.message
    for model in (Collecting(untraceable=True), ValueBranch()):
        first = model.layers[0] if isinstance(model, Collecting) else model.fc
        first.register_forward_hook(lambda module, args, output: calls.append("user"))
        report = crawl_module(model, (8,) if isinstance(model, Collecting) else (4,), batch_size=2)
        assert calls == [] and report.context.capture in ("eager-record", "real-forward")


class _Router(nn.Module):
    """Casts its classifier to ``dtype`` inside its forward, as Hugging Face's NLLB-MoE and SwitchTransformers
    routers do (``self.classifier = self.classifier.to(self.dtype)``)."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.classifier = nn.Linear(8, 4)
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.classifier = self.classifier.to(self.dtype)
        return self.classifier(x.to(self.dtype)).float()


class _Routed(nn.Module):
    def __init__(self, dtype: torch.dtype, layers: int = 1) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.ReLU()) for _ in range(layers))
        self.router = _Router(dtype)
        self.norm = nn.LayerNorm(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        self.norm.float()  # a cast of the dtype it has: nothing to do
        return self.router(self.norm(x))


class _RoutedByHand(_Routed):
    """:class:`_Routed` with its router's casts written as tensor ops: what the casting forward computes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        classifier, dtype = self.router.classifier, self.router.dtype
        cast = nn.functional.linear(self.norm(x).to(dtype), classifier.weight.to(dtype), classifier.bias.to(dtype))
        return cast.float()


def _snapshot(model: nn.Module) -> list[tuple[str, int, torch.dtype, torch.Tensor, tuple[str, ...]]]:
    return [(name, id(t), t.dtype, t.detach().clone(), ()) for name, t in model.state_dict(keep_vars=True).items()] + [
        (name, id(module), torch.float32, torch.empty(0), tuple(vars(module))) for name, module in model.named_modules()
    ]


def _same(before: list[Any], after: list[Any]) -> bool:
    return len(before) == len(after) and all(
        a[:3] == b[:3] and torch.equal(a[3], b[3]) and a[4] == b[4] for a, b in zip(before, after, strict=True)
    )


def test_a_forward_casting_its_own_module_to_the_dtype_it_has_is_traced() -> None:
    """``Module._apply`` swaps a fake parameter in place, and a fake refuses the swap: such a forward fell back to a
    real forward. The copy's modules run their own ``_apply``: a cast that changes nothing leaves the fake."""
    model = _Routed(torch.float32, layers=3).eval()
    before = _snapshot(model)
    report = crawl_module(model, (8,), batch_size=2, real_forward=False)
    assert report.context.capture == "torch.fx"
    assert not [d for d in report.diagnostics if d.code in ("capture-fallback", "real-forward")]
    plain = crawl_module(_RoutedByHand(torch.float32, layers=3).eval(), (8,), batch_size=2)
    assert (report.totals.flops, report.totals.macs, report.totals.dmas) == (
        plain.totals.flops,
        plain.totals.macs,
        plain.totals.dmas,
    )
    assert _same(before, _snapshot(model))
    assert model.router.classifier.weight.dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_a_forward_casting_its_own_module_to_another_dtype_is_recorded_on_fakes(dtype: torch.dtype) -> None:
    """A cast that changes a parameter's dtype cannot sit in an fx graph (it changes the module, not a value): the
    forward is recorded on fake tensors, and counts what the same casts written as tensor ops count. No real
    forward runs; the user's model keeps its dtype, its tensors and its attributes."""
    model = _Routed(dtype, layers=2).eval()
    before = _snapshot(model)
    report = crawl_module(model, (8,), batch_size=2, real_forward=False)
    by_hand = crawl_module(_RoutedByHand(dtype, layers=2).eval(), (8,), batch_size=2, real_forward=False)
    assert report.context.capture == "eager-record"
    (fallback,) = [d for d in report.diagnostics if d.code == "capture-fallback"]
    assert "casts Linear.weight (torch.float32, cpu) to " + str(dtype) in fallback.message
    assert not [d for d in report.diagnostics if d.code == "real-forward"]
    assert report.totals.complete
    assert (report.totals.flops, report.totals.macs, report.totals.dmas) == (
        by_hand.totals.flops,
        by_hand.totals.macs,
        by_hand.totals.dmas,
    )
    assert _same(before, _snapshot(model))


def test_a_sweep_of_a_forward_casting_its_modules_equals_fresh_analyses() -> None:
    """Repeated blocks whose forward casts their module (``self.float()``) are replayed: the copy's ``_apply``
    is set while calls are routed, and is not state a block's key reads."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.float().lin(x))

    model = nn.Sequential(*(Block() for _ in range(24))).eval()  # replays skip 46 of 49 modules: reused
    shapes = [{"input_shape": (8,), "batch_size": batch} for batch in (1, 3)]
    swept = sweep(model, shapes)
    assert swept[0].context.capture == "torch.fx" and swept[0].totals.macs == 24 * 8 * 8
    assert [item.to_dict() for item in swept] == [
        crawl_module(model, (8,), batch_size=batch).to_dict() for batch in (1, 3)
    ]
    assert all("_apply" not in vars(module) for module in model.modules())


def test_a_forward_changing_its_module_s_memory_format_is_recorded_and_leaves_the_model_s_layout() -> None:
    class ChannelsLast(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.conv.to(memory_format=torch.channels_last)
            return self.conv(x)

    model = ChannelsLast().eval()
    report = crawl_module(model, (3, 8, 8), real_forward=False)
    plain = crawl_module(nn.Sequential(nn.Conv2d(3, 4, 3)).eval(), (3, 8, 8))
    assert report.context.capture == "eager-record" and report.totals.macs == plain.totals.macs
    (fallback,) = [d for d in report.diagnostics if d.code == "capture-fallback"]
    assert "Conv2d.weight (torch.float32, cpu) to another layout (strides (27, 1, 9, 3))" in fallback.message
    assert model.conv.weight.is_contiguous()
