"""Liveness: module-call arguments are held until their call returns, and no longer.

Each net works on one activation size ``A`` (bytes of a ``1x1x16x16`` float32 tensor); the peaks
are worked out by hand from what eager Python holds, and checked against a real CPU run.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from torchscan import crawl_module
from torchscan.measure.cpu import measure_inference, random_inputs
from torchscan.passes.memory import CONTAINER_MODULES, container_modules

A = 4 * 16 * 16
"""Bytes of one activation."""


def _peaks(model: nn.Module) -> tuple[int, int]:
    """(static, measured) inference peaks, in activations."""
    static = crawl_module(model, (1, 16, 16), batch_size=1).memory.activation_peak_bytes
    measured = measure_inference(model, random_inputs([(1, 1, 16, 16)])).total_bytes
    return static // A, measured // A


class _Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


class _Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.inner = nn.ReLU(), _Inner()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(self.stem(x))


def test_a_module_call_argument_lives_until_the_call_returns() -> None:
    """``inner``'s argument (the stem's output) is last read by ``first``, but ``inner.forward``'s
    parameter ``x`` holds it until ``inner`` returns. During ``second``: the input, the stem's
    output, ``first``'s output (``second``'s argument) and ``second``'s output = 4 activations
    (freeing arguments at their last read would say 3)."""
    assert _peaks(_Outer()) == (4, 4)


class _Chain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 1, 1)
        self.blocks = nn.ModuleList([nn.ReLU() for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return x


def test_children_of_a_container_are_separate_calls() -> None:
    """A ``ModuleList`` is never called: ``blocks.0`` returns before ``blocks.1`` starts, and the
    loop's ``x`` is rebound to its output, so the stem's output is freed after ``blocks.0``. Peak:
    the caller's input, one block's argument and its output = 3 activations (holding the stem's
    output until the last block returns would say 4)."""
    assert _peaks(_Chain()) == (3, 3)


def test_containers_are_the_modules_without_forward() -> None:
    model = _Chain()
    assert container_modules(model) == {"blocks"}
    assert container_modules(nn.Sequential(nn.ModuleDict({"a": nn.ReLU()}), nn.ReLU())) == {"0"}
    report = crawl_module(model, (1, 16, 16))
    assert report.records.graph[CONTAINER_MODULES] == {"blocks"}


class _Pair(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.exp(x), torch.sigmoid(x)


class _Unpacks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pair = _Pair()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.exp(x)
        h, side = self.pair(h)  # tuple targets rebind h: its old value goes when the statement completes
        return torch.cat([h, side, h, side], 1)


def test_tuple_targets_release_the_names_they_rebind() -> None:
    # x, h, side (the old h freed after the unpacking) + the 4A concatenation = 7A; holding the old h
    # to the end of forward would make it 8A
    assert _peaks(_Unpacks()) == (7, 7)


class _Pairs(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.exp(x), torch.sigmoid(x)


class _KeepsReturned(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pair = _Pairs()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, gate = self.pair(x)  # both names hold their value to the end of forward
        y = out * gate
        return torch.exp(y)


def test_a_result_returned_into_a_binding_line_is_held_by_its_names() -> None:
    # x, out, gate, y and exp(y) at the end = 5A (freeing out and gate after their last use gave 4A)
    assert _peaks(_KeepsReturned()) == (5, 5)


class _KeepsAnnotated(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h: torch.Tensor = torch.exp(x)  # an annotated local (Hugging Face's Llama: ``inputs_embeds: torch.Tensor = …``)
        y = h  # read from here on through another name, which is rebound
        y = torch.sigmoid(y)
        return torch.cat([y, y], 1)


def test_an_annotated_local_holds_its_value_until_the_frame_returns() -> None:
    # x, h (held by its name), y and the 2A concatenation = 5A (h freed at its last read gave 4A)
    assert _peaks(_KeepsAnnotated()) == (5, 5)


class _Weighted(nn.Module):
    """Returns its output and its weights, as an attention module returns its probabilities."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = torch.sigmoid(x)
        return x * w, w


