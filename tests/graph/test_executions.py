"""The runs of the lines of user frames, counted as a trace makes its nodes (:mod:`torchscan.graph.executions`)."""

from __future__ import annotations

import weakref

import torch
from torch import nn

from torchscan import crawl_module
from torchscan.graph.executions import Executions, is_user_file

_SEEN: list[weakref.ref] = []


class _Marker:
    """An object a helper's frame holds while it runs."""


class _Loops(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))

    def helper(self, t: torch.Tensor) -> torch.Tensor:
        marker = _Marker()
        _SEEN.append(weakref.ref(marker))
        return torch.relu(self.lin(t))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(2):
            x = self.helper(x)  # a function of the user's, called by two runs of one line
        x = self.helper(self.helper(x))  # two calls made by one run
        for block in self.blocks:
            x = block(x)  # a module called by two runs of one line
        for _ in range(2):
            x = torch.tanh(x)  # a line calling no function of the user's
        return x


def _runs() -> dict[str, tuple[int, ...]]:
    records = crawl_module(_Loops(), (4,)).records
    return {name: records.nodes[name]["record"].executions for name in records}


def test_runs_of_a_line_tell_a_loop_s_iterations_apart() -> None:
    runs = _runs()
    # forward's line, then the helper's: the loop's two calls of helper are two runs of its line
    assert runs["lin"] == runs["relu"] == (1, 1) and runs["lin_1"] == runs["relu_1"] == (2, 1)
    # one run calls helper twice from two instructions: both calls in that run
    assert runs["lin_2"] == runs["lin_3"] == (2, 1)
    # a module called by a loop: each call is a new run (a frame counts its runs: a later line goes on counting)
    assert runs["blocks_0"] == (2,) and runs["blocks_1"] == (3,)
    # an op made by the same instruction again: its call into torch is a new frame, so a new run too
    assert runs["tanh"] == (3,) and runs["tanh_1"] == (4,)
    assert runs["x"] == () and runs["output"] == ()


class _Switching(nn.Module):
    """One line of a loop calls a block through a helper in one run and directly in the others."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(4))

    def helper(self, block: nn.Module, t: torch.Tensor) -> torch.Tensor:
        return block(t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for position, block in enumerate(self.blocks):
            x = self.helper(block, x) if position == 1 else block(x)
        return x


def test_a_run_that_takes_the_line_s_other_call_is_a_new_run() -> None:
    """The third run calls from an instruction after the second run's (the conditional expression's other
    branch), which no run reaches from there without the loop's jump back: a new run, not the second's."""
    records = crawl_module(_Switching(), (4,)).records
    runs = {name: records.nodes[name]["record"].executions for name in records}
    assert runs["blocks_0"] == (1,) and runs["blocks_1"] == (2, 1)
    assert runs["blocks_2"] == (3,) and runs["blocks_3"] == (4,)


def test_the_frames_a_trace_met_are_let_go_when_it_ends() -> None:
    """Frames are held while the trace runs (no new frame can take a seen one's address), not after: what they
    held is freed once the analysis returns (no cycle left for the collector)."""
    _SEEN.clear()
    _runs()
    assert _SEEN and all(ref() is None for ref in _SEEN)


def test_user_files_and_a_fresh_state() -> None:
    assert is_user_file(__file__) and not is_user_file(torch.__file__)
    executions = Executions()
    assert executions.current() == ()
    executions.close()


class _Sequenced(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_a_call_into_torch_that_runs_several_modules_is_one_run() -> None:
    """``nn.Sequential``'s own loop calls each child: the user's line called ``body`` once."""
    records = crawl_module(_Sequenced(), (4,)).records
    assert {records.nodes[name]["record"].executions for name in ("body_0", "body_1")} == {(1,)}
