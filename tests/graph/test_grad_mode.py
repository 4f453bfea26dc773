"""Grad mode regions of a forward (``torchscan/graph/grad_mode.py``): the nodes made with grad disabled are
marked whatever the caller's mode, the shape pass runs them so, and block reuse replays none of another mode."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from torch import nn

import torchscan.graph.capture as capture_module
from torchscan import crawl_module, sweep
from torchscan.graph.grad_mode import NO_GRAD_NODES
from torchscan.graph.trace import capture


class _Regions(nn.Module):
    """Ops under ``no_grad``, ``inference_mode`` and ``set_grad_enabled(False)``, and ops outside them."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d = (nn.Linear(8, 8) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(x)
        with torch.no_grad():
            x = self.b(x)
        with torch.inference_mode():
            y = self.c(x.clone())
        with torch.set_grad_enabled(False):
            z = torch.relu(y)
        return self.d(x) + z


def _no_grad_nodes(report: object) -> frozenset[str]:
    return report.records.graph.get(NO_GRAD_NODES, frozenset())  # type: ignore[attr-defined]


def test_nodes_made_with_grad_disabled_are_marked_whatever_the_callers_mode() -> None:
    expected = {"b", "clone", "c", "relu"}
    assert _no_grad_nodes(crawl_module(_Regions(), (8,))) == expected
    with torch.no_grad():  # the capture runs the forward with grad on: only the forward's own regions count
        assert _no_grad_nodes(crawl_module(_Regions(), (8,))) == expected
    with torch.inference_mode():
        assert _no_grad_nodes(crawl_module(_Regions(), (8,))) == expected
    assert not _no_grad_nodes(crawl_module(nn.Sequential(nn.Linear(8, 8), nn.ReLU()), (8,)))


class _Momentum(nn.Module):
    """A momentum encoder's update by attribute (``self.key.weight.mul_``) under ``no_grad``."""

    def __init__(self) -> None:
        super().__init__()
        self.query, self.key = nn.Linear(16, 16), nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            self.key.weight.mul_(0.9).add_(self.query.weight, alpha=0.1)
            key = self.key(x)
        return self.query(x), key


def test_a_parameter_updated_in_place_under_no_grad_is_traced() -> None:
    """Before, the shape pass ran ``mul_`` on the parameter's fake with grad on: torch refuses an in-place op on a
    leaf that requires grad, and the capture fell back to recording a forward."""
    model = _Momentum().train()
    weights = [parameter.detach().clone() for parameter in model.parameters()]
    report = crawl_module(model, (16,))
    assert report.context.capture == "torch.fx"
    assert not [d for d in report.diagnostics if d.code == "capture-fallback"]
    assert {"mul_", "add_", "key"} <= _no_grad_nodes(report)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True))


class _TeacherStudent(nn.Module):
    """A student and its teacher of the same blocks (one reuse key), the teacher under ``no_grad``."""

    def __init__(self) -> None:
        super().__init__()
        self.student = nn.Sequential(*(nn.Sequential(nn.Linear(16, 16), nn.GELU()) for _ in range(3)))
        self.teacher = copy.deepcopy(self.student)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.teacher(x)
        return self.student(x) - target


def test_blocks_replay_nothing_of_another_grad_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """The teacher's blocks have the student's key: replayed, their nodes would not be marked (the replay of a
    block traced with grad on) and the teacher would train."""
    model = _TeacherStudent().train()
    with monkeypatch.context() as patched:
        patched.setattr(capture_module, "capture", functools.partial(capture, min_share=0))
        reused = crawl_module(model, (16,))
    with monkeypatch.context() as patched:
        patched.setattr(capture_module, "capture", functools.partial(capture, reuse=False))
        plain = crawl_module(model, (16,))
    assert reused.to_dict() == plain.to_dict()
    assert len(_no_grad_nodes(reused)) == 6  # the teacher's three linear layers and three GELUs
    memory = reused.memory
    assert memory is not None
    student = sum(parameter.numel() * 4 for parameter in model.student.parameters())
    assert memory.training_for("sgd").grad_bytes == student


class _Checkpointed(nn.Module):
    """Blocks under torch's reentrant activation checkpoint (their forward runs with grad disabled), after a
    stem whose output requires grad."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(16, 16)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16)) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = x + torch.utils.checkpoint.checkpoint(block, x, use_reentrant=True)
        return x


class _Clamp(torch.autograd.Function):
    """A straight-through clamp in the ``setup_context`` style (a static ``forward`` without ``ctx``)."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x.clamp(-1, 1) * 1.0

    @staticmethod
    def setup_context(ctx: object, inputs: object, output: object) -> None:
        pass

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        return grad


class _StraightThrough(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(16, 16), nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(_Clamp.apply(self.a(x)))


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch's reentrant checkpoint warns of the trace's proxies
@pytest.mark.parametrize("build", [_Checkpointed, _StraightThrough])
def test_an_autograd_functions_forward_is_no_region_of_the_forward(build: type[nn.Module]) -> None:
    """A ``torch.autograd.Function``'s forward runs with grad disabled, yet its outputs require grad and the
    parameters before it get gradients through its backward: its ops are not marked. Before, the checkpointed
    blocks' parameters got none (an SGD step 45% under a real one)."""
    model = build().train()
    report = crawl_module(model, (16,), batch_size=4)
    assert not _no_grad_nodes(report)
    memory = report.memory
    assert memory is not None
    assert memory.training_for("sgd").grad_bytes == sum(parameter.numel() * 4 for parameter in model.parameters())


@pytest.mark.parametrize("build", [_Regions, _Momentum, _TeacherStudent])
def test_a_sweep_over_batch_sizes_equals_fresh_analyses(build: type[nn.Module]) -> None:
    model, width = build().train(), 8 if build is _Regions else 16
    sizes = (1, 3, 8)
    swept = sweep(model, [{"batch_size": size} for size in sizes], input_shape=(width,))
    fresh = [crawl_module(model, (width,), batch_size=size) for size in sizes]
    assert [report.to_dict() for report in swept] == [report.to_dict() for report in fresh]
