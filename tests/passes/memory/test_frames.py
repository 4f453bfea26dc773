"""User frames read from fx stack traces: call site, function and source line of each, outermost
first, torch's and torchscan's own frames left out."""

from __future__ import annotations

import os

import torch
from torch import nn

from torchscan import crawl_module
from torchscan.passes.memory import container_modules, library_modules
from torchscan.passes.memory.frames import frames_by_node, parse_frames
from torchscan.records import node_records

_TORCH = os.path.join(os.path.dirname(torch.__file__), "nn", "modules", "module.py")


def test_frames_of_a_stack_trace() -> None:
    trace = (
        '  File "/home/me/net.py", line 12, in forward\n'
        "    y = self.block(x)\n"
        f'  File "{_TORCH}", line 1775, in _call_impl\n'
        "    return forward_call(*args, **kwargs)\n"
        '  File "/home/me/blocks.py", line 7, in forward\n'
        "    return self.conv(x) + x\n"
    )
    assert parse_frames(trace) == (
        ("/home/me/net.py:12", "/home/me/net.py:forward", "y = self.block(x)"),
        ("/home/me/blocks.py:7", "/home/me/blocks.py:forward", "return self.conv(x) + x"),
    )


def test_a_frame_without_its_source_line() -> None:
    assert parse_frames('  File "/home/me/net.py", line 3, in run') == (
        ("/home/me/net.py:3", "/home/me/net.py:run", ""),
    )
    assert parse_frames(None) == parse_frames("") == ()


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.ModuleList([nn.ReLU()]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body[1][0](self.body[0](x))


def test_library_and_container_modules() -> None:
    model = nn.Sequential(_Block(), nn.ReLU())
    # torch's own forward: Sequential, ReLU; ModuleList has none (never called)
    assert library_modules(model) == {"0.body", "0.body.0", "0.body.1", "0.body.1.0", "1"}
    assert container_modules(model) == {"0.body.1"}


def test_frames_by_node_reads_each_node_s_trace() -> None:
    model = nn.Sequential(_Block(), nn.ReLU())
    ordered = node_records(crawl_module(model, (4,)).records)
    frames = frames_by_node(ordered)
    assert frames == [parse_frames(record.stack_trace) for record in ordered]
    # the two ReLUs called from _Block.forward: one frame each, on its return line
    called = [chain[-1][2] for chain in frames if chain]
    assert called == ["return self.body[1][0](self.body[0](x))"] * 2
