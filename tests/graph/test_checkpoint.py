"""Checkpointed calls marked on the nodes made inside them (graph/checkpoint.py)."""

from __future__ import annotations

import functools
import warnings

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.checkpoint import (
    CheckpointPolicy,
    checkpoint,
    checkpoint_sequential,
    create_selective_checkpoint_contexts,
)

from torchscan import crawl_module
from torchscan.graph.capture import _make_inputs
from torchscan.graph.checkpoint import CHECKPOINT, CHECKPOINT_NODES, Region
from torchscan.graph.clone import fake_copy
from torchscan.graph.record import record
from torchscan.inputs import model_inputs
from torchscan.ops import DEFAULT_REGISTRY


class Block(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.inner = nn.Linear(width, 2 * width)
        self.outer = nn.Linear(2 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.outer(torch.relu(self.inner(x)))


class Stack(nn.Module):
    def __init__(self, reentrant: bool | None, count: int = 3) -> None:
        super().__init__()
        self.stem = nn.Linear(16, 16)
        self.blocks = nn.ModuleList(Block() for _ in range(count))
        self.reentrant = reentrant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=self.reentrant) if self.reentrant is not None else block(x)
        return x


class Nested(nn.Module):
    """A checkpointed call inside another (``outer`` runs ``inner`` checkpointed), ops made in both directly."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(16, 16), nn.Linear(16, 16)

    def inner(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.a(x))

    def outer(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(checkpoint(self.inner, x, use_reentrant=False)) * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return checkpoint(self.outer, x, use_reentrant=False).sigmoid()


def _regions(model: nn.Module, shape: tuple[int, ...] = (8, 16)) -> dict[str, Region]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = crawl_module(model.train(), shape, batch_size=2)
    return dict(report.records.graph.get(CHECKPOINT_NODES, {}))


@pytest.mark.parametrize("reentrant", [False, True])
def test_each_checkpointed_call_is_one_region(reentrant: bool) -> None:
    regions = _regions(Stack(reentrant))
    assert "stem" not in regions
    by_block = {}
    for name, region in regions.items():
        assert region.reentrant is reentrant and region.parent is None
        by_block.setdefault(region.number, set()).add(name)
    assert sorted(by_block) == [0, 1, 2]
    assert by_block[0] == {"blocks_0_inner", "relu", "blocks_0_outer", "add"}


def test_no_checkpoint_no_regions() -> None:
    assert _regions(Stack(None)) == {}


def test_checkpoint_sequential_leaves_its_last_segment_out() -> None:
    class Sequential(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(*(nn.Linear(16, 16) for _ in range(6)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return checkpoint_sequential(self.body, 3, x, use_reentrant=False)

    regions = _regions(Sequential())
    assert set(regions) == {"body_0", "body_1", "body_2", "body_3"}  # torch runs the last segment plainly
    assert {regions["body_0"].number, regions["body_2"].number} == {0, 1}
    assert regions["body_0"] == regions["body_1"] != regions["body_2"]


def test_nested_calls_and_ops_made_directly_in_a_checkpointed_function() -> None:
    regions = _regions(Nested())
    outer, inner = regions["b"], regions["a"]
    assert inner.parent == outer and outer.parent is None
    assert regions["tanh"] == inner and regions["mul"] == outer
    assert "sigmoid" not in regions


def test_blocks_repeated_inside_checkpoints_are_marked_like_the_first() -> None:
    """Block reuse replays nothing inside a checkpointed call: each block's nodes carry its own region."""
    regions = _regions(Stack(False, count=6))
    assert len({region.number for region in regions.values()}) == 6
    assert len(regions) == 24


def test_a_diagnostic_names_the_checkpointed_ops_and_a_selective_policy() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = crawl_module(Stack(False).train(), (8, 16), batch_size=2)
    (note,) = [d for d in report.diagnostics if d.code == "checkpoint"]
    assert note.message.startswith("12 op(s) run in 3 checkpointed call(s) (non-reentrant)")
    assert "context_fn" not in note.message
    assert set(note.nodes) == set(_regions(Stack(False)))

    class Selective(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = Block()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            def policy(ctx: object, op: object, *args: object, **kwargs: object) -> CheckpointPolicy:
                return (
                    CheckpointPolicy.MUST_SAVE if op == torch.ops.aten.mm.default else CheckpointPolicy.PREFER_RECOMPUTE
                )

            context = functools.partial(create_selective_checkpoint_contexts, policy)
            return checkpoint(self.block, x, use_reentrant=False, context_fn=context)

    report = crawl_module(Selective().train(), (8, 16), batch_size=2)
    (note,) = [d for d in report.diagnostics if d.code == "checkpoint"]
    assert "context_fn (selective checkpointing) is not modelled" in note.message
    assert not [d for d in crawl_module(Stack(None), (8, 16), batch_size=2).diagnostics if d.code == "checkpoint"]


def _recorded_regions(model: nn.Module, shape: tuple[int, ...]) -> list[tuple[str, int, int | None]]:
    """(op target, region number, parent number) per call node of a forward recorded on fake tensors (the capture
    where fx cannot trace)."""
    inputs = model_inputs(shape, args=None, kwargs=None, dtype=None, batch_size=2, signature=None)
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        captured, _ = record(
            fake_copy(model.train(), mode),
            DEFAULT_REGISTRY,
            mode,
            _make_inputs(inputs, torch.device("cpu"), real=False),
        )
    found = []
    for node in captured.graph.nodes:
        region = node.meta.get(CHECKPOINT)
        if region is not None:
            found.append((str(node.target), region.number, region.parent.number if region.parent else None))
    return found


def test_a_recorded_forward_marks_the_same_regions() -> None:
    recorded = _recorded_regions(Stack(False), (8, 16))
    assert [number for _, number, _ in recorded] == [0] * 4 + [1] * 4 + [2] * 4
    assert all(parent is None for _, _, parent in recorded)

    recorded = _recorded_regions(Nested(), (16,))
    inner = [(number, parent) for target, number, parent in recorded if target in ("a", "tanh") or "tanh" in target]
    outer = [(number, parent) for target, number, parent in recorded if target == "b" or "mul" in target]
    assert inner and outer and {parent for _, parent in inner} == {outer[0][0]} and {p for _, p in outer} == {None}
    assert not _recorded_regions(Stack(None), (8, 16))