class _KeepsWeights(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = _Weighted()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.attn(x)  # ``_`` holds the weights until the frame returns; ``h`` is bound again below
        h = torch.exp(h)
        return torch.cat([h, h], 1)


class _CalledThrough(_Weighted):
    """A class whose own ``__call__`` returns the call (Hugging Face's ``GradientCheckpointingLayer``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(*args, **kwargs)


class _KeepsWeightsCalledThrough(_KeepsWeights):
    def __init__(self) -> None:
        super().__init__()
        self.attn = _CalledThrough()


class _IndexesWeights(_KeepsWeights):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.attn(x)[0]  # the weights are dropped with the tuple
        h = torch.exp(h)
        return torch.cat([h, h], 1)


class _Block(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)


class _BlocksUntraceable(nn.Module):
    """Blocks called in a loop, ``x = blk(x)``, behind a table keyed by a size (a proxy is no key of it): recorded,
    where the runs of the loop's line are not counted."""

    repeats: ClassVar[dict[int, int]] = {1: 4}

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([_Block() for _ in range(4)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks[: self.repeats[x.shape[1]]]:
            x = blk(x)
        return torch.cat([x, x], 1)


def test_a_recorded_loop_s_results_are_not_held_by_its_line() -> None:
    # x, the last block's output and the 2A concatenation = 4A: the line that receives each block's result binds
    # ``x`` again at every run; a recorded forward does not tell the runs apart, so its receiving line holds none
    # (holding each result to the frame's end gave 7A; timm's gemma4_vit on meta +14.8%)
    assert crawl_module(_BlocksUntraceable(), (1, 16, 16)).context.capture == "eager-record"
    assert _peaks(_BlocksUntraceable()) == (4, 4)


@pytest.mark.parametrize(
    ("model", "peaks"),
    [
        (_KeepsWeights, (5, 5)),
        (_KeepsWeightsCalledThrough, (5, 5)),
        (_IndexesWeights, (4, 4)),
    ],
)
def test_a_call_s_result_unpacked_into_names_is_held_item_by_item(model: type[nn.Module], peaks: tuple) -> None:
    # at the end: x, the weights (held by ``_``, never read again), exp(h) and the 2A concatenation = 5A (4A when
    # the weights were freed at their last read, as they are where the line indexes the result)
    assert _peaks(model()) == peaks


class _Cache:
    """An object of the output that is not data: it holds tensors (as a model's key/value cache)."""

    def __init__(self) -> None:
        self.kept: list[torch.Tensor] = []


class _Caching(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, _Cache]:
        cache = _Cache()
        h = torch.exp(x)
        cache.kept.append(torch.sigmoid(h))
        h = torch.exp(h)
        return torch.exp(h), cache


def test_tensors_held_by_an_output_object_live_to_the_end() -> None:
    # x, the cached sigmoid, the old and the new h = 4A (the cached tensor freed at once gave 3A)
    assert _peaks(_Caching()) == (4, 4)


class _DictCache(nn.Module):
    """LeViT's attention-bias cache: a table computed from a parameter at the first call, kept in a dict the
    module holds."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 1, 16, 16))
        self.cache: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if "table" not in self.cache:
            self.cache["table"] = torch.exp(self.bias)
        h = torch.exp(x * self.cache["table"])
        return torch.exp(h)


class _BufferTable(nn.Module):
    """ConViT's relative positions: a buffer the first call replaces by a table built from sizes alone (the
    trace computes it outside the graph: a constant of the graph)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table", torch.zeros(1, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = int(x.shape[-1])
        if self.table.shape[-1] != size:
            self.table = torch.ones(1, 1, size, size)
        h = torch.exp(x * self.table)
        return torch.exp(h)


class _KeepsLast(nn.Module):
    """Keeps an activation in a plain attribute (a feature a loss reads later)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.exp(x)
        self.last = h
        h = torch.exp(h)
        return torch.exp(h)


class _KeepsLastUntraceable(_KeepsLast):
    """The same, looping a number of times a table keyed by a size gives (a proxy is no key of it): recorded."""

    repeats: ClassVar[dict[int, int]] = {1: 1}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.repeats[x.shape[1]]):
            x = torch.exp(x)
        return super().forward(x)


@pytest.mark.parametrize("model", [_DictCache, _BufferTable, _KeepsLast], ids=lambda cls: cls.__name__)
def test_a_tensor_the_forward_keeps_in_the_model_lives_to_the_end(model: type[nn.Module]) -> None:
    # x, the kept tensor, h and the output at the end = 4A; freed at its last read, the kept tensor made it 3A
    assert _peaks(model().eval()) == (4, 4)


def test_a_recorded_forward_keeps_what_the_model_keeps() -> None:
    model = _KeepsLastUntraceable().eval()
    assert crawl_module(model, (1, 16, 16)).context.capture == "eager-record"
    # x, exp(x) (the caller's and the loop's names), the kept tensor, h and the output = 5A (4A freed at its read)
    assert _peaks(model) == (5, 5)


class _Unpacked(nn.Module):
    """Tuple targets bound to the items of one call (LeViT's ``k, v = self.kv(x).view(…).split(…)``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, v = torch.exp(torch.cat([x, x], 1)).split(1, 1)  # views of one 2A tensor: held until the frame returns
        h = torch.exp(k * v)
        return torch.cat([h, h, h], 1)


def test_names_unpacking_one_call_s_items_hold_them_until_the_frame_returns() -> None:
    # at the end: x, the split tensor (2A, held by k and v), h and the 3A concatenation = 7A; freed after k * v,
    # it made 5A
    assert _peaks(_Unpacked().eval()) == (7, 7)


class _UnpackedOverLines(nn.Module):
    """The same, its statement spelled over two lines (LeViT's attention: ``q, k, v = self.qkv(x).view(`` and
    the split on the next line)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, v = torch.exp(torch.cat([x, x], 1)).view(
            1, 2, 16, 16).split(1, 1)  # fmt: skip
        h = torch.exp(k * v)
        return torch.cat([h, h, h], 1)


def test_names_unpacking_items_over_several_lines_hold_them_too() -> None:
    # as above: 7A (5A where the first line, which does not parse alone, was all that was read)
    assert _peaks(_UnpackedOverLines().eval()) == (7, 7)
