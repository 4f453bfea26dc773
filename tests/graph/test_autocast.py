"""``torch.autocast`` regions (``torchscan/graph/autocast.py``): ops run under autocast get the dtypes autocast
gives them, in the forward's own regions and under the caller's, on every capture path, and the thread's
autocast state is left as found."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import torchscan.graph.capture as capture_module
from torchscan import crawl_module, sweep
from torchscan.graph import autocast
from torchscan.graph.autocast import AUTOCAST
from torchscan.graph.trace import capture

BF16 = torch.bfloat16


class _Dtypes(TorchFunctionMode):
    """The dtype of every tensor a real forward's torch calls return, in call order (the oracle)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, torch.dtype]] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        if isinstance(result, torch.Tensor) and getattr(func, "__name__", "") not in ("__get__", "__set__"):
            self.seen.append((func.__name__, result.dtype))
        return result


def _real_dtypes(model: nn.Module, *inputs: torch.Tensor) -> list[torch.dtype]:
    with torch.no_grad(), _Dtypes() as mode:
        model(*inputs)
    return [dtype for _, dtype in mode.seen]


def _report_dtypes(report: Any) -> list[torch.dtype]:
    """Each op node's first output dtype, in graph order (placeholders and the output left out)."""
    dtypes = []
    for _, data in report.records.nodes(data=True):
        record = data["record"]
        if record.op in ("call_function", "call_method", "call_module") and record.outputs:
            dtypes.append(record.outputs[0].dtype)
    return dtypes


class _Branching(nn.Module):
    """Its Python code branches on the dtype autocast gives ``y``."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(32, 32), nn.Linear(32, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=BF16):
            y = self.a(x)
        if y.dtype == BF16:
            return self.b(y.float())
        return self.b(y) * 2


def test_a_forward_branching_on_the_dtype_autocast_gives_takes_the_real_branch() -> None:
    """Before, the graph said ``a -> float32`` and the trace took the ``* 2`` branch no real forward takes."""
    report = crawl_module(_Branching(), (32,))
    types = [data["record"].type_name for _, data in report.records.nodes(data=True)]
    assert types == ["placeholder", "Linear", "float", "Linear", "output"]
    assert _report_dtypes(report) == [BF16, torch.float32, torch.float32]


class _Mixed(nn.Module):
    """Ops autocast runs in low precision, in float32 and as they come, some with a shape rule, some without."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm(self.conv(x)))
        h = h.flatten(2).transpose(1, 2)  # (N, HW, C)
        h = self.fc(h)
        scores = torch.einsum("bic,bjc->bij", h, h)
        scores = torch.baddbmm(scores, h, h.transpose(1, 2))
        attention = torch.softmax(scores, dim=-1)
        out = torch.bmm(attention, h) + h
        return torch.cdist(out, out).mean(dim=-1)


@pytest.mark.parametrize("dtype", [BF16, torch.float16])
def test_ops_under_the_callers_autocast_get_the_dtypes_of_a_real_forward_there(dtype: torch.dtype) -> None:
    """Before, the caller's autocast reached the ops no shape rule answers (``baddbmm``) and no other
    (``einsum``, ``linear``): one report mixed both."""
    model = _Mixed().eval()
    x = torch.randn(2, 3, 6, 6)
    with torch.autocast("cpu", dtype=dtype):
        report = crawl_module(model, (3, 6, 6), batch_size=2)
        real = _real_dtypes(model, x)
    found = _report_dtypes(report)
    assert found == real[: len(found)] and len(found) == len(real), (found, real)
    assert dtype in found and torch.float32 in found
    note = next(d for d in report.diagnostics if d.code == "autocast")
    assert str(dtype).removeprefix("torch.") in note.message and len(note.nodes) == len(found)


def test_without_autocast_nothing_changes() -> None:
    model = _Mixed().eval()
    report = crawl_module(model, (3, 6, 6), batch_size=2)
    assert set(_report_dtypes(report)) == {torch.float32}
    assert not [d for d in report.diagnostics if d.code == "autocast"]
    assert not [n for n in report.records.nodes if AUTOCAST in getattr(report.records.nodes[n]["record"], "meta", {})]


