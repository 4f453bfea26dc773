"""The fake copy: what ``from_tensor`` would make, structure kept, the user's model untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from tests.test_api import assert_same, snapshot
from torchscan import crawl_module
from torchscan.graph.clone import _plain_fake, fake_copy
from torchscan.graph.trace import capture
from torchscan.inputs import model_inputs
from torchscan.ops import DEFAULT_REGISTRY

TENSORS = [
    torch.randn(4, 3),
    torch.randn(2, 3, 5).transpose(0, 2).contiguous(),
    nn.Parameter(torch.randn(8)),
    nn.Parameter(torch.randn(3), requires_grad=False),
    torch.tensor(0),
    torch.tensor(7, dtype=torch.int32),
    torch.tensor(1.5, dtype=torch.float64),
    torch.tensor(2.0),
    torch.tensor(float("inf"), dtype=torch.float64),
    nn.Parameter(torch.tensor(1.0)),
    torch.empty(2, 2, device="meta"),
]


@pytest.mark.parametrize("tensor", TENSORS, ids=range(len(TENSORS)))
def test_plain_fake_is_what_from_tensor_makes(tensor: torch.Tensor) -> None:
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    made, reference = _plain_fake(tensor, mode), mode.from_tensor(tensor, static_shapes=True)
    assert made is not None
    for attribute in ("shape", "dtype", "device", "requires_grad", "is_leaf", "item_memo"):
        assert getattr(made, attribute) == getattr(reference, attribute), attribute
    assert made.stride() == reference.stride()
    assert made.untyped_storage().nbytes() == reference.untyped_storage().nbytes()
    assert isinstance(made, nn.Parameter) == isinstance(reference, nn.Parameter)


def test_views_and_tensors_with_attributes_are_left_to_from_tensor() -> None:
    mode = FakeTensorMode()
    base = torch.randn(4, 4)
    tagged = torch.randn(2)
    tagged.tag = "mine"  # type: ignore[attr-defined]
    assert _plain_fake(base[1:], mode) is None
    assert _plain_fake(tagged, mode) is None


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Linear(4, 4)
        self.again = self.block  # the same module twice
        self.head = nn.Linear(4, 4)
        self.head.weight = self.block.weight  # tied
        self.seen: list[int] = []
        self.register_buffer("steps", torch.tensor(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.again(self.block(x)))


def test_fake_copy_keeps_structure_and_leaves_the_model_as_found() -> None:
    model = Shared()
    model.register_forward_hook(lambda *_: None)
    before = snapshot(model)
    clone = fake_copy(model, FakeTensorMode(allow_non_fake_inputs=True))
    assert_same(before, snapshot(model))
    assert clone is not model and clone.block is not model.block
    assert clone.again is clone.block and clone.head.weight is clone.block.weight
    assert all(type(t).__name__ == "FakeTensor" for t in (*clone.parameters(), *clone.buffers()))
    assert not clone._forward_hooks and model._forward_hooks
    clone.seen.append(1)
    assert model.seen == []
    assert clone.steps.item_memo == 0


class ScalesInPlace(nn.Module):
    """Traced-through code that changes its own parameter and buffer in place."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(4))
        self.register_buffer("count", torch.zeros(()))
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.scale.mul_(2)
        self.count += 1
        return self.fc(x) * self.scale


def test_in_place_changes_in_traced_code_never_reach_the_model() -> None:
    model = ScalesInPlace()
    before = snapshot(model)
    report = crawl_module(model, (4,), batch_size=2)
    assert_same(before, snapshot(model))
    assert report.context.output_shapes == ((2, 4),)  # fx's graph drops no_grad: the recorder answers


class Counts(nn.Module):
    """Traced-through code that bumps a buffer and reads a child's buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros(()))
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.count += 1
        self.bn.running_mean.add_(1)
        return self.bn(x) + self.count + self.bn.running_var


def test_buffers_changed_by_traced_code_stay_unchanged_in_the_model() -> None:
    model = Counts().eval()
    before = snapshot(model)
    report = crawl_module(model, (4,), batch_size=2)
    assert_same(before, snapshot(model))
    assert report.context.capture == "torch.fx" and report.context.output_shapes == ((2, 4),)
    kinds = {record.type_name for record in (data["record"] for _, data in report.records.nodes(data=True))}
    assert {"get_attr", "BatchNorm1d"} <= kinds  # buffer ops at trace time act on the fakes, as fx on buffers


def test_capture_fakes_parameters_only_where_an_op_is_dispatched() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    captured = capture(model, DEFAULT_REGISTRY, model_inputs((3, 8, 8), batch_size=1))
    root = captured.root
    assert root[0].weight is model[0].weight  # the model's own parameter object, read for its shape only
    assert root[1].running_mean is model[1].running_mean  # a leaf's buffers too: traced code never sees them
    assert captured.fakes is not None
    put = captured.fakes.fill(root[0])
    assert [type(t).__name__ for t in put] == ["FakeTensor", "FakeTensor"] and root[0].weight is put[0]
    assert model[0].weight is not put[0] and type(model[0].weight) is nn.Parameter