class _Regions(nn.Module):
    """An autocast region inside the forward, one disabled inside it, and ops outside both."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d = (nn.Linear(16, 16) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(x)
        with torch.autocast("cpu", dtype=BF16):
            x = self.b(x)
            with torch.autocast("cpu", enabled=False):
                x = self.c(x.float())
            x = self.d(x)
        return x + 1


def test_nested_regions_and_ops_outside_them() -> None:
    model = _Regions().eval()
    report = crawl_module(model, (16,))
    assert _report_dtypes(report) == _real_dtypes(model, torch.randn(1, 16))
    assert _report_dtypes(report) == [torch.float32, BF16, torch.float32, torch.float32, BF16, BF16]


def test_a_region_the_forward_disables_inside_the_callers() -> None:
    model = _Regions().eval()
    with torch.autocast("cpu", dtype=BF16):
        report = crawl_module(model, (16,))
        real = _real_dtypes(model, torch.randn(1, 16))
    assert _report_dtypes(report) == real
    assert _report_dtypes(report)[0] == BF16  # ``a``: under the caller's region


class _Repeated(nn.Module):
    """Three identical blocks (block reuse keys them alike), the last two under autocast."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 16)) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks[0](x)
        with torch.autocast("cpu", dtype=BF16):
            x = self.blocks[1](x)
            return self.blocks[2](x)


class _CastingBlock(nn.Module):
    """A block whose own forward enters an autocast region."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=BF16):
            return torch.relu(self.fc(x)).float()


def _with_reuse_everywhere(monkeypatch: pytest.MonkeyPatch, model: nn.Module, **kwargs: Any) -> Any:
    """``crawl_module`` with block reuse wherever a block repeats, however small the share it saves."""
    with monkeypatch.context() as patched:
        patched.setattr(capture_module, "capture", functools.partial(capture, min_share=0))
        return crawl_module(model, (16,), **kwargs)


@pytest.mark.parametrize("model", [_Repeated(), nn.Sequential(*(_CastingBlock() for _ in range(3)))])
def test_blocks_under_autocast_are_neither_recorded_nor_replayed(
    model: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Block reuse replays a block's recorded nodes, and the autocast state is not in its key: a block called
    under autocast, or entering a region itself, is traced (before, the replays were float32)."""
    model.eval()
    report = _with_reuse_everywhere(monkeypatch, model)
    assert _report_dtypes(report) == _real_dtypes(model, torch.randn(1, 16))
    with monkeypatch.context() as patched:
        patched.setattr(capture_module, "capture", functools.partial(capture, reuse=False))
        assert report.to_dict() == crawl_module(model, (16,)).to_dict()


class _Unfoldable(nn.Module):
    """``torch.arange(4.).expand(n, -1)`` on a size the trace reads: fx cannot trace it, the forward is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=BF16):
            ramp = torch.arange(4.0).expand(x.shape[0], -1)
            return self.fc(x + ramp)


def test_a_recorded_forward_under_autocast() -> None:
    model = _Unfoldable().eval()
    report = crawl_module(model, (4,), batch_size=3)
    assert report.context.capture != "torch.fx"
    assert _report_dtypes(report)[-1] == BF16
    assert _report_dtypes(report) == _real_dtypes(model, torch.randn(3, 4))[-len(_report_dtypes(report)) :]


def test_a_sweep_under_autocast_equals_fresh_analyses() -> None:
    model = _Mixed().eval()
    shapes = [(3, 6, 6), (3, 8, 8), (3, 4, 4)]
    with torch.autocast("cpu", dtype=BF16):
        swept = sweep(model, shapes)
        fresh = [crawl_module(model, shape) for shape in shapes]
    assert [report.to_dict() for report in swept] == [report.to_dict() for report in fresh]
    assert swept[0].to_dict() != crawl_module(model, shapes[0]).to_dict()  # not the report without autocast


def _state() -> tuple[Any, ...]:
    return (
        tuple((d, torch.is_autocast_enabled(d), torch.get_autocast_dtype(d)) for d in autocast.DEVICE_TYPES),
        torch.is_autocast_cache_enabled(),
    )


def test_the_threads_autocast_state_is_left_as_found() -> None:
    before = _state()
    crawl_module(_Regions(), (16,))
    assert _state() == before
    with torch.autocast("cpu", dtype=torch.float16, cache_enabled=False):
        inside = _state()
        crawl_module(_Regions(), (16,))
        assert _state() == inside
    assert _state() == before


def test_applied_sets_exactly_the_state_and_puts_back_the_previous() -> None:
    before = _state()
    with autocast.applied((("cpu", torch.float16),)):
        assert autocast.current() == (("cpu", torch.float16),)
        assert not torch.is_autocast_cache_enabled()
        with autocast.applied(()):
            assert autocast.current() == () and not autocast.enabled()
        assert autocast.current() == (("cpu", torch.float16),)
    assert _state() == before
